"""A stage's totals over every shard of its version, read from the lake: what an asset's page shows first,
since a partitioned asset's latest materialization otherwise speaks for one shard only."""

from __future__ import annotations

from dataclasses import dataclass, field

from curation_dagster.io.lake import Lake


@dataclass(frozen=True)
class StageTotals:
    """Shards with output, rows kept and rejected in all of them, and rejected rows by reason code."""

    shards: int
    kept: int
    rejected: int
    reasons: dict[str, int] = field(default_factory=dict)

    def markdown(self) -> str:
        """One line of totals, then the reasons of every shard's rejected rows, most frequent first."""
        rows_in = self.kept + self.rejected
        lines = [
            f"**{self.kept:,} kept, {self.rejected:,} rejected of {rows_in:,} rows in {self.shards:,} "
            f"shard{'s' if self.shards != 1 else ''}** (this materialization's shard: below).",
        ]
        if self.reasons:
            lines += ["", "| reason, all shards | rows | share |", "| --- | ---: | ---: |"]
            for reason, count in sorted(self.reasons.items(), key=lambda item: (-item[1], item[0])):
                lines.append(f"| `{reason}` | {count:,} | {count / max(rows_in, 1):.1%} |")
        return "\n".join(lines)


def stage_totals(lake: Lake, version: str, stage: str) -> StageTotals:
    """The totals of `stage` over its committed shard files: kept rows counted from the Parquet footers,
    rejected rows by their `reject_reason` column alone (DuckDB reads the files in parallel)."""
    kept_shards = lake.list_shards(version, stage)
    rejected_shards = lake.list_shards(version, stage, rejected=True)
    connection = lake.connect()
    kept, reasons = 0, {}
    if kept_shards:
        pattern = lake.url(f"{lake.stage_dir(version, stage)}/*.parquet")
        kept = int(connection.execute("SELECT count(*) FROM read_parquet(?)", [pattern]).fetchone()[0])
    if rejected_shards:
        pattern = lake.url(f"{lake.stage_dir(version, stage, rejected=True)}/*.parquet")
        found = connection.execute(
            "SELECT coalesce(reject_reason, '(no reason)'), count(*) FROM read_parquet(?, union_by_name=true) "
            "GROUP BY 1",
            [pattern],
        ).fetchall()
        reasons = {str(reason): int(count) for reason, count in sorted(found)}
    return StageTotals(len(set(kept_shards) | set(rejected_shards)), kept, sum(reasons.values()), reasons)
