"""Arrow IPC files of the dedup indexes (key-store runs and tiers, claims, signatures), written in bounded
record batches and read in parts.

Uncompressed, so a local lake memory-maps them. On a remote lake a reader fetches the file's footer, then
only the record batches it needs, each one ranged request: a lookup of a few keys in a large tier reads a
few batches, not the tier. Two layouts say which batch holds what, in the schema's metadata:

- `key_slices` (key stores): batch `i` of `n` holds the keys in `[i * 2**64 // n, (i + 1) * 2**64 // n)`,
  equal slices of the 64-bit key space; keys are hashes, so each holds about as many keys as the next.
- `rows_per_batch` (row files): batch `i` holds rows `[i * r, (i + 1) * r)`.

A file with neither (written by an earlier release) is read whole.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Sequence
from types import TracebackType

import numpy as np
import pyarrow as pa

from curation_dagster.io.lake import Lake

#: About this many bytes per record batch of a row file (claims, signatures): what a row read fetches.
BATCH_BYTES = 1 << 20
KEY_SLICES = b"key_slices"
ROWS_PER_BATCH = b"rows_per_batch"


def slice_starts(slices: int) -> np.ndarray:
    """The first key of each of `slices` equal slices of the 64-bit key space."""
    return np.array([(index << 64) // slices for index in range(slices)], dtype=np.uint64)


def slice_bounds(keys: np.ndarray, starts: np.ndarray) -> list[slice]:
    """Positions in sorted `keys` of the ranges that `starts` (ascending) begin: one range before the
    first start, then one per start, empty ones included."""
    cuts = [0, *np.searchsorted(keys, starts, side="left").tolist(), len(keys)]
    return [slice(start, stop) for start, stop in itertools.pairwise(cuts)]


def write_arrow(lake: Lake, path: str, table: pa.Table) -> None:
    """A row file, atomically: `table` in record batches of about `BATCH_BYTES`, so a row read on a remote
    lake fetches one batch."""
    table = table.combine_chunks()
    rows = rows_per_batch(table.nbytes, table.num_rows)
    schema = with_rows_per_batch(table.schema, rows)
    write_batches(lake, path, schema, table.replace_schema_metadata(schema.metadata).to_batches(rows))


def rows_per_batch(nbytes: int, rows: int) -> int:
    """Rows per record batch of a row file of `rows` rows and `nbytes` bytes: about `BATCH_BYTES` each."""
    return max(1, BATCH_BYTES * rows // max(nbytes, 1))


def with_rows_per_batch(schema: pa.Schema, rows: int) -> pa.Schema:
    """`schema` saying that each record batch but the last holds `rows` rows (the row-file layout)."""
    return schema.with_metadata({**(schema.metadata or {}), ROWS_PER_BATCH: str(rows).encode()})


def write_batches(lake: Lake, path: str, schema: pa.Schema, batches: Iterable[pa.RecordBatch]) -> None:
    """Record batches as one uncompressed Arrow IPC file, atomically; written as they come, so memory holds
    one batch, not the file (nor a second copy of it)."""
    with lake.atomic_file(path) as handle, pa.ipc.new_file(handle, schema) as writer:
        for batch in batches:
            writer.write_batch(batch)


def read_arrow(lake: Lake, path: str) -> pa.Table:
    """A whole Arrow IPC file of the lake as one table (memory-mapped on a local lake)."""
    with ArrowFile(lake, path) as file:
        return file.table().combine_chunks()


class ArrowFile:
    """An Arrow IPC file of the lake, open for reading parts: its footer is read on opening, each record
    batch when asked for."""

    def __init__(self, lake: Lake, path: str) -> None:
        self._source = lake.open_random_access(path)
        try:
            self._reader = pa.ipc.open_file(self._source)
        except BaseException:
            self._source.close()
            raise
        self.schema: pa.Schema = self._reader.schema
        self.metadata: dict[bytes, bytes] = dict(self.schema.metadata or {})

    def __enter__(self) -> ArrowFile:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self._source.close()

    @property
    def batch_count(self) -> int:
        return int(self._reader.num_record_batches)

    def batch(self, index: int) -> pa.RecordBatch:
        return self._reader.get_batch(index)

    def table(self, batches: Sequence[int] | None = None) -> pa.Table:
        """The given record batches (every one by default) as a table, one chunk each."""
        indices = range(self.batch_count) if batches is None else batches
        return pa.Table.from_batches([self.batch(index) for index in indices], schema=self.schema)

    def batches_holding(self, keys: np.ndarray) -> list[tuple[int, int, int]]:
        """The batches that may hold any of the sorted `keys`, each as (batch, start, stop): `keys[start:stop]`
        are the keys of its key slice (every key, for each batch of a file that is not sliced by key)."""
        slices = int(self.metadata.get(KEY_SLICES, b"0"))
        if slices != self.batch_count or len(keys) == 0:
            return [(index, 0, len(keys)) for index in range(self.batch_count)] if len(keys) else []
        # The slice starts are searched among the keys (a few searches), not every key among the starts.
        bounds = np.concatenate(
            ([0], np.searchsorted(keys, slice_starts(slices)[1:], side="left"), [len(keys)])
        )
        held = np.flatnonzero(np.diff(bounds))
        return list(zip(held.tolist(), bounds[held].tolist(), bounds[held + 1].tolist(), strict=True))

    def take(self, rows: Sequence[int] | np.ndarray) -> pa.Table:
        """The rows at these positions, in this order, reading only the batches that hold them."""
        wanted = np.asarray(rows, dtype=np.int64)
        per_batch = int(self.metadata.get(ROWS_PER_BATCH, b"0"))
        if per_batch <= 0:
            return self.table().take(pa.array(wanted))
        numbers = np.unique(wanted // per_batch)
        batches = [self.batch(number) for number in numbers.tolist()]
        offsets = np.cumsum([0] + [batch.num_rows for batch in batches])[:-1]
        slot = np.searchsorted(numbers, wanted // per_batch)
        read = pa.Table.from_batches(batches, schema=self.schema)
        return read.take(pa.array(offsets[slot] + wanted % per_batch))
