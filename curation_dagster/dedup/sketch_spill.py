"""A shard's word and word-pair sketches kept on local disk instead of in memory.

The sketches are the largest thing the deduped stage holds per document (about 1.5 KB on web text, more
than its band keys and verification signature together), yet only the grey-zone candidate pairs are ever
measured on them and the index write reads them once, in order. So they are written to a temporary folder
(`tempfile`'s, which `TMPDIR` moves) batch by batch as the shard is signed. Pairs read them through a
read-only memory map, which brings in only the pages of the documents measured and lets them go after
each gather; the index write and `take` read them slice by slice with plain reads. Offsets and counts,
16 bytes a document for each of the two kinds, stay in memory.
"""

from __future__ import annotations

import dataclasses
import mmap
import shutil
import tempfile
import weakref
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from curation_dagster.dedup.word_sketch import WordSketches

#: The two sketch kinds, each its own file of uint32 values: documents' words, then their word pairs.
_KINDS = ("words", "pairs")
#: Documents read at a time when the sketches are copied (`take`) or streamed (`slice`).
_ROWS_PER_READ = 1 << 16
#: Documents gathered from the memory map between two releases of its pages.
_ROWS_PER_GATHER = 512


class _Values:
    """One kind's values on disk, with every document's offset into them and its distinct count."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.handle = path.open("wb")
        self.size = 0
        self.offsets: list[np.ndarray] = [np.zeros(1, np.int64)]
        self.counts: list[np.ndarray] = []

    def append(self, sketches: WordSketches) -> None:
        first, last = int(sketches.offsets[0]), int(sketches.offsets[-1])
        values = np.ascontiguousarray(sketches.values[first:last], dtype="<u4")
        self.handle.write(values.data)
        self.offsets.append(sketches.offsets[1:] - first + self.size)
        self.counts.append(np.asarray(sketches.words, dtype=np.int64))
        self.size += len(values)

    def seal(self) -> None:
        """Stop writing; offsets and counts become one array each."""
        if not self.handle.closed:
            self.handle.close()
        self.offsets = [np.concatenate(self.offsets)]
        self.counts = [np.concatenate(self.counts) if self.counts else np.zeros(0, np.int64)]

    def read(self, first: int, last: int) -> np.ndarray:
        """Values `first` to `last` by a plain read: nothing stays mapped afterwards."""
        with self.path.open("rb") as handle:
            handle.seek(4 * first)
            return np.fromfile(handle, dtype="<u4", count=last - first).astype(np.uint32, copy=False)

    def mapped(self) -> WordSketches:
        """Every document's sketch, its values memory-mapped read-only."""
        offsets, counts = self.offsets[0], self.counts[0]
        if self.size == 0:
            return WordSketches(np.zeros(0, np.uint32), offsets, counts)
        with self.path.open("rb") as handle:
            mapping = mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ)
        values = np.frombuffer(mapping, dtype="<u4", count=self.size).astype(np.uint32, copy=False)
        return MappedSketches(values, offsets, counts, mapping=mapping)


@dataclass(frozen=True)
class MappedSketches(WordSketches):
    """Sketches whose values are a read-only memory map of a spill file. A gather reads the pages of the
    documents it asks for, then lets every page of the map go (they stay in the page cache), so memory
    holds what one gather copied, not every page ever touched."""

    mapping: mmap.mmap | None = None

    def _gather(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        # A page fault maps its neighbours too (the kernel's fault-around, 64 KB), so a few hundred
        # documents are gathered between releases.
        if len(rows) <= _ROWS_PER_GATHER:
            return self._gather_and_release(rows)
        parts = [
            self._gather_and_release(rows[start : start + _ROWS_PER_GATHER])
            for start in range(0, len(rows), _ROWS_PER_GATHER)
        ]
        return np.concatenate([values for values, _ in parts]), np.concatenate([count for _, count in parts])

    def _gather_and_release(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        try:
            return super()._gather(rows)
        finally:
            if self.mapping is not None:
                self.mapping.madvise(mmap.MADV_DONTNEED)


class SketchSpill:
    """The sketches of a shard's documents, appended batch by batch, in a temporary folder that goes with
    this object (or with `close`)."""

    def __init__(self, folder: str | None = None) -> None:
        self.folder = Path(tempfile.mkdtemp(prefix="curation-sketches-", dir=folder))
        self._cleanup = weakref.finalize(self, shutil.rmtree, self.folder, True)
        self._values = {kind: _Values(self.folder / f"{kind}.u32") for kind in _KINDS}
        self._documents = 0
        self._sealed = False

    def __len__(self) -> int:
        return self._documents

    @property
    def nbytes(self) -> int:
        """Bytes of the sketches as the index stores them: values and 8 bytes a document per kind."""
        return sum(4 * values.size + 8 * self._documents for values in self._values.values())

    def append(self, sketches: WordSketches) -> None:
        """The next documents' sketches, which must carry their pair sketches."""
        if self._sealed:
            raise RuntimeError("these sketches were sealed; no more documents can be added")
        if sketches.pairs is None:
            raise ValueError("a spilled sketch carries its documents' pair sketches")
        self._values["words"].append(sketches)
        self._values["pairs"].append(sketches.pairs)
        self._documents += len(sketches)

    def sketches(self) -> WordSketches:
        """Every document's sketches, values memory-mapped (seals the spill)."""
        self._seal()
        words, pairs = (self._values[kind].mapped() for kind in _KINDS)
        return dataclasses.replace(words, pairs=pairs)

    def slice(self, start: int, stop: int) -> WordSketches:
        """Documents `start` to `stop`, read into memory (seals the spill)."""
        self._seal()
        parts = []
        for kind in _KINDS:
            values = self._values[kind]
            offsets = values.offsets[0][start : stop + 1]
            read = values.read(int(offsets[0]), int(offsets[-1]))
            parts.append(WordSketches(read, offsets - offsets[0], values.counts[0][start:stop]))
        return parts[0].with_pairs(parts[1])

    def take(self, keep: np.ndarray, folder: str | None = None) -> SketchSpill:
        """A new spill of the documents where `keep` is true, in order, copied a slice at a time."""
        kept = SketchSpill(folder)
        for start in range(0, self._documents, _ROWS_PER_READ):
            stop = min(start + _ROWS_PER_READ, self._documents)
            kept.append(self.slice(start, stop).take(np.flatnonzero(keep[start:stop])))
        return kept

    def close(self) -> None:
        """Remove the folder now."""
        for values in self._values.values():
            values.handle.close()
        self._cleanup()

    def _seal(self) -> None:
        if not self._sealed:
            for values in self._values.values():
                values.seal()
            self._sealed = True
