"""Tests of curation_dagster/filters/text_batch.py: a batch's lines, chunks and words are what `str.splitlines`,
`str.split` and the per-filter word splitter give for each text, on real and adversarial text; a subset
keeps them; the vocabulary numbers chunks the same after it starts again."""

from __future__ import annotations

from itertools import pairwise

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from curation_dagster.filters import text_batch
from curation_dagster.filters.text_batch import (
    PYTHON_WHITESPACE,
    Segments,
    TextBatch,
    duplicates,
    first_occurrences,
    string_hashes,
)
from curation_dagster.filters.words import WORDS
from tests.engine.filters.text_strategies import BATCHES, real_texts

PROPERTY = settings(max_examples=200, deadline=None)


def batch_of(values: list[str | None]) -> TextBatch:
    return TextBatch(pa.array(values, pa.large_string()))


def lines_per_row(batch: TextBatch) -> list[list[str]]:
    offsets = batch.lines.rows.offsets
    lines = batch.lines.stripped.to_pylist()
    return [lines[start:stop] for start, stop in pairwise(offsets.tolist())]


def words_per_row(batch: TextBatch) -> list[list[str]]:
    names = {number: word for word, number in batch.chunks.vocabulary.word_ids.items()}
    offsets = batch.words.rows.offsets
    words = [names[number] for number in batch.words.ids.tolist()]
    return [words[start:stop] for start, stop in pairwise(offsets.tolist())]


def test_python_whitespace_is_every_character_str_isspace_accepts() -> None:
    every = "".join(char for char in map(chr, range(0x110000)) if char.isspace())

    assert every == PYTHON_WHITESPACE


@PROPERTY
@given(BATCHES)
def test_lines_are_the_stripped_lines_of_str_splitlines(values: list[str | None]) -> None:
    expected = [[line.strip() for line in (value or "").splitlines()] for value in values]

    assert lines_per_row(batch_of(values)) == expected


@PROPERTY
@given(BATCHES)
def test_words_are_the_words_of_the_per_filter_splitter(values: list[str | None]) -> None:
    batch = batch_of(values)

    assert words_per_row(batch) == [WORDS.split(value or "") for value in values]
    assert batch.chunk_totals("words").tolist() == [WORDS.count(value or "") for value in values]


def test_words_of_real_text_are_the_words_of_the_per_filter_splitter() -> None:
    texts = real_texts()

    assert words_per_row(batch_of(texts)) == [WORDS.split(text) for text in texts]


@PROPERTY
@given(BATCHES, st.data())
def test_a_subset_keeps_what_a_fresh_batch_of_its_rows_computes(
    values: list[str | None], data: st.DataObject
) -> None:
    rows = sorted(data.draw(st.sets(st.integers(0, len(values) - 1))))
    whole = batch_of(values)
    assert whole.chunks is not None  # computed before the subset is taken

    part = whole.subset(np.array(rows, np.int64))
    fresh = batch_of([values[row] for row in rows])

    assert lines_per_row(part) == lines_per_row(fresh)
    assert words_per_row(part) == words_per_row(fresh)
    assert part.strings == fresh.strings
    assert part.present.tolist() == [values[row] is not None for row in rows]


def test_the_vocabulary_starts_again_past_its_limit_and_numbers_chunks_as_before(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(text_batch, "CHUNK_LIMIT", 3)
    monkeypatch.setattr(text_batch, "_vocabulary", text_batch.Vocabulary())
    texts = ["one two three four", "five six, seven.", "one two three four"]

    first = batch_of(texts)
    second = batch_of(texts)

    assert first.chunks.vocabulary is not second.chunks.vocabulary
    assert words_per_row(first) == words_per_row(second) == [WORDS.split(text) for text in texts]


def test_first_occurrences_number_keys_in_order_of_first_sight() -> None:
    numbers, first = first_occurrences(np.array([7, 3, 7, 9, 3], np.int64))

    assert numbers.tolist() == [0, 1, 0, 2, 1]
    assert first.tolist() == [True, True, False, True, False]


def test_duplicates_count_repeats_within_a_row_only() -> None:
    segments = Segments.of_sizes(np.array([3, 2], np.int64))
    values = pa.array(["ab", "c", "ab", "c", "ab"], pa.large_string())

    repeated, characters = duplicates(segments, values)

    assert repeated.tolist() == [1, 0]
    assert characters.tolist() == [2, 0]


def test_string_hashes_depend_only_on_each_strings_bytes() -> None:
    values = ["", "a", "ab", "ba", "über", "x" * 5000, "x" * 5001, "ab"]
    whole = string_hashes(pa.array(["pad", *values], pa.large_string()).slice(1))

    assert whole.tolist() == string_hashes(pa.array(values, pa.string())).tolist()
    assert whole[2] == whole[7]
    assert len(set(whole.tolist())) == len(set(values))


def test_chunks_whose_hashes_collide_are_still_numbered_apart(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(text_batch, "string_hashes", lambda strings: np.zeros(len(strings), np.int64))
    monkeypatch.setattr(text_batch, "_vocabulary", text_batch.Vocabulary())
    texts = ["one two, three", "three two one!", "four one"]

    first = batch_of(texts)
    second = batch_of(texts[::-1])

    assert words_per_row(first) == [WORDS.split(text) for text in texts]
    assert words_per_row(second) == [WORDS.split(text) for text in texts[::-1]]
    chunks = [chunk for text in [*texts, *texts[::-1]] for chunk in text.split()]
    pairs = set(zip(chunks, [*first.chunks.ids.tolist(), *second.chunks.ids.tolist()], strict=True))
    assert len(pairs) == len(set(chunks)) == len({number for _, number in pairs})


@PROPERTY
@given(BATCHES)
def test_texts_holding_a_line_break_other_than_newline_are_found(values: list[str | None]) -> None:
    others = "\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029"
    # Behind a text holding every break, which the slice leaves out.
    texts = pa.array([others, *(value or "" for value in values)], pa.large_string()).slice(1)

    found = text_batch._holding_other_breaks(texts)

    assert found.tolist() == [any(char in (value or "") for char in others) for value in values]
