"""The files of a key store (`keystore.py`): runs and tiers, their layout, and how a tier is merged.

A run or tier is an uncompressed Arrow IPC file (`arrow_files.py`) of entries `(key, source, row)` and,
in a store with payloads, `payload`, sorted by key, then the arrival of the source's shard, then row. Its
record batches are equal slices of the key space (about `BATCH_KEYS` entries each). Its schema metadata
names the shards its sources number (`shards`), the slices, and its Bloom filter (`bloom`), a file beside
it; a run's filter is named after the run's content token, so a run says which content it holds.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa

from curation_dagster.dedup.arrow_files import (
    KEY_SLICES,
    ArrowFile,
    slice_bounds,
    slice_starts,
    write_batches,
)
from curation_dagster.dedup.bloom import bloom_writer, build, words_per_slice
from curation_dagster.dedup.range_sort import ties_sorted
from curation_dagster.io.lake import ORPHAN_AGE_S, Lake

#: Entries merged in memory at once (about 16 bytes each, plus the sort's): a merge writes the key space
#: in ranges of about this many entries, so its memory does not grow with the tier.
MERGE_RANGE_KEYS = 4_000_000
#: Keys whose filter words a run builds at once (about 40 bytes of temporaries each).
BLOOM_RANGE_KEYS = 1_000_000
#: Keys per record batch of a run or tier (16 bytes each, so 1 MiB): what a lookup of one key reads.
BATCH_KEYS = 65_536

_SCHEMA = pa.schema(
    [
        pa.field("key", pa.uint64(), nullable=False),
        pa.field("source", pa.uint32(), nullable=False),
        pa.field("row", pa.uint32(), nullable=False),
    ]
)
#: The schema metadata key naming a file's Bloom filter (`bloom.py`), a file beside it; files written
#: before filters existed have none and are searched without.
BLOOM = b"bloom"
#: The optional fourth column: a 64-bit value stored with each entry (a media index keeps the whole hash
#: there, so a lookup checks a candidate's distance without reading the shard's index file).
_PAYLOAD = pa.field("payload", pa.uint64(), nullable=False)


@dataclass
class MergeInput:
    """One run or tier being merged: its file, open while the merge reads it a key range at a time, which
    of its sources still answer, and the number each source gets in the new tier."""

    file: ArrowFile
    answers: np.ndarray
    remap: np.ndarray
    #: The last record batch read (as numpy columns), for the next key range it reaches into.
    _kept: tuple[int, dict[str, np.ndarray]] | None = field(default=None, repr=False)
    #: Every record batch of a file not sliced by key (written before slices), read once.
    _whole: list[dict[str, np.ndarray]] | None = field(default=None, repr=False)

    def chunks(self, low: int, high: int) -> list[dict[str, np.ndarray]]:
        """The record batches (numpy columns; empty ones left out) that may hold keys in `[low, high)`: those
        of the key slices that meet it, read now (a ranged request each on a remote lake), so a merge holds
        one range's entries of an input, never the whole file. A batch that reaches past `high` is kept for
        the next range, which then does not read it again. A file not sliced by key is read whole, once."""
        slices = int(self.file.metadata.get(KEY_SLICES, b"0"))
        if slices != self.file.batch_count:
            if self._whole is None:
                read = [_columns(self.file.batch(index)) for index in range(self.file.batch_count)]
                self._whole = [chunk for chunk in read if len(chunk["key"])]
            return self._whole
        starts = slice_starts(slices)
        first = int(np.searchsorted(starts, np.uint64(low), side="right")) - 1
        last = slices if high >> 64 else int(np.searchsorted(starts, np.uint64(high), side="left"))
        read = []
        for index in range(first, last):
            if self._kept is not None and self._kept[0] == index:
                chunk = self._kept[1]
            else:
                chunk = _columns(self.file.batch(index))
            read.append(chunk)
        self._kept = (last - 1, read[-1]) if read else None
        return [chunk for chunk in read if len(chunk["key"])]


def slice_keys() -> int:
    return min(BATCH_KEYS, MERGE_RANGE_KEYS)


def slice_count(keys: int) -> int:
    """Key slices (record batches) of a file of `keys` entries: about `BATCH_KEYS` entries each."""
    return max(1, -(-keys // slice_keys()))


def file_schema(shards: list[str], slices: int, payload: bool, bloom: str) -> pa.Schema:
    schema = _SCHEMA.append(_PAYLOAD) if payload else _SCHEMA
    metadata = {
        b"shards": json.dumps(shards).encode(),
        KEY_SLICES: str(slices).encode(),
        BLOOM: bloom.encode(),
    }
    return schema.with_metadata(metadata)


def shards_of(schema: pa.Schema) -> list[str]:
    return list(json.loads((schema.metadata or {}).get(b"shards", b"[]")))


def run_token(schema: pa.Schema, shard: str) -> str | None:
    """The content token of the run whose schema this is (its filter is `<shard>.<token>.bloom`); None for
    a run written before filters existed."""
    name = (schema.metadata or {}).get(BLOOM, b"").decode()
    prefix = f"{shard}."
    if not (name.startswith(prefix) and name.endswith(".bloom")):
        return None
    return name[len(prefix) : -len(".bloom")]


def stray_tiers(lake: Lake, folder: str, named: set[str], now: float | None = None) -> list[str]:
    """The files of a store's `tiers/` folder that belong to no tier of `named` (`<name>.arrow`,
    `<name>.bloom`) and were last written more than `ORPHAN_AGE_S` ago: what a merge left whose worker died
    between writing its tier and adding it to the manifest, or that lost to another worker and died before
    removing its files. A merge under way writes files seconds old; temporary files (hidden names) are the
    lake's to clear."""
    try:
        entries = lake.fs.ls(folder, detail=True)
    except FileNotFoundError:
        return []
    now = time.time() if now is None else now
    stray = []
    for entry in entries:
        name = str(entry["name"]).rsplit("/", 1)[-1]
        if name.startswith(".") or name.split(".", 1)[0] in named:
            continue
        written = _written_at(entry)
        if written is not None and now - written > ORPHAN_AGE_S:
            stray.append(str(entry["name"]))
    return sorted(stray)


