"""Sorting a key store's entries by key a key range at a time.

A run of a large shard holds tens of millions of entries; one `lexsort` over them holds an index array
and sorted copies of every column at once (about 40 bytes an entry beyond the input). Keys are hashes,
spread evenly over the 64-bit space, so the entries are split by their top bits into ranges of about
`SORT_RANGE_KEYS` and each range is sorted on its own into arrays sized once for the result: the
temporaries follow a range, not the run, and the order is the one a single sort gives.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator

import numpy as np

#: Entries sorted at once (a sort holds about 40 bytes of temporaries an entry).
SORT_RANGE_KEYS = 4_000_000
#: Keys below which `key_order` sorts them in one stable sort (the radix pass would not pay).
_RADIX_MIN_KEYS = 1 << 12
#: Entries whose range is worked out at once.
_CHUNK = 1 << 22
#: Keys sorted at once by `sort_grouped`: a slice that fits a core's cache sorts about twice as fast as
#: one sort of millions of keys.
GROUP_SORT_KEYS = 1 << 15


def sort_entries(
    keys: np.ndarray, rows: np.ndarray, payloads: np.ndarray | None = None, range_keys: int | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """`keys`, `rows` and `payloads` ordered by key, then row, then payload (`np.lexsort`'s order); the
    arrays themselves, not copies, when they are in that order already."""
    columns = (keys, rows) if payloads is None else (keys, rows, payloads)
    if is_sorted(columns):
        return keys, rows, payloads
    out = [np.empty(len(keys), dtype=column.dtype) for column in columns]
    filled = 0
    for chosen in key_ranges(keys, range_keys):
        parts = [column[chosen] for column in columns]
        order = ties_sorted(parts[0], key_order(parts[0]), tuple(parts[1:]))
        for target, part in zip(out, parts, strict=True):
            target[filled : filled + len(chosen)] = part[order]
        filled += len(chosen)
    return out[0], out[1], None if payloads is None else out[2]


def key_order(keys: np.ndarray) -> np.ndarray:
    """The order of a stable sort of uint64 `keys`, the same order `np.argsort(keys, kind="stable")` gives,
    about three times as fast on hashes (evenly spread keys): a radix sort of their top 16 bits, then a
    stable sort (a timsort) of keys that are then in short runs that need no merging. 44 ms against 131
    for 1.3 million keys; keys that share their top bits cost one stable sort more than that, no more."""
    if len(keys) < _RADIX_MIN_KEYS or keys.dtype != np.uint64:
        return np.argsort(keys, kind="stable")
    by_top = np.argsort((keys >> np.uint64(48)).astype(np.uint16), kind="stable")
    return by_top[np.argsort(keys[by_top], kind="stable")]


def ties_sorted(keys: np.ndarray, order: np.ndarray, then: tuple[np.ndarray, ...]) -> np.ndarray:
    """`order` (a stable sort of `keys`, changed in place and returned) with each run of equal keys sorted
    again by the columns `then`, the first first: the order `np.lexsort((*reversed(then), keys))` gives,
    where only the entries whose key is not unique pay the many-key sort (about 450 ns an entry), and none
    does when they are in `then`'s order already (a stable sort keeps the input's order among equal keys:
    rows in `then`'s order, or a merge of sorted inputs taken in that order)."""
    if not then or len(keys) < 2 or is_sorted(then):
        return order
    ordered = keys[order]
    tied = ordered[1:] == ordered[:-1]
    if not tied.any():
        return order
    in_tie = np.zeros(len(keys), dtype=bool)
    in_tie[1:] |= tied
    in_tie[:-1] |= tied
    positions = np.flatnonzero(in_tie)
    members = order[positions]
    columns = (keys[members], *(column[members] for column in then))
    if not is_sorted(columns):  # a merge of inputs in arrival order has its ties in order already
        order[positions] = members[np.lexsort(columns[::-1])]
    return order


def key_ranges(keys: np.ndarray, range_keys: int | None = None) -> Iterator[np.ndarray]:
    """The positions of `keys` (any order) by ascending range of the key space, about `range_keys` a range
    (one range for fewer keys; `SORT_RANGE_KEYS` unless given)."""
    per_range = range_keys or SORT_RANGE_KEYS
    bits = min(16, max(0, int(np.ceil(np.log2(max(len(keys), 1) / per_range)))))
    if bits == 0:
        yield np.arange(len(keys))
        return
    ranges = np.empty(len(keys), dtype=np.uint16)
    for start in range(0, len(keys), _CHUNK):
        ranges[start : start + _CHUNK] = keys[start : start + _CHUNK] >> np.uint64(64 - bits)
    for number in range(1 << bits):
        yield np.flatnonzero(ranges == number)


def sorted_unique(values: np.ndarray, range_keys: int | None = None) -> np.ndarray:
    """The distinct values of uint64 `values`, sorted, a key range at a time (a sort and a comparison per
    range: numpy's `unique` hashes, several times slower on a million keys)."""
    out = np.empty(len(values), dtype=np.uint64)
    filled = 0
    for chosen in key_ranges(values, range_keys):
        ordered = np.sort(values[chosen])
        if len(ordered):
            ordered = ordered[np.concatenate(([True], ordered[1:] != ordered[:-1]))]
        out[filled : filled + len(ordered)] = ordered
        filled += len(ordered)
    return trimmed(out, filled)


def sort_grouped(keys: np.ndarray, groups: np.ndarray, slice_keys: int = GROUP_SORT_KEYS) -> np.ndarray:
    """`keys` sorted in place and returned, where `groups` (one per key) do not decrease and a key of a
    smaller group is smaller than every key of a larger one (a document's number in the high bits, say):
    the keys are sorted a slice of about `slice_keys` at a time, cut where the group changes, which is
    the order one sort of them all gives."""
    if len(keys) != len(groups):
        raise ValueError(f"{len(groups)} groups for {len(keys)} keys")
    marks = np.searchsorted(groups, groups[slice_keys::slice_keys], side="left")
    cuts = np.unique(np.concatenate(([0], marks, [len(keys)]))).tolist()
    for start, stop in itertools.pairwise(cuts):
        keys[start:stop].sort()
    return keys


def first_in_runs(values: np.ndarray, count: int) -> np.ndarray:
    """A mask of the first `count` positions of each run of equal values of `values` (sorted, or grouped)."""
    index = np.arange(len(values))
    starts = np.concatenate(([True], values[1:] != values[:-1])) if len(values) else np.zeros(0, bool)
    return (index - np.maximum.accumulate(np.where(starts, index, 0))) < count


def trimmed(array: np.ndarray, length: int) -> np.ndarray:
    """The first `length` values of an array sized for the most there could be: a view when that is most
    of it, else a copy, so that a result much smaller than its bound does not hold the bound's memory."""
    return array[:length] if 2 * length >= len(array) else array[:length].copy()


def is_sorted(columns: tuple[np.ndarray, ...]) -> bool:
    """Whether the rows of `columns` are in lexicographic order (first column first), checked a chunk
    at a time."""
    length = len(columns[0])
    for start in range(0, max(length - 1, 0), _CHUNK):
        stop = min(start + _CHUNK, length - 1)
        before = [column[start:stop] for column in columns]
        after = [column[start + 1 : stop + 1] for column in columns]
        # Later columns decide only where every earlier column is equal.
        ordered = np.zeros(stop - start, dtype=bool)
        tied = np.ones(stop - start, dtype=bool)
        for left, right in zip(before, after, strict=True):
            ordered |= tied & (left < right)
            tied &= left == right
        if not (ordered | tied).all():
            return False
    return True
