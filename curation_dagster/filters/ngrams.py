"""Gopher's word n-gram repetition for a batch of rows at once (Rae et al. 2021, as datatrove computes it,
but comparing n-grams word by word).

N-grams are numbered exactly, per row: the n-gram at a position is the pair (number of the (n-1)-gram
there, number of its last word), and Arrow's hash table numbers those pairs in order of first occurrence.
An n-gram occurs twice or more only where its (n-1)-gram does, so each n looks only at those positions.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Sequence

import numpy as np

from curation_dagster.filters.text_batch import Segments, Words, first_occurrences, maybe_repeated

#: Rows are taken in groups of about this many words: Arrow's hash table numbers a group's n-grams about
#: three times faster per n-gram while it fits in the processor's cache.
GROUP_WORDS = 65_536


def ngram_repetition(
    words: Words, top_sizes: Sequence[int], duplicate_sizes: Sequence[int]
) -> tuple[dict[int, np.ndarray], dict[int, np.ndarray]]:
    """Per row and for each n asked: the characters of its most frequent n-gram (words joined by spaces;
    the first seen wins a tie) times its count, and the characters of its repeated n-grams (see
    `_repeat_positions`)."""
    offsets = words.rows.offsets
    top = {n: np.zeros(len(offsets) - 1, np.int64) for n in top_sizes}
    duplicate = {n: np.zeros(len(offsets) - 1, np.int64) for n in duplicate_sizes}
    first_row = 0
    while first_row < len(offsets) - 1:
        last_row = max(
            int(np.searchsorted(offsets, offsets[first_row] + GROUP_WORDS, "right")) - 1, first_row + 1
        )
        start, stop = offsets[first_row], offsets[last_row]
        group = Words(
            Segments(offsets[first_row : last_row + 1] - start),
            words.ids[start:stop],
            words.lengths[start:stop],
        )
        group_top, group_duplicate = _group_repetition(group, top_sizes, duplicate_sizes)
        for n, chars in group_top.items():
            top[n][first_row:last_row] = chars
        for n, chars in group_duplicate.items():
            duplicate[n][first_row:last_row] = chars
        first_row = last_row
    return top, duplicate


def _group_repetition(
    words: Words, top_sizes: Sequence[int], duplicate_sizes: Sequence[int]
) -> tuple[dict[int, np.ndarray], dict[int, np.ndarray]]:
    """`ngram_repetition` for one group of rows."""
    rows = words.rows
    ends = rows.offsets[1:][rows.owners]
    characters = np.zeros(len(words.ids) + 1, np.int64)
    np.cumsum(words.lengths, out=characters[1:])
    top = {n: _first_ngram_chars(rows, characters, n) for n in top_sizes}
    duplicate = {n: np.zeros(len(rows.offsets) - 1, np.int64) for n in duplicate_sizes}
    stride = int(words.ids.max()) + 1 if len(words.ids) else 1
    # Bigrams are numbered straight from (row, first word, second word) while that fits in 63 bits.
    direct = len(rows.offsets) * stride * stride < 2**62
    positions = np.flatnonzero(np.arange(len(words.ids)) + 1 < ends) if direct else np.arange(len(words.ids))
    numbers = rows.owners[positions] * stride + words.ids[positions]
    if not direct:
        numbers, _ = first_occurrences(numbers)
        positions = np.flatnonzero(np.bincount(numbers)[numbers] >= 2) if len(numbers) else numbers
        numbers = numbers[positions]
    for n in range(2, max((*top_sizes, *duplicate_sizes), default=1) + 1):
        valid = positions + n <= ends[positions]
        positions = positions[valid]
        if len(positions) == 0:
            break
        keys = numbers[valid] * stride + words.ids[positions + n - 1]
        if n == 2:
            maybe = maybe_repeated(keys)
            positions, keys = positions[maybe], keys[maybe]
        numbers, first = first_occurrences(keys)
        counts = np.bincount(numbers)
        if n in top:
            _update_top(top[n], rows, characters, n, positions[first], counts)
        several = counts[numbers] >= 2
        positions, numbers, first = positions[several], numbers[several], first[several]
        if n in duplicate and len(positions):
            repeats = _repeat_positions(positions, numbers, first, n)
            spans = characters[repeats + n] - characters[repeats]
            duplicate[n] = np.bincount(rows.owners[repeats], spans, len(rows.offsets) - 1).astype(np.int64)
    return top, duplicate


def _first_ngram_chars(rows: Segments, characters: np.ndarray, n: int) -> np.ndarray:
    """The characters of each row's first n-gram with its spaces (0 for a row of fewer words)."""
    starts = rows.offsets[:-1]
    long_enough = rows.sizes >= n
    chars = np.zeros(len(starts), np.int64)
    chars[long_enough] = characters[starts[long_enough] + n] - characters[starts[long_enough]] + n - 1
    return chars


