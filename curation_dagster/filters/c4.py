"""The C4 rules (Raffel et al. 2020) as datatrove implements them, for a batch of rows at once: the line
rules are Arrow comparisons over every line of the batch and sentences are counted from the chunk facts of
the `TextBatch`; lines whose whitespace or citation marks need more care go through `_judge_line`."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import ClassVar, Final

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from curation_dagster.filters.base import TextBatchFilter, Verdicts
from curation_dagster.filters.text_batch import (
    NEUTRAL,
    PYTHON_WHITESPACE,
    TERMINAL,
    WORD,
    Segments,
    TextBatch,
    flags,
)
from curation_dagster.filters.words import TERMINAL_PUNCTUATION, WORDS, is_punctuation
from curation_dagster.spec import C4QualitySettings

# C4 keeps lines ending in one of these, unless they end in an ellipsis.
_C4_LINE_ENDS: Final = (".", "?", "!", '"', "'")
_CITATION: Final = re.compile(r"\[\d*]|\[edit]|\[citation needed]")
_POLICY: Final = (
    "terms of use",
    "privacy policy",
    "cookie policy",
    "uses cookies",
    "use of cookies",
    "use cookies",
)
_CHUNK: Final = re.compile(r"\S+")


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
            elif after_terminal and not is_punctuation(word):
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


@dataclass(frozen=True)
class _LineVerdict:
    """One line under the line rules: whether it passed the rules before the document rules, whether it
    holds lorem ipsum or a curly bracket, and, when kept, its text and sentences."""

    passed: bool
    lorem: bool = False
    curly: bool = False
    kept: str | None = None
    sentences: int = 0


_REMOVED: Final = _LineVerdict(False)


def _judge_line(line: str, s: C4QualitySettings) -> _LineVerdict:
    """The line rules on one line (or sentence), in datatrove's order."""
    line = line.strip()
    words = line.split()
    if s.max_word_length is not None and any(len(word) > s.max_word_length for word in words):
        return _REMOVED
    if s.remove_citations:
        line = _CITATION.sub("", line)
    lowered = line.lower()
    if (
        (s.filter_no_terminal_punct and (not line.endswith(_C4_LINE_ENDS) or line.endswith("...")))
        or (s.min_words_per_line is not None and len(words) < s.min_words_per_line)
        or (s.filter_javascript and "javascript" in lowered and "lorem ipsum" not in lowered)
    ):
        return _REMOVED
    lorem = s.filter_lorem_ipsum and "lorem ipsum" in lowered
    curly = s.filter_curly_bracket and "{" in line
    if s.filter_policy and any(phrase in lowered for phrase in _POLICY):
        return _LineVerdict(True, lorem, curly)
    return _LineVerdict(True, lorem, curly, line, len(_sentence_starts(line)) + 1 if s.split_paragraph else 1)


@dataclass
class _Lines:
    """The line verdicts of a batch as arrays over its lines."""

    passed: np.ndarray
    lorem: np.ndarray
    curly: np.ndarray
    kept: np.ndarray
    sentences: np.ndarray
    text: pa.Array

    @classmethod
    def of(cls, verdicts: list[_LineVerdict]) -> _Lines:
        kept = [verdict.kept for verdict in verdicts]
        return cls(
            np.array([verdict.passed for verdict in verdicts], np.bool_),
            np.array([verdict.lorem for verdict in verdicts], np.bool_),
            np.array([verdict.curly for verdict in verdicts], np.bool_),
            np.array([text is not None for text in kept], np.bool_),
            np.array([verdict.sentences for verdict in verdicts], np.int64),
            pa.array(kept, pa.large_string()),
        )


