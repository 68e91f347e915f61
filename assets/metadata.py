"""Turning a stage's result into Dagster metadata and asset-check results."""

from typing import Any

import pyarrow as pa
from dagster import AssetCheckResult, MetadataValue, TableColumn, TableSchema

from curation_dagster.checks import CheckOutcome
from curation_dagster.pipeline import StageResult


def column_schema(schema: pa.Schema) -> TableSchema:
    """The Arrow schema as Dagster's column schema, shown on the asset page."""
    return TableSchema(columns=[TableColumn(name=field.name, type=str(field.type)) for field in schema])


def rejections_markdown(reasons: dict[str, int], rows_in: int) -> str:
    """A markdown table of rejected rows by reason code."""
    if not reasons:
        return "No rows rejected."
    lines = ["| reason | rows | share of input |", "| --- | ---: | ---: |"]
    for reason, count in sorted(reasons.items(), key=lambda item: (-item[1], item[0])):
        lines.append(f"| `{reason}` | {count} | {count / max(rows_in, 1):.1%} |")
    return "\n".join(lines)


def stage_metadata(result: StageResult, code_version: str) -> dict[str, Any]:
    """Row counts, schema, rejections by reason, output paths, timing and stage-specific numbers."""
    metadata: dict[str, Any] = {
        "dagster/row_count": result.rows_kept,
        "dagster/partition_row_count": result.rows_kept,
        "dagster/column_schema": column_schema(result.schema),
        "rows_in": result.rows_in,
        "rows_kept": result.rows_kept,
        "rows_rejected": result.rows_rejected,
        "reject_rate": MetadataValue.float(result.rows_rejected / max(result.rows_in, 1)),
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
    """Stage numbers as they are; mappings as JSON; markdown tables (stage text starting with `|`) as
    markdown, so the UI renders them."""
    if value is None:
        return MetadataValue.null()
    if isinstance(value, dict):
        return MetadataValue.json(value)
    if isinstance(value, str) and value.startswith("|"):
        return MetadataValue.md(value)
    return value


def check_result(name: str, outcome: CheckOutcome) -> AssetCheckResult:
    return AssetCheckResult(
        check_name=name, passed=outcome.passed, description=outcome.description, metadata=outcome.metadata
    )
