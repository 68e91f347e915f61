"""Tests of curation_dagster/io/resume_points.py and inflate.py: parts of a compressed JSON Lines file that
enter the stream at a point made in one pass read exactly what they read from the start."""

from __future__ import annotations

import dataclasses
import gzip
import itertools
import os
import random
import tempfile
import uuid
import zlib
from pathlib import Path
from unittest import mock

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from curation_dagster.io import compressed_stream, inflate, resume_points
from curation_dagster.io.compressed_stream import GZIP, Codec, open_compressed_stream
from curation_dagster.io.lake import Lake
from curation_dagster.io.landing import discover_partitions, read_shard
from curation_dagster.io.locks import FileClaimLock
from curation_dagster.io.reader_base import ReaderSettings
from curation_dagster.io.records import RawRecord
from curation_dagster.io.resume_points import ResumePoint, build_points, decode, encode, resume_part
from curation_dagster.io.shard_parts import ShardPart
from curation_dagster.io.stage import run_raw
from curation_dagster.io.validate import RejectCode
from curation_dagster.spec import parse_spec
from tests.engine.io.compression_fixtures import CODEC_NAMES, JSONL_SUFFIX, codec, compress
from tests.servers import S3Server

pytestmark = pytest.mark.skipif(not inflate.available(), reason="the system's zlib cannot be loaded")

