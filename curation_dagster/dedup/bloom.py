"""Bloom filters beside the key store's runs and tiers: a lookup asks a file's filter first and searches
the file only for the probes that may be in it.

Most probes of a shard are in no earlier shard (a band key, a content hash or a hash segment meets an
equal key only for duplicates), yet a binary search of each probe in each run and tier touches about
`log2(keys)` pages of it: a shard of 160,000 band keys against a store of 168 million touched every page of
the store's 2.7 GB. A filter answers "not here" for all but about 0.2% of absent keys from one 64-bit word
each, and the words of a file take 20 bits per key, about a sixth of its entries' 16 bytes: a lookup reads
the filter's words for its probes, then only the key batches some surviving probe may be in. Each absent
key that passes costs a key batch (a ranged request of about 1 MiB on object storage): at 1,000 shards a
shard's band keys met 12 tiers, and 12 bits a key with 4 set (about 0.8% passing, what filters written
before `bloom_bits_set` use) let through about 460 keys a tier, touching 62 batches each.

Layout: a register-blocked Bloom filter (every bit of a key in one word, so one memory access or one
ranged read per probe). The words are split per key slice of the store file (`arrow_files.py`): slice `i`
of `n` owns words `[i * w, (i + 1) * w)`, so a merge that writes the key space range by range writes the
filter range by range too. A key's word within its slice and its `BITS_SET` bits come from a SplitMix64
mix of the key. The words are an Arrow IPC file whose record batches each hold whole slices, about
`WORDS_PER_BATCH` words, so on a remote lake a lookup of a few keys reads a few batches. The file's metadata
says how many bits a key sets (`bloom_bits_set`, 4 when absent), so filters of either width are read.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Final

import numpy as np
import pyarrow as pa

from curation_dagster.dedup.arrow_files import ArrowFile, slice_starts
from curation_dagster.io.lake import Lake
from curation_dagster.mixing import splitmix64

#: Filter bits per key: with `BITS_SET` bits in one word, about 0.2% of absent keys pass (one word per key
#: keeps a probe to one read; the words' uneven loads, not the bits, set the rate, so more bits buy less).
BITS_PER_KEY: Final = 20
BITS_SET: Final = 6
#: Bits a key sets in a filter whose metadata does not say (written before `bloom_bits_set`).
_LEGACY_BITS_SET: Final = 4
#: Words per record batch of a filter file (512 KiB): what a lookup of one key reads on a remote lake.
WORDS_PER_BATCH: Final = 65_536
#: XORed into a key before mixing, so the filter's bits do not follow the bits that place the key in its
#: slice (the store's keys are hashes already, some of them SplitMix64 outputs).
_SEED: Final = np.uint64(0x6A09E667F3BCC908)
#: The two bits a 12-bit value's 6-bit fields (low, high) set in a word.
_PAIR_VALUES = np.arange(1 << 12, dtype=np.uint64)
_PAIR_BITS: Final = (np.uint64(1) << (_PAIR_VALUES & np.uint64(63))) | (
    np.uint64(1) << (_PAIR_VALUES >> np.uint64(6))
)
_WORDS = b"bloom_words_per_slice"
_SLICES = b"bloom_slices"
_BITS_SET = b"bloom_bits_set"
_SCHEMA: Final = pa.schema([pa.field("word", pa.uint64(), nullable=False)])


def words_per_slice(keys: int, slices: int) -> int:
    """Words each slice of a file of `keys` keys in `slices` slices gets (keys are spread evenly)."""
    return max(1, -(-keys * BITS_PER_KEY // (64 * slices)))


def slices_per_batch(words: int) -> int:
    """Whole slices per record batch of a filter file: about `WORDS_PER_BATCH` words, at least one slice."""
    return max(1, WORDS_PER_BATCH // words)


@dataclass(frozen=True)
class BloomProbes:
    """Sorted keys with what every filter asks of them, computed once per lookup: the mix that picks a
    key's word in its slice, and the bits it must find set there (per number of bits a key sets, as
    filters of two widths may be asked in one lookup)."""

    keys: np.ndarray
    high: np.ndarray
    mixed: np.ndarray
    _masks: dict[int, np.ndarray] = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def of(cls, keys: np.ndarray) -> BloomProbes:
        keys = np.asarray(keys, dtype=np.uint64)
        mixed = splitmix64(keys ^ _SEED)
        return cls(keys, mixed >> np.uint64(32), mixed)

    def masks(self, bits_set: int) -> np.ndarray:
        """The bits each key sets in its word: `bits_set` 6-bit fields of the mix, from the lowest (the
        word is picked by the highest 32 bits). Two fields at a time are looked up in `_PAIR_BITS` (a 32 KiB
        table of the two bits of each 12-bit value): a third of the passes over the keys, not one per bit."""
        if bits_set not in self._masks:
            masks = np.zeros(len(self.keys), dtype=np.uint64)
            field_index = np.empty(len(self.keys), dtype=np.uint64)
            for bit in range(0, bits_set - 1, 2):
                np.right_shift(self.mixed, np.uint64(6 * bit), out=field_index)
                np.bitwise_and(field_index, np.uint64(0xFFF), out=field_index)
                masks |= _PAIR_BITS.take(field_index.view(np.int64))
            if bits_set % 2:
                masks |= np.uint64(1) << ((self.mixed >> np.uint64(6 * (bits_set - 1))) & np.uint64(63))
            self._masks[bits_set] = masks
        return self._masks[bits_set]

    def slices(self, slices: int) -> np.ndarray:
        """Each key's slice of a file of `slices` slices (the slice starts searched among the sorted keys:
        a few searches, not one per key)."""
        bounds = np.searchsorted(self.keys, slice_starts(slices)[1:], side="left")
        counts = np.diff(np.concatenate(([0], bounds, [len(self.keys)])))
        return np.repeat(np.arange(slices, dtype=np.int64), counts)

    def within(self, words: int) -> np.ndarray:
        """Each key's word within its slice, of `words` words."""
        return ((self.high * np.uint64(words)) >> np.uint64(32)).astype(np.int64)


