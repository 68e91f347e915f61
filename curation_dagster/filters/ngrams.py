"""Gopher's word n-gram repetition for a batch of rows at once (Rae et al. 2021, as datatrove computes it,
but comparing n-grams word by word).

N-grams are numbered exactly, per row: the n-gram at a position is the pair (number of the (n-1)-gram
there, number of its last word), and Arrow's hash table numbers those pairs in order of first occurrence.
An n-gram occurs twice or more only where the (n-1)-grams at its first and at its second word both do, so
each n looks only at those positions. The left-to-right scan for repeated n-grams then runs once per n over
the whole batch (`_repeat_positions`).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from curation_dagster.filters.text_batch import Segments, Words, first_occurrences, maybe_repeated

#: Rows are taken in groups of about this many words: Arrow's hash table numbers a group's n-grams about
#: three times faster per n-gram while it fits in the processor's cache.
GROUP_WORDS = 65_536

#: The n-grams of some n that occur twice or more in their row: positions (in order), numbers, and whether
#: each is its n-gram's first occurrence.
Repeated = tuple[np.ndarray, np.ndarray, np.ndarray]


def ngram_repetition(
    words: Words, top_sizes: Sequence[int], duplicate_sizes: Sequence[int]
) -> tuple[dict[int, np.ndarray], dict[int, np.ndarray]]:
    """Per row and for each n asked: the characters of its most frequent n-gram (words joined by spaces;
    the first seen wins a tie) times its count, and the characters of its repeated n-grams (see
    `_repeat_positions`)."""
    offsets = words.rows.offsets
    top = {n: np.zeros(len(offsets) - 1, np.int64) for n in top_sizes}
    found: dict[int, list[Repeated]] = {n: [] for n in duplicate_sizes}
    numbered = dict.fromkeys(duplicate_sizes, 0)
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
        group_top, group_found = _group_ngrams(group, top_sizes, duplicate_sizes)
        for n, chars in group_top.items():
            top[n][first_row:last_row] = chars
        for n, (positions, numbers, first) in group_found.items():
            # Numbers and positions made unique across the batch, so that one scan per n covers every group.
            found[n].append((positions + start, numbers + numbered[n], first))
            numbered[n] += int(numbers.max()) + 1
        first_row = last_row
    characters = np.zeros(len(words.ids) + 1, np.int64)
    np.cumsum(words.lengths, out=characters[1:])
    duplicate = {}
    for n, parts in found.items():
        repeats = np.zeros(0, np.int64)
        if parts:
            positions, numbers, first = (np.concatenate(column) for column in zip(*parts, strict=True))
            repeats = _repeat_positions(positions, numbers, first, n)
        spans = characters[repeats + n] - characters[repeats]
        duplicate[n] = np.bincount(words.rows.owners[repeats], spans, len(offsets) - 1).astype(np.int64)
    return top, duplicate


def _group_ngrams(
    words: Words, top_sizes: Sequence[int], duplicate_sizes: Sequence[int]
) -> tuple[dict[int, np.ndarray], dict[int, Repeated]]:
    """For one group of rows: the top n-gram scores of `ngram_repetition`, and for each n of
    `duplicate_sizes` the n-grams that occur twice or more in their row (none when no n-gram does)."""
    rows = words.rows
    ends = rows.offsets[1:][rows.owners]
    characters = np.zeros(len(words.ids) + 1, np.int64)
    np.cumsum(words.lengths, out=characters[1:])
    top = {n: _first_ngram_chars(rows, characters, n) for n in top_sizes}
    found: dict[int, Repeated] = {}
    stride = int(words.ids.max()) + 1 if len(words.ids) else 1
    # Bigrams are numbered straight from (row, first word, second word) while that fits in 63 bits.
    direct = len(rows.offsets) * stride * stride < 2**62
    positions = np.flatnonzero(np.arange(len(words.ids)) + 1 < ends)  # where a bigram starts
    numbers = rows.owners[positions] * stride + words.ids[positions]
    if not direct:
        numbers, _ = first_occurrences(numbers)
        several = np.flatnonzero(np.bincount(numbers)[numbers] >= 2) if len(numbers) else numbers
        positions, numbers = positions[several], numbers[several]
    repeated = np.zeros(len(words.ids) + 1, np.bool_)
    for n in range(2, max((*top_sizes, *duplicate_sizes), default=1) + 1):
        if n > 2:
            # An n-gram repeats only where the (n-1)-grams at its first and second words both do (so the
            # second one fits in the row, and the n-gram too).
            repeated[:] = False
            repeated[positions] = True
            follows = np.flatnonzero(repeated[positions + 1])
            positions, numbers = positions[follows], numbers[follows]
        if len(positions) == 0:
            break
        keys = numbers * stride + words.ids[positions + n - 1]
        if n == 2:
            maybe = np.flatnonzero(maybe_repeated(keys))
            positions, keys = positions[maybe], keys[maybe]
            if len(positions) == 0:
                break
        numbers, first = first_occurrences(keys)
        counts = np.bincount(numbers)
        if n in top:
            _update_top(top[n], rows, characters, n, positions[first], counts)
        several = np.flatnonzero(counts[numbers] >= 2)
        positions, numbers, first = positions[several], numbers[several], first[several]
        if n in duplicate_sizes and len(positions):
            found[n] = positions, numbers, first
    return top, found


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
    starts = np.flatnonzero(np.concatenate(([True], owners[1:] != owners[:-1])))
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
    jumps past it (n words on). Given only the n-grams that occur twice or more in their row (`Repeated`;
    a jump never leaves its row, so rows in order make one scan).

    Only a repeat's jump can pass over an occurrence, and most first occurrences have no later occurrence
    within n words before them: their n-gram is seen wherever the scan meets a later occurrence, which is
    then a repeat for certain. In a run of such certain occurrences a word apart the scan takes every n-th
    position from where it enters; a cluster (occurrences under n words apart) that is one such run is
    taken in numpy, and the scan runs in Python over the other clusters, meeting the occurrences of the
    other n-grams one by one (a jumped first occurrence leaves its n-gram unseen until the scan meets
    another)."""
    if len(positions) == 0:
        return positions
    later = ~first
    at = positions[later]
    firsts = positions[first]
    before = np.searchsorted(at, firsts) - 1
    exposed = np.flatnonzero(first)[(before >= 0) & (at[np.maximum(before, 0)] > firsts - n)]
    doubtful = np.zeros(int(numbers.max()) + 1, np.bool_)
    doubtful[numbers[exposed]] = True
    in_doubt = doubtful[numbers]
    kept = np.flatnonzero(later | in_doubt)
    at, numbers, certain = positions[kept], numbers[kept], (later & ~in_doubt)[kept]
    starts_run = np.ones(len(at), np.bool_)
    starts_run[1:] = ~(certain[1:] & certain[:-1] & (np.diff(at) == 1))
    heads = np.flatnonzero(starts_run)
    lasts = at[np.append(heads[1:], len(at)) - 1]
    # The scan reaches the first occurrence of each cluster (none within n words before it); a cluster of one
    # certain run needs no scan.
    clusters = np.ones(len(at), np.bool_)
    clusters[1:] = np.diff(at) >= n
    opens = clusters[heads]
    alone = certain[heads] & opens & np.append(opens[1:], True)
    takes, counts = _scan(at[heads], lasts, numbers[heads], certain[heads], ~alone, len(doubtful), n)
    takes = np.concatenate([at[heads][alone], takes])
    counts = np.concatenate([(lasts[alone] - takes[: alone.sum()]) // n + 1, counts])
    steps = Segments.of_sizes(counts)
    return (
        np.repeat(takes, counts) + (np.arange(steps.offsets[-1]) - np.repeat(steps.offsets[:-1], counts)) * n
    )


def _scan(
    starts: np.ndarray,
    lasts: np.ndarray,
    numbers: np.ndarray,
    certain: np.ndarray,
    selected: np.ndarray,
    size: int,
    n: int,
) -> tuple[np.ndarray, np.ndarray]:
    """The scan over the `selected` runs (`starts` to `lasts`) of certain occurrences and single
    occurrences of other n-grams: where each series of repeats n words apart starts, and how many it holds."""
    seen = [False] * size
    takes: list[int] = []
    counts: list[int] = []
    resume = 0
    for start, last, number, sure in zip(
        starts[selected].tolist(),
        lasts[selected].tolist(),
        numbers[selected].tolist(),
        certain[selected].tolist(),
        strict=True,
    ):
        if last < resume:
            continue
        if sure:
            take = start if start >= resume else resume
            count = (last - take) // n + 1
        elif seen[number]:
            take, count = start, 1
        else:
            seen[number] = True
            continue
        takes.append(take)
        counts.append(count)
        resume = take + count * n
    return np.array(takes, np.int64), np.array(counts, np.int64)
