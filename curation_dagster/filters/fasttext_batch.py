"""fastText's supervised `predict` (fastText 0.9, as fasttext-predict runs it) for a whole batch of texts in
numpy: the language identification engine for lid.176.

fastText's time goes per character: at every occurrence of a word it hashes the word's character n-grams and
adds their vectors. Here each distinct word is looked up in a per-process table of word vectors (the word's
own row and its n-grams' rows added in fastText's order), so a word is hashed once, in numpy, the first time
a batch holds it; a text's hidden vector is the sum of its words' vectors, and the hierarchical softmax runs
for every text at once, visiting the tree as fastText's search does. Adding word sums instead of one row after
another rounds differently in float32: a probability can differ from fasttext-predict's in the seventh
significant digit (the tests hold both to the same labels on real and generated text).
"""

from __future__ import annotations

import struct
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from curation_dagster.filters.text_batch import GrowingArray, Segments, StringIndex, flags, string_bytes

_MAGIC: Final = 793712314
_VERSION: Final = 12
_SUPERVISED: Final = 3
_HIERARCHICAL_SOFTMAX: Final = 1
#: fastText's end of line, read as a word (it ends a text: words after it are not read).
_END: Final = "</s>"
_LABEL: Final = "__label__"
#: fastText's search skips a branch whose log probability falls below this (log of 1e-5).
_SKIP_BELOW: Final = np.float32(np.log(1e-5))
#: Distinct words a table holds before the next batch starts a new one (about 100 MB).
WORD_LIMIT: Final = 1_000_000


@dataclass(frozen=True)
class _ProductQuantizer:
    """fastText's product quantizer: each row is `parts` codes, each picking one of 256 centroids of its
    slice of the columns (the last slice `last_width` wide)."""

    dim: int
    parts: int
    width: int
    last_width: int
    centroids: np.ndarray

    def decode(self, codes: np.ndarray) -> np.ndarray:
        rows = np.zeros((len(codes), self.dim), np.float32)
        for part in range(self.parts):
            width = self.last_width if part == self.parts - 1 else self.width
            index = (
                part * 256 * self.width + codes[:, part].astype(np.int64)[:, None] * width + np.arange(width)
            )
            rows[:, part * self.width : part * self.width + width] = self.centroids[index]
        return rows


class _Reader:
    """fastText's binary model format (little-endian)."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.at = 0

    def values(self, layout: str) -> tuple[int | float | bool, ...]:
        values = struct.unpack_from("<" + layout, self.data, self.at)
        self.at += struct.calcsize("<" + layout)
        return values

    def integers(self, layout: str) -> list[int]:
        return [int(value) for value in self.values(layout)]

    def array(self, dtype: type, count: int) -> np.ndarray:
        array: np.ndarray = np.frombuffer(self.data, dtype, count, self.at)
        self.at += array.nbytes
        return array

    def entry(self) -> tuple[bytes, int]:
        """A dictionary entry: the word and its count (its type byte skipped)."""
        end = self.data.index(b"\0", self.at)
        word = self.data[self.at : end]
        self.at = end + 1
        count, _ = self.integers("qb")
        return word, count

    def matrix(self, quantized: bool) -> tuple[np.ndarray, np.ndarray | None]:
        """A matrix's rows, and with quantized norms the norm fastText scales each row by."""
        if not quantized:
            rows, columns = self.integers("qq")
            return self.array(np.float32, rows * columns).reshape(rows, columns), None
        (with_norms,) = self.values("?")
        rows, _ = self.integers("qq")
        (size,) = self.integers("i")
        codes = self.array(np.uint8, size).reshape(rows, -1)
        matrix = self.quantizer().decode(codes)
        if not with_norms:
            return matrix, None
        norm_codes = self.array(np.uint8, rows).reshape(rows, 1)
        return matrix, self.quantizer().decode(norm_codes)[:, 0]

    def quantizer(self) -> _ProductQuantizer:
        dim, parts, width, last_width = self.integers("iiii")
        return _ProductQuantizer(dim, parts, width, last_width, self.array(np.float32, dim * 256))


@dataclass(frozen=True)
class _WordTable:
    """The words seen so far: `index` numbers them, `vectors` holds each one's summed rows and `rows` how
    many rows that is (0 for a label, which fastText leaves out)."""

    index: StringIndex
    vectors: np.ndarray
    rows: np.ndarray


