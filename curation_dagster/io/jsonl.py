"""The JSON Lines reader, plain or compressed (gzip, bzip2, xz, zstandard): one record per non-blank line,
and a line too long to hold is rejected and skipped in bounded memory. Every kind can be read a part at a
time (`shard_parts`)."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO, Final, Protocol

from curation_dagster.io.compressed_stream import (
    Codec,
    CompressedStream,
    CorruptStream,
    DecompressedPart,
    open_compressed_stream,
)
from curation_dagster.io.reader_base import (
    ReaderSettings,
    json_safe,
    parse_json_object,
    rejected,
    truncated_record,
)
from curation_dagster.io.records import RawRecord
from curation_dagster.io.shard_parts import ShardPart
from curation_dagster.io.validate import RejectCode

#: Bytes read at a time while skipping the rest of a line longer than `max_line_bytes`.
_SKIP_CHUNK_BYTES: Final = 2**20


class _PartEnd(Protocol):
    """Where a part's lines end: `ShardPart` for a plain file, `_CompressedPart` for a compressed one."""

    def ends_before(self, offset: int) -> bool: ...


def read_plain_json_lines(
    path: Path, settings: ReaderSettings, part: ShardPart | None = None
) -> Iterator[RawRecord]:
    """The records of a JSON Lines file, one per non-blank line, at `L<line number>`; of one part of it,
    the lines that start in the part's bytes, at `byte=<offset of the line in the file>` (numbering lines
    would mean reading every byte before the part)."""
    with path.open("rb") as lines:
        if part is None:
            yield from _read_json_lines(lines, path, settings)
            return
        start = _seek_line_start(lines, part.start)
        yield from _read_json_lines(lines, path, settings, start, part, first_line=None)


def read_compressed_json_lines(
    codec: Codec, path: Path, settings: ReaderSettings, part: ShardPart | None = None
) -> Iterator[RawRecord]:
    """The records of a JSON Lines file compressed by `codec`, at `L<line number>`; a stream that ends
    early or does not decode ends with a `raw.truncated_shard` record after the lines read.

    Of one part, the lines whose first byte came out of the part's compressed bytes (`compressed_stream`):
    the lines before them are decompressed and counted, never parsed, so lines keep the numbers of a
    whole read. A part with a resume point (`resume_points`) starts there, where its lines are counted.
    The part whose bytes the stream failed in reports it, once over all parts."""
    lines, stream = open_compressed_stream(path, codec, None if part is None else part.resume)
    with lines:
        try:
            if part is None:
                yield from _read_json_lines(lines, path, settings)
            else:
                yield from _read_compressed_part(lines, stream, path, settings, part)
        except (EOFError, CorruptStream) as error:
            if part is None or stream.failed_at is None or part.holds(stream.failed_at):
                yield truncated_record(path, error, "text")


class _CompressedPart:
    """A part of a compressed file seen from the decompressed bytes: the line that starts at decompressed
    byte `offset` (where `lines` stands) is the part's when the compressed feed that produced it is."""

    def __init__(self, lines: io.BufferedReader, stream: CompressedStream, part: ShardPart) -> None:
        self._lines, self._stream, self._part = lines, stream, DecompressedPart(stream, part)

    def origin(self, offset: int) -> int | None:
        """The compressed offset the byte at `offset` came from; None at the end of the stream."""
        if not self._lines.peek(1):
            return None
        return self._stream.origin(offset)

    def ends_before(self, offset: int) -> bool:
        return not self._lines.peek(1) or self._part.ends_before(offset)


def _read_compressed_part(
    lines: io.BufferedReader, stream: CompressedStream, path: Path, settings: ReaderSettings, part: ShardPart
) -> Iterator[RawRecord]:
    bounds = _CompressedPart(lines, stream, part)
    offset = number = 0  # where the next line starts, and the lines before it
    if (point := part.resume) is not None:
        offset, number = point.produced, point.newlines
        if not point.ends_line:  # the line the point is inside started before it
            offset += _skip_line(lines)
            number += 1
    while (origin := bounds.origin(offset)) is not None and origin < part.start:
        offset += _skip_line(lines)
        number += 1
    yield from _read_json_lines(lines, path, settings, offset, bounds, first_line=number + 1)


