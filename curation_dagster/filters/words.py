"""Words as datatrove's default English word tokenizer cuts them (`spacy.blank("en")`: spaCy's rules,
no model), without spaCy: whitespace chunks, each split once by `split_chunk` and cached. The quality
heuristics' thresholds were tuned on these words, not on whitespace tokens."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable
from itertools import chain
from typing import Final

_DIGITS = frozenset("0123456789")
_DIGITS_OR_HYPHEN = _DIGITS | {"-"}
_PUNCT = frozenset("…,:;!?¿؟¡()[]{}<>_#*&。？！，、；：～·।،۔؛٪")
_QUOTES = frozenset("'\"”“`‘´’‚„»«「」『』（）〔〕【】《》〈〉〈〉⟦⟧")
_CURRENCY = frozenset("$£€¥฿﷼") | frozenset(map(chr, range(0x20A0, 0x20C0)))
_PREFIX_CHARS = frozenset("§%=—–") | _PUNCT | _QUOTES | _CURRENCY
_SUFFIX_CHARS = frozenset("—–") | _PUNCT | _QUOTES
_AFTER_SUFFIX_STOP = frozenset("%²-+(?:)|") | _DIGITS | _PUNCT | _QUOTES
_HYPHENS = ("-", "–", "—", "--", "---", "——", "~")
_UNIT_NAMES = (
    "km km² km³ m m² m³ dm dm² dm³ cm cm² cm³ mm mm² mm³ ha µm nm yd in ft kg g mg µg t lb oz m/s "
    "km/h kmh mph hPa Pa mbar mb MB kb KB gb GB tb TB T G M K % км км² км³ м м² м³ дм дм² дм³ см "
    "см² см³ мм мм² мм³ нм кг г мг м/с км/ч кПа Па мбар Кб КБ кб Мб МБ мб Гб ГБ гб Тб ТБ тб"
)
_UNITS = frozenset(_UNIT_NAMES.split())
_LONGEST_UNIT = max(map(len, _UNITS))
_URL = re.compile(
    r"(?:[\w+\-.]{2,}://)?"  # scheme
    r"(?:[^\s@]+@)?"  # user, or user:password
    r"(?:\d{1,3}(?:\.\d{1,3}){3}"  # an IPv4 address, or host names ending in a lower-case top-level domain
    r"|(?:(?:[0-9A-Za-z\u00a1-\uffff][0-9A-Za-z\u00a1-\uffff_-]{0,62})?[0-9A-Za-z\u00a1-\uffff]\.)+"
    r"[a-z\u00b5\u00df-\u00f6\u00f8-\u00ff\u0430-\u045f\u3040-\u9fff\uac00-\ud7af]{2,63})"
    r"(?::\d{2,5})?"  # port
    r"(?:[/?#]\S*)?"  # path, query or fragment
)
#: Characters where an infix may start (symbols are outside ASCII).
_INFIX_CANDIDATE = re.compile(r"[.…,\-–—~:<>=/+*^]|[^\x00-\x7f]")
#: A lower-case or capitalised word and a contraction ("don't" is "do" + "n't", "We're" is "We" + "'re").
_CLITIC = re.compile(r"((?:[^\W\d_]|[^\W\d_][^\W\d_A-Z]+))(n['’]t|['’](?:[dm]|ll|re|ve))")


#: Abbreviations and emoticons that stay one word.
_WHOLE_WORDS = (
    "e.g. i.e. E.g. I.e. E.G. I.E. a.m. p.m. vs. v.s. co. Co. Corp. Inc. Ltd. Bros. Mr. Mrs. Ms. "
    "Messrs. Dr. Prof. Jr. St. Mt. Gen. Gov. Rep. Sen. Rev. Adm. Ph.D. Jan. Feb. Mar. Apr. Jun. Jul. "
    "Aug. Sep. Sept. Oct. Nov. Dec. Ala. Ariz. Ark. Calif. Colo. Conn. Del. Fla. Ga. Ia. Id. Ill. Ind. "
    "Kan. Kans. Ky. La. Mass. Md. Mich. Minn. Miss. Mo. Mont. Neb. Nebr. Nev. Okla. Ore. Pa. Tenn. Va. "
    "Wash. Wis. Ak. ä. ö. ü. C++ and/or w/o '' :) :( :-) :-( ;) ;-) :D :P :p :/ :| :] :} :> :3 :0 :1 "
    ":o :O :x :X :* ): (: <3 <33 </3 =) =( =/ =| =[ =] =3 [= ]= [: [-: (-: (; (= )-: ^_^ -_- o_O O_o o_o 0_0 "
    "xD XD 8) 8-) ._. 0.0 <.< >.< >.> :') :'( :'-) :'-( :(( :)) :-/ :-] :-| :-} :-3 :-> :-0 :-* :-D :-P :-p "
    "'s 'S ’s ’S 'd 'll 're 've ’d ’ll ’re ’ve"
)


def _specials() -> dict[str, tuple[str, ...]]:
    """Strings that split (or stay whole) against the general rules: abbreviations, emoticons and
    contractions written without an apostrophe."""
    whole = _WHOLE_WORDS.split()
    specials: dict[str, tuple[str, ...]] = {item: (item,) for item in whole}
    specials.update({f"{letter}.": (f"{letter}.",) for letter in "abcdefghijklmnopqrstuvwxyz"})
    # Contractions without an apostrophe split like their spelled-out forms ("dont" -> "do" + "nt").
    splits = {
        "cannot": ("can", "not"),
        "gonna": ("gon", "na"),
        "gotta": ("got", "ta"),
        "id": ("i", "d"),
        "im": ("i", "m"),
        "ive": ("i", "ve"),
        "hes": ("he", "s"),
        "shes": ("she", "s"),
        "thats": ("that", "s"),
        "whats": ("what", "s"),
        "theres": ("there", "s"),
        "youre": ("you", "re"),
        "theyre": ("they", "re"),
        "youve": ("you", "ve"),
        "weve": ("we", "ve"),
        "theyve": ("they", "ve"),
        "youll": ("you", "ll"),
        "theyll": ("they", "ll"),
    }
    for stem in ("do", "does", "did", "is", "are", "was", "were", "has", "have", "had", "could", "should",
                 "would", "must", "need", "might", "ca", "wo", "ai"):  # fmt: skip
        splits[f"{stem}nt"] = (stem, "nt")
    for word, parts in splits.items():
        specials[word] = parts
        specials[word.capitalize()] = (parts[0].capitalize(), *parts[1:])
    for hour in range(1, 13):
        for suffix in ("am", "pm", "a.m.", "p.m."):
            specials[f"{hour}{suffix}"] = (str(hour), suffix)
    return specials


_SPECIALS = _specials()


def _special(text: str) -> tuple[str, ...] | None:
    found = _SPECIALS.get(text)
    if found is None and ("'" in text or "’" in text):
        match = _CLITIC.fullmatch(text)
        if match is not None:
            found = (match[1], match[2])
    return found


def _is_icon(char: str) -> bool:
    return not char.isascii() and unicodedata.category(char) == "So"


def _is_lower(char: str) -> bool:
    return char.isalpha() and not char.isupper()


def _is_upper(char: str) -> bool:
    return char.isalpha() and not char.islower()


def _prefix_length(text: str) -> int:
    first = text[0]
    if first == "." and text.startswith(".."):
        return len(text) - len(text.lstrip("."))
    if first == "+":
        return 0 if text[1:2] in _DIGITS else 1
    if first in _PREFIX_CHARS or _is_icon(first):
        return 1
    if text.startswith(("US$", "C$", "A$")):
        return 3 if first == "U" else 2
    return 0


def _suffix_length(text: str) -> int:
    """The length of the suffix that splits off the end of `text`; the leftmost-starting rule wins."""
    size = len(text)
    last = text[-1]
    before = text[-2] if size > 1 else ""
    length = 0
    if last in _SUFFIX_CHARS or _is_icon(last):
        length = 2 if text.endswith("……") else 1
    if last == ".":
        dots = size - len(text.rstrip("."))
        if dots > 1:
            return dots
        if (
            before in _AFTER_SUFFIX_STOP
            or _is_lower(before)
            or (size > 2 and _is_upper(before) and _is_upper(text[-3]))
            or (size > 2 and before in "FfCcKk" and text[-3] == "°")
        ):
            length = 1
    elif last == "+" and before in _DIGITS:
        length = 1
    if text.endswith(("'s", "'S", "’s", "’S")):
        length = max(length, 2)
    if last in _CURRENCY and before in _DIGITS:
        length = max(length, 1)
    for unit_length in range(_LONGEST_UNIT, 0, -1):
        if size > unit_length and text[-unit_length - 1] in _DIGITS and text[-unit_length:] in _UNITS:
            return max(length, unit_length)
    return length


def _infix_end(text: str, index: int) -> int:
    """Where the infix starting at `index` ends, or 0 when none starts there: ellipses, symbols, an
    operator between digits, a full stop between a lower-case and an upper-case letter, or a comma,
    hyphen, colon, slash or comparison between letters."""
    char = text[index]
    before = text[index - 1] if index else ""
    after = text[index + 1 : index + 2]
    if char == "." and after == ".":
        return len(text) - len(text[index:].lstrip("."))
    single = (
        char == "…"
        or _is_icon(char)
        or (char in "+-*^" and before in _DIGITS and after in _DIGITS_OR_HYPHEN)
        or (
            char == "."
            and (_is_lower(before) or before in _QUOTES)
            and (_is_upper(after) or after in _QUOTES)
        )
        or (char == "," and before.isalpha() and after.isalpha())
    )
    if single:
        return index + 1
    if not (before.isalpha() or before in _DIGITS):
        return 0
    for hyphen in _HYPHENS:
        stop = index + len(hyphen)
        if text.startswith(hyphen, index) and text[stop : stop + 1].isalpha():
            return stop
    return index + 1 if char in ":<>=/" and after.isalpha() else 0


def _infix_spans(text: str) -> list[tuple[int, int]]:
    spans: list[tuple[int, int]] = []
    index = 0
    for candidate in _INFIX_CANDIDATE.finditer(text):
        start = candidate.start()
        if start >= index:
            end = _infix_end(text, start)
            if end:
                spans.append((start, end))
                index = end
    return spans


def _ends_in_suffix(text: str) -> bool:
    """Whether `_suffix_length` splits exactly the last character off `text`, a word of letters and one
    more character (a full stop only after a lower-case letter or two capitals)."""
    last = text[-1]
    if last in _SUFFIX_CHARS:
        return True
    return last == "." and (
        _is_lower(text[-2]) or (len(text) > 2 and _is_upper(text[-2]) and _is_upper(text[-3]))
    )


def _wrapped_word(chunk: str, special: Callable[[str], tuple[str, ...] | None]) -> list[str] | None:
    """The most common chunks after plain words, a word of letters with one character of punctuation
    before it, after it or both ("(word", "word,", '"word."'), as `_split`'s loop would cut them; None for
    any other chunk."""
    if len(chunk) < 2:
        return None
    prefixed = chunk[0] in _PREFIX_CHARS
    if prefixed and len(chunk) > 2 and chunk[1:-1].isalpha() and _ends_in_suffix(chunk[1:]):
        parts = [chunk[0], chunk[1:-1], chunk[-1]]
        if special(chunk[1:]) is None and special(chunk[:-1]) is None and special(parts[1]) is None:
            return parts
        return None
    if chunk[:-1].isalpha() and _ends_in_suffix(chunk) and special(chunk[:-1]) is None:
        return [chunk[:-1], chunk[-1]]
    if prefixed and chunk[1:].isalpha() and special(chunk[1:]) is None:
        return [chunk[0], chunk[1:]]
    return None


def _split(chunk: str, special: Callable[[str], tuple[str, ...] | None]) -> list[str]:
    """spaCy's tokenizer loop on one chunk: split off prefixes and suffixes until a special or nothing
    is left, keep a URL whole, else break at infixes."""
    found = special(chunk)
    if found is not None:
        return list(found)
    if chunk.isalpha() or (chunk.isalnum() and chunk[-1] in _DIGITS):
        return [chunk]
    wrapped = _wrapped_word(chunk, special)
    if wrapped is not None:
        return wrapped
    prefixes: list[str] = []
    suffixes: list[str] = []
    text = chunk
    last_size = -1
    while text and len(text) != last_size:
        if special(text) is not None:
            break
        last_size = len(text)
        prefix = _prefix_length(text)
        if prefix and special(text[prefix:]) is not None:
            prefixes.append(text[:prefix])
            text = text[prefix:]
            break
        rest = text[prefix:]
        suffix = _suffix_length(rest) if rest else 0
        if suffix and text[:-suffix] and special(text[:-suffix]) is not None:
            suffixes.append(text[-suffix:])
            text = text[:-suffix]
            break
        if prefix and suffix and prefix + suffix <= len(text):
            prefixes.append(text[:prefix])
            suffixes.append(text[-suffix:])
            text = text[prefix:-suffix]
        elif prefix:
            prefixes.append(text[:prefix])
            text = text[prefix:]
        elif suffix:
            suffixes.append(text[-suffix:])
            text = text[:-suffix]
    words = prefixes
    found = special(text) if text else None
    if found is not None:
        words.extend(found)
    elif text and _URL.fullmatch(text):
        words.append(text)
    elif text:
        start = 0
        for infix_start, infix_end in _infix_spans(text):
            if infix_start == 0:
                continue
            if infix_start != start:
                words.append(text[start:infix_start])
            words.append(text[infix_start:infix_end])
            start = infix_end
        if text[start:]:
            words.append(text[start:])
    words.extend(reversed(suffixes))
    return words


def _no_special(text: str) -> None:
    return None


#: Specials that the general rules would split, by the words they split into (`):` is `)` + `:`): spaCy
#: merges these back after splitting, wherever they occur in a chunk.
_MERGES: dict[tuple[str, ...], tuple[str, ...]] = {
    pattern: words
    for text, words in _SPECIALS.items()
    if len(pattern := tuple(_split(text, _no_special))) > 1
}
_MERGE_LENGTHS = sorted({len(pattern) for pattern in _MERGES}, reverse=True)
_MERGE_STARTS = frozenset(pattern[0] for pattern in _MERGES)


def _merge_specials(words: list[str]) -> list[str]:
    if _MERGE_STARTS.isdisjoint(words):
        return words
    merged: list[str] = []
    index = 0
    while index < len(words):
        for length in _MERGE_LENGTHS if words[index] in _MERGE_STARTS else ():
            found = _MERGES.get(tuple(words[index : index + length]))
            if found is not None:
                merged.extend(found)
                index += length
                break
        else:
            merged.append(words[index])
            index += 1
    return merged


def split_chunk(chunk: str) -> tuple[str, ...]:
    """The words of one whitespace-free chunk by spaCy's English rules: specials (abbreviations,
    contractions, emoticons) first, then punctuation split off both ends, URLs kept whole, then breaks
    inside (hyphens, slashes, ellipses...), then specials that the splitting cut apart merged again."""
    words = _split(chunk, _special)
    return tuple(_merge_specials(words) if len(words) > 1 else words)


class _ChunkCache(dict[str, tuple[str, ...]]):
    """Words by chunk, filled on first sight; cleared when it grows past `limit` chunks."""

    def __init__(self, limit: int) -> None:
        super().__init__()
        self.limit = limit

    def __missing__(self, chunk: str) -> tuple[str, ...]:
        if len(self) >= self.limit:
            self.clear()
        words = self[chunk] = split_chunk(chunk)
        return words


class WordSplitter:
    """Splits text into words like datatrove's default English word tokenizer (`spacy.blank("en")`, empty
    words dropped) without spaCy: whitespace chunks, each split once by `split_chunk` and cached. On the
    benchmark's corpus (Python docs, package descriptions, licenses) 99.99% of chunks split the same."""

    def __init__(self, cache_limit: int = 500_000) -> None:
        self._chunks = _ChunkCache(cache_limit)

    def split(self, text: str) -> list[str]:
        return list(chain.from_iterable(map(self._chunks.__getitem__, text.split())))

    def count(self, text: str) -> int:
        return sum(map(len, map(self._chunks.__getitem__, text.split())))

    def chunk_words(self, chunk: str) -> tuple[str, ...]:
        return self._chunks[chunk]


