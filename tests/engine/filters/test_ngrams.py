"""Tests of curation_dagster/filters/ngrams.py: the batch n-gram repetition scores equal the one-row-at-a-time
scan of the per-filter code (tests/engine/filters/quality_reference.py) on repetitive word sequences and on
repeated phrases among other words, in one group of rows or many."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from curation_dagster.filters import ngrams
from curation_dagster.filters.ngrams import ngram_repetition
from curation_dagster.filters.text_batch import Segments, Words
from tests.engine.filters.quality_reference import _ngram_repetition

TOP = (2, 3, 4)
DUPLICATE = (5, 6, 7, 8, 9, 10)
# Few distinct words, so that n-grams repeat, overlap and follow each other closely.
ROWS = st.lists(
    st.lists(st.sampled_from(["a", "b", "c", "ab", "bc", "x"]), max_size=120), min_size=1, max_size=6
)
# Phrases of a row repeated among single words of a larger vocabulary: first occurrences of n-grams lie
# right after repeats, where the scan's jumps can pass over them.
VOCABULARY = [f"w{index}" for index in range(30)]
PHRASED_ROW = st.lists(st.lists(st.sampled_from(VOCABULARY), min_size=3, max_size=9), min_size=1, max_size=3)
PHRASED_ROWS = st.lists(
    PHRASED_ROW.flatmap(
        lambda phrases: st.lists(
            st.one_of(st.sampled_from(phrases), st.sampled_from(VOCABULARY).map(lambda word: [word])),
            max_size=40,
        )
    ).map(lambda pieces: [word for piece in pieces for word in piece]),
    min_size=1,
    max_size=4,
)


def words_of(rows: list[list[str]]) -> Words:
    numbers: dict[str, int] = {}
    flat = [word for row in rows for word in row]
    ids = np.array([numbers.setdefault(word, len(numbers)) for word in flat], np.int64)
    lengths = np.array([len(word) for word in flat], np.int64)
    return Words(Segments.of_sizes(np.array([len(row) for row in rows], np.int64)), ids, lengths)


def expected(rows: list[list[str]]) -> tuple[list[dict[int, int]], list[dict[int, int]]]:
    found = [_ngram_repetition(row, TOP, DUPLICATE) for row in rows]
    return [top for top, _ in found], [duplicate for _, duplicate in found]


def per_row(scores: dict[int, np.ndarray], rows: int) -> list[dict[int, int]]:
    return [{n: int(values[row]) for n, values in scores.items()} for row in range(rows)]


@settings(max_examples=300, deadline=None)
@given(ROWS)
def test_scores_equal_the_row_by_row_scan(rows: list[list[str]]) -> None:
    top, duplicate = ngram_repetition(words_of(rows), TOP, DUPLICATE)

    assert (per_row(top, len(rows)), per_row(duplicate, len(rows))) == expected(rows)


@settings(max_examples=100, deadline=None)
@given(ROWS)
def test_rows_split_into_many_groups_score_the_same(rows: list[list[str]]) -> None:
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(ngrams, "GROUP_WORDS", 7)
        top, duplicate = ngram_repetition(words_of(rows), TOP, DUPLICATE)

    assert (per_row(top, len(rows)), per_row(duplicate, len(rows))) == expected(rows)


@settings(max_examples=300, deadline=None)
@given(PHRASED_ROWS)
def test_scores_equal_the_row_by_row_scan_where_repeated_phrases_and_new_words_interleave(
    rows: list[list[str]],
) -> None:
    top, duplicate = ngram_repetition(words_of(rows), TOP, DUPLICATE)

    assert (per_row(top, len(rows)), per_row(duplicate, len(rows))) == expected(rows)


def test_a_jump_over_the_first_occurrence_makes_the_next_occurrence_the_first_seen() -> None:
    # At n = 2 the repeat "a a" at 1 jumps over 2, the first "a b"; the "a b" at 4 is then seen first, and
    # only the one at 7 repeats it.
    row = ["a", "a", "a", "b", "a", "b", "x", "a", "b"]

    _, duplicate = ngram_repetition(words_of([row]), (), (2,))

    assert int(duplicate[2][0]) == _ngram_repetition(row, (), (2,))[1][2] == 2 + 2


def test_the_most_frequent_ngram_seen_first_wins_a_tie() -> None:
    # "x y" and "zz w" both occur twice; "x y" comes first, though "zz w" is longer.
    rows = [["bb", "c", "a", "a", "bb", "c"], ["x", "y", "x", "y", "zz", "w", "zz", "w"]]

    top, _ = ngram_repetition(words_of(rows), (2,), ())

    assert top[2].tolist() == [len("bb c") * 2, len("x y") * 2]
