"""What happened to one item, stage by stage: kept or rejected, why, and with which scores.

The whole history is one DuckDB query over every kept and rejected file of the version's five stages,
read together with `union_by_name` (stages add columns) and `filename` (which says the stage and the
outcome). Run it yourself on a lake (`files` lists `<version>/<stage>/*.parquet` and
`<version>/<stage>/_rejected/*.parquet` for every stage):

    SELECT regexp_extract(filename, '/([^/]+)/(_rejected/)?[^/]+\\.parquet$', 1) AS stage,
           CASE WHEN contains(filename, '/_rejected/') THEN 'rejected' ELSE 'kept' END AS outcome,
           * EXCLUDE (filename, text, media, meta)
    FROM read_parquet(?, union_by_name = true, filename = true)
    WHERE id = ?
    ORDER BY list_position(['raw', 'deduped', 'filtered', 'selected', 'synthesized'], stage)

An item that a stage rejected appears in that stage's `_rejected` file and in no later stage; a
synthetic item starts at `synthesized`, with its `parent_ids`. An unknown id has an empty history.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

from curation_dagster.io.lake import Lake, check_segment
from curation_dagster.stages import STAGES

#: The query in the module docstring: `?` are the list of stage files and the item id.
LINEAGE_QUERY = """
SELECT regexp_extract(filename, '/([^/]+)/(_rejected/)?[^/]+\\.parquet$', 1) AS stage,
       CASE WHEN contains(filename, '/_rejected/') THEN 'rejected' ELSE 'kept' END AS outcome,
       * EXCLUDE (filename, text, media, meta)
FROM read_parquet(?, union_by_name = true, filename = true)
WHERE id = ?
ORDER BY list_position(['raw', 'deduped', 'filtered', 'selected', 'synthesized'], stage)
"""

#: Columns that describe where an item came from or what became of it, rather than a score.
_NOT_SCORES = frozenset(
    {
        "stage",
        "outcome",
        "id",
        "modality",
        "uri",
        "shard",
        "media_format",
        "content_hash",
        "reject_stage",
        "reject_reason",
        "reject_detail",
        "dup_of",
        "dup_similarity",
        "dup_measure",
        "synthetic",
        "parent_ids",
        "generator",
        "select_strategy",
    }
)


@dataclass(frozen=True)
class StageOutcome:
    """One stage an item reached: whether it was kept, why not, and every score it had there."""

    stage: str
    outcome: str
    modality: str
    uri: str
    shard: str
    reject_reason: str | None = None
    reject_detail: str | None = None
    dup_of: str | None = None
    dup_similarity: float | None = None
    dup_measure: str | None = None
    synthetic: bool | None = None
    parent_ids: list[str] = field(default_factory=list)
    generator: str | None = None
    scores: dict[str, Any] = field(default_factory=dict)

    @property
    def kept(self) -> bool:
        return self.outcome == "kept"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def stage_files(lake: Lake, version: str) -> list[str]:
    """Every kept and rejected shard file of the version's stages, as URLs DuckDB reads."""
    check_segment(version, "version")
    return [
        lake.url(lake.path(version, stage, shard, rejected=rejected))
        for stage in STAGES
        for rejected in (False, True)
        for shard in lake.list_shards(version, stage, rejected=rejected)
    ]


def item_history(lake: Lake, version: str, item_id: str) -> list[StageOutcome]:
    """The item's outcome at every stage it reached, earliest first; empty for an unknown id."""
    files = stage_files(lake, version)
    if not files:
        return []
    rows = lake.connect().sql(LINEAGE_QUERY, params=[files, item_id]).to_arrow_table().to_pylist()
    return [_outcome(row) for row in rows]


def _outcome(row: dict[str, Any]) -> StageOutcome:
    scores = {
        name: value
        for name, value in row.items()
        if name not in _NOT_SCORES and value is not None and not _is_nan(value)
    }
    return StageOutcome(
        stage=row["stage"],
        outcome=row["outcome"],
        modality=row["modality"],
        uri=row["uri"],
        shard=row["shard"],
        reject_reason=row.get("reject_reason"),
        reject_detail=row.get("reject_detail"),
        dup_of=row.get("dup_of"),
        dup_similarity=row.get("dup_similarity"),
        dup_measure=row.get("dup_measure"),
        synthetic=row.get("synthetic"),
        parent_ids=list(row.get("parent_ids") or []),
        generator=row.get("generator"),
        scores=scores,
    )


def _is_nan(value: Any) -> bool:
    return isinstance(value, float) and math.isnan(value)


def history_table(history: list[StageOutcome]) -> str:
    """The history as a plain-text table for a terminal: one line per stage."""
    header = ("stage", "outcome", "reason", "detail", "duplicate of", "scores")
    lines = [
        (
            entry.stage,
            entry.outcome,
            entry.reject_reason or "",
            _clip(entry.reject_detail or "", 60),
            f"{entry.dup_of} ({entry.dup_similarity:.2f}{f', {entry.dup_measure}' if entry.dup_measure else ''})"
            if entry.dup_of and entry.dup_similarity is not None
            else entry.dup_of or "",
            ", ".join(f"{name}={_format(value)}" for name, value in sorted(entry.scores.items())),
        )
        for entry in history
    ]
    widths = [max(len(row[index]) for row in [header, *lines]) for index in range(len(header) - 1)]
    rendered = []
    for row in [header, *lines]:
        cells = [cell.ljust(width) for cell, width in zip(row[:-1], widths, strict=True)]
        rendered.append("  ".join([*cells, row[-1]]).rstrip())
    return "\n".join(rendered)


def _format(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def _clip(text: str, limit: int) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"
