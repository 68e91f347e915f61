"""The JSON Lines reader, plain or gzipped: one record per non-blank line, and a line too long to hold is
rejected and skipped in bounded memory."""

from __future__ import annotations

import gzip
import io
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO, Final

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
        yield from _read_json_lines(lines, path, settings, start, part)


def read_gzip_json_lines(
    path: Path, settings: ReaderSettings, part: ShardPart | None = None
) -> Iterator[RawRecord]:
    """The records of a gzipped JSON Lines file; a stream that ends early or is not gzip ends with a
    `raw.truncated_shard` record after the lines read. A gzip stream cannot be entered in the middle, so
    such a file is never split into parts (`shard_parts.UNSPLITTABLE_KINDS`)."""
    if part is not None:
        raise ValueError(f"{path} is gzipped: it can only be read whole, not as {part.describe()}")
    with gzip.open(path, "rb") as lines:
        try:
            yield from _read_json_lines(lines, path, settings)
        except (EOFError, gzip.BadGzipFile, zlib.error) as error:
            yield truncated_record(path, error, "text")


def _seek_line_start(lines: BinaryIO, offset: int) -> int:
    """Move to the first line that starts at or after byte `offset` and return where it starts: the line
    that holds byte `offset - 1` is the previous part's, read to its end in chunks and never kept."""
    if offset == 0:
        return 0
    lines.seek(offset - 1)
    position = offset - 1
    while chunk := lines.readline(_SKIP_CHUNK_BYTES):
        position += len(chunk)
        if chunk.endswith(b"\n"):
            break
    return position


def _read_json_lines(
    lines: BinaryIO | io.BufferedIOBase,
    path: Path,
    settings: ReaderSettings,
    start: int = 0,
    part: ShardPart | None = None,
) -> Iterator[RawRecord]:
    """The records of the lines from byte `start` on (the stream is there), up to the end of `part`."""
    numbered = enumerate(_bounded_lines(lines, settings.max_line_bytes, start, part), start=1)
    for number, (offset, line, length) in numbered:
        position = f"L{number}" if part is None else f"byte={offset}"
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
    lines: BinaryIO | io.BufferedIOBase, max_line_bytes: int, start: int = 0, part: ShardPart | None = None
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
