"""Where a part of a large compressed JSON Lines landing file can enter the stream, so that it does not
decompress the whole file before its own lines (`shard_parts`, `compressed_stream`).

A member (a gzip member, a zstandard frame, a bzip2 or xz stream) can be entered at its start; a gzip
member also at the end of any deflate block, given the unread bits of the last byte the block took and
the 32 KiB of output before it (the window later blocks refer back to), as zlib's `zran.c` does
(`inflate`). A resume point holds that and what a part needs to go on as if it had read from the start:
the decompressed bytes and newlines before the point (line numbers count every line before a part), a
gzip member's CRC-32 and length so far (its trailer is still checked), and where the compressed feed it
falls in starts and ends (each decompressed byte keeps the same origin, so every line stays in the same
part).

Points are made in one pass over the file, up to its last part's start (`build_points`): for each part,
the last point before the feed that begins the part. The first part to need them makes them under a
lake-wide lock and saves them in the lake (`_landing/resume/<shard>/<fingerprint>.points`); every other
part, of this version or another, reads them. A gzip file always has points (where the system's zlib can
be called); a file of another codec only where a member starts shortly before the part, as in files
that `pzstd`, `pbzip2` or `bgzip` write: a single zstandard frame or bzip2 or xz stream cannot be entered
in the middle, and the pass would buy nothing. A point is used only if the compressed bytes around it
are those it was made from; else, or without a lake lock, the part decompresses from the start.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import re
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from curation_dagster.io import inflate
from curation_dagster.io.compressed_stream import BZIP2, GZIP, XZ, ZSTD, Codec, CompressedStream
from curation_dagster.io.lake import Lake, check_segment
from curation_dagster.io.landing import jsonl_codec, shard_fingerprint
from curation_dagster.io.landing_files import link_problem
from curation_dagster.io.shard_parts import PART_KEY_INFIX, ShardPart

#: How far before a part's start (in compressed bytes) block ends are kept as points, and member starts
#: looked for in a codec other than gzip: a zlib block is at most about 64 KiB compressed, so the last one
#: before the part is always among them.
LOOKBACK_BYTES: Final = 1 << 22
#: What a member of each codec starts with, to look for before a part's start (in gzip only where the
#: system's zlib cannot be called): a gzip member of deflate data, a zstandard frame (skippable frames
#: aside), a bzip2 stream and its first block, an xz stream.
_MEMBER_MAGIC: Final = {
    GZIP.name: re.compile(re.escape(b"\x1f\x8b\x08")),
    ZSTD.name: re.compile(re.escape(b"\x28\xb5\x2f\xfd")),
    BZIP2.name: re.compile(rb"BZh[1-9]1AY&SY"),
    XZ.name: re.compile(re.escape(b"\xfd7zXZ\x00")),
}
#: Compressed bytes on each side of a point whose CRC-32 it keeps, to notice a file changed in place.
GUARD_BYTES: Final = 256
#: The lake's folder of points (never a version's name, which starts with a letter), and its lock's.
LANDING_FOLDER: Final = "_landing"
POINTS_STAGE: Final = "resume"
#: The first line of a points file.
MAGIC: Final = b"curation resume points 1\n"

_log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ResumePoint:
    """A place to enter a compressed file and read on as a read from its start would: input resumes at
    byte `at`, in the compressed feed [`feed_at`, `feed_end`) (the feed's origin stays `feed_at`);
    `produced` bytes of output came before, `newlines` of them newlines, the last a newline or none
    (`ends_line`). At a member's start (`member_start`) that is all; inside a gzip member, at a deflate
    block's end, `bits` unread bits of the byte before `at` (`byte`), the `window` of output before, and
    the member's `crc` and `size` of output so far."""

    at: int
    feed_at: int
    feed_end: int
    produced: int
    newlines: int
    ends_line: bool
    member_start: bool
    bits: int = 0
    byte: int = 0
    crc: int = 0
    size: int = 0
    window: bytes = b""
    guard: int = 0

    def describe(self) -> str:
        """`compressed byte 493216 (decompressed byte 1516922, after line 8000), at a deflate block's end`
        for metadata and logs."""
        where = "a member's start" if self.member_start else "a deflate block's end"
        lines = self.newlines + (not self.ends_line)
        return (
            f"compressed byte {self.at} (decompressed byte {self.produced}, after line {lines}), at {where}"
        )

    def member(self, output: Any) -> inflate.ResumedMember:
        """The rest of the member this point is inside, ready for the bytes from `at` on, its output
        written into `output` (`inflate.output_buffer`)."""
        return inflate.ResumedMember(self.bits, self.byte, self.window, self.crc, self.size, output)


class PointRecorder:
    """Told by a `CompressedStream` what it decompresses (gzip members read a block at a time), keeps for
    each part start the last point in a feed that begins before it."""

    def __init__(self, starts: Sequence[int]) -> None:
        self._pending = sorted(set(starts))
        self.points: dict[int, ResumePoint] = {}
        self._latest: ResumePoint | None = None
        self._newlines = 0
        self._last_byte: int | None = None

    @property
    def done(self) -> bool:
        return not self._pending

    def feed(self, at: int) -> None:
        """A feed starting at `at` is next: the starts at or before it have their point."""
        while self._pending and self._pending[0] <= at:
            self._settle(self._pending.pop(0))

    def finish(self) -> None:
        """The stream ended (or failed): every start left has the last point."""
        for start in self._pending:
            self._settle(start)
        self._pending = []

    def output(self, data: bytes) -> None:
        if data:
            self._newlines += data.count(b"\n")
            self._last_byte = data[-1]

    def member_start(self, stream: CompressedStream, at: int) -> None:
        self._latest = ResumePoint(member_start=True, **self._where(stream, at))

    def block_end(self, stream: CompressedStream, member: inflate.BlockMember, at: int) -> None:
        if not self._pending or self._pending[0] - at > LOOKBACK_BYTES:
            return
        self._latest = ResumePoint(
            member_start=False,
            bits=member.bits,
            byte=member.last_byte,
            crc=member.inflater.check,
            size=member.inflater.total_out,
            window=member.inflater.window(),
            **self._where(stream, at),
        )

    def _where(self, stream: CompressedStream, at: int) -> dict[str, Any]:
        feed_at, feed_end = stream.feed_span
        return {
            "at": at,
            "feed_at": feed_at,
            "feed_end": feed_end,
            "produced": stream.produced,
            "newlines": self._newlines,
            "ends_line": self._last_byte in (None, ord("\n")),
        }

    def _settle(self, start: int) -> None:
        if self._latest is not None:
            self.points[start] = self._latest


def build_points(path: Path, starts: Sequence[int], codec: Codec = GZIP) -> dict[int, ResumePoint]:
    """The point of each part start in `starts` of the file at `path` compressed by `codec`, from one pass
    that stops at the last of them; a start with no point before it (the file does not begin with a
    member) has none."""
    recorder = PointRecorder(starts)
    buffer = bytearray(1 << 20)
    with path.open("rb") as file:
        stream = CompressedStream(file, codec, recorder=recorder)
        try:
            while not recorder.done and stream.readinto(buffer):
                pass
        except (OSError, EOFError):  # CorruptStream is an OSError: the parts after it read to the failure
            pass
        recorder.finish()
        return {start: _guarded(file, point) for start, point in recorder.points.items()}


def _guarded(file: Any, point: ResumePoint) -> ResumePoint:
    return dataclasses.replace(point, guard=_guard(file, point.at))


def _guard(file: Any, at: int) -> int:
    """The CRC-32 of the compressed bytes within `GUARD_BYTES` of `at`."""
    low = max(0, at - GUARD_BYTES)
    file.seek(low)
    return zlib.crc32(file.read(at + GUARD_BYTES - low))


def still_fits(path: Path, point: ResumePoint) -> bool:
    """Whether the bytes around the point are those it was made from."""
    try:
        with path.open("rb") as file:
            return _guard(file, point.at) == point.guard
    except OSError:
        return False


def encode(points: dict[int, ResumePoint]) -> bytes:
    """A points file: `MAGIC`, one line of JSON (each point's fields, its window as an offset and length
    into what follows), then the windows."""
    rows, windows, offset = [], [], 0
    for start, point in sorted(points.items()):
        fields = dataclasses.asdict(point)
        window = fields.pop("window")
        rows.append({"start": start, **fields, "window": [offset, len(window)]})
        windows.append(window)
        offset += len(window)
    return MAGIC + json.dumps(rows, separators=(",", ":")).encode() + b"\n" + b"".join(windows)


def decode(data: bytes) -> dict[int, ResumePoint] | None:
    """The points of a points file; None for anything else (a file of another format)."""
    if not data.startswith(MAGIC):
        return None
    header, _, windows = data[len(MAGIC) :].partition(b"\n")
    try:
        rows = json.loads(header)
        points = {}
        for row in rows:
            start, (offset, length) = row.pop("start"), row.pop("window")
            points[int(start)] = ResumePoint(**row, window=windows[offset : offset + length])
    except (ValueError, TypeError, KeyError):
        return None
    return points


def resume_part(lake: Lake, source: Path, shard: str, part: ShardPart | None) -> ShardPart | None:
    """`part` with the point its reading may start from, when it is a later part of a compressed JSON
    Lines file: read from the lake, or made for every part of the file under the lake's lock. Unchanged
    where there is none to be had (the first part, another kind, a link the raw stage refuses, a lake
    without a lock, no member start shortly before the part in a codec other than gzip, a file changed
    since its points were made)."""
    codec = jsonl_codec(source)
    if (
        part is None
        or codec is None
        or not part.compressed
        or part.index == 0
        or link_problem(source, source.parent) is not None
        or lake.claim_lock is None
        or not ((codec is GZIP and inflate.available()) or _member_starts_before(source, codec, part))
    ):
        return part
    base = check_segment(shard.rsplit(PART_KEY_INFIX, 1)[0])
    folder = f"{lake.stage_dir(LANDING_FOLDER, POINTS_STAGE)}/{base}"
    path = f"{folder}/{shard_fingerprint(source)}.points"
    points = _read(lake, path)
    if points is None:
        with lake.lock(LANDING_FOLDER, f"{POINTS_STAGE}-{base}"):
            points = _read(lake, path)
            if points is None:
                points = _make_points(lake, source, codec, folder, path, part)
    point = points.get(part.start)
    if point is None or point.produced == 0 or not still_fits(source, point):
        return part
    _log.info("%s enters the %s stream at %s", shard, codec.name, point.describe())
    return dataclasses.replace(part, resume=point)


def _member_starts_before(source: Path, codec: Codec, part: ShardPart) -> bool:
    """Whether what starts a member of `codec` lies in the compressed bytes shortly before the part (at
    most `LOOKBACK_BYTES` or a part's length): where none does, a point would be far back or at the
    file's start."""
    bound = part.start // part.index
    low = max(0, part.start - min(bound, LOOKBACK_BYTES))
    try:
        with source.open("rb") as file:
            file.seek(low)
            window = file.read(part.start - low + 16)  # a magic number that starts just before
    except OSError:
        return False
    return _MEMBER_MAGIC[codec.name].search(window, 1 if low == 0 else 0) is not None


def _make_points(
    lake: Lake, source: Path, codec: Codec, folder: str, path: str, part: ShardPart
) -> dict[int, ResumePoint]:
    """The points of every part of `source` after the first, saved at `path` in place of those of the
    file's earlier contents."""
    bound = part.start // part.index
    try:
        points = build_points(source, [index * bound for index in range(1, part.count)], codec)
    except OSError:  # the file cannot be read: its part's reading says so
        return {}
    for old in lake.fs.glob(f"{folder}/*.points"):
        if old != path:
            lake.remove(old)
    lake.write_bytes(path, encode(points))
    _log.info("%s: %s resume points made for %d parts in one pass", source.name, codec.name, part.count - 1)
    return points


def _read(lake: Lake, path: str) -> dict[int, ResumePoint] | None:
    data = lake.read_bytes(path)
    return None if data is None else decode(data)
