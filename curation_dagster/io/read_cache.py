"""What a DuckDB connection to a remote lake has read, kept for the connection's life: the data card asks
about 80 queries of the same views, and DuckDB's own cache of remote files does not serve a file system
registered from Python, so each query read every file again (about 950 GET requests for the demo's card,
and on a real dataset the card's columns of every shard 80 times over).

`cached_open(fs)` is an `fs.open` for reading whose files share one cache of byte blocks: `BLOCK_BYTES`
aligned blocks of each file, keyed by the file's path, size and ETag (or modification time) as its folder's
listing gave them, the least recently used dropped past `CURATION_READ_CACHE_BYTES` (`settings.py`, 256 MiB
unless set). A read fetches its missing blocks in one ranged request per run of them; a file replaced since
the listing is read as the listing saw it, or as the object that now stands there, as an uncached read was.
"""

from __future__ import annotations

import io
import threading
from collections import OrderedDict
from collections.abc import Callable
from typing import Any, Final

from curation_dagster.settings import DEFAULT_READ_CACHE_BYTES, read_cache_bytes

#: Bytes of a cached block: a Parquet footer or a small column chunk costs one block.
BLOCK_BYTES: Final = 1 << 20


class BlockCache:
    """Blocks of remote files, least recently used first, at most `limit` bytes in all."""

    def __init__(self, fs: Any, limit: int = DEFAULT_READ_CACHE_BYTES, block: int = BLOCK_BYTES) -> None:
        self.fs, self.limit, self.block = fs, limit, block
        self._blocks: OrderedDict[tuple[str, str, int], bytes] = OrderedDict()
        self._held = 0
        self._lock = threading.Lock()  # DuckDB reads files from several threads

    def read(self, path: str, stamp: str, size: int, start: int, stop: int) -> bytes:
        """Bytes `[start, stop)` of the file at `path` (of `size` bytes, version `stamp`)."""
        stop = min(stop, size)
        if start >= stop:
            return b""
        first, last = start // self.block, (stop - 1) // self.block
        found: dict[int, bytes] = {}
        with self._lock:
            for index in range(first, last + 1):
                data = self._blocks.get((path, stamp, index))
                if data is not None:
                    self._blocks.move_to_end((path, stamp, index))
                    found[index] = data
        index = first
        while index <= last:  # each run of missing blocks in one ranged request
            if index in found:
                index += 1
                continue
            run_end = index
            while run_end + 1 <= last and run_end + 1 not in found:
                run_end += 1
            low, high = index * self.block, min(size, (run_end + 1) * self.block)
            data = bytes(self.fs.cat_file(path, start=low, end=high))
            for offset in range(index, run_end + 1):
                found[offset] = data[(offset - index) * self.block : (offset - index + 1) * self.block]
            self._keep(path, stamp, {offset: found[offset] for offset in range(index, run_end + 1)})
            index = run_end + 1
        joined = b"".join(found[index] for index in range(first, last + 1))
        return joined[start - first * self.block : stop - first * self.block]

    def _keep(self, path: str, stamp: str, blocks: dict[int, bytes]) -> None:
        with self._lock:
            for index, data in blocks.items():
                key = (path, stamp, index)
                if key not in self._blocks:
                    self._blocks[key] = data
                    self._held += len(data)
            while self._held > self.limit and self._blocks:
                _, dropped = self._blocks.popitem(last=False)
                self._held -= len(dropped)


class CachedFile(io.RawIOBase):
    """A remote file read through a `BlockCache`: what DuckDB asks of a file (read, seek, tell)."""

    def __init__(self, cache: BlockCache, path: str, size: int, stamp: str) -> None:
        super().__init__()
        self.cache, self.path, self.size, self.stamp = cache, path, size, stamp
        self._position = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._position

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._position, io.SEEK_END: self.size}[whence]
        self._position = max(0, base + offset)
        return self._position

    def read(self, size: int | None = -1) -> bytes:
        stop = self.size if size is None or size < 0 else self._position + size
        data = self.cache.read(self.path, self.stamp, self.size, self._position, stop)
        self._position += len(data)
        return data

    def readall(self) -> bytes:
        return self.read(-1)

    def readinto(self, buffer: Any) -> int:
        data = self.read(len(buffer))
        memoryview(buffer).cast("B")[: len(data)] = data
        return len(data)


def cached_open(fs: Any, cache: BlockCache | None = None) -> Callable[..., Any]:
    """`fs.open` whose reads (mode `rb`) go through one `BlockCache` of `fs`; other modes as before."""
    blocks = cache or BlockCache(fs, limit=read_cache_bytes())
    plain_open = fs.open

    def open_(path: str, mode: str = "rb", **kwargs: Any) -> Any:
        if mode != "rb":
            return plain_open(path, mode, **kwargs)
        details = fs.info(path)  # from the folder's listing when it was listed (`_listing_first`)
        size = int(details["size"])
        version = details.get("ETag") or details.get("etag") or details.get("mtime") or ""
        # The size belongs to the key too: some stores' listings give neither an ETag nor a time.
        return CachedFile(blocks, fs._strip_protocol(path), size, f"{size}:{version}")

    return open_
