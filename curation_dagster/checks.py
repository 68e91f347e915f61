"""Checks over a stage's committed lake files: conservation of rows and unique ids."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from curation_dagster.io.lake import Lake


@dataclass
class CheckOutcome:
    """Whether a check passed, with the numbers that show why."""

    passed: bool
    description: str
    metadata: dict[str, Any] = field(default_factory=dict)


def check_conservation(lake: Lake, version: str, stage: str, shard: str, rows_in: int) -> CheckOutcome:
    """Rows in = rows kept + rows rejected, counted from the files on disk, not from the run's counters."""
    kept = lake.num_rows(lake.path(version, stage, shard))
    rejected = lake.num_rows(lake.path(version, stage, shard, rejected=True))
    passed = rows_in == kept + rejected
    return CheckOutcome(
        passed,
        f"shard {shard}: {rows_in} in = {kept} kept + {rejected} rejected"
        if passed
        else f"shard {shard}: {rows_in} in but {kept} kept + {rejected} rejected = {kept + rejected}",
        {
            "shard": shard,
            "rows_in": rows_in,
            "rows_kept": kept,
            "rows_rejected": rejected,
            "rows_missing": rows_in - kept - rejected,
        },
    )


def check_unique_ids(lake: Lake, version: str, stage: str, shard: str) -> CheckOutcome:
    """No id appears twice among a shard's kept and rejected rows."""
    files = [
        lake.url(lake.path(version, stage, shard)),
        lake.url(lake.path(version, stage, shard, rejected=True)),
    ]
    connection = lake.connect()
    total, distinct = connection.execute(
        "SELECT count(*), count(DISTINCT id) FROM read_parquet(?, union_by_name=true)", [files]
    ).fetchone()
    duplicated = [
        row[0]
        for row in connection.execute(
            "SELECT id FROM read_parquet(?, union_by_name=true) GROUP BY id HAVING count(*) > 1 ORDER BY id LIMIT 5",
            [files],
        ).fetchall()
    ]
    passed = total == distinct
    return CheckOutcome(
        passed,
        f"shard {shard}: {total} ids, all unique"
        if passed
        else f"shard {shard}: {total - distinct} duplicate ids, e.g. {duplicated}",
        {"shard": shard, "ids": int(total), "distinct_ids": int(distinct)},
    )
