"""The Parquet reader: rows streamed in batches, one record per row; a value that does not convert to
Python rejects only its own row."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO, Final

import pyarrow as pa
import pyarrow.parquet as pq

from curation_dagster.io.reader_base import (
    MEDIA_EXTENSIONS,
    ReaderSettings,
    json_safe,
    normalise_format,
    rejected,
    whole_shard_record,
)
from curation_dagster.io.records import RawRecord
from curation_dagster.io.shard_parts import ShardPart
from curation_dagster.io.validate import RejectCode, describe_error
from curation_dagster.schema import MODALITIES

PARQUET_BATCH_ROWS: Final = 1024

#: What converting Arrow values to Python raises for a bad value: invalid UTF-8 in a string column
#: (UnicodeDecodeError, a ValueError), a timestamp or date out of Python's range (OverflowError).
_CONVERSION_ERRORS: Final = (pa.ArrowException, ValueError, OverflowError)


def read_parquet(path: Path, settings: ReaderSettings, part: ShardPart | None = None) -> Iterator[RawRecord]:
    """The records of a Parquet file (or of the row groups of one part of it), one per row, at `row=<row
    number in the file>`; a file that cannot be read (further) ends with a `raw.unreadable_shard` record
    after the rows read."""
    rows_read = 0
    with path.open("rb") as file:
        batches = _parquet_batches(file, part)
        while True:
            try:
                first_row, batch = next(batches)
            except StopIteration:
                return
            except (pa.ArrowException, OSError, ValueError) as error:
                yield whole_shard_record(
                    path, RejectCode.UNREADABLE_SHARD, f"after {rows_read} rows: {describe_error(error)}"
                )
                return
            yield from _parquet_batch_records(batch, first_row, path, settings)
            rows_read += batch.num_rows


def _parquet_batches(file: BinaryIO, part: ShardPart | None) -> Iterator[tuple[int, pa.RecordBatch]]:
    """(number of the batch's first row in the file, batch) for every batch of the file or the part."""
    parquet = pq.ParquetFile(file)
    if part is None:
        row = 0
        for batch in parquet.iter_batches(batch_size=PARQUET_BATCH_ROWS):
            yield row, batch
            row += batch.num_rows
        return
    metadata = parquet.metadata
    row = 0
    for group in range(metadata.num_row_groups):
        if part.holds(_row_group_start(metadata.row_group(group))):
            for batch in parquet.iter_batches(batch_size=PARQUET_BATCH_ROWS, row_groups=[group]):
                yield row, batch
                row += batch.num_rows
        else:
            row += metadata.row_group(group).num_rows


def _row_group_start(group: pq.RowGroupMetaData) -> int:
    """The file offset of a row group's first page: where the row group starts, for splitting."""
    starts = [group.column(index).data_page_offset for index in range(group.num_columns)]
    starts += [
        column.dictionary_page_offset
        for column in (group.column(index) for index in range(group.num_columns))
        if column.has_dictionary_page and column.dictionary_page_offset is not None
    ]
    return min(starts, default=0)


def _parquet_batch_records(
    batch: pa.RecordBatch, first_row: int, path: Path, settings: ReaderSettings
) -> Iterator[RawRecord]:
    """The records of one batch, converted at once; a batch holding a value that does not convert to
    Python is converted row by row instead, so that only its bad rows are rejected."""
    try:
        rows = batch.to_pylist()
    except _CONVERSION_ERRORS:
        rows = None
    if rows is not None:
        for offset, fields in enumerate(rows):
            yield _parquet_row_record(fields, first_row + offset, path, settings)
        return
    for offset in range(batch.num_rows):
        row = first_row + offset
        values: dict[str, Any] = {}
        for name, column in zip(batch.schema.names, batch.columns, strict=True):
            try:
                values[name] = column[offset].as_py()
            except _CONVERSION_ERRORS as error:
                bad_text = isinstance(error, UnicodeDecodeError)
                code = RejectCode.NOT_UTF8 if bad_text else RejectCode.UNREADABLE_ROW
                record = RawRecord(position=f"row={row}", uri=f"{path}#row={row}")
                yield rejected(record, code, f"column {name!r}: {describe_error(error)}")
                break
        else:
            yield _parquet_row_record(values, row, path, settings)


def _parquet_row_record(fields: dict[str, Any], row: int, path: Path, settings: ReaderSettings) -> RawRecord:
    text = fields.pop(settings.text_field, None)
    modality = fields.pop(settings.modality_field, None)
    media = fields.pop("media", None)
    stated_format = fields.pop("media_format", None)
    media_format = normalise_format(stated_format) if isinstance(stated_format, str) else None
    record = RawRecord(position=f"row={row}", uri=f"{path}#row={row}", media_format=media_format)
    record.meta = json_safe(fields)
    if media is not None and not isinstance(media, bytes):
        return rejected(record, RejectCode.MISSING_MEDIA, f"column 'media' holds a {type(media).__name__}")
    record.media = media
    if isinstance(text, str):
        record.text = text
    if stated_format is not None and not isinstance(stated_format, str):
        return rejected(
            record, RejectCode.UNKNOWN_FORMAT, f"column 'media_format' holds a {type(stated_format).__name__}"
        )
    if modality is None:
        modality = "text" if media is None else MEDIA_EXTENSIONS.get(media_format or "")
        if modality is None:
            return rejected(
                record,
                RejectCode.UNKNOWN_FORMAT,
                f"row has media but no modality, and media_format {media_format!r} is not a known one",
            )
    record.modality = modality if isinstance(modality, str) else None
    if modality not in MODALITIES:
        return rejected(record, RejectCode.BAD_MODALITY, f"modality {modality!r} is not one of {MODALITIES}")
    if text is not None and not isinstance(text, str):
        return rejected(
            record, RejectCode.MISSING_TEXT, f"column {settings.text_field!r} holds a {type(text).__name__}"
        )
    if modality == "text" and text is None:
        return rejected(record, RejectCode.MISSING_TEXT, f"column {settings.text_field!r} is null or absent")
    if modality != "text" and media is None:
        return rejected(record, RejectCode.MISSING_MEDIA, f"{modality} row has no media bytes")
    return record