def build(keys: np.ndarray, first: int, last: int, slices: int, words: int) -> np.ndarray:
    """The words of slices `[first, last)` of a filter of `slices` slices of `words` words, for the sorted
    keys of those slices (all of them, and no other)."""
    probes = BloomProbes.of(keys)
    filter_words = np.zeros((last - first) * words, dtype=np.uint64)
    positions = (probes.slices(slices) - first) * words + probes.within(words)
    np.bitwise_or.at(filter_words, positions, probes.masks(BITS_SET))
    return filter_words


class BloomWriter:
    """Writes a filter's words, range by range, as record batches of `slices_per_batch` whole slices."""

    def __init__(self, writer: pa.ipc.RecordBatchFileWriter, schema: pa.Schema, batch_words: int) -> None:
        self._writer, self._schema, self._batch_words = writer, schema, batch_words
        self._pending = np.zeros(0, dtype=np.uint64)

    def write(self, words: np.ndarray) -> None:
        self._pending = np.concatenate((self._pending, words))
        while len(self._pending) >= self._batch_words:
            self._emit(self._pending[: self._batch_words])
            self._pending = self._pending[self._batch_words :]

    def close(self) -> None:
        if len(self._pending):
            self._emit(self._pending)

    def _emit(self, words: np.ndarray) -> None:
        self._writer.write_batch(pa.record_batch([pa.array(words, pa.uint64())], schema=self._schema))


@contextmanager
def bloom_writer(lake: Lake, path: str, slices: int, words: int) -> Iterator[BloomWriter]:
    """A filter file written atomically: it appears at `path` only when the block succeeds."""
    metadata = {
        _WORDS: str(words).encode(),
        _SLICES: str(slices).encode(),
        _BITS_SET: str(BITS_SET).encode(),
    }
    schema = _SCHEMA.with_metadata(metadata)
    with lake.atomic_file(path) as handle, pa.ipc.new_file(handle, schema) as ipc:
        writer = BloomWriter(ipc, schema, slices_per_batch(words) * words)
        yield writer
        writer.close()


def may_hold(lake: Lake, path: str, probes: BloomProbes) -> np.ndarray:
    """Which of `probes` the filter at `path` does not rule out; only the record batches holding their
    words are read (memory-mapped on a local lake, a ranged request each on a remote one)."""
    passes = np.zeros(len(probes.keys), dtype=bool)
    if not len(probes.keys):
        return passes
    with ArrowFile(lake, path) as file:
        slices, words = int(file.metadata[_SLICES]), int(file.metadata[_WORDS])
        all_masks = probes.masks(int(file.metadata.get(_BITS_SET, _LEGACY_BITS_SET)))
        per_batch = slices_per_batch(words)
        slice_of = probes.slices(slices)
        batch_of = slice_of // per_batch  # ascending: the keys are sorted
        position = probes.within(words) + (slice_of % per_batch) * words
        starts = np.flatnonzero(np.concatenate(([True], batch_of[1:] != batch_of[:-1])))
        for start, stop in zip(starts.tolist(), [*starts[1:].tolist(), len(batch_of)], strict=True):
            found: Any = file.batch(int(batch_of[start])).column(0).to_numpy()
            masks = all_masks[start:stop]
            passes[start:stop] = (found[position[start:stop]] & masks) == masks
    return passes
