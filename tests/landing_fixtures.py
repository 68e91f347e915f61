"""Landing shards that the reader tests write, and how those tests read them back through `read_shard`."""

from __future__ import annotations

from pathlib import Path

from curation_dagster.io.landing import read_shard
from curation_dagster.io.reader_base import ReaderSettings
from curation_dagster.io.records import RawRecord


def write_lines(path: Path, *lines: bytes) -> Path:
    path.write_bytes(b"".join(line + b"\n" for line in lines))
    return path


def read(path: Path, settings: ReaderSettings | None = None) -> list[RawRecord]:
    return list(read_shard(path, "shard", settings or ReaderSettings()))


def codes(records: list[RawRecord]) -> list[tuple[str, str | None]]:
    return [(record.position, record.reject_code) for record in records]
