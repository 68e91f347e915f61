"""Tests of curation_dagster/io/jsonl.py: the JSON Lines reader, plain and compressed."""

from __future__ import annotations

import dataclasses
import gzip
import io
import itertools
import json
import os
import tempfile
import tracemalloc
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any
from unittest import mock

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from curation_dagster.io import compressed_stream, jsonl
from curation_dagster.io.jsonl import _bounded_lines
from curation_dagster.io.landing import discover_partitions, read_shard
from curation_dagster.io.reader_base import MAX_JSON_DEPTH, ReaderSettings
from curation_dagster.io.records import RawRecord
from curation_dagster.io.validate import RejectCode
from tests.engine.io.compression_fixtures import CODEC_NAMES, JSONL_SUFFIX, compress, one_shot
from tests.landing_fixtures import codes, read, read_parts, write_lines


def write_gzip_lines(path: Path, *lines: bytes) -> Path:
    path.write_bytes(gzip.compress(b"".join(line + b"\n" for line in lines)))
    return path


#: JSON Lines shards, plain and gzipped: (file name, writer).
JSON_LINES_KINDS = pytest.mark.parametrize(
    ("name", "write"), [("a.jsonl", write_lines), ("a.jsonl.gz", write_gzip_lines)], ids=["plain", "gzip"]
)


def test_jsonl_yields_text_with_line_positions_and_uris(tmp_path: Path) -> None:
    shard = write_lines(tmp_path / "a.jsonl", b'{"text": "hello"}', b'{"text": "world"}')
    records = read(shard)
    assert [(r.position, r.uri, r.text, r.modality) for r in records] == [
        ("L1", f"{shard}#L1", "hello", "text"),
        ("L2", f"{shard}#L2", "world", "text"),
    ]
    assert all(r.reject_code is None for r in records)


def test_jsonl_malformed_line_keeps_its_neighbours(tmp_path: Path) -> None:
    shard = write_lines(tmp_path / "a.jsonl", b'{"text": "one"}', b'{"text": "tw', b'{"text": "three"}')
    records = read(shard)
    assert [(r.position, r.text, r.reject_code) for r in records] == [
        ("L1", "one", None),
        ("L2", None, RejectCode.BAD_JSON),
        ("L3", "three", None),
    ]


def test_jsonl_blank_lines_are_skipped_but_counted(tmp_path: Path) -> None:
    shard = write_lines(tmp_path / "a.jsonl", b'{"text": "one"}', b"   \t", b"", b'{"text": "four"}')
    assert [r.position for r in read(shard)] == ["L1", "L4"]


def test_jsonl_other_fields_go_to_meta_untouched(tmp_path: Path) -> None:
    shard = write_lines(tmp_path / "a.jsonl", b'{"id": "src-7", "text": "x", "tags": ["a"], "n": 1.5}')
    assert read(shard)[0].meta == {"id": "src-7", "tags": ["a"], "n": 1.5}


def test_jsonl_invalid_utf8_is_rejected_not_utf8(tmp_path: Path) -> None:
    shard = write_lines(tmp_path / "a.jsonl", b'{"text": "caf\xe9"}')
    assert read(shard)[0].reject_code == RejectCode.NOT_UTF8


def test_jsonl_value_that_is_not_an_object_is_rejected_bad_json(tmp_path: Path) -> None:
    shard = write_lines(tmp_path / "a.jsonl", b'["text", "x"]')
    assert read(shard)[0].reject_code == RejectCode.BAD_JSON


def test_jsonl_nan_is_rejected_bad_json(tmp_path: Path) -> None:
    shard = write_lines(tmp_path / "a.jsonl", b'{"text": "x", "score": NaN}')
    assert read(shard)[0].reject_code == RejectCode.BAD_JSON


def test_jsonl_missing_text_field_is_rejected_missing_text(tmp_path: Path) -> None:
    shard = write_lines(tmp_path / "a.jsonl", b'{"body": "x"}')
    record = read(shard)[0]
    assert (record.reject_code, record.meta) == (RejectCode.MISSING_TEXT, {"body": "x"})


