"""The `lake` resource: the storage root, the landing zone, the claim lock and DuckDB over the Parquet lake."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from dagster import ConfigurableResource

from curation_dagster.io.lake import Lake
from curation_dagster.settings import DEFAULT_MAX_SHARD_BYTES


class LakeResource(ConfigurableResource):
    """Where stage outputs live (a local path or an fsspec URL) and where landing shards arrive."""

    root: str
    """The lake root ($CURATION_HOME): `<root>/<version>/<stage>/<shard>.parquet`."""
    landing: str
    """The landing zone ($CURATION_LANDING): one file or folder per shard."""
    max_shard_bytes: int = DEFAULT_MAX_SHARD_BYTES
    """A landing file or folder larger than this is registered as several shards, one per bounded part
    ($CURATION_MAX_SHARD_BYTES, 256 MiB by default): the sensor and every run must see the same value."""
    claim_lock_dsn: str = ""
    """A PostgreSQL database for the cross-shard claim locks ($CURATION_LOCK_DSN), e.g. the Dagster
    instance's: needed for a lake on object storage or workers on several machines; empty locks a local
    lake with files."""

    def lake(self) -> Lake:
        return Lake(self.root, claim_lock_dsn=self.claim_lock_dsn)

    def landing_path(self) -> Path:
        return Path(self.landing).expanduser()

    def duckdb(self, version: str) -> Any:
        """An in-memory DuckDB connection with a view per stage of `version`; it only reads the lake."""
        return self.lake().duckdb(version)