def _written_at(entry: dict[str, Any]) -> float | None:
    """When a listed file was last written, in seconds since the epoch: `mtime` on a local lake,
    `LastModified` on S3; None when the listing does not say."""
    if entry.get("mtime") is not None:
        return float(entry["mtime"])
    modified = entry.get("LastModified")
    return float(modified.timestamp()) if modified is not None else None


def write_entries(
    lake: Lake,
    path: str,
    bloom: str,
    entries: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray | None],
    shards: list[str],
) -> None:
    """Sorted entries (keys, sources, rows, payloads or None) as the record batches of their key slices,
    after their filter, written as `bloom` beside them."""
    keys, sources, rows, payloads = entries
    slices = slice_count(len(keys))
    words = words_per_slice(len(keys), slices)
    per_range = max(1, BLOOM_RANGE_KEYS // slice_keys())
    starts = slice_starts(slices)
    with bloom_writer(lake, f"{path.rsplit('/', 1)[0]}/{bloom}", slices, words) as writer:
        # Range by range, so the filter's temporaries (five words a key) follow the range, not the run.
        for first in range(0, slices, per_range):
            last = min(first + per_range, slices)
            low = int(np.searchsorted(keys, starts[first], side="left")) if first else 0
            high = int(np.searchsorted(keys, starts[last], side="left")) if last < slices else len(keys)
            writer.write(build(keys[low:high], first, last, slices, words))
    schema = file_schema(shards, slices, payloads is not None, bloom)
    columns = {"key": keys, "source": sources, "row": rows}
    if payloads is not None:
        columns["payload"] = payloads
    batches = (
        pa.record_batch({name: values[part] for name, values in columns.items()}, schema=schema)
        for part in slice_bounds(keys, slice_starts(slices)[1:])
    )
    write_batches(lake, path, schema, batches)


def write_merged(
    lake: Lake,
    path: str,
    inputs: Sequence[MergeInput],
    shards: list[str],
    arrival: np.ndarray,
    payload: bool,
    total: int,
) -> int:
    """One tier at `path` from `inputs` (its sources numbered as `shards`, whose arrivals are `arrival`),
    and its filter beside it; returns the entries written. `total`, the entries the inputs hold (as their
    manifest counts them), sizes the tier's key slices and filter. The key space is merged range by range,
    each input read only where its key slices meet the range, so memory holds one range's entries (about
    `MERGE_RANGE_KEYS`), not the inputs' or the tier's; each range is written as the record batches of its
    key slices."""
    slices = slice_count(total)
    per_range = max(1, MERGE_RANGE_KEYS // slice_keys())
    starts = [*slice_starts(slices).tolist(), 1 << 64]
    folder, name = path.rsplit("/", 1)
    bloom_name = f"{name.removesuffix('.arrow')}.bloom"
    schema = file_schema(shards, slices, payload, bloom_name)
    words = words_per_slice(total, slices)
    written = 0
    firsts = range(0, slices, per_range)
    ranges = [(starts[first], starts[min(first + per_range, slices)]) for first in firsts]
    # The filter is committed before the tier (contexts close in reverse): a tier names only a filter that
    # exists.
    with (
        lake.atomic_file(path) as handle,
        pa.ipc.new_file(handle, schema) as writer,
        bloom_writer(lake, f"{folder}/{bloom_name}", slices, words) as bloom,
    ):
        for first, read in zip(firsts, _ranges_read(lake, inputs, ranges), strict=True):
            last = min(first + per_range, slices)
            merged = _merged_range(inputs, read, arrival, starts[first], starts[last], payload)
            keys = merged["key"]
            for part in slice_bounds(keys, np.array(starts[first + 1 : last], dtype=np.uint64)):
                batch = {column: values[part] for column, values in merged.items()}
                writer.write_batch(pa.record_batch(batch, schema=schema))
            bloom.write(build(keys, first, last, slices, words))
            written += len(keys)
    return written


def _ranges_read(
    lake: Lake, inputs: Sequence[MergeInput], ranges: list[tuple[int, int]]
) -> Iterator[list[list[dict[str, np.ndarray]]]]:
    """For each key range in turn, each input's record batches that meet it (`MergeInput.chunks`). On a
    remote lake, where each batch is a request or two of 10-50 ms, the inputs are read at once, one thread
    each, and the next range is read while the caller merges this one (so memory holds two ranges' inputs);
    a local lake's batches are memory-mapped and read in turn."""
    if lake.is_local:
        for low, high in ranges:
            yield [entry.chunks(low, high) for entry in inputs]
        return
    with ThreadPoolExecutor(max_workers=max(1, len(inputs)), thread_name_prefix="merge-read") as pool:

        def submit(low: int, high: int) -> list[Future[list[dict[str, np.ndarray]]]]:
            return [pool.submit(entry.chunks, low, high) for entry in inputs]

        pending = submit(*ranges[0]) if ranges else []
        for number in range(len(ranges)):
            read = [future.result() for future in pending]
            if number + 1 < len(ranges):  # each input's next read follows its last (`chunks` keeps a batch)
                pending = submit(*ranges[number + 1])
            yield read


def _merged_range(
    inputs: Sequence[MergeInput],
    read: list[list[dict[str, np.ndarray]]],
    arrival: np.ndarray,
    low: int,
    high: int,
    payload: bool,
) -> dict[str, np.ndarray]:
    """The entries (columns by name) of the merge's inputs with keys in `[low, high)` that still answer
    (`read`: each input's record batches that meet the range), with their sources renumbered, sorted by
    key, then arrival, then row."""
    parts: dict[str, list[np.ndarray]] = {"key": [], "source": [], "row": [], "payload": []}
    for entry, chunks in zip(inputs, read, strict=True):
        for chunk in chunks:
            chunk_keys = chunk["key"]
            start = int(np.searchsorted(chunk_keys, np.uint64(low)))
            stop = len(chunk_keys) if high >> 64 else int(np.searchsorted(chunk_keys, np.uint64(high)))
            source = chunk["source"][start:stop]
            keep = entry.answers[source]
            for name, values in chunk.items():
                parts[name].append(
                    entry.remap[source[keep]] if name == "source" else values[start:stop][keep]
                )
    kinds = {"key": np.uint64, "source": np.uint32, "row": np.uint32, "payload": np.uint64}
    merged = {
        name: np.concatenate(values) if values else np.zeros(0, kinds[name])
        for name, values in parts.items()
        if payload or name != "payload"
    }
    order = merge_order(merged["key"], arrival[merged["source"]], merged["row"])
    return {name: values[order] for name, values in merged.items()}


def merge_order(keys: np.ndarray, arrivals: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """The order that sorts entries by key, then arrival, then row, where `keys` is a concatenation of
    sorted runs (a merge's inputs). NumPy's stable sort of 64-bit keys is a timsort, which finds the runs
    and merges them (about 15 ns an entry where a three-key `lexsort` takes about 450); only the entries
    whose key is not unique are sorted again by arrival and row (`ties_sorted`)."""
    return ties_sorted(keys, np.argsort(keys, kind="stable"), (arrivals, rows))


def _columns(batch: pa.RecordBatch) -> dict[str, np.ndarray]:
    """A store file's record batch (a key slice, sorted) as numpy views of its (memory-mapped) buffers, not
    copies."""
    return {name: batch.column(name).to_numpy() for name in batch.schema.names}