def test_jsonl_text_that_is_not_a_string_is_rejected_missing_text(tmp_path: Path) -> None:
    shard = write_lines(tmp_path / "a.jsonl", b'{"text": 42}')
    assert read(shard)[0].reject_code == RejectCode.MISSING_TEXT


def test_jsonl_text_field_name_comes_from_settings(tmp_path: Path) -> None:
    shard = write_lines(tmp_path / "a.jsonl", b'{"content": "hello", "text": "kept in meta"}')
    record = read(shard, ReaderSettings(text_field="content"))[0]
    assert (record.text, record.meta) == ("hello", {"text": "kept in meta"})


def test_jsonl_modality_other_than_text_is_rejected_bad_modality(tmp_path: Path) -> None:
    shard = write_lines(
        tmp_path / "a.jsonl", b'{"text": "x", "modality": "image"}', b'{"text": "y", "modality": "text"}'
    )
    assert [r.reject_code for r in read(shard)] == [RejectCode.BAD_MODALITY, None]


def test_jsonl_first_line_byte_order_mark_is_ignored(tmp_path: Path) -> None:
    shard = write_lines(tmp_path / "a.jsonl", b'\xef\xbb\xbf{"text": "x"}')
    assert read(shard)[0].text == "x"


def test_gzip_jsonl_is_read_through_gzip(tmp_path: Path) -> None:
    shard = tmp_path / "a.jsonl.gz"
    shard.write_bytes(gzip.compress(b'{"text": "one"}\n{"text": "two"}\n'))
    assert [(r.position, r.text) for r in read(shard)] == [("L1", "one"), ("L2", "two")]


def test_truncated_gzip_keeps_lines_read_and_adds_a_truncated_record(tmp_path: Path) -> None:
    shard = tmp_path / "a.jsonl.gz"
    # Dropping the last four bytes (the length field of the trailer) leaves every line decodable.
    shard.write_bytes(gzip.compress(b'{"text": "one"}\n{"text": "two"}\n')[:-4])
    records = read(shard)
    assert [(r.position, r.reject_code) for r in records] == [
        ("L1", None),
        ("L2", None),
        ("truncated", RejectCode.TRUNCATED_SHARD),
    ]
    assert records[-1].reject_detail


def test_file_that_is_not_gzip_is_a_truncated_shard(tmp_path: Path) -> None:
    shard = tmp_path / "a.jsonl.gz"
    shard.write_bytes(b'{"text": "plain"}\n')
    assert [r.reject_code for r in read(shard)] == [RejectCode.TRUNCATED_SHARD]


@JSON_LINES_KINDS
def test_jsonl_deeply_nested_line_is_rejected_bad_json(
    tmp_path: Path, name: str, write: Callable[..., Path]
) -> None:
    shard = write(tmp_path / name, b'{"text": "one"}', b"[" * 100_000, b'{"text": "three"}')
    records = read(shard)
    assert codes(records) == [("L1", None), ("L2", RejectCode.BAD_JSON), ("L3", None)]
    assert "nested too deeply" in (records[1].reject_detail or "")


def test_jsonl_meta_nested_deeper_than_the_limit_is_rejected_bad_json(tmp_path: Path) -> None:
    deep = b"[" * (MAX_JSON_DEPTH) + b"]" * (MAX_JSON_DEPTH)
    deeper = b"[" * (MAX_JSON_DEPTH + 1) + b"]" * (MAX_JSON_DEPTH + 1)
    shard = write_lines(
        tmp_path / "a.jsonl",
        b'{"text": "x", "m": ' + deep[1:-1] + b"}",
        b'{"text": "x", "m": ' + deeper[1:-1] + b"}",
    )
    assert [r.reject_code for r in read(shard)] == [None, RejectCode.BAD_JSON]


@JSON_LINES_KINDS
def test_jsonl_infinite_number_in_meta_is_kept_as_a_string(
    tmp_path: Path, name: str, write: Callable[..., Path]
) -> None:
    shard = write(tmp_path / name, b'{"text": "x", "score": 1e999, "low": [-1e999]}')
    record = read(shard)[0]
    assert (record.reject_code, record.meta) == (None, {"score": "inf", "low": ["-inf"]})


