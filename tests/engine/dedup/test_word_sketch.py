"""Tests for `curation_dagster/dedup/word_sketch.py`: bottom-k sketches of word sets and the similarity
they give, exact up to k distinct words and a low-variance estimate above."""

import itertools
import random
import string

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from curation_dagster.dedup.minhash import word_sketches
from curation_dagster.dedup.word_sketch import WordSketches, sketch_similarity
from curation_dagster.spec import NearDedupSettings

#: Words (letters only: digits normalise to 0) whose 32-bit sketch hashes are distinct (checked below),
#: so exact means exact.
POOL = [
    "".join(letters)
    for letters in itertools.islice(itertools.product(string.ascii_lowercase, repeat=3), 1500)
]
SMALL = NearDedupSettings(word_sketch=64)


def jaccard(first: list[str], second: list[str]) -> float:
    a, b = set(first), set(second)
    return len(a & b) / max(len(a | b), 1)


def similarity(first: list[str], second: list[str], size: int) -> tuple[float, bool]:
    sketches = word_sketches([" ".join(first), " ".join(second)], NearDedupSettings(word_sketch=size))
    value, exact = sketch_similarity(sketches, np.array([0]), sketches, np.array([1]), size)
    return float(value[0]), bool(exact[0])


def test_the_pool_has_no_colliding_hashes() -> None:
    assert word_sketches([" ".join(POOL)], NearDedupSettings(word_sketch=4096)).words.tolist() == [len(POOL)]


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.sampled_from(POOL[:120]), max_size=90),
    st.lists(st.sampled_from(POOL[:120]), max_size=90),
)
def test_the_similarity_is_exact_jaccard_when_both_documents_have_at_most_k_words(
    first: list[str], second: list[str]
) -> None:
    """Repeated words, any order: with at most 64 distinct words each, the sketch holds the whole set."""
    if len(set(first)) > 64 or len(set(second)) > 64:
        first, second = first[:64], second[:64]
    value, exact = similarity(first, second, 64)
    assert exact
    assert value == jaccard(first, second)


@settings(max_examples=50, deadline=None)
@given(st.lists(st.sampled_from(POOL), min_size=1, max_size=400, unique=True), st.integers(1, 200))
def test_a_sketch_holds_the_k_smallest_of_the_full_set(words: list[str], size: int) -> None:
    full = word_sketches([" ".join(words)], NearDedupSettings(word_sketch=4096))
    small = word_sketches([" ".join(words)], NearDedupSettings(word_sketch=size))
    assert small.words.tolist() == [len(words)]
    assert small.sketch(0).tolist() == full.sketch(0)[:size].tolist()
    assert (np.diff(full.sketch(0).astype(np.int64)) > 0).all()


def test_above_k_words_the_estimate_is_close_and_steadier_than_the_minhash_estimate() -> None:
    """Documents of 1,000 distinct words: sketches of 512 values estimate the true Jaccard with about half
    the spread of the 128-value signature."""
    from curation_dagster.dedup.minhash import estimated_jaccard, word_signatures

    rng = random.Random(3)
    sketch_errors, minhash_errors = [], []
    for _ in range(40):
        words = rng.sample(POOL, 1300)
        shared = rng.randint(500, 900)
        first, second = words[:1000], words[:shared] + words[1000 : 1000 + 1000 - shared]
        truth = jaccard(first, second)
        value, exact = similarity(first, second, 512)
        assert not exact
        sketch_errors.append(value - truth)
        minhash = estimated_jaccard(*word_signatures([" ".join(first), " ".join(second)]))
        minhash_errors.append(float(minhash) - truth)
        assert abs(value - truth) <= 4 * np.sqrt(truth * (1 - truth) / 512)
    assert np.std(sketch_errors) < 0.7 * np.std(minhash_errors)


def test_one_document_above_k_words_gives_an_estimate_not_an_exact_value() -> None:
    value, exact = similarity(POOL[:30], POOL[:100], 64)
    assert not exact
    assert value == pytest.approx(0.3, abs=0.2)