class C4Quality(TextBatchFilter):
    """The C4 rules (Raffel et al. 2020). Lines (or sentences, without `split_paragraph`) are dropped from
    the text when they hold a word over `max_word_length` characters, do not end in `. ? ! " '` or end in
    `...` (after citation marks are removed), have fewer than `min_words_per_line` words, mention javascript
    or a cookie / terms-of-use phrase; `c4_lines_removed` counts them. Codes `filter.c4_quality.<rule>` reject the
    document: `lorem_ipsum` and `curly_bracket` (in a line that is otherwise kept, the first such line
    decides), then `too_few_sentences` (sentences of the kept lines, `c4_sentences`, below
    `min_num_sentences`). Kept documents get the kept lines joined by newlines; rejected ones keep theirs.
    """

    name = "c4_quality"
    score_fields: ClassVar = [pa.field("c4_lines_removed", pa.int32()), pa.field("c4_sentences", pa.int32())]
    rewrites_columns: ClassVar = ("text",)

    def __init__(self, settings: C4QualitySettings) -> None:
        self.settings = settings

    def evaluate_batch(self, batch: TextBatch) -> Verdicts:
        s = self.settings
        if s.split_paragraph:
            rows, lines = batch.lines.rows, self._judge_lines(batch)
        else:
            sentences = [_sentences(text) for text in batch.strings]
            rows = Segments.of_sizes(np.array([len(parts) for parts in sentences], np.int64))
            lines = _Lines.of([_judge_line(part, s) for parts in sentences for part in parts])
        removed = rows.sizes - rows.totals(lines.kept)
        sentence_counts = rows.totals(np.where(lines.kept, lines.sentences, 0))
        reasons: list[str | None] = [None] * batch.size
        details: list[str | None] = [None] * batch.size
        flagged_rows, first = rows.firsts(lines.passed & (lines.lorem | lines.curly))
        for row, line in zip(flagged_rows.tolist(), first.tolist(), strict=True):
            rule, held = ("lorem_ipsum", "'lorem ipsum'") if lines.lorem[line] else ("curly_bracket", "'{'")
            reasons[row] = self.code(rule)
            details[row] = f"a kept line holds {held}"
        if s.min_num_sentences is not None:
            for row in np.flatnonzero(sentence_counts < s.min_num_sentences).tolist():
                if reasons[row] is None:
                    reasons[row] = self.code("too_few_sentences")
                    details[row] = f"{sentence_counts[row]} sentences < {s.min_num_sentences}"
        kept_rows = Segments.of_sizes(rows.totals(lines.kept))
        joined = pc.binary_join(
            pa.LargeListArray.from_arrays(
                pa.array(kept_rows.offsets), lines.text.filter(pa.array(lines.kept))
            ),
            pa.scalar("\n" if s.split_paragraph else " ", pa.large_string()),
        )
        rejected = np.array([reason is not None for reason in reasons], np.bool_)
        unchanged = pa.array(rejected | ~batch.present)
        rewritten = pc.if_else(unchanged, batch.original, pc.utf8_trim(joined, PYTHON_WHITESPACE))
        return Verdicts(
            {"c4_lines_removed": removed.tolist(), "c4_sentences": sentence_counts.tolist()},
            reasons,
            details,
            {"text": rewritten.to_pylist()},
        )

    def _judge_lines(self, batch: TextBatch) -> _Lines:
        """The line rules over every line of the batch at once. Lines that may hold a citation mark go
        through `_judge_line` one by one, and kept lines with a gap other than one space between words
        have their sentences counted by `_sentence_starts`."""
        s = self.settings
        stripped = batch.lines.stripped
        chunks = batch.chunks
        facts = chunks.vocabulary.fact
        found = _Phrases.of(pc.ascii_lower(stripped))
        words = chunks.lines.totals(facts("pieces")[chunks.ids])
        passed = np.ones(len(stripped), np.bool_)
        if s.max_word_length is not None:
            passed &= chunks.lines.maxima(facts("longest_piece")[chunks.ids]) <= s.max_word_length
        if s.filter_no_terminal_punct:
            ends = np.any([flags(pc.ends_with(stripped, end)) for end in _C4_LINE_ENDS], axis=0)
            passed &= ends & ~flags(pc.ends_with(stripped, "..."))
        if s.min_words_per_line is not None:
            passed &= words >= s.min_words_per_line
        if s.filter_javascript:
            passed &= ~(found.javascript & ~found.lorem)
        lines = _Lines(
            passed,
            passed & found.lorem & s.filter_lorem_ipsum,
            passed & found.curly & s.filter_curly_bracket,
            passed & ~(found.policy & s.filter_policy),
            _sentence_counts(batch) + 1,
            stripped,
        )
        chunk_chars = chunks.lines.totals(facts("chars")[chunks.ids])
        gaps = np.asarray(pc.utf8_length(stripped), np.int64) - chunk_chars
        uneven = found.tab | (gaps != np.maximum(chunks.lines.sizes - 1, 0))
        cited = found.citation if s.remove_citations else np.zeros(len(stripped), np.bool_)
        recount = np.flatnonzero(lines.kept & uneven & ~cited)
        for line, text in zip(recount.tolist(), stripped.take(pa.array(recount)).to_pylist(), strict=True):
            lines.sentences[line] = len(_sentence_starts(text)) + 1
        return _with_lines_judged_alone(lines, np.flatnonzero(cited | found.unusual_case), stripped, s)


