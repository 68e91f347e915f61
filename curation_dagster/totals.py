"""A stage's totals over every shard of its version, read from the lake: what an asset's page shows first,
since a partitioned asset's latest materialization otherwise speaks for one shard only.

The counts of each shard file are kept in a ledger, `<version>/stage_totals/<stage>.json`, beside the
identity of the file they were counted from (its size and modification time, or its ETag on object
storage). A materialization lists the stage's two folders, reads the ledger and counts only the files that
are new or changed since (usually its own shard's): adding a shard costs a listing and one small read and
write, not a read of every shard's footer. The ledger is a cache checked against the listing, so writers
that race lose nothing: a count that a concurrent write dropped is counted again by the next reader.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Final

from curation_dagster.io.lake import Lake

#: The ledger's folder in a version, and its format.
TOTALS_DIR: Final = "stage_totals"
_FORMAT: Final = 1


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
    rejected rows by their `reject_reason` column alone, each file counted once and remembered in the
    ledger until it changes."""
    kept_files = _shard_files(lake, lake.stage_dir(version, stage))
    rejected_files = _shard_files(lake, lake.stage_dir(version, stage, rejected=True))
    path = f"{lake.stage_dir(version, TOTALS_DIR)}/{stage}.json"
    ledger = _read_ledger(lake, path)
    kept = {shard: entry for shard, entry in ledger["kept"].items() if entry["file"] == kept_files.get(shard)}
    rejected = {
        shard: entry
        for shard, entry in ledger["rejected"].items()
        if entry["file"] == rejected_files.get(shard)
    }
    connection = None
    if stale := sorted(set(kept_files) - set(kept)):
        connection = lake.connect()
        counted = _count(connection, lake, version, stage, stale, False)
        for shard in stale:
            kept[shard] = {"file": kept_files[shard], "rows": sum(counted.get(shard, {}).values())}
    if stale := sorted(set(rejected_files) - set(rejected)):
        connection = connection or lake.connect()
        counted = _count(connection, lake, version, stage, stale, True)
        for shard in stale:
            rejected[shard] = {"file": rejected_files[shard], "reasons": counted.get(shard, {})}
    current = {
        "format": _FORMAT,
        "kept": dict(sorted(kept.items())),
        "rejected": dict(sorted(rejected.items())),
    }
    if current != ledger:
        lake.write_bytes(path, json.dumps(current, sort_keys=True).encode())
    reasons: dict[str, int] = {}
    for entry in rejected.values():
        for reason, count in entry["reasons"].items():
            reasons[reason] = reasons.get(reason, 0) + count
    return StageTotals(
        len(set(kept) | set(rejected)),
        sum(entry["rows"] for entry in kept.values()),
        sum(reasons.values()),
        dict(sorted(reasons.items())),
    )


def _shard_files(lake: Lake, folder: str) -> dict[str, str]:
    """Each committed shard file of a stage folder, by shard: its identity (size, and ETag on object
    storage, modification time and inode on a local disk), from one listing."""
    try:
        entries = lake.fs.ls(folder, detail=True)
    except (FileNotFoundError, NotADirectoryError):  # no shard yet (one request less than asking first)
        return {}
    files = {}
    for entry in entries:
        name = str(entry["name"]).rstrip("/").rsplit("/", 1)[-1]
        if entry.get("type") == "file" and name.endswith(".parquet"):
            stamp = entry.get("ETag") or entry.get("etag") or [entry.get("mtime"), entry.get("ino")]
            files[name[: -len(".parquet")]] = json.dumps([entry.get("size"), stamp], default=str)
    return files


def _read_ledger(lake: Lake, path: str) -> dict[str, Any]:
    """The ledger at `path`, or an empty one (none yet, or of another format)."""
    empty: dict[str, Any] = {"format": _FORMAT, "kept": {}, "rejected": {}}
    data = lake.read_bytes(path)
    if data is None:
        return empty
    ledger: dict[str, Any] = json.loads(data)
    return ledger if ledger.get("format") == _FORMAT else empty


def _count(
    connection: Any, lake: Lake, version: str, stage: str, shards: list[str], rejected: bool
) -> dict[str, dict[str, int]]:
    """Per shard, its rows by reject reason (kept files: all under one key), for these shards' files of
    the stage (DuckDB reads them in parallel)."""
    urls = {lake.url(lake.path(version, stage, shard, rejected=rejected)): shard for shard in shards}
    reason = "coalesce(reject_reason, '(no reason)')" if rejected else "'kept'"
    found = connection.execute(
        f"SELECT filename, {reason}, count(*) FROM read_parquet(?, union_by_name=true, filename=true) "
        "GROUP BY 1, 2",
        [list(urls)],
    ).fetchall()
    counted: dict[str, dict[str, int]] = {}
    for filename, why, count in found:
        counted.setdefault(urls[str(filename)], {})[str(why)] = int(count)
    return counted