def _skip_line(lines: BinaryIO | io.BufferedIOBase) -> int:
    """Read to the end of the line the stream is in, in chunks never kept; the bytes read."""
    skipped = 0
    while chunk := lines.readline(_SKIP_CHUNK_BYTES):
        skipped += len(chunk)
        if chunk.endswith(b"\n"):
            break
    return skipped


def _seek_line_start(lines: BinaryIO, offset: int) -> int:
    """Move to the first line that starts at or after byte `offset` and return where it starts: the line
    that holds byte `offset - 1` is the previous part's, read to its end in chunks and never kept."""
    if offset == 0:
        return 0
    lines.seek(offset - 1)
    return offset - 1 + _skip_line(lines)


def _read_json_lines(
    lines: BinaryIO | io.BufferedIOBase,
    path: Path,
    settings: ReaderSettings,
    start: int = 0,
    part: _PartEnd | None = None,
    first_line: int | None = 1,
) -> Iterator[RawRecord]:
    """The records of the lines from byte `start` on (the stream is there), up to the end of `part`: at
    `L<number>` counting from `first_line`, or (None) at `byte=<offset>`."""
    numbered = enumerate(_bounded_lines(lines, settings.max_line_bytes, start, part), start=first_line or 0)
    for number, (offset, line, length) in numbered:
        position = f"byte={offset}" if first_line is None else f"L{number}"
        if line is None:
            yield RawRecord(
                position=position,
                uri=f"{path}#{position}",
                modality="text",
                reject_code=RejectCode.LINE_TOO_LONG,
                reject_detail=f"the line has {length} bytes, more than raw.max_line_bytes "
                f"({settings.max_line_bytes})",
            )
        elif line.strip():
            yield _json_line_record(line, position, offset == 0, path, settings)


def _bounded_lines(
    lines: BinaryIO | io.BufferedIOBase, max_line_bytes: int, start: int = 0, part: _PartEnd | None = None
) -> Iterator[tuple[int, bytes | None, int]]:
    """(offset, line, length in bytes without its newline) for each line from byte `start`, stopping at
    the first line that starts after `part`; a line longer than `max_line_bytes` comes as (offset, None,
    length), read to its end in chunks so that memory stays bounded."""
    offset = start
    while not (part is not None and part.ends_before(offset)):
        line = lines.readline(max_line_bytes + 1)
        if not line:
            return
        line_start, offset = offset, offset + len(line)
        if not line.endswith(b"\n") and len(line) > max_line_bytes:
            length = len(line)
            while chunk := lines.readline(_SKIP_CHUNK_BYTES):
                offset += len(chunk)
                length += len(chunk)
                if chunk.endswith(b"\n"):
                    length -= 1
                    break
            yield line_start, None, length
        else:
            yield line_start, line, len(line.rstrip(b"\n"))


def _json_line_record(
    line: bytes, position: str, first: bool, path: Path, settings: ReaderSettings
) -> RawRecord:
    record = RawRecord(position=position, uri=f"{path}#{position}", modality="text")
    try:
        decoded = line.decode("utf-8-sig" if first else "utf-8")
    except UnicodeDecodeError as error:
        return rejected(record, RejectCode.NOT_UTF8, str(error))
    try:
        fields = parse_json_object(decoded)
    except ValueError as error:
        return rejected(record, RejectCode.BAD_JSON, str(error))
    text = fields.pop(settings.text_field, None)
    modality = fields.pop(settings.modality_field, "text")
    record.meta = json_safe(fields)
    if isinstance(text, str):
        record.text = text
    if modality != "text":
        return rejected(
            record, RejectCode.BAD_MODALITY, f"JSON Lines carry text only, got modality {modality!r}"
        )
    if not isinstance(text, str):
        found = "missing" if text is None else f"a {type(text).__name__}"
        return rejected(record, RejectCode.MISSING_TEXT, f"field {settings.text_field!r} is {found}")
    return record
