"""Bottom-k sketches of documents' word sets and word-pair sets: what confirms a near-duplicate pair that the
MinHash estimate leaves in the grey zone around the cut, and what tells an edited document from a rewritten
one (the word pairs: two neighbouring words, in order).

A document's sketch is the k smallest 32-bit hashes of its distinct normalised words, with the number of
distinct words it has. Two sketches give the word-set Jaccard similarity exactly (up to hash collisions)
when both documents have at most k distinct words; otherwise the k smallest hashes of the union stand for
a uniform sample of it (Broder 1997), and the share of them found in both documents estimates the
similarity with a standard error of at most sqrt(J(1 - J) / k), a quarter of the 128-value signature's at
k = 512 (Cohen and Kaplan 2007). Sketches are held flat, one array of values and one of offsets, so memory
follows the words the documents have, at most k values (4k bytes) each.

A sketch of word pairs is the same over the hashes of each document's distinct pairs of neighbouring words.
Replacing a share r of the words keeps about (1 - r)^2 of the pairs against 1 - r of the words, so the pair
measure spreads edit rates twice as far apart: on real text, 20% replaced sat at word-pair Jaccard
0.44-0.55 and 30% at 0.29-0.39, while their word-set Jaccard overlapped (0.58-0.77 against 0.53-0.69).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from curation_dagster.dedup.range_sort import is_sorted, key_order, sort_grouped

#: What a near-duplicate pair's similarity was measured with, by code (the `dup_measure` column).
MEASURES = ("minhash_estimate", "exact_words", "bottom_k_words", "exact_word_pairs", "bottom_k_word_pairs")
ESTIMATE, EXACT, BOTTOM_K, PAIRS_EXACT, PAIRS_BOTTOM_K = range(len(MEASURES))
#: Pairs compared at a time, which bounds the memory of gathering their sketches.
_PAIR_CHUNK = 4096


@dataclass(frozen=True)
class WordSketches:
    """The sketches of a sequence of documents: document `i` holds `values[offsets[i]:offsets[i + 1]]`
    (ascending) and has `words[i]` distinct words; `pairs`, when kept, holds the same documents' sketches
    of their word pairs (its `words` counting distinct pairs)."""

    values: np.ndarray
    offsets: np.ndarray
    words: np.ndarray
    pairs: WordSketches | None = None

    @classmethod
    def empty(cls, documents: int, pairs: bool = False) -> WordSketches:
        """Documents without a sketch (no words, or sketches turned off); with empty pair sketches too
        when `pairs`."""
        return cls(
            np.zeros(0, np.uint32),
            np.zeros(documents + 1, np.int64),
            np.zeros(documents, np.int64),
            cls.empty(documents) if pairs else None,
        )

    def with_pairs(self, pairs: WordSketches | None) -> WordSketches:
        """These word sketches with `pairs` as their documents' pair sketches."""
        if pairs is not None and len(pairs) != len(self):
            raise ValueError(f"{len(pairs)} pair sketches for {len(self)} documents")
        return WordSketches(self.values, self.offsets, self.words, pairs)

    @classmethod
    def of_hashes(cls, owners: np.ndarray, hashes: np.ndarray, documents: int, size: int) -> WordSketches:
        """Sketches of `size` values from (document, 32-bit hash) pairs in any order, repeats included."""
        keys = (owners.astype(np.uint64) << np.uint64(32)) | hashes.astype(np.uint64)
        keys = np.sort(keys) if not is_sorted((owners,)) else sort_grouped(keys, owners)
        return cls._of_sorted(
            (keys >> np.uint64(32)).astype(np.int64), keys.astype(np.uint32), documents, size
        )

    @classmethod
    def of_words(
        cls, values: np.ndarray, owners: np.ndarray, words: np.ndarray, documents: int, size: int
    ) -> WordSketches:
        """Sketches of `size` values from `distinct_words`' pairs, `values` holding each word's hash."""
        return cls._of_sorted(owners, values[words], documents, size)

    @classmethod
    def _of_sorted(cls, owners: np.ndarray, hashes: np.ndarray, documents: int, size: int) -> WordSketches:
        """Sketches from (document, hash) pairs ordered by document, then hash."""
        # A new document, or a hash not seen just before (two words may share one 32-bit hash).
        first = np.ones(len(owners), dtype=bool)
        first[1:] = (owners[1:] != owners[:-1]) | (hashes[1:] != hashes[:-1])
        owners, hashes = owners[first], hashes[first]
        counts = np.bincount(owners, minlength=documents).astype(np.int64)
        starts = np.concatenate(([0], np.cumsum(counts)[:-1])).astype(np.int64)
        kept = (np.arange(len(owners)) - starts[owners]) < size
        offsets = np.concatenate(([0], np.cumsum(np.minimum(counts, size)))).astype(np.int64)
        return cls(hashes[kept].astype(np.uint32), offsets, counts)

    @classmethod
    def join(cls, parts: list[WordSketches]) -> WordSketches:
        """The sketches of `parts`, one after the other, emptying `parts` as it goes, so memory holds the
        result and one part, not all parts twice; pair sketches too when every part has them."""
        values = np.empty(sum(len(part.values) for part in parts), dtype=np.uint32)
        offsets = np.zeros(sum(len(part) for part in parts) + 1, dtype=np.int64)
        words = np.empty(len(offsets) - 1, dtype=np.int64)
        pair_parts: list[WordSketches] = []
        every_part_has_pairs = True
        value_at = row_at = 0
        while parts:
            part = parts.pop(0)
            values[value_at : value_at + len(part.values)] = part.values
            offsets[row_at + 1 : row_at + len(part) + 1] = part.offsets[1:] + value_at
            words[row_at : row_at + len(part)] = part.words
            value_at, row_at = value_at + len(part.values), row_at + len(part)
            if part.pairs is None:
                every_part_has_pairs = False
            else:
                pair_parts.append(part.pairs)
            del part
        pairs = cls.join(pair_parts) if every_part_has_pairs and pair_parts else None
        return cls(values, offsets, words, pairs)

    @classmethod
    def of_lists(
        cls,
        sketches: Sequence[np.ndarray],
        words: Sequence[int],
        pair_sketches: Sequence[np.ndarray] | None = None,
        pairs: Sequence[int] | None = None,
    ) -> WordSketches:
        """Sketches given one array per document (and pair sketches, when given)."""
        lengths = np.fromiter((len(sketch) for sketch in sketches), dtype=np.int64, count=len(sketches))
        values = np.concatenate(list(sketches)) if len(sketches) else np.zeros(0, np.uint32)
        return cls(
            values.astype(np.uint32),
            np.concatenate(([0], np.cumsum(lengths))).astype(np.int64),
            np.asarray(words, dtype=np.int64).reshape(-1),
            None if pair_sketches is None or pairs is None else cls.of_lists(pair_sketches, pairs),
        )

    @classmethod
    def from_arrow(
        cls, sketches: pa.ChunkedArray | pa.Array, words: pa.ChunkedArray | pa.Array
    ) -> WordSketches:
        """The `word_sketch` and `words` columns of a signatures table (or `pair_sketch` and `pairs`)."""
        column = sketches.combine_chunks() if isinstance(sketches, pa.ChunkedArray) else sketches
        offsets = column.offsets.to_numpy().astype(np.int64)
        values = column.values.to_numpy(zero_copy_only=False).astype(np.uint32)
        return cls(
            values[offsets[0] : offsets[-1]],
            offsets - offsets[0],
            np.asarray(words.to_numpy(zero_copy_only=False), dtype=np.int64),
        )

    @classmethod
    def from_table(cls, table: pa.Table) -> WordSketches:
        """The sketches of a signatures table: `word_sketch` and `words`, with `pair_sketch` and `pairs`."""
        words = cls.from_arrow(table.column("word_sketch"), table.column("words"))
        return words.with_pairs(cls.from_arrow(table.column("pair_sketch"), table.column("pairs")))

    def __len__(self) -> int:
        return len(self.words)

    @property
    def nbytes(self) -> int:
        """Bytes of the sketches as the index stores them: values and 8 bytes a document (pairs too)."""
        return 4 * len(self.values) + 8 * len(self) + (self.pairs.nbytes if self.pairs is not None else 0)

    def slice(self, start: int, stop: int) -> WordSketches:
        """Documents `start` to `stop` (their pair sketches too), as views of these arrays."""
        offsets = self.offsets[start : stop + 1]
        return WordSketches(
            self.values[offsets[0] : offsets[-1]],
            offsets - offsets[0],
            self.words[start:stop],
            None if self.pairs is None else self.pairs.slice(start, stop),
        )

    def sketch(self, row: int) -> np.ndarray:
        return self.values[self.offsets[row] : self.offsets[row + 1]]

    def take(self, rows: np.ndarray) -> WordSketches:
        """The sketches of these rows, in this order (their pair sketches too)."""
        values, lengths = self._gather(np.asarray(rows, dtype=np.int64))
        return WordSketches(
            values,
            np.concatenate(([0], np.cumsum(lengths))).astype(np.int64),
            self.words[rows],
            None if self.pairs is None else self.pairs.take(rows),
        )

    def to_arrow(self) -> tuple[pa.Array, pa.Array]:
        """The `word_sketch` (list of uint32) and `words` (int32) columns; the values are not copied."""
        values = np.ascontiguousarray(self.values, dtype=np.uint32)
        sketches = pa.ListArray.from_arrays(
            pa.array(self.offsets, pa.int32()),
            pa.Array.from_buffers(pa.uint32(), len(values), [None, pa.py_buffer(values)]),
        )
        return sketches, pa.array(self.words, pa.int32())

    def columns(self) -> dict[str, pa.Array]:
        """The signatures table's sketch columns: `words`, `word_sketch`, `pairs`, `pair_sketch` (empty
        pair sketches when none are kept)."""
        sketches, words = self.to_arrow()
        pair_sketches, pairs = (self.pairs or WordSketches.empty(len(self))).to_arrow()
        return {"words": words, "word_sketch": sketches, "pairs": pairs, "pair_sketch": pair_sketches}

    def _gather(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The values of `rows`, concatenated, and how many each has."""
        starts = self.offsets[rows]
        lengths = self.offsets[rows + 1] - starts
        total = int(lengths.sum())
        first = np.repeat(starts - (np.cumsum(lengths) - lengths), lengths)
        return self.values[first + np.arange(total)], lengths


def distinct_words(
    values: np.ndarray, word_of_token: np.ndarray, lengths: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Each document's distinct words as (document, word) pairs, ordered by document, then by the word's
    hash in `values` (one per distinct word of a batch); document `i` has `lengths[i]` tokens, each naming
    its word in `word_of_token`. Words are ranked by hash once per batch, so one sort of narrow
    (document, rank) keys does the rest."""
    documents, vocabulary = len(lengths), max(len(values), 1)
    order = key_order(values)
    rank = np.empty(len(values), dtype=np.int64)
    rank[order] = np.arange(len(values))
    key_type = np.dtype(np.int32 if documents * vocabulary < 2**31 else np.int64)
    owner = np.repeat(np.arange(documents, dtype=key_type), lengths)
    keys = sort_grouped(
        owner * np.asarray(vocabulary, dtype=key_type) + rank[word_of_token].astype(key_type), owner
    )
    if len(keys):
        keys = keys[np.concatenate(([True], keys[1:] != keys[:-1]))]
    return (keys // vocabulary).astype(np.int64), order[keys % vocabulary]


def sketch_similarity(
    left: WordSketches, left_rows: np.ndarray, right: WordSketches, right_rows: np.ndarray, size: int
) -> tuple[np.ndarray, np.ndarray]:
    """Word-set Jaccard similarity of pairs `(left_rows[i], right_rows[i])` from sketches of `size` values,
    and whether each is exact (both documents have at most `size` distinct words)."""
    out = np.zeros(len(left_rows), dtype=np.float64)
    exact = (left.words[left_rows] <= size) & (right.words[right_rows] <= size)
    for start in range(0, len(left_rows), _PAIR_CHUNK):
        stop = start + _PAIR_CHUNK
        out[start:stop] = _chunk_similarity(
            left, left_rows[start:stop], right, right_rows[start:stop], exact[start:stop], size
        )
    return out, exact


def _chunk_similarity(
    left: WordSketches,
    left_rows: np.ndarray,
    right: WordSketches,
    right_rows: np.ndarray,
    exact: np.ndarray,
    size: int,
) -> np.ndarray:
    """All pairs' values sorted at once by (pair, value): a value found in both sketches of a pair sits
    next to itself. Of each pair's union, the `size` smallest distinct values are counted (all of them
    when the pair is exact), and of those, the ones in both."""
    pairs = len(left_rows)
    left_values, left_lengths = left._gather(left_rows)
    right_values, right_lengths = right._gather(right_rows)
    owner = np.concatenate(
        (np.repeat(np.arange(pairs), left_lengths), np.repeat(np.arange(pairs), right_lengths))
    ).astype(np.uint64)
    keys = np.sort((owner << np.uint64(32)) | np.concatenate((left_values, right_values)).astype(np.uint64))
    if not len(keys):
        return np.zeros(pairs, dtype=np.float64)
    owners = (keys >> np.uint64(32)).astype(np.int64)
    repeated = np.concatenate(([False], keys[1:] == keys[:-1]))
    rank = np.cumsum(~repeated) - 1
    first = np.minimum(np.searchsorted(owners, np.arange(pairs)), len(keys) - 1)
    rank_in_pair = rank - rank[first][owners]
    union = np.bincount(owners[~repeated], minlength=pairs)
    limit = np.where(exact, np.iinfo(np.int64).max, size)
    counted = np.minimum(union, limit)
    both = np.bincount(owners[repeated & (rank_in_pair < limit[owners])], minlength=pairs)
    return np.asarray(both / np.maximum(counted, 1), dtype=np.float64)