def _update_top(
    top: np.ndarray, rows: Segments, characters: np.ndarray, n: int, firsts: np.ndarray, counts: np.ndarray
) -> None:
    """Sets each row's top n-gram score where one of its n-grams occurs twice or more. `firsts` is each
    number's first position; a row's numbers are consecutive, so one reduction per row picks the most
    frequent, and of those the first seen (the lowest number)."""
    owners = rows.owners[firsts]
    starts = np.flatnonzero(np.diff(owners, prepend=-1))
    scale = np.int64(len(counts))
    keys = counts * scale + (scale - 1 - np.arange(len(counts)))
    best = np.maximum.reduceat(keys, starts)
    most = best // scale
    number = scale - 1 - best % scale
    repeated = most >= 2
    start = firsts[number[repeated]]
    span = characters[start + n] - characters[start] + n - 1
    top[owners[starts][repeated]] = span * most[repeated]


def _repeat_positions(positions: np.ndarray, numbers: np.ndarray, first: np.ndarray, n: int) -> np.ndarray:
    """Gopher's repeated n-grams: scanning left to right, an n-gram seen before is a repeat and the scan
    jumps past it. Given only the n-grams that occur twice or more, sorted by position.

    A later occurrence is a repeat when the scan reaches it and an earlier occurrence was not jumped over.
    The first occurrence of most n-grams lies where no jump can reach it ("exposed" ones lie within n
    words after a later occurrence), so their later occurrences are repeats wherever the scan lands on
    them. The scan lands on the first of each cluster of later occurrences (those under n words apart);
    in a cluster of consecutive positions it takes every n-th one. Other clusters are scanned here."""
    later = np.flatnonzero(~first)
    if len(later) == 0:
        return later
    at = positions[later]
    firsts = np.flatnonzero(first)
    behind = np.searchsorted(at, positions[firsts]) - 1
    exposed = firsts[(behind >= 0) & (positions[firsts] < at[np.maximum(behind, 0)] + n)]
    marked = np.zeros(int(numbers.max()) + 1, np.bool_)
    marked[numbers[exposed]] = True
    doubtful = marked[numbers[later]]
    gaps = np.diff(at)
    clusters = Segments(np.concatenate(([0], np.flatnonzero(gaps >= n) + 1, [len(at)])))
    uneven = np.concatenate(([False], gaps != 1))  # uneven[i]: a gap other than one word before i
    uneven[clusters.offsets[:-1]] = False
    plain = (clusters.totals(uneven) == 0) & (clusters.totals(doubtful) == 0)
    begin, end = at[clusters.offsets[:-1][plain]], at[clusters.offsets[1:][plain] - 1]
    steps = Segments.of_sizes((end - begin) // n + 1)
    taken = (
        np.repeat(begin, steps.sizes)
        + (np.arange(steps.offsets[-1]) - np.repeat(steps.offsets[:-1], steps.sizes)) * n
    )
    if plain.all():
        return taken
    checks = _EarlierOccurrences(positions[marked[numbers]], numbers[marked[numbers]], n)
    scanned = _scan_clusters(at, doubtful, clusters, ~plain, n, taken.tolist(), checks)
    return np.sort(np.concatenate([taken, scanned]))


def _scan_clusters(
    at: np.ndarray,
    doubtful: np.ndarray,
    clusters: Segments,
    selected: np.ndarray,
    n: int,
    taken: list[int],
    checks: _EarlierOccurrences,
) -> np.ndarray:
    """The repeats in the `selected` clusters of later occurrences `at`: from each repeat the scan goes
    to the next later occurrence n or more words on; a doubtful one is a repeat only when an earlier
    occurrence of its n-gram was not jumped over (by the repeats `taken` elsewhere or found here)."""
    following = np.searchsorted(at, at + n)
    found: list[int] = []
    for start, stop in zip(
        clusters.offsets[:-1][selected].tolist(), clusters.offsets[1:][selected].tolist(), strict=True
    ):
        here, jumps, doubts = (
            at[start:stop].tolist(),
            following[start:stop].tolist(),
            doubtful[start:stop].tolist(),
        )
        index = 0
        while index < stop - start:
            if not doubts[index] or checks.seen_before(here[index], taken, found):
                found.append(here[index])
                index = jumps[index] - start
            else:
                index += 1
    return np.array(found, np.int64)


class _EarlierOccurrences:
    """The positions of each occurrence of some n-grams, for checking whether one was jumped over."""

    def __init__(self, positions: np.ndarray, numbers: np.ndarray, n: int) -> None:
        self.n = n
        self.by_number: dict[int, list[int]] = {}
        self.number_at: dict[int, int] = {}
        for number, position in zip(numbers.tolist(), positions.tolist(), strict=True):
            self.by_number.setdefault(number, []).append(position)
            self.number_at[position] = number

    def seen_before(self, position: int, *repeats: list[int]) -> bool:
        """Whether an earlier occurrence of the n-gram at `position` was not jumped over by `repeats` (each
        list sorted)."""
        for earlier in self.by_number[self.number_at[position]]:
            if earlier >= position:
                return False
            jumped_from = max(
                (found[index] for found in repeats if (index := bisect_right(found, earlier) - 1) >= 0),
                default=None,
            )
            if jumped_from is None or jumped_from + self.n <= earlier or jumped_from == earlier:
                return True
        return False
