"""A batch of texts and what the text quality rules read from it, each computed once for every row at
once and shared by the rules of a chain: the lines (`str.splitlines`, stripped), the whitespace chunks of
each line (`str.split`) and the words datatrove's tokenizer cuts them into.

Arrow splits and numbers the chunks of the whole batch; only chunks the process has not seen before are
split into words in Python (`Vocabulary`), and per row sums come from numpy over the chunk numbers.
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass
from functools import cached_property
from typing import Final

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from curation_dagster.filters.words import (
    TERMINAL_PUNCTUATION,
    has_letter,
    is_plain_word,
    is_punctuation,
    split_chunk,
)

#: Every character `str.isspace` accepts (none lies above U+3000), for Arrow's trims.
PYTHON_WHITESPACE: Final = "".join(char for char in map(chr, range(0x3001)) if char.isspace())
#: `str.splitlines` breaks as an RE2 pattern; "\r\n" is one break.
_LINE_BREAKS: Final = r"\r\n|[\n\r\x0b\x0c\x1c\x1d\x1e\x{85}\x{2028}\x{2029}]"
#: The UTF-8 bytes of the line breaks other than "\n": without any, splitting on "\n" is enough.
_OTHER_LINE_BREAKS: Final = tuple(char.encode() for char in "\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029")
#: Whether a byte is the last of one of those breaks.
_ENDS_OTHER_BREAK: Final = np.isin(np.arange(256), [encoded[-1] for encoded in _OTHER_LINE_BREAKS])
_WHITESPACE_RUNS: Final = re.compile(r"(\s+)")

#: How a word moves the sentence splitter (see `c4._sentence_starts`): punctuation other than a
#: sentence terminal leaves it as it is.
NEUTRAL, TERMINAL, WORD = 0, 1, 2


@dataclass(frozen=True)
class Segments:
    """Consecutive runs of a flat array, one per row: row `i` owns items `offsets[i]:offsets[i + 1]`."""

    offsets: np.ndarray

    @classmethod
    def of_sizes(cls, sizes: np.ndarray) -> Segments:
        offsets = np.zeros(len(sizes) + 1, np.int64)
        np.cumsum(sizes, out=offsets[1:])
        return cls(offsets)

    @cached_property
    def sizes(self) -> np.ndarray:
        return np.diff(self.offsets)

    @cached_property
    def owners(self) -> np.ndarray:
        """The row of each item."""
        return np.repeat(np.arange(len(self.offsets) - 1), self.sizes)

    def totals(self, values: np.ndarray) -> np.ndarray:
        """Per row, the sum of its items' values (integers stay exact)."""
        sums = np.zeros(len(values) + 1, np.float64 if values.dtype.kind == "f" else np.int64)
        np.cumsum(values, out=sums[1:])
        return sums[self.offsets[1:]] - sums[self.offsets[:-1]]

    def maxima(self, values: np.ndarray, empty: int = 0) -> np.ndarray:
        """Per row, the largest of its items' values; `empty` for a row without items."""
        result = np.full(len(self.offsets) - 1, empty, np.int64)
        filled = self.sizes > 0
        if filled.any():
            result[filled] = np.maximum.reduceat(values, self.offsets[:-1][filled])
        return result

    def firsts(self, flags: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The rows holding a flagged item, and the position of each one's first flagged item."""
        positions = np.flatnonzero(flags)
        rows, first = np.unique(self.owners[positions], return_index=True)
        return rows, positions[first]

    def take(self, rows: np.ndarray) -> tuple[Segments, np.ndarray]:
        """The segments of `rows`, in that order, and the positions of their items in the flat array."""
        sizes = self.sizes[rows]
        taken = Segments.of_sizes(sizes)
        items = np.repeat(self.offsets[:-1][rows] - taken.offsets[:-1], sizes) + np.arange(taken.offsets[-1])
        return taken, items

    def within(self, inner: Segments) -> Segments:
        """Rows over the items of `inner` (rows own lines, lines own chunks: rows own chunks)."""
        return Segments(inner.offsets[self.offsets])


def flags(array: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """A boolean Arrow array as numpy (null as False)."""
    return pc.fill_null(array, False).to_numpy(zero_copy_only=False).astype(np.bool_)


def first_occurrences(keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each key's number (numbered in order of first occurrence) and whether it is that first occurrence."""
    if len(keys) == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.bool_)
    numbers = np.asarray(pc.dictionary_encode(pa.array(keys)).indices, np.int64)
    first = np.empty(len(numbers), np.bool_)
    first[0] = True
    first[1:] = numbers[1:] > np.maximum.accumulate(numbers)[:-1]
    return numbers, first


def maybe_repeated(keys: np.ndarray) -> np.ndarray:
    """False for keys that certainly occur once: they alone fill their bucket of a multiplicative hash."""
    bits = max(len(keys).bit_length() + 2, 8)
    buckets = ((keys.astype(np.uint64) * np.uint64(0x9E3779B97F4A7C15)) >> np.uint64(64 - bits)).astype(
        np.intp
    )
    return np.bincount(buckets, minlength=1 << bits)[buckets] >= 2


def duplicates(segments: Segments, values: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """Per row: how many of its strings repeat an earlier one of the row, and their characters. Only
    strings sharing their row and length with another are compared."""
    repeated = np.zeros(len(values), np.bool_)
    sizes = np.asarray(pc.binary_length(values), np.int64)
    if len(values):
        alike = np.flatnonzero(maybe_repeated(segments.owners * (int(sizes.max()) + 1) + sizes))
        encoded = pc.dictionary_encode(values.take(pa.array(alike, pa.int64())))
        codes = np.asarray(encoded.indices, np.int64)
        _, first = first_occurrences(segments.owners[alike] * max(len(encoded.dictionary), 1) + codes)
        repeated[alike] = ~first
    characters = np.asarray(pc.utf8_length(values.filter(pa.array(repeated))), np.int64)
    chars = np.zeros(len(values), np.int64)
    chars[repeated] = characters
    return segments.totals(repeated), segments.totals(chars)


def _holding_other_breaks(texts: pa.Array) -> np.ndarray:
    """Per text of a large string array, whether it holds a line break other than "\n" (found in its bytes;
    in UTF-8 no character's bytes end inside another's)."""
    offsets, data = string_bytes(texts)
    first = int(offsets[0])
    data = data[first : int(offsets[-1])]
    candidates = np.flatnonzero(_ENDS_OTHER_BREAK.take(data))
    holding = np.zeros(len(texts), np.bool_)
    for encoded in _OTHER_LINE_BREAKS:
        ends = candidates[data[candidates] == encoded[-1]]
        for back, byte in enumerate(reversed(encoded[:-1]), start=1):
            ends = ends[ends >= back]
            ends = ends[data[ends - back] == byte]
        holding[np.searchsorted(offsets, ends + first, "right") - 1] = True
    return holding


class GrowingArray:
    """An array that grows in bulk along its first axis (rows of `shape`)."""

    def __init__(self, dtype: type = np.int64, shape: tuple[int, ...] = ()) -> None:
        self._data: np.ndarray = np.zeros((1024, *shape), dtype)
        self.size = 0

    def extend(self, values: list[int] | tuple[int, ...] | np.ndarray) -> None:
        end = self.size + len(values)
        if end > len(self._data):
            grown = np.zeros((max(end, 2 * len(self._data)), *self._data.shape[1:]), self._data.dtype)
            grown[: self.size] = self._data[: self.size]
            self._data = grown
        self._data[self.size : end] = values
        self.size = end

    @property
    def values(self) -> np.ndarray:
        return self._data[: self.size]


#: The powers of the polynomial string hash's base, an odd number (so each power is odd modulo 2^64): byte
#: i of a string is multiplied by power i; bytes past the last power share it.
_HASH_POWERS: Final = np.cumprod(np.full(4096, 0x100000001B3, np.uint64))


def string_bytes(strings: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """A large string array's offsets (one more than it has strings) and the bytes they point into, as
    numpy views of its buffers."""
    _, offset_buffer, data_buffer = strings.buffers()
    if offset_buffer is None or len(strings) == 0:
        return np.zeros(1, np.int64), np.zeros(0, np.uint8)
    offsets = np.frombuffer(offset_buffer, np.int64)[strings.offset : strings.offset + len(strings) + 1]
    return offsets, np.frombuffer(data_buffer, np.uint8) if data_buffer is not None else np.zeros(0, np.uint8)


def string_hashes(strings: pa.Array) -> np.ndarray:
    """A 64-bit hash of each string's UTF-8 bytes (as signed integers, which numpy searches faster), computed
    in numpy: equal strings hash equal, different strings almost never do (compare them to be sure)."""
    offsets, data = string_bytes(strings.cast(pa.large_string()))
    first, last = int(offsets[0]), int(offsets[-1])
    starts, lengths = offsets[:-1] - first, np.diff(offsets)
    position = np.arange(last - first) - np.repeat(starts, lengths)
    terms = data[first:last] * _HASH_POWERS[np.minimum(position, len(_HASH_POWERS) - 1)]
    sums = np.zeros(len(terms) + 1, np.uint64)
    np.cumsum(terms, out=sums[1:])
    hashes = (sums[starts + lengths] - sums[starts]) ^ (lengths.astype(np.uint64) << np.uint64(40))
    # SplitMix64's finisher spreads every input bit over the whole hash.
    hashes ^= hashes >> np.uint64(30)
    hashes *= np.uint64(0xBF58476D1CE4E5B9)
    hashes ^= hashes >> np.uint64(27)
    hashes *= np.uint64(0x94D049BB133111EB)
    hashes ^= hashes >> np.uint64(31)
    return hashes.view(np.int64)


@dataclass(frozen=True)
class StringIndex:
    """Numbered strings, looked up by hash (`string_hashes`) and confirmed by comparing the strings in Arrow:
    `hashes` sorted, the number of each, and every string by number."""

    hashes: np.ndarray
    numbers: np.ndarray
    strings: pa.Array

    @classmethod
    def empty(cls) -> StringIndex:
        return cls(np.zeros(0, np.int64), np.zeros(0, np.int64), pa.array([], pa.large_string()))

    def look_up(self, strings: pa.Array) -> np.ndarray:
        """The number of each string, -1 for a string not found."""
        if len(self.hashes) == 0 or len(strings) == 0:
            return np.full(len(strings), -1, np.int64)
        strings = strings.cast(pa.large_string())
        hashes = string_hashes(strings)
        at = np.minimum(np.searchsorted(self.hashes, hashes), len(self.hashes) - 1)
        numbers = np.where(self.hashes[at] == hashes, self.numbers[at], -1)
        matched = np.flatnonzero(numbers >= 0)
        same = pc.equal(
            strings.take(pa.array(matched, pa.int64())), self.strings.take(pa.array(numbers[matched]))
        )
        numbers[matched[~flags(same)]] = -1
        return numbers

    def adding(self, strings: pa.Array, first: int) -> StringIndex:
        """This index with `strings` (distinct, none in it yet), numbered from `first` on."""
        hashes = string_hashes(strings)
        order = np.argsort(hashes, kind="stable")
        at = np.searchsorted(self.hashes, hashes[order])
        return StringIndex(
            np.insert(self.hashes, at, hashes[order]),
            np.insert(self.numbers, at, first + order),
            pa.concat_arrays([self.strings, strings.cast(pa.large_string())]),
        )


#: Per chunk: its `str.split` pieces (more than one when it holds whitespace Arrow's ASCII split keeps,
#: such as U+00A0), the longest piece, characters, words (and where they start in `chunk_words`), words
#: that are not only symbols and their characters, words holding a letter, and for sentence splitting:
#: the sentence starts inside it, and the kind of its first and last word that moves the splitter.
CHUNK_FACTS: Final = (
    "pieces",
    "longest_piece",
    "chars",
    "words",
    "first_word",
    "plain_words",
    "plain_chars",
    "alphabetic",
    "sentence_starts",
    "first_kind",
    "last_kind",
)


class Vocabulary:
    """Every distinct chunk and word the process has seen, numbered, with the facts of each; a chunk is
    split into words once. `current_vocabulary` starts a new one past `CHUNK_LIMIT` chunks.

    A batch's chunks are looked up by a hash of their bytes computed in numpy (`string_hashes`), and each
    match is confirmed by comparing the strings in Arrow, so no Python string is made for a chunk seen
    before; `chunk_ids` answers for the rest."""

    def __init__(self) -> None:
        self.chunk_ids: dict[str, int] = {}
        self.word_ids: dict[str, int] = {}
        self.facts = {name: GrowingArray() for name in CHUNK_FACTS}
        self.chunk_words = GrowingArray()
        self.word_lengths = GrowingArray()
        self._word_facts: list[tuple[int, int, int, int]] = []
        self._index = StringIndex.empty()
        # One batch adds at a time; a chunk is numbered (in `chunk_ids` and the index) only once its facts
        # are stored, so a batch in another thread that finds its number also finds its facts.
        self._adding = threading.Lock()

    def number(self, chunks: pa.Array) -> np.ndarray:
        """The number of each of these distinct chunks, adding the ones not seen before."""
        numbers = self._index.look_up(chunks)
        missing = np.flatnonzero(numbers < 0)
        if len(missing):
            texts = chunks.take(pa.array(missing, pa.int64())).to_pylist()
            with self._adding:
                self._add([text for text in texts if text not in self.chunk_ids])
            numbers[missing] = list(map(self.chunk_ids.__getitem__, texts))
        return numbers

    def fact(self, name: str) -> np.ndarray:
        return self.facts[name].values

    def word_positions(self, words: tuple[str, ...]) -> np.ndarray:
        """For every word number, the word's position in `words`, or -1."""
        positions = np.full(len(self.word_ids), -1, np.int64)
        for position, word in enumerate(words):
            number = self.word_ids.get(word)
            if number is not None and positions[number] < 0:
                positions[number] = position
        return positions

    def _add(self, chunks: list[str]) -> None:
        if not chunks:
            return
        rows = []
        words: list[int] = []
        lengths: list[int] = []
        start = self.chunk_words.size
        known = self.word_ids.get
        for chunk in chunks:
            pieces = chunk.split()
            kinds: list[int] | None = None
            if len(pieces) == 1 and len(pieces[0]) == len(chunk):
                numbers = []
                for word in split_chunk(chunk):
                    number = known(word)
                    numbers.append(self._new_word(word, lengths) if number is None else number)
            else:
                numbers, kinds = self._spaced_chunk(chunk, lengths)
            rows.append(self._chunk_facts(numbers, kinds, pieces, len(chunk), start + len(words)))
            words.extend(numbers)
        for name, column in zip(CHUNK_FACTS, zip(*rows, strict=True), strict=True):
            self.facts[name].extend(column)
        self.chunk_words.extend(words)
        self.word_lengths.extend(lengths)
        first = len(self.chunk_ids)
        self.chunk_ids.update(zip(chunks, range(first, first + len(chunks)), strict=True))
        self._index = self._index.adding(pa.array(chunks, pa.large_string()), first)

    def _spaced_chunk(self, chunk: str, lengths: list[int]) -> tuple[list[int], list[int]]:
        """The word numbers of a chunk holding whitespace that `str.split` splits on, and the sentence
        kinds of its words and of its whitespace runs, which count as words (a gap other than one space)."""
        numbers: list[int] = []
        kinds: list[int] = []
        for token in _WHITESPACE_RUNS.split(chunk):
            if token.isspace():
                kinds.append(WORD)
            elif token:
                for word in split_chunk(token):
                    number = self.word_ids.get(word)
                    number = self._new_word(word, lengths) if number is None else number
                    numbers.append(number)
                    kinds.append(self._word_facts[number][3])
        return numbers, kinds

    def _chunk_facts(
        self, numbers: list[int], kinds: list[int] | None, pieces: list[str], chars: int, first_word: int
    ) -> tuple[int, ...]:
        """The `CHUNK_FACTS` of a chunk of these words (`kinds`: the sentence kinds of its tokens, when
        they are not those of its words)."""
        plain_words = plain_chars = alphabetic = starts = 0
        after_terminal, first, last = False, NEUTRAL, NEUTRAL
        facts = self._word_facts
        for number in numbers:
            length, plain, letter, kind = facts[number]
            if plain:
                plain_words += 1
                plain_chars += length
            alphabetic += letter
            if kinds is None and kind != NEUTRAL:
                first = first or kind
                starts += after_terminal and kind == WORD
                after_terminal, last = kind == TERMINAL, kind
        for kind in kinds or ():
            if kind != NEUTRAL:
                first = first or kind
                starts += after_terminal and kind == WORD
                after_terminal, last = kind == TERMINAL, kind
        longest = len(pieces[0]) if len(pieces) == 1 else max(map(len, pieces), default=0)
        return (
            len(pieces),
            longest,
            chars,
            len(numbers),
            first_word,
            plain_words,
            plain_chars,
            alphabetic,
            starts,
            first,
            last,
        )

    def _new_word(self, word: str, lengths: list[int]) -> int:
        number = self.word_ids[word] = len(self.word_ids)
        kind = TERMINAL if word in TERMINAL_PUNCTUATION else NEUTRAL if is_punctuation(word) else WORD
        self._word_facts.append((len(word), int(is_plain_word(word)), int(has_letter(word)), kind))
        lengths.append(len(word))
        return number


#: Chunks a vocabulary holds before the next batch starts a new one (about 100 MB).
CHUNK_LIMIT: Final = 500_000
_vocabulary = Vocabulary()


def current_vocabulary() -> Vocabulary:
    """The process's vocabulary, started again once it holds `CHUNK_LIMIT` chunks."""
    global _vocabulary
    if len(_vocabulary.chunk_ids) >= CHUNK_LIMIT:
        _vocabulary = Vocabulary()
    return _vocabulary


@dataclass(frozen=True)
class Lines:
    """Each row's lines as `str.splitlines` cuts them, stripped (`str.strip`)."""

    rows: Segments
    stripped: pa.Array


@dataclass(frozen=True)
class Chunks:
    """Each line's whitespace chunks (`str.split`, before any unusual whitespace inside a chunk is split
    off), as numbers in `vocabulary`."""

    lines: Segments
    ids: np.ndarray
    vocabulary: Vocabulary


@dataclass(frozen=True)
class Words:
    """Each row's words in order, as numbers in the vocabulary, with their lengths in characters."""

    rows: Segments
    ids: np.ndarray
    lengths: np.ndarray


class TextBatch:
    """The texts of a batch of rows and what the text rules read from them, each computed on first use
    for every row; `subset` keeps what was computed for the rows that remain. Null text reads as ""."""

    def __init__(self, texts: pa.Array | pa.ChunkedArray) -> None:
        if isinstance(texts, pa.ChunkedArray):
            texts = texts.combine_chunks()
        self.original: pa.Array = texts.cast(pa.large_string())
        self.present = self.original.is_valid().to_numpy(zero_copy_only=False)
        self.texts = pc.fill_null(self.original, "")
        self.size = len(self.original)
        self._totals: dict[str, np.ndarray] = {}

    @cached_property
    def strings(self) -> list[str]:
        return self.texts.to_pylist()

    @cached_property
    def lines(self) -> Lines:
        texts = self.texts
        other = _holding_other_breaks(texts)
        if other.any():
            # Each other break (and "\r\n") of the texts that hold one becomes a single "\n".
            other = pa.array(other)
            mended = pc.replace_substring_regex(texts.filter(other), _LINE_BREAKS, "\n")
            texts = pc.replace_with_mask(texts, other, mended)
        pieces = pc.split_pattern(texts, "\n")
        offsets = np.asarray(pieces.offsets, np.int64)
        values = pieces.flatten()
        # `str.splitlines` has no line after a final break, and none at all in empty text.
        last = offsets[1:] - 1
        last_empty = np.asarray(pc.binary_length(values), np.int64)[last] == 0
        keep = np.ones(len(values), np.bool_)
        keep[last[last_empty]] = False
        stripped = pc.utf8_trim(values.filter(pa.array(keep)), PYTHON_WHITESPACE)
        return Lines(Segments.of_sizes(np.diff(offsets) - last_empty), stripped)

    @cached_property
    def chunks(self) -> Chunks:
        split = pc.ascii_split_whitespace(self.lines.stripped)
        encoded = pc.dictionary_encode(split.flatten())
        vocabulary = current_vocabulary()
        numbers = vocabulary.number(encoded.dictionary)
        ids = numbers[np.asarray(encoded.indices, np.int64)]
        return Chunks(Segments(np.asarray(split.offsets, np.int64)), ids, vocabulary)

    @cached_property
    def row_chunks(self) -> Segments:
        return self.lines.rows.within(self.chunks.lines)

    def chunk_totals(self, fact: str) -> np.ndarray:
        """Per row, the sum of one of `CHUNK_FACTS` over its chunks."""
        if fact not in self._totals:
            chunks = self.chunks
            self._totals[fact] = self.row_chunks.totals(chunks.vocabulary.fact(fact)[chunks.ids])
        return self._totals[fact]

    @cached_property
    def words(self) -> Words:
        chunks = self.chunks
        counts = chunks.vocabulary.fact("words")[chunks.ids]
        chunk_words = Segments.of_sizes(counts)
        starts = chunks.vocabulary.fact("first_word")[chunks.ids]
        positions = np.repeat(starts - chunk_words.offsets[:-1], counts) + np.arange(chunk_words.offsets[-1])
        ids = chunks.vocabulary.chunk_words.values[positions]
        lengths = chunks.vocabulary.word_lengths.values[ids]
        return Words(self.row_chunks.within(chunk_words), ids, lengths)

    @cached_property
    def newline_pieces(self) -> tuple[Segments, pa.Array]:
        """Each row's `str.split("\\n")` pieces."""
        pieces = pc.split_pattern(self.texts, "\n")
        return Segments(np.asarray(pieces.offsets, np.int64)), pieces.flatten()

    def subset(self, rows: np.ndarray) -> TextBatch:
        """The batch of `rows` (positions, in order), with the lines and chunks computed so far."""
        part = TextBatch(self.original.take(pa.array(rows, pa.int64())))
        if "strings" in self.__dict__:
            part.__dict__["strings"] = [self.strings[row] for row in rows]
        if "lines" in self.__dict__:
            line_rows, line_items = self.lines.rows.take(rows)
            part.__dict__["lines"] = Lines(line_rows, self.lines.stripped.take(pa.array(line_items)))
            if "chunks" in self.__dict__:
                chunk_lines, chunk_items = self.chunks.lines.take(line_items)
                part.__dict__["chunks"] = Chunks(
                    chunk_lines, self.chunks.ids[chunk_items], self.chunks.vocabulary
                )
        return part
