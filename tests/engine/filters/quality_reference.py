"""The text quality filters as they were before they read a shared `TextBatch`: one row at a time, each
re-splitting its text (issue 4's code, which agreed with datatrove on every document of the benchmark). The
tests hold the batch filters to the same scores, decisions and rewritten text.

Text quality heuristics with the published thresholds: Gopher quality and repetition (Rae et al. 2021),
C4 (Raffel et al. 2020) and FineWeb (Penedo et al. 2024), with the definitions of datatrove, whose
implementations FineWeb used with these thresholds.

Words are the tokens of datatrove's default English word tokenizer (spaCy's rules, see
`curation_dagster.filters.words`), not bare whitespace tokens: the thresholds were tuned on those words, and the two differ where it matters
(punctuation is a word of its own, so it counts against the share of alphabetic words; `the,` holds the
stop word `the`; `don't` is two words).
"""

from __future__ import annotations

import re
import unicodedata
from bisect import bisect_left
from collections import Counter
from collections.abc import Callable, Sequence
from itertools import accumulate, compress, count, repeat
from operator import add, itemgetter
from typing import Any, ClassVar

import pyarrow as pa

from curation_dagster.filters.base import Filter, Reject, RowFilter, Verdicts
from curation_dagster.filters.words import WORDS
from curation_dagster.spec import (
    C4QualitySettings,
    FineWebQualitySettings,
    GopherQualitySettings,
    GopherRepetitionSettings,
)


class _Facts(dict[str, int]):
    """A per-word fact (0 or 1) computed on first sight and cached; cleared past `limit` words."""

    def __init__(self, fact: Callable[[str], bool], limit: int = 500_000) -> None:
        super().__init__()
        self.fact = fact
        self.limit = limit

    def __missing__(self, word: str) -> int:
        if len(self) >= self.limit:
            self.clear()
        value = self[word] = int(self.fact(word))
        return value


