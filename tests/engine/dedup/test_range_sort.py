"""Tests for `curation_dagster/dedup/range_sort.py`: sorting and de-duplicating keys a key range at a
time gives what one sort of everything gives."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from curation_dagster.dedup import range_sort
from curation_dagster.dedup.range_sort import (
    first_in_runs,
    is_sorted,
    key_order,
    key_ranges,
    sort_entries,
    sorted_unique,
    trimmed,
)

#: Keys from a few values spread over the whole 64-bit space, so ranges and repeats both occur.
KEYS = hnp.arrays(
    np.uint64,
    st.integers(0, 300),
    elements=st.sampled_from([0, 1, 2**40, 2**62 + 5, 2**63, 2**63 + 7, 2**64 - 2, 2**64 - 1]),
)


@settings(max_examples=60, deadline=None)
@given(keys=KEYS, data=st.data(), range_keys=st.integers(1, 64))
def test_sorting_by_ranges_gives_lexsort_order(
    keys: np.ndarray, data: st.DataObject, range_keys: int
) -> None:
    rows = data.draw(hnp.arrays(np.uint32, len(keys), elements=st.integers(0, 5)))
    payloads = data.draw(hnp.arrays(np.uint64, len(keys), elements=st.integers(0, 3)))
    order = np.lexsort((payloads, rows, keys))
    sorted_keys, sorted_rows, sorted_payloads = sort_entries(keys, rows, payloads, range_keys)
    assert sorted_payloads is not None
    assert sorted_keys.tolist() == keys[order].tolist()
    assert sorted_rows.tolist() == rows[order].tolist()
    assert sorted_payloads.tolist() == payloads[order].tolist()
    two = np.lexsort((rows, keys))
    only_keys, only_rows, none = sort_entries(keys, rows, range_keys=range_keys)
    assert none is None
    assert (only_keys.tolist(), only_rows.tolist()) == (keys[two].tolist(), rows[two].tolist())


def test_entries_already_in_order_are_returned_as_they_are() -> None:
    keys = np.array([1, 1, 5, 2**63], dtype=np.uint64)
    rows = np.array([0, 3, 1, 1], dtype=np.uint32)
    sorted_keys, sorted_rows, _ = sort_entries(keys, rows, range_keys=1)
    assert sorted_keys is keys and sorted_rows is rows


@settings(max_examples=60, deadline=None)
@given(keys=KEYS, range_keys=st.integers(1, 64))
def test_sorted_unique_by_ranges_is_numpys_unique(keys: np.ndarray, range_keys: int) -> None:
    assert sorted_unique(keys, range_keys).tolist() == np.unique(keys).tolist()


def test_key_ranges_cover_every_position_once_in_ascending_ranges() -> None:
    keys = np.random.default_rng(3).integers(0, 2**64, size=1000, dtype=np.uint64)
    ranges = list(key_ranges(keys, 100))
    assert len(ranges) == 16  # 1000 keys at about 100 a range: the next power of two of ten ranges
    assert sorted(np.concatenate(ranges).tolist()) == list(range(1000))
    tops = [keys[chosen] >> np.uint64(60) for chosen in ranges]
    assert all(set(top.tolist()) <= {number} for number, top in enumerate(tops))


def test_key_ranges_follow_the_module_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    assert len(list(key_ranges(np.arange(1000, dtype=np.uint64)))) == 1
    monkeypatch.setattr(range_sort, "SORT_RANGE_KEYS", 250)
    assert len(list(key_ranges(np.arange(1000, dtype=np.uint64)))) == 4


def test_is_sorted_compares_later_columns_only_on_ties() -> None:
    assert is_sorted((np.array([1, 2, 2], np.uint64), np.array([9, 0, 1], np.uint32)))
    assert not is_sorted((np.array([1, 2, 2], np.uint64), np.array([9, 1, 0], np.uint32)))
    assert not is_sorted((np.array([2, 1], np.uint64), np.array([0, 0], np.uint32)))
    assert is_sorted((np.zeros(0, np.uint64), np.zeros(0, np.uint32)))


def test_a_result_much_smaller_than_its_bound_lets_the_bound_go() -> None:
    bound = np.arange(10, dtype=np.uint64)
    assert np.shares_memory(trimmed(bound, 6), bound)
    small = trimmed(bound, 2)
    assert small.tolist() == [0, 1] and not np.shares_memory(small, bound)


def test_first_in_runs_keeps_the_first_positions_of_each_run_of_equal_values() -> None:
    values = np.array([4, 4, 4, 7, 9, 9, 9, 9], dtype=np.uint64)
    assert first_in_runs(values, 2).tolist() == [True, True, False, True, True, True, False, False]
    assert first_in_runs(np.zeros(0, np.uint64), 2).tolist() == []


@settings(max_examples=80, deadline=None)
@given(
    lengths=st.lists(st.integers(0, 40), max_size=30),
    data=st.data(),
    slice_keys=st.integers(1, 50),
)
def test_sorting_by_groups_gives_one_sorts_order(
    lengths: list[int], data: st.DataObject, slice_keys: int
) -> None:
    groups = np.repeat(np.arange(len(lengths), dtype=np.int64), lengths)
    low = data.draw(hnp.arrays(np.uint64, len(groups), elements=st.integers(0, 2**32 - 1)))
    keys = (groups.astype(np.uint64) << np.uint64(32)) | low
    expected = np.sort(keys)
    result = range_sort.sort_grouped(keys, groups, slice_keys)
    assert result is keys
    assert result.tolist() == expected.tolist()


def test_sorting_by_groups_needs_a_group_per_key() -> None:
    with pytest.raises(ValueError, match="3 groups for 2 keys"):
        range_sort.sort_grouped(np.zeros(2, np.uint64), np.zeros(3, np.int64))


@settings(max_examples=60, deadline=None)
@given(
    keys=KEYS | hnp.arrays(np.uint64, st.integers(0, 9000), elements=st.integers(0, 2**64 - 1)),
    clustered=st.booleans(),
)
def test_a_key_order_is_numpys_stable_argsort(keys: np.ndarray, clustered: bool) -> None:
    """Evenly spread keys and keys that share their top bits (the radix pass sorts nothing), above and
    below the size where the radix pass starts, with ties."""
    if clustered:
        keys = keys >> np.uint64(20)
    keys = np.concatenate((keys, keys[: len(keys) // 3]))
    assert key_order(keys).tolist() == np.argsort(keys, kind="stable").tolist()


def test_sorting_many_entries_with_tied_keys_gives_lexsort_order() -> None:
    """Enough entries for `key_order`'s radix pass, a fifth of the keys repeated with other rows."""
    rng = np.random.default_rng(4)
    keys = rng.integers(0, 2**64 - 1, 20_000, dtype=np.uint64)
    keys[:4000] = keys[10_000:14_000]
    rows = rng.integers(0, 50, len(keys)).astype(np.uint32)
    payloads = rng.integers(0, 3, len(keys)).astype(np.uint64)
    order = np.lexsort((payloads, rows, keys))
    sorted_keys, sorted_rows, sorted_payloads = sort_entries(keys, rows, payloads)
    assert sorted_payloads is not None
    assert sorted_keys.tolist() == keys[order].tolist()
    assert (sorted_rows.tolist(), sorted_payloads.tolist()) == (
        rows[order].tolist(),
        payloads[order].tolist(),
    )
