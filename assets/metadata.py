"""Turning a stage's result into Dagster metadata and asset-check results."""

import base64
import io
from typing import Any

import pyarrow as pa
from dagster import (
    AssetCheckResult,
    AssetKey,
    MetadataValue,
    TableColumn,
    TableColumnDep,
    TableColumnLineage,
    TableSchema,
)

from curation_dagster.checks import CheckOutcome
from curation_dagster.columns import COLUMN_DESCRIPTIONS
from curation_dagster.filters.chain import build_chain
from curation_dagster.io.lake import Lake
from curation_dagster.media import first_video_frame, media_bytes
from curation_dagster.schema import DEDUP_FIELDS, SYNTH_FIELDS
from curation_dagster.shard_io import StageResult
from curation_dagster.spec import VersionSpec
from curation_dagster.stages import UPSTREAM
from curation_dagster.totals import StageTotals

#: Kept rows shown per materialization.
SAMPLE_ROWS = 5
#: The modalities whose kept samples carry a thumbnail (a video's is its first frame).
VISUAL = ("image", "video")
#: The longest side of an image sample's thumbnail (about 2 KB as a JPEG in the metadata).
THUMBNAIL_PIXELS = 96


def column_schema(schema: pa.Schema, descriptions: dict[str, str] | None = None) -> TableSchema:
    """The Arrow schema as Dagster's column schema, shown on the asset page with each column's meaning."""
    described = descriptions or {}
    return TableSchema(
        columns=[
            TableColumn(name=field.name, type=str(field.type), description=described.get(field.name))
            for field in schema
        ]
    )


def column_descriptions(spec: VersionSpec, stage: str) -> dict[str, str]:
    """Descriptions of the columns `stage` writes under `spec`: the contract's and stages' columns, and
    each filter score named after its filter and the columns it reads."""
    described = dict(COLUMN_DESCRIPTIONS)
    if stage not in ("raw", "deduped"):  # scores are computed in filtered and passed on from there
        for chain in build_chain(spec.filters).chains.values():
            for item in chain:
                inputs = ", ".join(f"`{name}`" for name in item.input_columns())
                for field in item.score_fields:
                    described.setdefault(field.name, f"Computed by the `{item.name}` filter from {inputs}.")
    return described


def rejections_markdown(reasons: dict[str, int], rows_in: int) -> str:
    """A markdown table of rejected rows by reason code."""
    if not reasons:
        return "No rows rejected."
    lines = ["| reason | rows | share of input |", "| --- | ---: | ---: |"]
    for reason, count in sorted(reasons.items(), key=lambda item: (-item[1], item[0])):
        lines.append(f"| `{reason}` | {count} | {count / max(rows_in, 1):.1%} |")
    return "\n".join(lines)


def stage_metadata(
    result: StageResult, code_version: str, totals: StageTotals, descriptions: dict[str, str] | None = None
) -> dict[str, Any]:
    """The stage's totals over every shard first (what the asset's page shows as its size), then this
    shard's row counts, schema, rejections by reason, output paths, timing and stage-specific numbers."""
    metadata: dict[str, Any] = {
        "all_shards": MetadataValue.md(totals.markdown()),
        "total_rows_kept": totals.kept,
        "total_rows_rejected": totals.rejected,
        "shards_with_output": totals.shards,
        "dagster/row_count": totals.kept,
        "dagster/partition_row_count": result.rows_kept,
        "dagster/column_schema": column_schema(result.schema, descriptions),
        "shard": result.shard,
        "rows_in": result.rows_in,
        "rows_kept": result.rows_kept,
        "rows_rejected": result.rows_rejected,
        "reject_rate": MetadataValue.float(round(result.rows_rejected / max(result.rows_in, 1), 4)),
        "rejections": MetadataValue.md(rejections_markdown(result.reasons, result.rows_in)),
        "rejections_by_reason": MetadataValue.json(result.reasons),
        "kept_path": MetadataValue.path(result.kept_path),
        "rejected_path": MetadataValue.path(result.rejected_path),
        "elapsed_s": MetadataValue.float(round(result.elapsed_s, 3)),
        "items_per_second": MetadataValue.float(round(result.items_per_second, 1)),
        "code_version": code_version,
    }
    for name, value in result.extra.items():
        metadata[name] = _metadata_value(value)
    return metadata


