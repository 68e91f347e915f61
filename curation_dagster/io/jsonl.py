"""The JSON Lines reader, plain or gzipped: one record per non-blank line, and a line too long to hold is
rejected and skipped in bounded memory."""

from __future__ import annotations

import gzip
import io
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Final

from curation_dagster.io.reader_base import (
    ReaderSettings,
    json_safe,
    parse_json_object,
    rejected,
    truncated_record,
)
from curation_dagster.io.records import RawRecord
from curation_dagster.io.validate import RejectCode

#: Bytes read at a time while skipping the rest of a line longer than `max_line_bytes`.
_SKIP_CHUNK_BYTES: Final = 2**20


def read_plain_json_lines(path: Path, settings: ReaderSettings) -> Iterator[RawRecord]:
    """The records of a JSON Lines file, one per non-blank line."""
    with path.open("rb") as lines:
        yield from _read_json_lines(lines, path, settings)


def read_gzip_json_lines(path: Path, settings: ReaderSettings) -> Iterator[RawRecord]:
    """The records of a gzipped JSON Lines file; a stream that ends early or is not gzip ends with a
    `raw.truncated_shard` record after the lines read."""
    with gzip.open(path, "rb") as lines:
        try:
            yield from _read_json_lines(lines, path, settings)
        except (EOFError, gzip.BadGzipFile, zlib.error) as error:
            yield truncated_record(path, error, "text")


def _read_json_lines(lines: io.BufferedIOBase, path: Path, settings: ReaderSettings) -> Iterator[RawRecord]:
    for number, (line, length) in enumerate(_bounded_lines(lines, settings.max_line_bytes), start=1):
        if line is None:
            yield RawRecord(
                position=f"L{number}",
                uri=f"{path}#L{number}",
                modality="text",
                reject_code=RejectCode.LINE_TOO_LONG,
                reject_detail=f"the line has {length} bytes, more than raw.max_line_bytes "
                f"({settings.max_line_bytes})",
            )
        elif line.strip():
            yield _json_line_record(line, number, path, settings)


def _bounded_lines(lines: io.BufferedIOBase, max_line_bytes: int) -> Iterator[tuple[bytes | None, int]]:
    """(line, length in bytes without its newline) for each line; a line longer than `max_line_bytes`
    comes as (None, length), read to its end in chunks so that memory stays bounded."""
    while line := lines.readline(max_line_bytes + 1):
        if not line.endswith(b"\n") and len(line) > max_line_bytes:
            length = len(line)
            while chunk := lines.readline(_SKIP_CHUNK_BYTES):
                length += len(chunk)
                if chunk.endswith(b"\n"):
                    length -= 1
                    break
            yield None, length
        else:
            yield line, len(line.rstrip(b"\n"))


def _json_line_record(line: bytes, number: int, path: Path, settings: ReaderSettings) -> RawRecord:
    record = RawRecord(position=f"L{number}", uri=f"{path}#L{number}", modality="text")
    try:
        decoded = line.decode("utf-8-sig" if number == 1 else "utf-8")
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
