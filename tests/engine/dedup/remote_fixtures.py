"""A remote lake whose reads can be measured: fsspec's in-memory file system under its own protocol,
counting every byte its files hand out (no S3 is imitated: the lake sees a non-local file system)."""

from __future__ import annotations

import uuid
from typing import Any

import fsspec
from fsspec.implementations.memory import MemoryFileSystem

from curation_dagster.io.lake import Lake


class _CountingReader:
    """A file of the memory file system whose reads add to its file system's count."""

    def __init__(self, handle: Any, fs: CountingMemoryFileSystem) -> None:
        self._handle, self._fs = handle, fs

    def __getattr__(self, name: str) -> Any:
        return getattr(self._handle, name)

    def __enter__(self) -> _CountingReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self._handle.close()

    def read(self, size: int = -1) -> bytes:
        data = self._handle.read(size)
        self._fs.bytes_read += len(data)
        return bytes(data)

    def readinto(self, buffer: Any) -> int:
        count = int(self._handle.readinto(buffer))
        self._fs.bytes_read += count
        return count


class CountingMemoryFileSystem(MemoryFileSystem):
    """`countingmemory://`: the memory file system, with `bytes_read` counting what reads returned."""

    protocol = "countingmemory"
    bytes_read = 0

    @classmethod
    def _strip_protocol(cls, path: Any) -> Any:
        return super()._strip_protocol(str(path).removeprefix(f"{cls.protocol}://"))

    def _open(self, path: str, mode: str = "rb", *args: Any, **kwargs: Any) -> Any:
        handle = super()._open(path, mode, *args, **kwargs)
        return _CountingReader(handle, self) if mode == "rb" else handle

    def cat_file(self, path: str, start: int | None = None, end: int | None = None, **kwargs: Any) -> bytes:
        data = bytes(super().cat_file(path, start, end, **kwargs))
        self.bytes_read += len(data)
        return data


def counting_lake() -> Lake:
    """A remote lake under a root no other test uses; `lake.fs.bytes_read` counts what it read."""
    fsspec.register_implementation(CountingMemoryFileSystem.protocol, CountingMemoryFileSystem, clobber=True)
    return Lake(f"{CountingMemoryFileSystem.protocol}://lake-{uuid.uuid4().hex}")