#: Characters that end a sentence, in every script (Unicode's Sentence_Terminal characters and a few
#: Khmer signs), as datatrove lists them.
TERMINAL_PUNCTUATION = frozenset(
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
_SYMBOLS = "".join(
    sorted(
        frozenset("!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~«´»–—’“”„…∶━►、。〈〉《》「」【】！％（），．：；？～")
        | TERMINAL_PUNCTUATION
        | frozenset(chr(code) for code in (*range(9), *range(11, 32), *range(127, 160)))
    )
)
_IS_WORD = _Facts(lambda word: bool(word.strip(_SYMBOLS)))
_HAS_LETTER = _Facts(lambda word: any(char.isalpha() for char in word))
_IS_PUNCTUATION = _Facts(lambda word: all(unicodedata.category(char).startswith("P") for char in word))


def _ratio(part: float, whole: float) -> float | None:
    return part / whole if whole else None


#: (rule, what the value is, with `{}` for it, the value, `<` or `>`, the bound).
_Rule = tuple[str, str, object, str, float | None]


def _first_broken(rules: Sequence[_Rule]) -> Reject:
    """The first rule whose value is past its bound, as (rule, detail); no value or no bound passes."""
    for rule, template, value, comparison, bound in rules:
        if not isinstance(value, int | float) or bound is None:
            continue
        if value < bound if comparison == "<" else value > bound:
            return rule, f"{template.format(_number(value))} {comparison} {_number(bound)}"
    return None


def _number(value: float) -> str:
    return str(value) if isinstance(value, int) else f"{value:.4g}"


def _duplicates(items: Sequence[str]) -> tuple[int, int]:
    """How many items repeat an earlier one, and their characters."""
    counts = Counter(items)
    return len(items) - len(counts), sum(len(item) * (count - 1) for item, count in counts.items())


# ---------------------------------------------------------------------------------------------------------
# Filters


class GopherQuality(RowFilter):
    """Gopher's quality rules (Rae et al. 2021, appendix A1), checked in this order; codes
    `filter.gopher_quality.<rule>`, datatrove's reason in brackets:

    `too_few_words` / `too_many_words` (short_doc / long_doc): words that are not only symbols;
    `short_mean_word_length` / `long_mean_word_length` (below / above_avg_threshold): over those words;
    `too_many_hashes` / `too_many_ellipses`: `#`, and `...` or `…`, per word (symbols included);
    `too_many_bullet_lines`: lines starting with `•` or `-`; `too_many_ellipsis_lines`: lines ending in an
    ellipsis; `too_few_alphabetic_words` (below_alpha_threshold): words holding a letter over all words;
    `too_few_stop_words` (enough_stop_words): distinct stop words present, case-sensitive.
    Empty or null text has no words: `too_few_words`.
    """

    name = "gopher_quality"
    reads_text = True
    score_fields: ClassVar = [
        pa.field("gopher_word_count", pa.int64()),
        pa.field("gopher_mean_word_length", pa.float64()),
        pa.field("gopher_hash_ratio", pa.float64()),
        pa.field("gopher_ellipsis_ratio", pa.float64()),
        pa.field("gopher_bullet_lines_ratio", pa.float64()),
        pa.field("gopher_ellipsis_lines_ratio", pa.float64()),
        pa.field("gopher_alphabetic_words_ratio", pa.float64()),
        pa.field("gopher_stop_words", pa.int32()),
    ]

    def __init__(self, settings: GopherQualitySettings) -> None:
        self.settings = settings
        self._stop_words = frozenset(settings.stop_words)

    def judge(self, row: dict[str, Any]) -> tuple[dict[str, object], Reject]:
        s = self.settings
        text: str = row["text"] or ""
        words = WORDS.split(text)
        lines = text.splitlines()
        is_word = list(map(_IS_WORD.__getitem__, words))
        word_count = sum(is_word)
        scores: dict[str, object] = {
            "gopher_word_count": word_count,
            "gopher_mean_word_length": _ratio(sum(map(len, compress(words, is_word))), word_count),
            "gopher_hash_ratio": _ratio(text.count("#"), len(words)),
            "gopher_ellipsis_ratio": _ratio(text.count("...") + text.count("…"), len(words)),
            "gopher_bullet_lines_ratio": _ratio(
                sum(1 for line in lines if line.lstrip().startswith(("•", "-"))), len(lines)
            ),
            "gopher_ellipsis_lines_ratio": _ratio(
                sum(1 for line in lines if line.rstrip().endswith(("...", "…"))), len(lines)
            ),
            "gopher_alphabetic_words_ratio": _ratio(sum(map(_HAS_LETTER.__getitem__, words)), len(words)),
            "gopher_stop_words": len(self._stop_words.intersection(words)),
        }
        return scores, _first_broken([
            ("too_few_words", "{} words", word_count, "<", s.min_doc_words),
            ("too_many_words", "{} words", word_count, ">", s.max_doc_words),
            ("short_mean_word_length", "mean word length {}", scores["gopher_mean_word_length"], "<",
             s.min_avg_word_length),
            ("long_mean_word_length", "mean word length {}", scores["gopher_mean_word_length"], ">",
             s.max_avg_word_length),
            ("too_many_hashes", "{} '#' per word", scores["gopher_hash_ratio"], ">", s.max_symbol_word_ratio),
            ("too_many_ellipses", "{} ellipses per word", scores["gopher_ellipsis_ratio"], ">",
             s.max_symbol_word_ratio),
            ("too_many_bullet_lines", "{} of lines start with a bullet", scores["gopher_bullet_lines_ratio"], ">",
             s.max_bullet_lines_ratio),
            ("too_many_ellipsis_lines", "{} of lines end in an ellipsis", scores["gopher_ellipsis_lines_ratio"],
             ">", s.max_ellipsis_lines_ratio),
            ("too_few_alphabetic_words", "{} of words hold a letter", scores["gopher_alphabetic_words_ratio"],
             "<", s.max_non_alpha_words_ratio),
            ("too_few_stop_words", "{} stop words", scores["gopher_stop_words"], "<", s.min_stop_words),
        ])  # fmt: skip


_PARAGRAPH_BREAK = re.compile(r"\n{2,}")
_LINE_BREAKS = re.compile(r"\n+")
_TOP_NGRAMS = (2, 3, 4)
_DUPLICATE_NGRAMS = (5, 6, 7, 8, 9, 10)


def _ids(keys: list[str]) -> list[int]:
    """Each key's number, numbered in order of first occurrence."""
    numbers = dict(zip(dict.fromkeys(keys), count(), strict=False))
    return list(map(numbers.__getitem__, keys))


def _repeated(starts: Sequence[int], ids: list[int], counts: Counter[int]) -> tuple[list[int], list[int]]:
    """The positions and ids of the n-grams that occur twice or more."""
    several = list(map((1).__lt__, map(counts.__getitem__, ids)))
    return list(compress(starts, several)), list(compress(ids, several))


def _greedy_repeat_chars(starts: list[int], ids: list[int], n: int, offsets: list[int]) -> int:
    """Gopher's count of repeated n-gram characters: scan left to right, an n-gram seen before is a repeat
    and the scan jumps past it. Given only the n-grams that occur twice or more (the others are never
    repeats): one is a repeat when an earlier occurrence was visited, i.e. not jumped over."""
    visited: set[int] = set()
    chars = resume = 0
    for start, number in zip(starts, ids, strict=True):
        if start < resume:
            continue
        if number in visited:
            chars += offsets[start + n] - offsets[start]
            resume = start + n
        else:
            visited.add(number)
    return chars


def _ngram_repetition(
    words: list[str], top_sizes: Sequence[int], duplicate_sizes: Sequence[int]
) -> tuple[dict[int, int], dict[int, int]]:
    """For each n asked: the characters of the most frequent n-gram (words joined by spaces; the first seen
    wins a tie) times its count, and the characters of repeated n-grams (see `_greedy_repeat_chars`).

    Words are numbered in order of first occurrence and an n-gram's id is the hash of (id of its first n-1
    words, number of its last word): two different n-grams share an id with odds about 2^-64 per pair.
    An n-gram occurs twice or more only where the (n-1)-gram at its position does, so each n only looks
    at those positions.
    """
    offsets = list(accumulate(map(len, words), initial=0))
    top = {n: offsets[n] + n - 1 if len(words) >= n else 0 for n in top_sizes}
    duplicate = dict.fromkeys(duplicate_sizes, 0)
    word_ids = _ids(words)
    starts: Sequence[int] = range(len(words))
    ids = word_ids
    for n in range(2, max((*top_sizes, *duplicate_sizes), default=1) + 1):
        starts = starts[: bisect_left(starts, len(words) - n + 1)]
        ends = map(word_ids.__getitem__, map(add, starts, repeat(n - 1)))
        ids = list(map(hash, zip(ids, ends, strict=False)))
        counts = Counter(ids)
        if n in top and counts:
            number, most = max(counts.items(), key=itemgetter(1))
            if most > 1:
                start = starts[ids.index(number)]
                top[n] = (offsets[start + n] - offsets[start] + n - 1) * most
        starts, ids = _repeated(starts, ids, counts)
        if not starts:
            break
        if n in duplicate:
            duplicate[n] = _greedy_repeat_chars(starts, ids, n, offsets)
    return top, duplicate


class GopherRepetition(RowFilter):
    """Gopher's repetition rules (Rae et al. 2021, appendix A1), checked in this order; codes
    `filter.gopher_repetition.<rule>`, datatrove's reason in brackets:

    `duplicate_paragraphs` / `duplicate_paragraph_chars` (dup_para_frac / dup_para_char_frac): paragraphs
    (split on two or more newlines) repeating an earlier one, by count and by characters over all characters;
    `duplicate_lines` / `duplicate_line_chars` (dup_line_frac / dup_line_char_frac): the same for lines;
    `top_<n>_gram` (top_n_gram): characters of the most frequent word n-gram times its count;
    `duplicate_<n>_grams` (duplicated_n_n_grams): characters of repeated word n-grams. `empty`: no text.
    N-grams are compared word by word (datatrove concatenates the words without a separator, so that
    `ab c` and `a bc` are one n-gram there).
    """

    name = "gopher_repetition"
    reads_text = True
    score_fields: ClassVar = [
        pa.field("gopher_dup_para_ratio", pa.float64()),
        pa.field("gopher_dup_para_char_ratio", pa.float64()),
        pa.field("gopher_dup_line_ratio", pa.float64()),
        pa.field("gopher_dup_line_char_ratio", pa.float64()),
        *(pa.field(f"gopher_top_{n}_gram_char_ratio", pa.float64()) for n in _TOP_NGRAMS),
        *(pa.field(f"gopher_dup_{n}_gram_char_ratio", pa.float64()) for n in _DUPLICATE_NGRAMS),
    ]

    def __init__(self, settings: GopherRepetitionSettings) -> None:
        self.settings = settings

    def judge(self, row: dict[str, Any]) -> tuple[dict[str, object], Reject]:
        s = self.settings
        text: str = row["text"] or ""
        if not text:
            return {}, ("empty", "no text")
        paragraphs = _PARAGRAPH_BREAK.split(text.strip())
        lines = _LINE_BREAKS.split(text)
        words = WORDS.split(text)
        repeated_paragraphs, paragraph_chars = _duplicates(paragraphs)
        repeated_lines, line_chars = _duplicates(lines)
        scores: dict[str, object] = {
            "gopher_dup_para_ratio": repeated_paragraphs / len(paragraphs),
            "gopher_dup_para_char_ratio": paragraph_chars / len(text),
            "gopher_dup_line_ratio": repeated_lines / len(lines),
            "gopher_dup_line_char_ratio": line_chars / len(text),
        }
        top, duplicate = _ngram_repetition(
            words, [n for n, _ in s.top_n_grams], [n for n, _ in s.dup_n_grams]
        )
        for n, chars in top.items():
            scores[f"gopher_top_{n}_gram_char_ratio"] = chars / len(text)
        for n, chars in duplicate.items():
            scores[f"gopher_dup_{n}_gram_char_ratio"] = chars / len(text)
        return scores, _first_broken([
            ("duplicate_paragraphs", "{} of paragraphs repeat", scores["gopher_dup_para_ratio"], ">",
             s.dup_para_frac),
            ("duplicate_paragraph_chars", "{} of characters in repeated paragraphs",
             scores["gopher_dup_para_char_ratio"], ">", s.dup_para_char_frac),
            ("duplicate_lines", "{} of lines repeat", scores["gopher_dup_line_ratio"], ">", s.dup_line_frac),
            ("duplicate_line_chars", "{} of characters in repeated lines", scores["gopher_dup_line_char_ratio"],
             ">", s.dup_line_char_frac),
            *((f"top_{n}_gram", f"{{}} of characters in the top {n}-gram",
               scores[f"gopher_top_{n}_gram_char_ratio"], ">", bound) for n, bound in s.top_n_grams),
            *((f"duplicate_{n}_grams", f"{{}} of characters in repeated {n}-grams",
               scores[f"gopher_dup_{n}_gram_char_ratio"], ">", bound) for n, bound in s.dup_n_grams),
        ])  # fmt: skip


# C4 keeps lines ending in one of these, unless they end in an ellipsis.
_C4_LINE_ENDS = (".", "?", "!", '"', "'")
_CITATION = re.compile(r"\[\d*]|\[edit]|\[citation needed]")
_POLICY = ("terms of use", "privacy policy", "cookie policy", "uses cookies", "use of cookies", "use cookies")
_CHUNK = re.compile(r"\S+")


def _sentence_starts(text: str) -> list[int]:
    """Where sentences after the first start, as spaCy's sentencizer splits over datatrove's words: after
    a sentence terminal, at the next word that is not punctuation (a run of whitespace other than one space
    is a word too)."""
    if TERMINAL_PUNCTUATION.isdisjoint(text[:-1]):
        return []
    starts: list[int] = []
    after_terminal = False
    end = 0
    for match in _CHUNK.finditer(text):
        start = match.start()
        if after_terminal and start > end and text[end:start] != " ":
            starts.append(end)
            after_terminal = False
        for word in WORDS.chunk_words(match[0]):
            if word in TERMINAL_PUNCTUATION:
                after_terminal = True
            elif after_terminal and not _IS_PUNCTUATION[word]:
                starts.append(start)
                after_terminal = False
            start += len(word)
        end = match.end()
    if after_terminal and end < len(text) and text[end:] != " ":
        starts.append(end)
    return starts


def _sentences(text: str) -> list[str]:
    starts = _sentence_starts(text)
    return [text[start:stop] for start, stop in zip([0, *starts], [*starts, len(text)], strict=True)]


class C4Quality(Filter):
    """The C4 rules (Raffel et al. 2020). Lines (or sentences, without `split_paragraph`) are dropped from
    the text when they hold a word over `max_word_length` characters, do not end in `. ? ! " '` or end in
    `...` (after citation marks are removed), have fewer than `min_words_per_line` words, mention javascript
    or a cookie / terms-of-use phrase; `c4_lines_removed` counts them. Codes `filter.c4_quality.<rule>` reject the
    document: `lorem_ipsum` and `curly_bracket` (in a line that is otherwise kept, the first such line
    decides), then `too_few_sentences` (sentences of the kept lines, `c4_sentences`, below
    `min_num_sentences`). Kept documents get the kept lines joined by newlines; rejected ones keep theirs.
    """

    name = "c4_quality"
    reads_text = True
    score_fields: ClassVar = [pa.field("c4_lines_removed", pa.int32()), pa.field("c4_sentences", pa.int32())]
    rewrites_columns: ClassVar = ("text",)

    def __init__(self, settings: C4QualitySettings) -> None:
        self.settings = settings

    def evaluate(self, table: pa.Table) -> Verdicts:
        s = self.settings
        verdicts = Verdicts({"c4_lines_removed": [], "c4_sentences": []}, [], [], {"text": []})
        for original in table.column("text").to_pylist():
            text: str = original or ""
            kept: list[str] = []
            removed = sentences = 0
            reject: Reject = None
            for line in text.splitlines() if s.split_paragraph else _sentences(text):
                line = line.strip()
                words = line.split()
                if s.max_word_length is not None and any(len(word) > s.max_word_length for word in words):
                    removed += 1
                    continue
                if s.remove_citations:
                    line = _CITATION.sub("", line)
                lowered = line.lower()
                if (
                    (
                        s.filter_no_terminal_punct
                        and (not line.endswith(_C4_LINE_ENDS) or line.endswith("..."))
                    )
                    or (s.min_words_per_line is not None and len(words) < s.min_words_per_line)
                    or (s.filter_javascript and "javascript" in lowered and "lorem ipsum" not in lowered)
                ):
                    removed += 1
                    continue
                if reject is None and s.filter_lorem_ipsum and "lorem ipsum" in lowered:
                    reject = ("lorem_ipsum", "a kept line holds 'lorem ipsum'")
                if reject is None and s.filter_curly_bracket and "{" in line:
                    reject = ("curly_bracket", "a kept line holds '{'")
                if s.filter_policy and any(phrase in lowered for phrase in _POLICY):
                    removed += 1
                    continue
                sentences += len(_sentence_starts(line)) + 1 if s.split_paragraph else 1
                kept.append(line)
            if reject is None and s.min_num_sentences is not None and sentences < s.min_num_sentences:
                reject = ("too_few_sentences", f"{sentences} sentences < {s.min_num_sentences}")
            verdicts.scores["c4_lines_removed"].append(removed)
            verdicts.scores["c4_sentences"].append(sentences)
            verdicts.reasons.append(None if reject is None else self.code(reject[0]))
            verdicts.details.append(None if reject is None else reject[1])
            joined = ("\n" if s.split_paragraph else " ").join(kept).strip()
            verdicts.rewrites["text"].append(original if reject is not None or original is None else joined)
        return verdicts


class FineWebQuality(RowFilter):
    """FineWeb's own rules (Penedo et al. 2024) over the non-blank lines, checked in this order; codes
    `filter.fineweb_quality.<rule>`, datatrove's reason in brackets: `too_few_punctuated_lines` (line_punct_ratio):
    lines ending in a sentence terminal; `too_many_short_lines` (short_line_ratio): lines of at most
    `short_line_length` characters; `duplicate_line_chars` (char_dup_ratio): characters of lines repeating an
    earlier one over all characters but newlines; `too_many_newlines` (list_ratio): newlines per word.
    `empty`: no non-blank line.
    """

    name = "fineweb_quality"
    reads_text = True
    score_fields: ClassVar = [
        pa.field("fineweb_line_punct_ratio", pa.float64()),
        pa.field("fineweb_short_line_ratio", pa.float64()),
        pa.field("fineweb_char_dup_ratio", pa.float64()),
        pa.field("fineweb_newline_ratio", pa.float64()),
    ]

    def __init__(self, settings: FineWebQualitySettings) -> None:
        self.settings = settings

    def judge(self, row: dict[str, Any]) -> tuple[dict[str, object], Reject]:
        s = self.settings
        text: str = row["text"] or ""
        lines = [line for line in text.split("\n") if not line.isspace() and line]
        if not lines:
            return {}, ("empty", "no non-blank line")
        punctuated = sum(1 for line in lines if line[-1] in TERMINAL_PUNCTUATION) / len(lines)
        scores: dict[str, object] = {
            "fineweb_line_punct_ratio": punctuated,
            "fineweb_short_line_ratio": sum(1 for line in lines if len(line) <= s.short_line_length)
            / len(lines),
            "fineweb_char_dup_ratio": _duplicates(lines)[1] / (len(text) - text.count("\n")),
            "fineweb_newline_ratio": text.count("\n") / WORDS.count(text),
        }
        return scores, _first_broken([
            ("too_few_punctuated_lines", "{} of lines end in punctuation",
             None if punctuated == 0 and s.line_punct_exclude_zero else punctuated, "<", s.line_punct_thr),
            ("too_many_short_lines", f"{{}} of lines have at most {s.short_line_length} characters",
             scores["fineweb_short_line_ratio"], ">", s.short_line_thr),
            ("duplicate_line_chars", "{} of characters in repeated lines", scores["fineweb_char_dup_ratio"], ">",
             s.char_duplicates_ratio),
            ("too_many_newlines", "{} newlines per word", scores["fineweb_newline_ratio"], ">", s.new_line_ratio),
        ])  # fmt: skip