WORDS = WordSplitter()


#: Characters that end a sentence, in every script (Unicode's Sentence_Terminal characters and a few
#: Khmer signs), as datatrove lists them.
TERMINAL_PUNCTUATION: Final = frozenset(
    "!.?\u0589\u061d\u061e\u061f\u06d4\u0700\u0701\u0702\u07f9\u0837\u0839\u083d\u083e\u0964\u0965"
    "\u104a\u104b\u1362\u1367\u1368\u166e\u1735\u1736\u17d4\u17d5\u17d6\u17d9\u17da\u1803\u1809\u1944"
    "\u1945\u1aa8\u1aa9\u1aaa\u1aab\u1b5a\u1b5b\u1b5e\u1b5f\u1b7d\u1b7e\u1c3b\u1c3c\u1c7e\u1c7f\u203c"
    "\u203d\u2047\u2048\u2049\u2e2e\u2e3c\u2e53\u2e54\u3002\ua4ff\ua60e\ua60f\ua6f3\ua6f7\ua876\ua877"
    "\ua8ce\ua8cf\ua92f\ua9c8\ua9c9\uaa5d\uaa5e\uaa5f\uaaf0\uaaf1\uabeb\ufe52\ufe56\ufe57\uff01\uff0e"
    "\uff1f\uff61\U00010a56\U00010a57\U00010f55\U00010f56\U00010f57\U00010f58\U00010f59\U00010f86"
    "\U00010f87\U00010f88\U00010f89\U00011047\U00011048\U000110be\U000110bf\U000110c0\U000110c1"
    "\U00011141\U00011142\U00011143\U000111c5\U000111c6\U000111cd\U000111de\U000111df\U00011238"
    "\U00011239\U0001123b\U0001123c\U000112a9\U0001144b\U0001144c\U000115c2\U000115c3\U000115c9"
    "\U000115ca\U000115cb\U000115cc\U000115cd\U000115ce\U000115cf\U000115d0\U000115d1\U000115d2"
    "\U000115d3\U000115d4\U000115d5\U000115d6\U000115d7\U00011641\U00011642\U0001173c\U0001173d"
    "\U0001173e\U00011944\U00011946\U00011a42\U00011a43\U00011a9b\U00011a9c\U00011c41\U00011c42"
    "\U00011ef7\U00011ef8\U00011f43\U00011f44\U00016a6e\U00016a6f\U00016af5\U00016b37\U00016b38"
    "\U00016b44\U00016e98\U0001bc9f\U0001da88"
)
#: Characters that make a word a symbol when it has nothing else: ASCII and common CJK punctuation, the
#: sentence terminals and control characters (datatrove's list).
_SYMBOLS: Final = "".join(
    sorted(
        frozenset("!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~«´»–—’“”„…∶━►、。〈〉《》「」【】！％（），．：；？～")
        | TERMINAL_PUNCTUATION
        | frozenset(chr(code) for code in (*range(9), *range(11, 32), *range(127, 160)))
    )
)


def is_plain_word(word: str) -> bool:
    """Whether a word holds something besides symbols (Gopher counts only those as words)."""
    return bool(word.strip(_SYMBOLS))


def has_letter(word: str) -> bool:
    return any(char.isalpha() for char in word)


def is_punctuation(word: str) -> bool:
    """Whether every character is punctuation (Unicode category P*): such a word never starts a sentence."""
    return all(unicodedata.category(char).startswith("P") for char in word)