def _metadata_value(value: Any) -> Any:
    """Stage numbers as they are, fractions to four significant digits; mappings as JSON; markdown tables
    (stage text starting with `|`) as markdown, so the UI renders them."""
    if value is None:
        return MetadataValue.null()
    if isinstance(value, float):
        return float(f"{value:.4g}")
    if isinstance(value, dict):
        return MetadataValue.json(value)
    if isinstance(value, str) and value.startswith("|"):
        return MetadataValue.md(value)
    return value


def check_result(name: str, outcome: CheckOutcome) -> AssetCheckResult:
    return AssetCheckResult(
        check_name=name, passed=outcome.passed, description=outcome.description, metadata=outcome.metadata
    )


def _derived_columns(spec: VersionSpec, stage: str) -> dict[str, list[str]]:
    """The columns `stage` computes, each with the upstream columns it derives from."""
    derived: dict[str, list[str]] = {}
    if stage == "deduped":
        derived = {
            "content_hash": ["text", "media"],
            "dup_of": ["id"],
            "dup_similarity": ["text"],
            "dup_measure": ["text"],
        }
        derived = {field.name: derived.get(field.name, ["id"]) for field in DEDUP_FIELDS}
    if stage in ("filtered", "synthesized"):
        for chain in build_chain(spec.filters).chains.values():
            for item in chain:
                for field in item.score_fields:
                    derived.setdefault(field.name, list(item.input_columns()))
    if stage == "synthesized":
        derived.update({field.name: ["id"] for field in SYNTH_FIELDS})
    return derived


def column_lineage(spec: VersionSpec, stage: str, schema: pa.Schema) -> TableColumnLineage | None:
    """Which upstream columns each output column derives from: itself for the columns a stage passes on,
    the inputs of the filter or step that computed it otherwise. Raw has no upstream asset."""
    if stage not in UPSTREAM:
        return None
    upstream = AssetKey([spec.name, UPSTREAM[stage]])
    derived = _derived_columns(spec, stage)
    deps: dict[str, list[TableColumnDep]] = {}
    for field in schema:
        if stage == "selected" and field.name.startswith("select_"):
            sources = ["id"]
        else:
            sources = derived.get(field.name) or [field.name]
        deps[field.name] = [TableColumnDep(asset_key=upstream, column_name=name) for name in sources]
    return TableColumnLineage(deps_by_column=deps)


def kept_samples_markdown(lake: Lake, kept_path: str, limit: int = SAMPLE_ROWS) -> str:
    """A few kept rows (the first ids) as a markdown table: id, modality, text or uri, and a thumbnail of
    each image and of each clip's first frame (inline JPEG, so the UI shows it without reaching the lake)."""
    rows = (
        lake.connect()
        .sql(
            "SELECT id, modality, coalesce(left(text, 100), uri), "
            "CASE WHEN modality IN ('image', 'video') THEN media END, uri FROM read_parquet(?) "
            "ORDER BY id LIMIT ?",
            params=[kept_path, limit],
        )
        .fetchall()
    )
    if not rows:
        return "No rows kept."
    lines = ["| id | modality | text or uri | preview |", "| --- | --- | --- | --- |"]
    for item_id, modality, shown, media, uri in rows:
        cell = " ".join(str(shown or "").split()).replace("|", "\\|")
        preview = thumbnail_markdown({"media": media, "uri": uri}, modality) if modality in VISUAL else ""
        lines.append(f"| `{item_id}` | {modality} | {cell} | {preview} |")
    return "\n".join(lines)


def thumbnail_markdown(row: dict[str, Any], modality: str = "image", side: int = THUMBNAIL_PIXELS) -> str:
    """An image item, or a video item's first frame, as a markdown image of at most `side` pixels a side,
    a JPEG in a data URI; empty when its bytes cannot be read or decoded (a sample is never worth a failed
    run)."""
    from PIL import Image

    try:
        data = media_bytes(row)
        with first_video_frame(data) if modality == "video" else Image.open(io.BytesIO(data)) as image:
            image.thumbnail((side, side))
            buffer = io.BytesIO()
            image.convert("RGB").save(buffer, format="JPEG", quality=80)
    except (OSError, ValueError, Image.DecompressionBombError):
        return ""
    return f"![thumbnail](data:image/jpeg;base64,{base64.b64encode(buffer.getvalue()).decode()})"
