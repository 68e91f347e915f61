"""Words as datatrove's default English word tokenizer cuts them (`spacy.blank("en")`: spaCy's rules,
no model), without spaCy: whitespace chunks, each split once by `split_chunk` and cached. The quality
heuristics' thresholds were tuned on these words, not on whitespace tokens."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable
from itertools import chain

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


def _split(chunk: str, special: Callable[[str], tuple[str, ...] | None]) -> list[str]:
    """spaCy's tokenizer loop on one chunk: split off prefixes and suffixes until a special or nothing
    is left, keep a URL whole, else break at infixes."""
    found = special(chunk)
    if found is not None:
        return list(found)
    if chunk.isalpha() or (chunk.isalnum() and chunk[-1] in _DIGITS):
        return [chunk]
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
        for length in _MERGE_LENGTHS:
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