#: Characters and phrases the line rules look for, found in one pass over the ASCII-lowered lines.
_ANY_PHRASE: Final = "|".join(
    re.escape(phrase) for phrase in ("\t", "[", "{", "javascript", "lorem ipsum", *_POLICY)
)
#: Brackets that may hold a citation mark (`_CITATION`: digits of any script, "edit", "citation needed").
_MAYBE_CITATION: Final = r"\[(?:[0-9]|[^\x00-\x7f\]])*\]|\[edit\]|\[citation needed\]"
#: The letters whose `str.lower` holds an ASCII letter (I WITH DOT ABOVE, KELVIN SIGN): only on lines
#: holding one does lowering ASCII letters alone find other phrases than Python's lowering.
_UNUSUAL_CASE: Final = r"[\x{130}\x{212a}]"


@dataclass
class _Phrases:
    """Per line, which characters and phrases of the line rules it holds (after ASCII lowering)."""

    tab: np.ndarray
    curly: np.ndarray
    javascript: np.ndarray
    lorem: np.ndarray
    policy: np.ndarray
    citation: np.ndarray
    unusual_case: np.ndarray

    @classmethod
    def of(cls, lowered: pa.Array) -> _Phrases:
        hits = np.flatnonzero(flags(pc.match_substring_regex(lowered, _ANY_PHRASE)))
        some = lowered.take(pa.array(hits, pa.int64()))
        found = {
            "tab": pc.match_substring(some, "\t"),
            "curly": pc.match_substring(some, "{"),
            "javascript": pc.match_substring(some, "javascript"),
            "lorem": pc.match_substring(some, "lorem ipsum"),
            "policy": pc.match_substring_regex(some, "|".join(map(re.escape, _POLICY))),
            "citation": pc.match_substring_regex(some, _MAYBE_CITATION),
        }
        columns = {}
        for name, values in found.items():
            columns[name] = np.zeros(len(lowered), np.bool_)
            columns[name][hits] = flags(values)
        outside = np.flatnonzero(~flags(pc.string_is_ascii(lowered)))
        unusual = np.zeros(len(lowered), np.bool_)
        outside_lines = lowered.take(pa.array(outside, pa.int64()))
        unusual[outside] = flags(pc.match_substring_regex(outside_lines, _UNUSUAL_CASE))
        return cls(**columns, unusual_case=unusual)


def _sentence_counts(batch: TextBatch) -> np.ndarray:
    """Per line, the sentence starts after its first sentence (`_sentence_starts`) from its chunks' facts:
    the starts inside each chunk, plus one where a chunk opens with a word and the last chunk before it in
    the line that moved the splitter ended with a sentence terminal."""
    chunks = batch.chunks
    facts = chunks.vocabulary.fact
    inside = facts("sentence_starts")[chunks.ids]
    opens_with_word = facts("first_kind")[chunks.ids] == WORD
    last_kind = facts("last_kind")[chunks.ids]
    positions = np.arange(len(chunks.ids))
    latest = (
        np.maximum.accumulate(np.where(last_kind != NEUTRAL, positions, -1)) if len(positions) else positions
    )
    before = np.concatenate(([-1], latest[:-1])) if len(positions) else positions
    line_starts = chunks.lines.offsets[:-1][chunks.lines.owners]
    after_terminal = (before >= line_starts) & (last_kind[np.maximum(before, 0)] == TERMINAL)
    return chunks.lines.totals(inside + (opens_with_word & after_terminal))


def _with_lines_judged_alone(
    lines: _Lines, positions: np.ndarray, stripped: pa.Array, s: C4QualitySettings
) -> _Lines:
    """`lines` with the verdicts of `_judge_line` at `positions`."""
    if len(positions) == 0:
        return lines
    alone = _Lines.of([_judge_line(text, s) for text in stripped.take(pa.array(positions)).to_pylist()])
    for name in ("passed", "lorem", "curly", "kept", "sentences"):
        getattr(lines, name)[positions] = getattr(alone, name)
    mask = np.zeros(len(stripped), np.bool_)
    mask[positions[alone.kept]] = True
    if mask.any():
        lines.text = pc.replace_with_mask(stripped, pa.array(mask), alone.text.filter(pa.array(alone.kept)))
    return lines