def test_jsonl_infinite_number_as_text_is_rejected_missing_text(tmp_path: Path) -> None:
    shard = write_lines(tmp_path / "a.jsonl", b'{"text": 1e999}')
    assert read(shard)[0].reject_code == RejectCode.MISSING_TEXT


@JSON_LINES_KINDS
def test_jsonl_line_over_max_line_bytes_is_rejected_and_the_next_line_read(
    tmp_path: Path, name: str, write: Callable[..., Path]
) -> None:
    at_limit = b'{"text": "' + b"a" * 30 + b'"}'  # 42 bytes
    shard = write(tmp_path / name, at_limit, b'{"text": "' + b"b" * 100 + b'"}', b'{"text": "after"}')
    records = read(shard, ReaderSettings(max_line_bytes=len(at_limit)))
    assert codes(records) == [("L1", None), ("L2", RejectCode.LINE_TOO_LONG), ("L3", None)]
    assert records[1].reject_detail == "the line has 112 bytes, more than raw.max_line_bytes (42)"
    assert records[2].text == "after"


def test_jsonl_last_line_over_the_limit_without_a_newline_is_rejected(tmp_path: Path) -> None:
    shard = tmp_path / "a.jsonl"
    shard.write_bytes(b'{"text": "ok"}\n' + b"x" * 50)
    assert codes(read(shard, ReaderSettings(max_line_bytes=20))) == [
        ("L1", None),
        ("L2", RejectCode.LINE_TOO_LONG),
    ]


class _RecordingReader(io.BytesIO):
    """Remembers the longest piece `readline` returned: what a reader held of one line at once."""

    longest = 0

    def readline(self, size: int | None = -1) -> bytes:
        line = super().readline(size)
        self.longest = max(self.longest, len(line))
        return line


def test_long_line_is_skipped_in_bounded_chunks() -> None:
    lines = _RecordingReader(b"x" * (5 * 2**20) + b"\nok\n")
    assert list(_bounded_lines(lines, 100)) == [(0, None, 5 * 2**20), (5 * 2**20 + 1, b"ok\n", 2)]
    assert lines.longest <= 2**20


# Parts of a large file -------------------------------------------------------------------------------

#: Lines of every kind the reader tells apart; each is cut at newlines by the file, never inside one.
PART_LINES = st.one_of(
    st.fixed_dictionaries({"text": st.text(max_size=20)}, optional={"id": st.integers()}).map(
        lambda fields: json.dumps(fields).encode()
    ),
    st.binary(max_size=30).map(lambda line: line.replace(b"\n", b" ")),
    st.sampled_from([b"", b"  \t", b"\r", b"{", b'{"text": 1}', b'{"text": "caf\xe9"}', b'{"text": NaN}']),
    st.sampled_from([b'\xef\xbb\xbf{"text": "a byte order mark"}', b'{"text": "x", "modality": "image"}']),
    st.integers(min_value=40, max_value=400).map(lambda size: b'{"text": "' + b"y" * size + b'"}'),
)
#: Lines over 48 bytes are rejected as too long, so that the long lines above cross part bounds.
PART_SETTINGS = ReaderSettings(max_line_bytes=48)


def line_starts(data: bytes) -> list[int]:
    """The byte offset of each line's first byte: line n starts at `line_starts(data)[n - 1]`."""
    return [0] + [index + 1 for index, byte in enumerate(data) if byte == ord("\n")]


@settings(max_examples=150, deadline=None, database=None)
@given(
    st.lists(st.tuples(PART_LINES, st.sampled_from([b"\n", b"\r\n"])), min_size=1, max_size=12),
    st.booleans(),
    st.integers(min_value=0),
)
def test_jsonl_read_in_parts_gives_the_records_of_the_whole_file_located_by_byte_offset(
    lines: list[tuple[bytes, bytes]], trailing_newline: bool, bound_seed: int
) -> None:
    data = b"".join(line + ending for line, ending in lines)
    if not trailing_newline:
        data = data.removesuffix(b"\r\n").removesuffix(b"\n")
    assume(len(data) > 1)
    bound = 1 + bound_seed % (len(data) - 1)  # below the size, so that the file is split
    with tempfile.TemporaryDirectory() as folder:
        shard = Path(folder) / "a.jsonl"
        shard.write_bytes(data)
        whole = read(shard, PART_SETTINGS)
        parts = read_parts(shard, bound, PART_SETTINGS)
    starts = line_starts(data)
    expected = [
        dataclasses.replace(
            record,
            position=f"byte={starts[int(record.position[1:]) - 1]}",
            uri=f"{shard}#byte={starts[int(record.position[1:]) - 1]}",
        )
        for record in whole
    ]
    assert parts == expected


