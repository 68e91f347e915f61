"""The item contract: one row per item, the same columns in every stage plus what stages add."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from typing import Any, Final

import pyarrow as pa

MODALITIES: Final = ("text", "image", "audio", "video")

#: The contract columns every stage carries (DESIGN.md, "The item contract").
BASE_FIELDS: Final = [
    pa.field("id", pa.string(), nullable=False),
    pa.field("modality", pa.string(), nullable=False),
    pa.field("text", pa.large_string()),
    pa.field("media", pa.large_binary()),
    pa.field("uri", pa.string(), nullable=False),
    pa.field("shard", pa.string(), nullable=False),
    pa.field("meta", pa.string()),
]

#: Basic media properties recorded by the raw stage.
MEDIA_FIELDS: Final = [
    pa.field("media_format", pa.string()),
    pa.field("width", pa.int32()),
    pa.field("height", pa.int32()),
    pa.field("duration_s", pa.float64()),
    pa.field("sample_rate", pa.int32()),
    pa.field("channels", pa.int32()),
    pa.field("fps", pa.float64()),
    pa.field("frame_count", pa.int32()),
]

RAW_SCHEMA: Final = pa.schema(BASE_FIELDS + MEDIA_FIELDS)

#: Columns added to every rejected row, in `<stage>/_rejected/<shard>.parquet`.
REJECT_FIELDS: Final = [
    pa.field("reject_stage", pa.string(), nullable=False),
    pa.field("reject_reason", pa.string(), nullable=False),
    pa.field("reject_detail", pa.string()),
]

#: Columns the deduped stage adds: a removed row's kept item, their similarity and what measured it
#: (`exact_content`; for near-duplicate text `minhash_estimate`, `exact_words` or `bottom_k_words`; ...).
DEDUP_FIELDS: Final = [
    pa.field("content_hash", pa.string()),
    pa.field("dup_of", pa.string()),
    pa.field("dup_similarity", pa.float64()),
    pa.field("dup_measure", pa.string()),
]

#: Columns the synthesized stage adds (provenance of generated items).
SYNTH_FIELDS: Final = [
    pa.field("synthetic", pa.bool_()),
    pa.field("parent_ids", pa.list_(pa.string())),
    pa.field("generator", pa.string()),
]


def item_id(shard: str, position: str) -> str:
    """A stable id from the shard key and the item's position in it: the same input gives the same id.

    `surrogatepass` lets positions from names that are not UTF-8 hash too; valid UTF-8 hashes as always.
    """
    key = f"{shard}#{position}".encode("utf-8", "surrogatepass")
    return hashlib.blake2b(key, digest_size=8).hexdigest()


def with_fields(schema: pa.Schema, fields: Iterable[pa.Field]) -> pa.Schema:
    """`schema` plus `fields`, replacing any field of the same name in place."""
    result = schema
    for field in fields:
        index = result.get_field_index(field.name)
        result = result.set(index, field) if index >= 0 else result.append(field)
    return result


def rejected_schema(schema: pa.Schema) -> pa.Schema:
    """The schema of a stage's rejected rows: its kept schema plus the reject columns."""
    return with_fields(schema, REJECT_FIELDS)


def conform(table: pa.Table, schema: pa.Schema) -> pa.Table:
    """`table` with exactly `schema`'s columns in order; missing columns are filled with nulls."""
    columns = []
    for field in schema:
        if field.name in table.column_names:
            columns.append(table.column(field.name).cast(field.type))
        else:
            columns.append(pa.nulls(table.num_rows, field.type))
    return pa.Table.from_arrays(columns, schema=schema)


def rows_to_table(rows: Iterable[Mapping[str, Any]], schema: pa.Schema) -> pa.Table:
    """Build a table of `schema` from row dicts; absent keys become nulls."""
    rows = list(rows)
    return pa.Table.from_pydict(
        {field.name: [row.get(field.name) for row in rows] for field in schema}, schema=schema
    )


def mark_rejected(table: pa.Table, stage: str, reasons: list[str], details: list[str | None]) -> pa.Table:
    """`table`'s rows with the reject columns set, one reason code and detail per row."""
    out = table
    for name, values in (
        ("reject_stage", [stage] * table.num_rows),
        ("reject_reason", reasons),
        ("reject_detail", details),
    ):
        array = pa.array(values, pa.string())
        index = out.schema.get_field_index(name)
        out = out.set_column(index, name, array) if index >= 0 else out.append_column(name, array)
    return out