class BatchFastText:
    """A supervised fastText model with a hierarchical softmax (as lid.176 is), read from its file."""

    def __init__(self, reader: _Reader) -> None:
        dim, _, _, _, _, _, _, _, self.buckets, self.min_n, self.max_n, _ = reader.integers("12i")
        reader.values("d")
        size, self.words, _ = reader.integers("iii")
        _, self.pruned = reader.integers("qq")
        entries = [reader.entry() for _ in range(size)]
        self.word_strings = pa.array([word for word, _ in entries[: self.words]], pa.large_binary())
        self.labels = [word.decode() for word, _ in entries[self.words :]]
        prune = reader.array(np.int32, 2 * max(self.pruned, 0)).reshape(-1, 2)
        #: For a pruned model, the row (after the words) of each n-gram bucket it kept, -1 for the others.
        self.kept_rows = np.full(self.buckets if self.pruned > 0 else 0, -1, np.int32)
        self.kept_rows[prune[:, 0]] = prune[:, 1]
        (quantized,) = reader.values("?")
        rows, norms = reader.matrix(bool(quantized))
        # fastText adds a quantized row as norm * centroid, each product rounded to float32.
        self.input = rows if norms is None else norms[:, None] * rows
        (quantized_output,) = reader.values("?")
        self.output, self.output_norms = reader.matrix(bool(quantized and quantized_output))
        self.dim = dim
        self._tree([count for _, count in entries[self.words :]])
        self._vectors = GrowingArray(np.float32, (dim,))
        self._rows = GrowingArray()
        self._table = _WordTable(StringIndex.empty(), self._vectors.values, self._rows.values)
        # One batch adds words at a time; a table is published whole, with its vectors.
        self._adding = threading.Lock()

    @classmethod
    def load(cls, path: str) -> BatchFastText | None:
        """The model in the file at `path`, or None when it is not one this class reads (another loss, word
        n-grams, not supervised, another format version)."""
        reader = _Reader(Path(path).read_bytes())
        if len(reader.data) < 64:
            return None
        magic, version = reader.integers("ii")
        _, _, _, _, _, word_ngrams, loss, model = reader.integers("8i")
        reader.at -= 32
        if (magic, version, model, loss) != (_MAGIC, _VERSION, _SUPERVISED, _HIERARCHICAL_SOFTMAX):
            return None
        return cls(reader) if word_ngrams <= 1 else None

    def predict(self, texts: pa.Array) -> tuple[list[str], list[float]]:
        """The most probable label and its probability for each text (a string array without nulls), as
        fasttext-predict gives them for the text as one line."""
        texts = texts.cast(pa.large_string())
        if len(texts) == 0:
            return [], []
        if flags(pc.match_substring(texts, "\0")).any():
            texts = pc.replace_substring(texts, "\0", " ")  # fastText splits words there too
        tokens = pc.ascii_split_whitespace(texts)
        rows = Segments(np.asarray(tokens.offsets, np.int64))
        encoded = pc.dictionary_encode(tokens.flatten())
        table, distinct, end = self._numbers(encoded.dictionary)
        numbers = distinct[np.asarray(encoded.indices, np.int64)]
        # A text ends at fastText's end-of-line word: its own (added below) or one written in the text.
        ends = rows.offsets[1:].copy()
        if (distinct == end).any():
            held, first = rows.firsts(numbers == end)
            ends[held] = first
        read = np.arange(len(numbers)) < ends[rows.owners]
        words = Segments.of_sizes(rows.totals(read))
        sums = _segment_sums(table.vectors[numbers[read]], words) + table.vectors[end]
        counts = words.totals(table.rows[numbers[read]]) + table.rows[end]
        hidden = sums * (1.0 / counts).astype(np.float32)[:, None]
        best, scores = self._search(hidden)
        probabilities = np.exp(scores.astype(np.float64)).astype(np.float32)
        return [self.labels[label] for label in best.tolist()], probabilities.astype(np.float64).tolist()

    def _numbers(self, words: pa.Array) -> tuple[_WordTable, np.ndarray, int]:
        """The word table holding `words` (distinct), their numbers in it and the end-of-line word's."""
        table = self._table
        numbers = table.index.look_up(words)
        if len(table.rows) == 0 or (numbers < 0).any():
            with self._adding:
                table = self._adding_to(self._table, words)
                self._table = table
            numbers = table.index.look_up(words)
        return table, numbers, int(table.index.look_up(pa.array([_END], pa.large_string()))[0])

    def _adding_to(self, table: _WordTable, words: pa.Array) -> _WordTable:
        """`table` with the `words` and the end-of-line word it lacks (a new table past `WORD_LIMIT`)."""
        if len(table.rows) >= WORD_LIMIT:
            self._vectors, self._rows = GrowingArray(np.float32, (self.dim,)), GrowingArray()
            table = _WordTable(StringIndex.empty(), self._vectors.values, self._rows.values)
        wanted = pa.concat_arrays([words.cast(pa.large_string()), pa.array([_END], pa.large_string())])
        missing = pc.unique(wanted.filter(pa.array(table.index.look_up(wanted) < 0)))
        if len(missing) == 0:
            return table
        vectors, rows = self._word_vectors(missing)
        self._vectors.extend(vectors)
        self._rows.extend(rows)
        return _WordTable(
            table.index.adding(missing, len(table.rows)), self._vectors.values, self._rows.values
        )

    def _word_vectors(self, words: pa.Array) -> tuple[np.ndarray, np.ndarray]:
        """The rows fastText adds for one occurrence of each word, summed in its order, and their number:
        the word's own row when the model knows the word, then its character n-grams' rows (none for the
        end-of-line word), nothing at all for a label."""
        binary = words.cast(pa.large_binary())
        own = np.asarray(pc.fill_null(pc.index_in(binary, value_set=self.word_strings), -1), np.int64)
        label = flags(pc.starts_with(words, _LABEL)) & (own < 0)
        ending = flags(pc.equal(words, _END))
        grams, gram_words = self._subword_rows(binary, ~label & ~ending)
        known = np.flatnonzero((own >= 0) & ~label)
        # Each word's own row before its n-grams: a stable sort by word, own rows first.
        owners = np.concatenate([known, gram_words])
        entries = np.concatenate([own[known], grams])
        order = np.argsort(owners * 2 + np.repeat([0, 1], [len(known), len(grams)]), kind="stable")
        segments = Segments.of_sizes(np.bincount(owners, minlength=len(words)))
        return _segment_sums(self.input[entries[order]], segments), segments.sizes

    def _subword_rows(self, words: pa.Array, chosen: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The rows of the character n-grams of the `chosen` words, in fastText's order (by first character,
        then length, over "<word>"), and the word each belongs to."""
        if self.pruned == 0 or self.max_n < self.min_n or not chosen.any():
            return np.zeros(0, np.int64), np.zeros(0, np.int64)
        numbers = np.flatnonzero(chosen)
        edge = [pa.scalar(mark, pa.large_binary()) for mark in (b"<", b">", b"")]
        wrapped = pc.binary_join_element_wise(edge[0], words.take(pa.array(numbers)), edge[1], edge[2])
        offsets, data = string_bytes(wrapped)
        first = int(offsets[0])
        data = data[first : int(offsets[-1])]
        starts = np.flatnonzero((data & 0xC0) != 0x80)  # of characters; each word starts with "<"
        word_starts = np.zeros(len(data), np.int64)
        word_starts[offsets[:-1] - first] = 1
        owner = np.cumsum(word_starts)[starts] - 1
        first_char = np.flatnonzero(np.diff(owner, prepend=-1))
        after_word = np.append(first_char[1:], len(starts))  # the character index just past each word
        bounds = np.append(starts, len(data))
        begin = np.repeat(np.arange(len(starts)), self.max_n)
        span = np.tile(np.arange(1, self.max_n + 1), len(starts))  # characters
        stop = begin + span
        keep = (stop <= after_word[owner[begin]]) & (span >= self.min_n)
        if self.min_n <= 1:  # a single character is no n-gram at either end of "<word>"
            keep &= ~(
                (span == 1) & ((begin == first_char[owner[begin]]) | (stop == after_word[owner[begin]]))
            )
        begin, stop = begin[keep], stop[keep]
        rows = (_fnv1a(data, bounds[begin], bounds[stop]) % np.uint32(self.buckets)).astype(np.int64)
        if self.pruned > 0:  # a pruned model keeps some n-grams' rows, renumbered
            rows = self.kept_rows[rows].astype(np.int64)
            kept = rows >= 0
            return self.words + rows[kept], numbers[owner[begin]][kept]
        return self.words + rows, numbers[owner[begin]]

    def _tree(self, counts: list[int]) -> None:
        """fastText's Huffman tree over the labels (`buildTree`), and its nodes in the order its search
        visits them (each node, then its left subtree, then its right)."""
        labels = len(counts)
        weight = [*counts, *([10**15] * (labels - 1))]
        left, right = [-1] * (2 * labels - 1), [-1] * (2 * labels - 1)
        leaf, node = labels - 1, labels
        for parent in range(labels, 2 * labels - 1):
            pair = []
            for _ in range(2):
                if leaf >= 0 and weight[leaf] < weight[node]:
                    pair.append(leaf)
                    leaf -= 1
                else:
                    pair.append(node)
                    node += 1
            left[parent], right[parent] = pair
            weight[parent] = weight[pair[0]] + weight[pair[1]]
        self.left, self.right = left, right
        order, stack = [], [2 * labels - 2]
        while stack:
            visited = stack.pop()
            order.append(visited)
            if left[visited] >= 0:
                stack.extend((right[visited], left[visited]))
        self.search_order = order

    def _search(self, hidden: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """fastText's search of the tree for the best label of each hidden vector (`dfs` with k = 1 and no
        threshold), in float32 as fastText computes it: each node's score is its parent's plus the log of the
        branch's sigmoid (plus 1e-5); a branch scoring below the best label found so far is not entered."""
        labels = len(self.labels)
        inner = np.zeros((labels - 1, len(hidden)), np.float32)
        weights = self.output[: labels - 1]
        for column in range(self.dim):  # fastText's dot product, one column after another
            inner += weights[:, column, None] * hidden[None, :, column]
        if self.output_norms is not None:
            inner *= self.output_norms[: labels - 1, None]
        with np.errstate(over="ignore"):  # exp(88.8) and more is infinite in float32, as for fastText
            exponent = np.exp(-inner.astype(np.float64)).astype(np.float32)
        right = (1.0 / (np.float32(1) + exponent).astype(np.float64)).astype(np.float32)
        left = (1.0 - right.astype(np.float64)).astype(np.float32)
        left_log = np.log(left.astype(np.float64) + 1e-5).astype(np.float32)
        right_log = np.log(right.astype(np.float64) + 1e-5).astype(np.float32)
        scores = np.zeros((2 * labels - 1, len(hidden)), np.float32)
        entered = np.zeros((2 * labels - 1, len(hidden)), np.bool_)
        entered[2 * labels - 2] = True
        best = np.full(len(hidden), -1, np.int64)
        best_score = np.full(len(hidden), -np.inf, np.float32)
        for node in self.search_order:
            score = scores[node]
            entered[node] &= (score >= _SKIP_BELOW) & ~((best >= 0) & (score < best_score))
            if self.left[node] < 0:
                best = np.where(entered[node], node, best)
                best_score = np.where(entered[node], score, best_score)
                continue
            scores[self.left[node]] = score + left_log[node - labels]
            scores[self.right[node]] = score + right_log[node - labels]
            entered[self.left[node]] = entered[self.right[node]] = entered[node]
        return best, best_score


def _fnv1a(data: np.ndarray, starts: np.ndarray, stops: np.ndarray) -> np.ndarray:
    """fastText's 32-bit FNV-1a hash of each byte range (each byte taken as a signed char)."""
    hashes = np.full(len(starts), 2166136261, np.uint32)
    signed = data.view(np.int8).astype(np.uint32)  # -1 becomes 0xFFFFFFFF, as uint32_t(int8_t(c))
    going = np.arange(len(starts))
    step = 0
    while len(going):
        hashes[going] = (hashes[going] ^ signed[starts[going] + step]) * np.uint32(16777619)
        step += 1
        going = going[starts[going] + step < stops[going]]
    return hashes


def _segment_sums(values: np.ndarray, segments: Segments) -> np.ndarray:
    """Per segment, the sum of its rows of `values`, added one after another (0 for an empty segment)."""
    sums = np.zeros((len(segments.sizes), values.shape[1]), np.float32)
    filled = segments.sizes > 0
    if filled.any():
        sums[filled] = np.add.reduceat(values, segments.offsets[:-1][filled], axis=0)
    return sums