def test_jsonl_part_starts_after_the_line_that_crosses_its_start(tmp_path: Path) -> None:
    shard = write_lines(tmp_path / "a.jsonl", b'{"text": "first"}', b'{"text": "second"}', b"{bad")
    # 18-byte lines: part 0 holds bytes 0-19 (both lines that start there), part 1 the bad last line.
    records = read_parts(shard, 20)
    assert [(r.position, r.text, r.reject_code) for r in records] == [
        ("byte=0", "first", None),
        ("byte=18", "second", None),
        ("byte=37", None, RejectCode.BAD_JSON),
    ]


def test_jsonl_part_that_a_long_line_covers_is_empty(tmp_path: Path) -> None:
    shard = write_lines(tmp_path / "a.jsonl", b'{"text": "' + b"z" * 100 + b'"}', b'{"text": "last"}')
    per_part = [
        [record.position for record in read_shard(shard, "a", ReaderSettings(), found.part)]
        for found in discover_partitions(tmp_path, 40).values()
    ]
    # 113 + 17 bytes in parts of 40: the long line starts in part 0 and covers part 1.
    assert per_part == [["byte=0"], [], ["byte=113"], []]


# Parts of a large compressed file ---------------------------------------------------------------------


def packed_members(name: str, data: bytes, cuts: list[int], level: int, damage: str, seed: int) -> bytes:
    """`data` as members of codec `name` that start at `cuts`, then damaged: `cut` short, `garbage` or
    `padding` (zero bytes, which gzip and xz readers skip) after it."""
    edges = sorted({0, len(data), *(cut % (len(data) + 1) for cut in cuts)})
    packed = b"".join(compress(name, data[a:b], level) for a, b in itertools.pairwise(edges))
    if damage == "cut":
        return packed[: seed % max(len(packed), 1)]
    return packed + {"garbage": b"not a member", "padding": b"\x00" * (1 + seed % 5)}.get(damage, b"")


@settings(max_examples=300, deadline=None, database=None)
@given(
    st.sampled_from(CODEC_NAMES),
    st.lists(st.tuples(PART_LINES, st.sampled_from([b"\n", b"\r\n"])), min_size=1, max_size=12),
    st.lists(st.integers(min_value=0), max_size=3),
    st.integers(min_value=0, max_value=9),
    st.sampled_from(["none", "cut", "garbage", "padding"]),
    st.integers(min_value=0),
    st.integers(min_value=1, max_value=40),
    st.sampled_from([(1 << 23, 1 << 12), (3, 1), (50, 7)]),
)
def test_compressed_jsonl_read_in_parts_gives_the_records_of_the_whole_file(
    name: str,
    lines: list[tuple[bytes, bytes]],
    cuts: list[int],
    level: int,
    damage: str,
    seed: int,
    feed: int,
    steps: tuple[int, int],
) -> None:
    """Also with the stream's steps made tiny (a few bytes of output, of zstandard's input, at a time), so
    that every feed is decompressed in many pieces."""
    data = b"".join(line + ending for line, ending in lines)
    packed = packed_members(name, data, cuts, level, damage, seed)
    assume(len(packed) > 1)
    bound = 1 + seed % (len(packed) - 1)  # below the size, so that the file is split
    with (
        tempfile.TemporaryDirectory() as folder,
        mock.patch.object(compressed_stream, "FEED_BYTES", feed),
        mock.patch.object(compressed_stream, "OUTPUT_BYTES", steps[0]),
        mock.patch.object(compressed_stream, "ZSTD_SLICE_BYTES", steps[1]),
    ):
        shard = Path(folder) / f"a{JSONL_SUFFIX[name]}"
        shard.write_bytes(packed)
        whole = read(shard, PART_SETTINGS)
        parts = read_parts(shard, bound, PART_SETTINGS)
        # Whether the file is whole, from each member decompressed in one call (and for gzip the gzip
        # module, which agrees).
        content = one_shot(name, packed)
        if name == "gzip":
            try:
                assert gzip.decompress(packed) == content
            except (EOFError, OSError, zlib.error):
                assert content is None
        unpacked: list[RawRecord] | None = None
        if content is not None:
            unpacked = read(write_lines(Path(folder) / "a.jsonl", content.removesuffix(b"\n")), PART_SETTINGS)
    assert parts == whole
    truncated = [record for record in whole if record.reject_code == RejectCode.TRUNCATED_SHARD]
    assert len(truncated) == (unpacked is None)
    if unpacked is not None:
        # Lines number and read as in the file's plain form.
        assert [(r.position, r.text, r.meta, r.reject_code) for r in whole] == [
            (r.position, r.text, r.meta, r.reject_code) for r in unpacked
        ]


