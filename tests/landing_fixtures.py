"""Landing shards that the reader tests write, and how those tests read them back through `read_shard`."""

from __future__ import annotations

from pathlib import Path

from curation_dagster.io.landing import discover_partitions, read_shard
from curation_dagster.io.reader_base import ReaderSettings
from curation_dagster.io.records import RawRecord


def write_lines(path: Path, *lines: bytes) -> Path:
    path.write_bytes(b"".join(line + b"\n" for line in lines))
    return path


def read(path: Path, settings: ReaderSettings | None = None) -> list[RawRecord]:
    return list(read_shard(path, "shard", settings or ReaderSettings()))


def codes(records: list[RawRecord]) -> list[tuple[str, str | None]]:
    return [(record.position, record.reject_code) for record in records]


def read_parts(path: Path, max_shard_bytes: int, settings: ReaderSettings | None = None) -> list[RawRecord]:
    """The records of every part that discovery splits `path` into under `max_shard_bytes`, concatenated
    in key order; fails the test when `path` is not split."""
    shards = [
        shard for shard in discover_partitions(path.parent, max_shard_bytes).values() if shard.path == path
    ]
    assert len(shards) > 1, f"{path.name} was not split under a bound of {max_shard_bytes} bytes"
    return [
        record
        for shard in shards
        for record in read_shard(path, "shard", settings or ReaderSettings(), shard.part)
    ]