#: Lines over 48 bytes are rejected as too long, so that long lines cross part bounds.
SETTINGS = ReaderSettings(max_line_bytes=48)
LINES = st.one_of(
    st.just(b""),
    st.binary(max_size=30),
    st.integers(min_value=0, max_value=10**6).map(lambda n: b'{"text": "line %d"}' % n),
    # Long lines of hex that compresses about half: the same line for the same size, so examples replay.
    st.integers(min_value=40, max_value=1500).map(
        lambda size: b'{"text": "' + random.Random(size).randbytes(size // 2).hex().encode() + b'"}'
    ),
)


def parts_of(shard: Path, bound: int) -> list[ShardPart]:
    found = discover_partitions(shard.parent, bound)
    return [landing.part for landing in found.values() if landing.part is not None]


def read_part(shard: Path, part: ShardPart | None, point: ResumePoint | None = None) -> list[RawRecord]:
    if part is not None and point is not None:
        part = dataclasses.replace(part, resume=point)
    return list(read_shard(shard, "a", SETTINGS, part))


def damaged(packed: bytes, damage: str, seed: int) -> bytes:
    """`packed` cut short, with one byte flipped (in the deflate data or the last trailer), or padded."""
    if damage == "cut":
        return packed[: seed % max(len(packed), 1)]
    if damage in ("flip", "trailer"):
        at = seed % len(packed) if damage == "flip" else len(packed) - 1 - seed % 8
        return packed[:at] + bytes([packed[at] ^ (1 + seed % 255)]) + packed[at + 1 :]
    return packed + {"padding": b"\x00" * (1 + seed % 5), "garbage": b"not a member"}.get(damage, b"")


#: How a member's deflate blocks are ended early: Z_BLOCK and Z_PARTIAL_FLUSH inside a byte, Z_SYNC_FLUSH
#: at a byte's end, Z_FULL_FLUSH with nothing referred back to across it.
FLUSHES = [zlib.Z_BLOCK, zlib.Z_PARTIAL_FLUSH, zlib.Z_SYNC_FLUSH, zlib.Z_FULL_FLUSH]


def gzip_member(data: bytes, level: int, blocks: list[int], flush: int) -> bytes:
    """`data` as one gzip member at `level`, its blocks ended at the offsets `blocks` by `FLUSHES[flush]`."""
    compressor = zlib.compressobj(level, zlib.DEFLATED, 31)
    edges = sorted({0, len(data), *(block % (len(data) + 1) for block in blocks)})
    pieces = [
        compressor.compress(data[a:b]) + compressor.flush(FLUSHES[flush])
        for a, b in itertools.pairwise(edges)
    ]
    return b"".join(pieces) + compressor.flush()


@settings(max_examples=120, deadline=None, database=None)
@given(
    st.lists(LINES, min_size=1, max_size=25),
    st.lists(st.integers(min_value=0), max_size=3),
    st.lists(st.integers(min_value=0), max_size=12),
    st.integers(min_value=0, max_value=len(FLUSHES) - 1),
    st.integers(min_value=0, max_value=9),
    st.sampled_from(["none", "cut", "flip", "trailer", "padding", "garbage"]),
    st.integers(min_value=0),
    st.sampled_from([1, 7, 64, 1000]),
    st.sampled_from([1 << 23, 3, 50]),
)
def test_parts_entered_at_their_points_read_what_they_read_from_the_start(
    lines: list[bytes],
    cuts: list[int],
    blocks: list[int],
    flush: int,
    level: int,
    damage: str,
    seed: int,
    feed: int,
    output: int,
) -> None:
    """Members cut anywhere, blocks ended anywhere (inside a byte or at its end), levels 0 (stored
    blocks) to 9, a damaged or padded file, feeds of 1 byte to 1 KB (a block ends inside a feed or
    exactly at its end) and output taken 3 bytes at a time."""
    data = b"".join(line + b"\n" for line in lines)
    edges = sorted({0, len(data), *(cut % (len(data) + 1) for cut in cuts)})
    packed = b"".join(
        gzip_member(data[a:b], level, [block - a for block in blocks], flush)
        for a, b in itertools.pairwise(edges)
    )
    packed = damaged(packed, damage, seed)
    assume(len(packed) > 1)
    bound = 1 + (len(packed) - 1) * (1 + seed % 9) // 10  # 1 to 10 parts or so: each read whole as well
    with (
        tempfile.TemporaryDirectory() as folder,
        mock.patch.object(compressed_stream, "FEED_BYTES", feed),
        mock.patch.object(compressed_stream, "OUTPUT_BYTES", output),
    ):
        shard = Path(folder) / "a.jsonl.gz"
        shard.write_bytes(packed)
        parts = parts_of(shard, bound)
        points = decode(encode(build_points(shard, [part.start for part in parts[1:]])))
        for part in parts[1:]:
            point = points.get(part.start)
            if point is not None:
                assert point.feed_at < part.start  # all that came before the point is an earlier part's
                assert read_part(shard, part, point) == read_part(shard, part)
        resumed = [record for part in parts for record in read_part(shard, part, points.get(part.start))]
        assert resumed == read_part(shard, None)


@settings(max_examples=60, deadline=None, database=None)
@given(
    st.sampled_from(CODEC_NAMES),
    st.lists(LINES, min_size=1, max_size=25),
    st.lists(st.integers(min_value=0), max_size=6),
    st.integers(min_value=0, max_value=9),
    st.sampled_from(["none", "cut", "flip", "padding", "garbage"]),
    st.integers(min_value=0),
    st.sampled_from([1, 7, 64, 1000]),
)
def test_parts_entered_at_a_member_start_read_what_they_read_from_the_start(
    name: str, lines: list[bytes], cuts: list[int], level: int, damage: str, seed: int, feed: int
) -> None:
    """Every codec, members cut anywhere (zstandard's skippable frames among them), damaged or padded."""
    data = b"".join(line + b"\n" for line in lines)
    edges = sorted({0, len(data), *(cut % (len(data) + 1) for cut in cuts)})
    packed = damaged(
        b"".join(compress(name, data[a:b], level) for a, b in itertools.pairwise(edges)), damage, seed
    )
    assume(len(packed) > 1)
    bound = 1 + (len(packed) - 1) * (1 + seed % 9) // 10
    with tempfile.TemporaryDirectory() as folder, mock.patch.object(compressed_stream, "FEED_BYTES", feed):
        shard = Path(folder) / f"a{JSONL_SUFFIX[name]}"
        shard.write_bytes(packed)
        parts = parts_of(shard, bound)
        points = decode(encode(build_points(shard, [part.start for part in parts[1:]], codec(name))))
        assert all(point.member_start or name == "gzip" for point in points.values())
        for part in parts[1:]:
            if (point := points.get(part.start)) is not None:
                assert point.feed_at < part.start
                assert read_part(shard, part, point) == read_part(shard, part)


@pytest.mark.parametrize("name", ["zstandard", "bzip2", "xz"])
def test_a_file_of_many_members_has_points_at_their_starts_and_one_member_has_none(
    name: str, tmp_path: Path
) -> None:
    lines = [b'{"text": "line %d %s"}\n' % (n, os.urandom(24).hex().encode()) for n in range(12_000)]
    # As `pzstd`, `pbzip2` or `xz` run once a chunk write them: a member every 500 lines (about 20 KB).
    many = tmp_path / "many" / f"a{JSONL_SUFFIX[name]}"
    many.parent.mkdir()
    many.write_bytes(b"".join(compress(name, b"".join(lines[n : n + 500]), 6) for n in range(0, 12_000, 500)))
    lake = Lake(tmp_path / "lake")
    found = discover_partitions(many.parent, -(-many.stat().st_size // 4))
    resumed = [resume_part(lake, many, key, landing.part) for key, landing in found.items()]
    points = [part.resume for part in resumed[1:] if part is not None]
    assert len(points) == 3 and all(point is not None and point.member_start for point in points)
    # Each enters at the last member that starts in a feed that begins before its part: a member (about
    # 10 KB compressed) or a feed (64 KiB) from the part's start.
    for point, part in zip(points, resumed[1:], strict=True):
        assert point is not None and part is not None and point.feed_at < part.start
        assert -compressed_stream.FEED_BYTES < part.start - point.at < compressed_stream.FEED_BYTES + 40_000
    plain = b"".join(lines)
    for point in points:
        assert point is not None
        entered, _ = open_compressed_stream(many, codec(name), point)
        with entered:
            assert entered.read(1000) == plain[point.produced : point.produced + 1000]
    records = [record for part in resumed for record in read_shard(many, "a", SETTINGS, part)]
    assert records == list(read_shard(many, "a", SETTINGS))
    # One member cannot be entered after its start: no pass, no points.
    one = tmp_path / "one" / f"b{JSONL_SUFFIX[name]}"
    one.parent.mkdir()
    one.write_bytes(compress(name, b"".join(lines), 6))
    key, landing = list(discover_partitions(one.parent, -(-one.stat().st_size // 4)).items())[-1]
    assert resume_part(lake, one, key, landing.part) is landing.part
    assert not (tmp_path / "lake" / "_landing" / "resume" / one.name).exists()


def test_points_lie_within_a_block_of_each_part_and_keep_the_window_and_line_count(tmp_path: Path) -> None:
    rng = random.Random(5)
    words = [os.urandom(4).hex() for _ in range(2000)]
    data = b"".join(
        b'{"text": "%s"}\n' % " ".join(rng.choice(words) for _ in range(rng.randint(1, 60))).encode()
        for _ in range(40_000)
    )
    shard = tmp_path / "a.jsonl.gz"
    shard.write_bytes(gzip.compress(data, 6))
    parts = parts_of(shard, -(-shard.stat().st_size // 6))
    assert len(parts) == 6
    points = build_points(shard, [part.start for part in parts[1:]])
    assert sorted(points) == [part.start for part in parts[1:]]
    for part in parts[1:]:
        point = points[part.start]
        # Within a zlib block (under 64 KiB compressed) and a feed before the part's first feed.
        assert not point.member_start and part.start - 2 * compressed_stream.FEED_BYTES < point.at
        assert point.feed_at < part.start <= point.feed_at + 2 * compressed_stream.FEED_BYTES
        assert point.window == data[point.produced - inflate.WINDOW_BYTES : point.produced]
        assert point.newlines == data[: point.produced].count(b"\n")
        assert point.crc == zlib.crc32(data[: point.produced]) and point.size == point.produced
        # Entered there, the stream gives the bytes after the point, not the file's first ones.
        lines, _ = open_compressed_stream(shard, GZIP, point)
        with lines:
            assert lines.read(4096) == data[point.produced : point.produced + 4096]
        # And the part reads its own lines, numbered as in the whole file.
        records = read_part(shard, part, point)
        assert records and int(records[0].position[1:]) > point.newlines
        assert records == read_part(shard, part)


def test_a_member_start_is_a_point_without_a_window(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Fed 5 bytes at a time, a member's 10-byte header spans feeds: a part that starts there enters at
    # the member's start, where no window is needed.
    monkeypatch.setattr(compressed_stream, "FEED_BYTES", 5)
    members = [b'{"text": "%s"}\n' % os.urandom(200).hex().encode() for _ in range(6)]
    shard = tmp_path / "a.jsonl.gz"
    shard.write_bytes(b"".join(gzip.compress(member, 6) for member in members))
    parts = parts_of(shard, 3)
    points = build_points(shard, [part.start for part in parts[1:]])
    starts = [point for point in points.values() if point.member_start]
    assert starts and all(not point.window and point.produced % len(members[0]) == 0 for point in starts)
    assert any(not point.member_start for point in points.values())
    resumed = [record for part in parts for record in read_part(shard, part, points.get(part.start))]
    assert resumed == read_part(shard, None)


def test_a_resumed_member_still_checks_its_trailer(tmp_path: Path) -> None:
    data = b"".join(b'{"text": "line %d %s"}\n' % (n, os.urandom(30).hex().encode()) for n in range(20_000))
    packed = bytearray(gzip.compress(data, 6))
    packed[-6] ^= 0xFF  # the CRC-32's third byte
    shard = tmp_path / "a.jsonl.gz"
    shard.write_bytes(bytes(packed))
    parts = parts_of(shard, -(-len(packed) // 4))
    points = build_points(shard, [part.start for part in parts[1:]])
    resumed = [read_part(shard, part, points.get(part.start)) for part in parts]
    truncated = [r for records in resumed for r in records if r.reject_code == RejectCode.TRUNCATED_SHARD]
    # Reported once, by the part whose feed holds the trailer, entered at its point.
    assert len(truncated) == 1 and "incorrect data check" in (truncated[0].reject_detail or "")
    assert truncated[0] in resumed[-1] and points[parts[-1].start].crc != 0
    assert resumed == [read_part(shard, part) for part in parts]


def test_points_survive_their_file_and_are_refused_for_changed_bytes(tmp_path: Path) -> None:
    data = b"".join(b'{"text": "line %d %s"}\n' % (n, os.urandom(30).hex().encode()) for n in range(20_000))
    shard = tmp_path / "a.jsonl.gz"
    shard.write_bytes(gzip.compress(data, 6))
    parts = parts_of(shard, shard.stat().st_size // 3)
    points = build_points(shard, [part.start for part in parts[1:]])
    assert decode(encode(points)) == points
    assert decode(b"something else") is None
    point = points[parts[1].start]
    assert resume_points.still_fits(shard, point)
    changed = bytearray(shard.read_bytes())
    changed[point.at] ^= 1
    shard.write_bytes(bytes(changed))
    assert not resume_points.still_fits(shard, point)


# In the raw stage: made once under the lake's lock, read by every later part ----------------------------


def test_the_raw_stage_makes_points_once_and_every_later_part_enters_at_its_own(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    landing = tmp_path / "landing"
    landing.mkdir()
    data = b"".join(b'{"text": "line %d %s"}\n' % (n, os.urandom(30).hex().encode()) for n in range(30_000))
    shard = landing / "big.jsonl.gz"
    shard.write_bytes(gzip.compress(data, 6))
    lake = Lake(tmp_path / "lake")
    bound = shard.stat().st_size // 5
    found = discover_partitions(landing, bound)
    made: list[list[int]] = []
    entered: list[ResumePoint | None] = []
    build, reader = resume_points.build_points, compressed_stream.CompressedStream._resume

    def counted(path: Path, starts: list[int], codec: Codec) -> dict[int, ResumePoint]:
        made.append(list(starts))
        return build(path, starts, codec)

    def resume(stream: compressed_stream.CompressedStream, point: ResumePoint) -> None:
        entered.append(point)
        reader(stream, point)

    monkeypatch.setattr(resume_points, "build_points", counted)
    monkeypatch.setattr(compressed_stream.CompressedStream, "_resume", resume)
    # Two versions read the file in parts, the second with the first's points; a third reads it whole.
    for version in ("one", "two"):
        for key, landing_shard in found.items():
            run_raw(parse_spec({"name": version}), lake, key, shard, landing_shard.part)
    run_raw(parse_spec({"name": "whole"}), lake, "big.jsonl.gz", shard)
    assert made == [[part.start for part in parts_of(shard, bound)[1:]]]
    assert len(entered) == 2 * (len(found) - 1) and all(point is not None for point in entered)
    saved = list((tmp_path / "lake" / "_landing" / "resume" / "big.jsonl.gz").iterdir())
    assert [path.suffix for path in saved] == [".points"]

    def texts(version: str, keys: list[str]) -> list[str]:
        return [
            text
            for key in keys
            for text in lake.read_table(lake.path(version, "raw", key))["text"].to_pylist()
        ]

    whole = texts("whole", ["big.jsonl.gz"])
    assert len(whole) == 30_000 and texts("one", list(found)) == whole == texts("two", list(found))
    # A changed file makes new points in place of the old ones.
    shard.write_bytes(gzip.compress(data + b'{"text": "one more"}\n', 6))
    os.utime(shard, ns=(1, 1))
    key, landing_shard = list(discover_partitions(landing, bound).items())[-1]
    assert resume_part(lake, shard, key, landing_shard.part).resume is not None  # type: ignore[union-attr]
    assert len(made) == 2
    assert [path.name for path in saved[0].parent.iterdir()] != [saved[0].name]
    assert len(list(saved[0].parent.iterdir())) == 1


def test_a_json_gz_file_is_entered_at_its_points_as_a_jsonl_gz_file(tmp_path: Path) -> None:
    shard = tmp_path / "news.json.gz"  # the name of many published corpora's shards
    shard.write_bytes(gzip.compress(b"".join(b'{"text": "line %d"}\n' % n for n in range(60_000))))
    key, landing = list(discover_partitions(tmp_path, -(-shard.stat().st_size // 2)).items())[-1]
    part = resume_part(Lake(tmp_path / "lake"), shard, key, landing.part)
    assert part is not None and part.resume is not None and not part.resume.member_start


def test_without_a_lake_lock_or_zlib_a_part_reads_from_the_start(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    shard = tmp_path / "a.jsonl.gz"
    shard.write_bytes(gzip.compress(b'{"text": "x"}\n' * 50_000))
    part = parts_of(shard, shard.stat().st_size // 2)[1]
    assert resume_part(Lake("memory://no-lock"), shard, "a.jsonl.gz.part-00001", part) is part
    monkeypatch.setattr(inflate, "available", lambda: False)
    assert resume_part(Lake(tmp_path / "lake"), shard, "a.jsonl.gz.part-00001", part) is part
    assert not (tmp_path / "lake" / "_landing").exists()
    # Without zlib through ctypes, a file of many gzip members (as `bgzip` writes) enters at a member.
    lines = [b'{"text": "line %d %s"}\n' % (n, os.urandom(24).hex().encode()) for n in range(5_000)]
    shard.write_bytes(b"".join(gzip.compress(b"".join(lines[n : n + 200])) for n in range(0, 5_000, 200)))
    parts = parts_of(shard, -(-shard.stat().st_size // 3))
    resumed = [
        resume_part(Lake(tmp_path / "lake"), shard, f"a.jsonl.gz.part-{part.index:05d}", part)
        for part in parts
    ]
    assert all(
        part is not None and part.resume is not None and part.resume.member_start for part in resumed[1:]
    )
    records = [record for part in resumed for record in read_shard(shard, "a", SETTINGS, part)]
    assert records == list(read_shard(shard, "a", SETTINGS))


def test_points_are_kept_on_object_storage(tmp_path: Path, s3: S3Server) -> None:
    """A lake on the local S3 server, locked with a file lock shared by this machine's runs."""
    landing = tmp_path / "landing"
    landing.mkdir()
    shard = landing / "big.jsonl.gz"
    shard.write_bytes(gzip.compress(b"".join(b'{"text": "line %d"}\n' % n for n in range(60_000)), 6))
    lake = Lake(f"s3://curation/lake-{uuid.uuid4().hex}")
    lake.claim_lock = FileClaimLock(str(tmp_path / "locks"))
    found = discover_partitions(landing, -(-shard.stat().st_size // 3))
    resumed = [resume_part(lake, shard, key, landing_shard.part) for key, landing_shard in found.items()]
    assert [part is not None and part.resume is not None for part in resumed] == [False, True, True]
    [saved] = lake.fs.glob(f"{lake.stage_dir('_landing', 'resume')}/big.jsonl.gz/*.points")
    assert decode(lake.fs.cat_file(saved)) == {part.start: part.resume for part in resumed[1:] if part}
    records = [record for part in resumed for record in read_shard(shard, "big", SETTINGS, part)]
    assert records == list(read_shard(shard, "big", SETTINGS))
