"""Text quality heuristics with the published thresholds: Gopher quality and repetition (Rae et al. 2021),
C4 (Raffel et al. 2020, in `c4.py`) and FineWeb (Penedo et al. 2024), with the definitions of datatrove,
whose implementations FineWeb used with these thresholds.

Words are the tokens of datatrove's default English word tokenizer (spaCy's rules, see
`curation_dagster.filters.words`), not bare whitespace tokens: the thresholds were tuned on those words, and
the two differ where it matters (punctuation is a word of its own, so it counts against the share of
alphabetic words; `the,` holds the stop word `the`; `don't` is two words). Each filter scores a whole batch
at once from a `TextBatch`, whose lines and words the filters of a chain share.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from curation_dagster.filters.base import TextBatchFilter, Verdicts
from curation_dagster.filters.c4 import C4Quality
from curation_dagster.filters.ngrams import ngram_repetition
from curation_dagster.filters.rules import Rule, first_broken, ratio, score_list
from curation_dagster.filters.text_batch import PYTHON_WHITESPACE, Segments, TextBatch, duplicates, flags
from curation_dagster.filters.words import TERMINAL_PUNCTUATION
from curation_dagster.spec import FineWebQualitySettings, GopherQualitySettings, GopherRepetitionSettings

__all__ = ["C4Quality", "FineWebQuality", "GopherQuality", "GopherRepetition"]


class GopherQuality(TextBatchFilter):
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
        self._stop_words = tuple(dict.fromkeys(settings.stop_words))

    def evaluate_batch(self, batch: TextBatch) -> Verdicts:
        s = self.settings
        words = batch.chunk_totals("words")
        plain = batch.chunk_totals("plain_words")
        hashes = np.array([text.count("#") for text in batch.strings], np.int64)
        ellipses = np.array([text.count("...") + text.count("…") for text in batch.strings], np.int64)
        lines = batch.lines
        bullets = pc.or_(pc.starts_with(lines.stripped, "•"), pc.starts_with(lines.stripped, "-"))
        trailing = pc.or_(pc.ends_with(lines.stripped, "..."), pc.ends_with(lines.stripped, "…"))
        values = {
            "gopher_word_count": plain.astype(np.float64),
            "gopher_mean_word_length": ratio(batch.chunk_totals("plain_chars"), plain),
            "gopher_hash_ratio": ratio(hashes, words),
            "gopher_ellipsis_ratio": ratio(ellipses, words),
            "gopher_bullet_lines_ratio": ratio(lines.rows.totals(flags(bullets)), lines.rows.sizes),
            "gopher_ellipsis_lines_ratio": ratio(lines.rows.totals(flags(trailing)), lines.rows.sizes),
            "gopher_alphabetic_words_ratio": ratio(batch.chunk_totals("alphabetic"), words),
            "gopher_stop_words": self._stop_words_present(batch).astype(np.float64),
        }
        reasons, details = first_broken(self, [
            Rule("too_few_words", "{} words", values["gopher_word_count"], "<", s.min_doc_words, True),
            Rule("too_many_words", "{} words", values["gopher_word_count"], ">", s.max_doc_words, True),
            Rule("short_mean_word_length", "mean word length {}", values["gopher_mean_word_length"], "<",
                 s.min_avg_word_length),
            Rule("long_mean_word_length", "mean word length {}", values["gopher_mean_word_length"], ">",
                 s.max_avg_word_length),
            Rule("too_many_hashes", "{} '#' per word", values["gopher_hash_ratio"], ">", s.max_symbol_word_ratio),
            Rule("too_many_ellipses", "{} ellipses per word", values["gopher_ellipsis_ratio"], ">",
                 s.max_symbol_word_ratio),
            Rule("too_many_bullet_lines", "{} of lines start with a bullet", values["gopher_bullet_lines_ratio"],
                 ">", s.max_bullet_lines_ratio),
            Rule("too_many_ellipsis_lines", "{} of lines end in an ellipsis",
                 values["gopher_ellipsis_lines_ratio"], ">", s.max_ellipsis_lines_ratio),
            Rule("too_few_alphabetic_words", "{} of words hold a letter", values["gopher_alphabetic_words_ratio"],
                 "<", s.max_non_alpha_words_ratio),
            Rule("too_few_stop_words", "{} stop words", values["gopher_stop_words"], "<", s.min_stop_words, True),
        ], batch.size)  # fmt: skip
        whole = {"gopher_word_count", "gopher_stop_words"}
        return Verdicts(
            {name: score_list(column, name in whole) for name, column in values.items()}, reasons, details
        )

    def _stop_words_present(self, batch: TextBatch) -> np.ndarray:
        """Per row, how many distinct stop words its words hold (case-sensitive)."""
        if not self._stop_words:
            return np.zeros(batch.size, np.int64)
        words = batch.words
        found = batch.chunks.vocabulary.word_positions(self._stop_words)[words.ids]
        hits = found >= 0
        present = np.zeros((batch.size, len(self._stop_words)), np.bool_)
        present[words.rows.owners[hits], found[hits]] = True
        return present.sum(axis=1)


_TOP_NGRAMS = (2, 3, 4)
_DUPLICATE_NGRAMS = (5, 6, 7, 8, 9, 10)


class GopherRepetition(TextBatchFilter):
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

    def evaluate_batch(self, batch: TextBatch) -> Verdicts:
        s = self.settings
        chars = np.asarray(pc.utf8_length(batch.texts), np.int64)
        empty = chars == 0
        paragraph_rows, paragraphs = _paragraphs(batch)
        repeated_paragraphs, paragraph_chars = duplicates(paragraph_rows, paragraphs)
        line_rows, lines = _line_runs(batch)
        repeated_lines, line_chars = duplicates(line_rows, lines)
        values = {
            "gopher_dup_para_ratio": ratio(repeated_paragraphs, paragraph_rows.sizes),
            "gopher_dup_para_char_ratio": ratio(paragraph_chars, chars),
            "gopher_dup_line_ratio": ratio(repeated_lines, line_rows.sizes),
            "gopher_dup_line_char_ratio": ratio(line_chars, chars),
        }
        top, duplicate = ngram_repetition(
            batch.words, [n for n, _ in s.top_n_grams], [n for n, _ in s.dup_n_grams]
        )
        for n, ngram_chars in top.items():
            values[f"gopher_top_{n}_gram_char_ratio"] = ratio(ngram_chars, chars)
        for n, ngram_chars in duplicate.items():
            values[f"gopher_dup_{n}_gram_char_ratio"] = ratio(ngram_chars, chars)
        reasons, details = first_broken(self, [
            Rule("duplicate_paragraphs", "{} of paragraphs repeat", values["gopher_dup_para_ratio"], ">",
                 s.dup_para_frac),
            Rule("duplicate_paragraph_chars", "{} of characters in repeated paragraphs",
                 values["gopher_dup_para_char_ratio"], ">", s.dup_para_char_frac),
            Rule("duplicate_lines", "{} of lines repeat", values["gopher_dup_line_ratio"], ">", s.dup_line_frac),
            Rule("duplicate_line_chars", "{} of characters in repeated lines",
                 values["gopher_dup_line_char_ratio"], ">", s.dup_line_char_frac),
            *(Rule(f"top_{n}_gram", f"{{}} of characters in the top {n}-gram",
                   values[f"gopher_top_{n}_gram_char_ratio"], ">", bound) for n, bound in s.top_n_grams),
            *(Rule(f"duplicate_{n}_grams", f"{{}} of characters in repeated {n}-grams",
                   values[f"gopher_dup_{n}_gram_char_ratio"], ">", bound) for n, bound in s.dup_n_grams),
        ], batch.size, empty)  # fmt: skip
        for row in np.flatnonzero(empty).tolist():
            reasons[row], details[row] = self.code("empty"), "no text"
        scores: dict[str, list[object]] = {field.name: [None] * batch.size for field in self.score_fields}
        scores.update({name: score_list(column, missing=empty) for name, column in values.items()})
        return Verdicts(scores, reasons, details)


def _paragraphs(batch: TextBatch) -> tuple[Segments, pa.Array]:
    """Each row's paragraphs: its stripped text split at runs of two or more newlines
    (`re.split(r"\n{2,}", text.strip())`). Splitting at "\n\n" (much faster than a pattern) cuts a longer
    run into empty pieces and a piece starting with one newline, which are dropped and trimmed."""
    pieces = pc.split_pattern(pc.utf8_trim(batch.texts, PYTHON_WHITESPACE), "\n\n")
    rows = Segments(np.asarray(pieces.offsets, np.int64))
    values = pc.utf8_ltrim(pieces.flatten(), "\n")
    keep = np.asarray(pc.binary_length(values), np.int64) > 0
    keep[rows.offsets[:-1][rows.sizes == 1]] = True  # empty text is one empty paragraph
    return Segments.of_sizes(rows.totals(keep)), values.filter(pa.array(keep))


def _line_runs(batch: TextBatch) -> tuple[Segments, pa.Array]:
    """Each row's pieces between runs of newlines (`re.split(r"\n+", text)`): its "\n" pieces without the
    empty ones inside the row."""
    rows, pieces = batch.newline_pieces
    lengths = np.asarray(pc.binary_length(pieces), np.int64)
    edge = np.zeros(len(lengths), np.bool_)
    edge[rows.offsets[:-1]] = True
    edge[rows.offsets[1:] - 1] = True
    keep = (lengths > 0) | edge
    return Segments.of_sizes(rows.totals(keep)), pieces.filter(pa.array(keep))


_TERMINALS = pa.array(sorted(TERMINAL_PUNCTUATION), pa.large_string())


class FineWebQuality(TextBatchFilter):
    """FineWeb's own rules (Penedo et al. 2024) over the non-blank lines, checked in this order; codes
    `filter.fineweb_quality.<rule>`, datatrove's reason in brackets: `too_few_punctuated_lines` (line_punct_ratio):
    lines ending in a sentence terminal; `too_many_short_lines` (short_line_ratio): lines of at most
    `short_line_length` characters; `duplicate_line_chars` (char_dup_ratio): characters of lines repeating an
    earlier one over all characters but newlines; `too_many_newlines` (list_ratio): newlines per word.
    `empty`: no non-blank line.
    """

    name = "fineweb_quality"
    score_fields: ClassVar = [
        pa.field("fineweb_line_punct_ratio", pa.float64()),
        pa.field("fineweb_short_line_ratio", pa.float64()),
        pa.field("fineweb_char_dup_ratio", pa.float64()),
        pa.field("fineweb_newline_ratio", pa.float64()),
    ]

    def __init__(self, settings: FineWebQualitySettings) -> None:
        self.settings = settings

    def evaluate_batch(self, batch: TextBatch) -> Verdicts:
        s = self.settings
        rows, pieces = batch.newline_pieces
        non_blank = flags(pc.greater(pc.utf8_length(pc.utf8_trim(pieces, PYTHON_WHITESPACE)), 0))
        line_rows = Segments.of_sizes(rows.totals(non_blank))
        lines = pieces.filter(pa.array(non_blank))
        empty = line_rows.sizes == 0
        ends = pc.is_in(pc.utf8_slice_codeunits(lines, -1), value_set=_TERMINALS)
        short = pc.less_equal(pc.utf8_length(lines), s.short_line_length)
        newlines = rows.sizes - 1
        chars = np.asarray(pc.utf8_length(batch.texts), np.int64) - newlines
        punctuated = ratio(line_rows.totals(flags(ends)), line_rows.sizes)
        values = {
            "fineweb_line_punct_ratio": punctuated,
            "fineweb_short_line_ratio": ratio(line_rows.totals(flags(short)), line_rows.sizes),
            "fineweb_char_dup_ratio": ratio(duplicates(line_rows, lines)[1], chars),
            "fineweb_newline_ratio": ratio(newlines, batch.chunk_totals("words")),
        }
        checked = np.where(punctuated == 0, np.nan, punctuated) if s.line_punct_exclude_zero else punctuated
        reasons, details = first_broken(self, [
            Rule("too_few_punctuated_lines", "{} of lines end in punctuation", checked, "<", s.line_punct_thr),
            Rule("too_many_short_lines", f"{{}} of lines have at most {s.short_line_length} characters",
                 values["fineweb_short_line_ratio"], ">", s.short_line_thr),
            Rule("duplicate_line_chars", "{} of characters in repeated lines", values["fineweb_char_dup_ratio"],
                 ">", s.char_duplicates_ratio),
            Rule("too_many_newlines", "{} newlines per word", values["fineweb_newline_ratio"], ">",
                 s.new_line_ratio),
        ], batch.size, empty)  # fmt: skip
        for row in np.flatnonzero(empty).tolist():
            reasons[row], details[row] = self.code("empty"), "no non-blank line"
        return Verdicts(
            {name: score_list(column, missing=empty) for name, column in values.items()}, reasons, details
        )
