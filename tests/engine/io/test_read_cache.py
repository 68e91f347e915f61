"""Tests of curation_dagster/io/read_cache.py: a remote lake's DuckDB connection keeps what it read in a
bounded cache of blocks, so the data card's queries do not read every file again; every read returns the
file's bytes whatever the cache holds or drops."""

from __future__ import annotations

import io
import uuid
from collections import Counter
from typing import Any

import fsspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from curation_dagster.io.read_cache import BlockCache, cached_open


def memory_file(data: bytes) -> tuple[Any, str, Counter[str]]:
    """A real in-memory fsspec file system holding `data`, the file's path and a count of ranged reads."""
    fs = fsspec.filesystem("memory")
    path = f"/cache-test-{uuid.uuid4().hex}/file.bin"
    fs.pipe_file(path, data)
    fetched: Counter[str] = Counter()
    plain = fs.cat_file

    def counting(file: str, start: int | None = None, end: int | None = None, **kwargs: Any) -> bytes:
        fetched["requests"] += 1
        fetched["bytes"] += (end or len(data)) - (start or 0)
        return bytes(plain(file, start=start, end=end, **kwargs))

    fs.cat_file = counting
    return fs, path, fetched


@settings(max_examples=60, deadline=None)
@given(
    st.binary(min_size=0, max_size=3000),
    st.integers(1, 64),
    st.integers(0, 400),
    st.lists(st.tuples(st.integers(-10, 3100), st.integers(-1, 700)), min_size=1, max_size=25),
)
def test_every_read_returns_the_files_bytes_whatever_the_cache_keeps(
    data: bytes, block: int, limit: int, reads: list[tuple[int, int]]
) -> None:
    """Seeks anywhere (past the end too) and reads of any length, with blocks of 1 to 64 bytes and a cache
    of 0 to 400 bytes (most reads drop blocks, some drop the ones they just fetched)."""
    fs, path, _ = memory_file(data)
    handle = cached_open(fs, BlockCache(fs, limit=limit, block=block))(path)
    expected = io.BytesIO(data)
    for offset, size in reads:
        position = handle.seek(max(offset, 0))
        assert position == expected.seek(max(offset, 0))
        assert handle.read(size) == expected.read(size)
        assert handle.tell() == expected.tell()
    handle.seek(-5, io.SEEK_END)
    assert handle.read() == data[-5:]


def test_a_second_read_of_what_fits_the_cache_asks_nothing_and_a_read_asks_once_per_missing_run() -> None:
    data = bytes(range(256)) * 40  # 10,240 bytes: 10 blocks of 1,024
    fs, path, fetched = memory_file(data)
    open_ = cached_open(fs, BlockCache(fs, limit=1 << 20, block=1024))
    first = open_(path)
    first.seek(1500)
    assert first.read(100) == data[1500:1600]  # block 1
    first.seek(9000)
    assert first.read(2000) == data[9000:]  # block 8 and the short block 9, in one request
    assert fetched["requests"] == 2

    again = open_(path)  # another query opens the file again: served from the cache
    again.seek(1500)
    assert again.read(100) == data[1500:1600]
    assert fetched["requests"] == 2
    again.seek(0)
    assert again.read() == data  # blocks 0 and 2-7 are missing: two runs, two requests
    assert fetched["requests"] == 4
    assert fetched["bytes"] == len(data)  # no byte fetched twice


def test_a_cache_past_its_limit_drops_the_least_recently_read_blocks() -> None:
    data = bytes(4096)
    fs, path, fetched = memory_file(data)
    open_ = cached_open(fs, BlockCache(fs, limit=2048, block=1024))  # two blocks
    handle = open_(path)
    for block in (0, 1, 0, 2):  # block 1 is now the least recently read
        handle.seek(block * 1024)
        handle.read(10)
    assert fetched["requests"] == 3
    handle.seek(0)
    handle.read(10)  # block 0: kept
    assert fetched["requests"] == 3
    handle.seek(1024)
    handle.read(10)  # block 1: dropped, fetched again
    assert fetched["requests"] == 4


def test_blocks_are_kept_per_etag_a_file_replaced_since_is_read_anew_under_its_new_one() -> None:
    """Within one listing (one ETag) a file reads as it was first read; a listing that shows another ETag
    reads the new object, never the old one's blocks."""
    fs, path, _ = memory_file(b"old bytes")
    etag = {"value": "1"}
    info = fs.info
    fs.info = lambda file, **kwargs: {**info(file, **kwargs), "ETag": etag["value"]}
    cache = BlockCache(fs)
    assert cached_open(fs, cache)(path).read() == b"old bytes"
    fs.pipe_file(path, b"new bytes")

    assert cached_open(fs, cache)(path).read() == b"old bytes"
    etag["value"] = "2"
    assert cached_open(fs, cache)(path).read() == b"new bytes"


def test_a_file_rewritten_at_another_size_is_read_anew_where_the_listing_gives_no_etag() -> None:
    """The memory file system's listing has neither an ETag nor a modification time: the size still tells."""
    fs, path, _ = memory_file(b"short")
    cache = BlockCache(fs)
    assert cached_open(fs, cache)(path).read() == b"short"
    fs.pipe_file(path, b"a longer file")
    assert cached_open(fs, cache)(path).read() == b"a longer file"


@pytest.mark.parametrize("mode", ["wb", "ab"])
def test_writing_opens_the_file_as_the_file_system_does(mode: str) -> None:
    fs, path, _ = memory_file(b"x")
    with cached_open(fs)(path, mode) as handle:
        handle.write(b"yz")
    assert fs.cat_file(path) in (b"yz", b"xyz")


@pytest.mark.parametrize(("configured", "requests"), [("", 1), ("0", 2), ("1MiB", 1)])
def test_a_connections_cache_holds_what_the_setting_allows(
    monkeypatch: pytest.MonkeyPatch, configured: str, requests: int
) -> None:
    """`CURATION_READ_CACHE_BYTES` bounds the cache `Lake.connect` gives each connection (256 MiB unless
    set; 0 keeps nothing, so a second read asks again)."""
    monkeypatch.setenv("CURATION_READ_CACHE_BYTES", configured)
    data = bytes(range(256)) * 4
    fs, path, fetched = memory_file(data)
    open_ = cached_open(fs)
    for _ in range(2):
        assert open_(path).read() == data
    assert fetched["requests"] == requests