def test_documents_without_words_have_empty_sketches_and_similarity_zero() -> None:
    sketches = word_sketches(["", "!!!", "one two"], SMALL)
    assert sketches.words.tolist() == [0, 0, 2]
    value, _ = sketch_similarity(sketches, np.array([0, 0]), sketches, np.array([1, 2]), 64)
    assert value.tolist() == [0.0, 0.0]


def test_sketches_survive_arrow_columns_taking_rows_and_joining() -> None:
    sketches = word_sketches(["a b c", "", "c d e f", "g"], SMALL)
    column, words = sketches.to_arrow()
    back = WordSketches.from_arrow(column.take([2, 0]), words.take([2, 0]))
    taken = sketches.take(np.array([2, 0]))
    joined = WordSketches.join([sketches.take(np.array([2])), sketches.take(np.array([0]))])
    listed = WordSketches.of_lists([sketches.sketch(2), sketches.sketch(0)], [4, 3])
    for other in (back, taken, joined, listed):
        assert other.words.tolist() == [4, 3]
        assert [other.sketch(0).tolist(), other.sketch(1).tolist()] == [
            sketches.sketch(2).tolist(),
            sketches.sketch(0).tolist(),
        ]


def test_sketches_normalise_words_as_shingles_do() -> None:
    first, second = word_sketches(["Café, CRÈME 2024!", "cafe creme 0000"], SMALL).values.reshape(2, -1)
    assert first.tolist() == second.tolist()


def pair_jaccard(first: list[str], second: list[str]) -> float:
    a, b = set(itertools.pairwise(first)), set(itertools.pairwise(second))
    return len(a & b) / max(len(a | b), 1)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.sampled_from(POOL[:40]), max_size=60),
    st.lists(st.sampled_from(POOL[:40]), max_size=60),
)
def test_word_pair_sketches_give_exact_jaccard_of_neighbouring_pairs_up_to_k_pairs(
    first: list[str], second: list[str]
) -> None:
    """Repeated words and pairs, any order: each document's sketch holds all of its (at most 59) pairs."""
    sketches = word_sketches([" ".join(first), " ".join(second)], NearDedupSettings(pair_sketch=64))
    pairs = sketches.pairs
    assert pairs is not None
    assert pairs.words.tolist() == [len(set(itertools.pairwise(first))), len(set(itertools.pairwise(second)))]
    value, exact = sketch_similarity(pairs, np.array([0]), pairs, np.array([1]), 64)
    assert bool(exact[0])
    assert float(value[0]) == pair_jaccard(first, second)


def test_pair_sketches_span_signing_batches_and_survive_columns_taking_rows_and_joining() -> None:
    rng = random.Random(5)
    texts = [" ".join(rng.choices(POOL[:300], k=rng.randint(0, 30))) for _ in range(5000)]  # 3 batches
    sketches = word_sketches(texts)
    assert sketches.pairs is not None and len(sketches.pairs) == 5000
    for row in (0, 2047, 2048, 4999):
        tokens = texts[row].split()
        assert sketches.pairs.words[row] == len(set(itertools.pairwise(tokens)))
    rows = np.array([4999, 2048, 1])
    columns = sketches.columns()
    table = pa.table({name: column.take(rows) for name, column in columns.items()})
    taken = sketches.take(rows)
    joined = WordSketches.join([sketches.take(rows[:1]), sketches.take(rows[1:])])
    for other in (WordSketches.from_table(table), taken, joined):
        assert other.pairs is not None
        assert other.pairs.words.tolist() == sketches.pairs.words[rows].tolist()
        for index, row in enumerate(rows.tolist()):
            assert other.pairs.sketch(index).tolist() == sketches.pairs.sketch(row).tolist()


def test_without_pair_sketches_the_columns_hold_empty_ones() -> None:
    sketches = word_sketches(["a b c", "d e"], NearDedupSettings(pair_sketch=0))
    assert sketches.pairs is None
    columns = sketches.columns()
    assert columns["pairs"].to_pylist() == [0, 0]
    assert columns["pair_sketch"].to_pylist() == [[], []]