def test_gzip_part_decompresses_the_lines_before_it_without_parsing_them(tmp_path: Path) -> None:
    shard = tmp_path / "a.jsonl.gz"
    lines = b"".join(b'{"text": "line %d %s"}\n' % (n, os.urandom(40).hex().encode()) for n in range(3000))
    shard.write_bytes(gzip.compress(lines))
    parts = list(discover_partitions(tmp_path, -(-len(shard.read_bytes()) // 4)).values())
    assert len(parts) == 4
    parsed: list[str] = []
    record_of = jsonl._json_line_record

    def parse(line: bytes, position: str, *args: Any) -> RawRecord:
        parsed.append(position)
        return record_of(line, position, *args)

    with mock.patch.object(jsonl, "_json_line_record", parse):
        last = list(read_shard(shard, "a", ReaderSettings(), parts[-1].part))
    assert last and parsed == [record.position for record in last]
    assert int(last[0].position[1:]) > 1000  # numbered as in the whole file
    every = [record for found in parts for record in read_shard(shard, "a", ReaderSettings(), found.part)]
    assert [record.text for record in every] == [record.text for record in read(shard)]
    assert all(record.reject_code is None for record in every)


def test_a_compressed_stream_keeps_the_origins_of_recent_bytes_only(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(compressed_stream, "ORIGIN_HISTORY_BYTES", 4096)
    data = os.urandom(100_000)  # incompressible: every 64-byte feed gives about 64 bytes
    stream = compressed_stream.CompressedStream(io.BytesIO(gzip.compress(data, 0)), feed_bytes=64)
    assert stream.read() == data
    # The newest bytes keep their feed's offset; those far behind are forgotten, not answered wrongly.
    newest = stream.origin(len(data) - 1)
    assert newest % 64 == 0 and abs(len(data) - 1 - newest) < 200
    with pytest.raises(ValueError, match="too far behind"):
        stream.origin(0)


@pytest.mark.parametrize("name", CODEC_NAMES)
def test_a_compression_bomb_is_read_in_bounded_memory(
    name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # 40 MB of one letter in one line compress to 74 bytes (bzip2) to 41 KB (gzip): one feed.
    monkeypatch.setattr(compressed_stream, "OUTPUT_BYTES", 1 << 20)
    monkeypatch.setattr(compressed_stream, "ZSTD_SLICE_BYTES", 64)
    line = b'{"text": "' + b"a" * (40 << 20) + b'"}\n'
    shard = tmp_path / f"bomb{JSONL_SUFFIX[name]}"
    shard.write_bytes(compress(name, line + b'{"text": "after it"}\n', 1))
    tracemalloc.start()
    try:
        records = read(shard, ReaderSettings(max_line_bytes=1 << 20))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert codes(records) == [("L1", RejectCode.LINE_TOO_LONG), ("L2", None)]
    assert peak < 12 << 20, f"{peak / 2**20:.0f} MiB held while reading"
