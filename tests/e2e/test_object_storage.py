"""The README's main command with the lake in object storage: `curation run` in a subprocess, as a user runs
it, with `CURATION_HOME=s3://<bucket>/lake` on a local S3-compatible server (moto's server mode, reached
through `FSSPEC_S3_ENDPOINT_URL`) and the claim lock on a throwaway PostgreSQL server (`CURATION_LOCK_DSN`).
The bucket is then read through s3fs: every stage of every shard, the rows a local lake gives, the data
cards, verified releases, and a second run that finds everything up to date and writes nothing."""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pyarrow.compute as pc
import pytest

from curation_dagster.io.lake import Lake
from curation_dagster.io.landing import discover_shards, read_shard
from curation_dagster.release import read_manifest, verify_release
from curation_dagster.report import report_path
from curation_dagster.stages import STAGES
from tests.e2e.demo_rows import RECORD, differences, lake_rows
from tests.servers import S3Server, postgres_server

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
VERSIONS = ("demo", "text_formal")
BUCKET = "curation"  # the `s3` fixture's (tests/conftest.py)
LAKE = f"s3://{BUCKET}/lake"


def curation_run(folder: Path, env: dict[str, str]) -> str:
    result = subprocess.run(
        [sys.executable, "-m", "curation_dagster.cli", "run"],
        cwd=folder,
        env=env,
        capture_output=True,
        text=True,
        timeout=1200,
    )
    assert result.returncode == 0, f"curation run failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    return result.stdout


@pytest.fixture(scope="module")
def project(
    s3: S3Server, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Path, dict[str, str], str]]:
    """A fresh project folder on which `curation run` has run once against the bucket: its folder, the
    environment it ran with and what it printed."""
    folder = tmp_path_factory.mktemp("project")
    with postgres_server() as postgres:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("DAGSTER_", "CURATION_", "AWS_"))}
        env.update(s3.environment())
        env.update(
            CURATION_HOME=LAKE, CURATION_LOCK_DSN=postgres.dsn, CURATION_VERSIONS=str(REPO / "versions")
        )
        yield folder, env, curation_run(folder, env)


@pytest.fixture(scope="module")
def lake(project: tuple[Path, dict[str, str], str]) -> Lake:
    return Lake(LAKE)


def shards(project: tuple[Path, dict[str, str], str]) -> dict[str, Path]:
    return discover_shards(project[0] / ".curation" / "landing")


def test_every_stage_of_every_demo_shard_is_in_the_bucket(
    project: tuple[Path, dict[str, str], str], lake: Lake
) -> None:
    for version, stage, shard in itertools.product(VERSIONS, STAGES, shards(project)):
        assert lake.exists(lake.path(version, stage, shard)), (version, stage, shard)
        assert lake.exists(lake.path(version, stage, shard, rejected=True)), (version, stage, shard)
    assert f"lake (Parquet):      {LAKE}" in project[2]


def test_rows_are_conserved_from_the_landing_files_to_the_last_stage(
    project: tuple[Path, dict[str, str], str], lake: Lake
) -> None:
    for version, (shard, source) in itertools.product(VERSIONS, shards(project).items()):

        def kept(stage: str, shard: str = shard, version: str = version) -> int:
            return lake.num_rows(lake.path(version, stage, shard))

        def rejected(stage: str, shard: str = shard, version: str = version) -> int:
            return lake.num_rows(lake.path(version, stage, shard, rejected=True))

        assert kept("raw") + rejected("raw") == sum(1 for _ in read_shard(source, shard))
        for upstream, stage in itertools.pairwise(STAGES[:-1]):
            assert kept(upstream) == kept(stage) + rejected(stage), (version, shard, stage)
        synthesized = lake.read_table(lake.path(version, "synthesized", shard), columns=["synthetic"])
        assert synthesized.filter(pc.invert(synthesized.column("synthetic"))).num_rows == kept("selected")


def test_every_stage_gives_the_rows_a_local_lake_gives(
    project: tuple[Path, dict[str, str], str], lake: Lake, tmp_path: Path
) -> None:
    lake.fs.get(f"{BUCKET}/lake/", f"{tmp_path}/lake/", recursive=True)
    found = lake_rows(tmp_path / "lake", project[0] / ".curation" / "landing")
    assert differences(found, json.loads(RECORD.read_text())) == []


def test_each_version_has_its_data_card_and_a_verified_release(
    project: tuple[Path, dict[str, str], str], lake: Lake
) -> None:
    for version in VERSIONS:
        assert lake.exists(report_path(lake, version))
        assert f"{'data card ' + version + ':':<20} {LAKE}/{version}/report/index.html" in project[2]
        final = sum(lake.num_rows(lake.path(version, "synthesized", shard)) for shard in shards(project))
        assert read_manifest(lake, version)["items"] == final
        assert verify_release(lake, version) == []


def test_no_temporary_file_or_folder_is_left_in_the_bucket(lake: Lake) -> None:
    leftovers = [path for path in lake.fs.find(lake.root) if path.endswith((".tmp", ".old"))]
    assert leftovers == []


def test_a_second_run_says_everything_is_up_to_date_and_writes_nothing(
    project: tuple[Path, dict[str, str], str], lake: Lake
) -> None:
    def objects() -> dict[str, tuple[str, object]]:
        found = lake.fs.find(lake.root, detail=True)
        return {path: (info["ETag"], info["LastModified"]) for path, info in found.items()}

    before = objects()
    output = curation_run(project[0], project[1])
    assert "everything is up to date" in output
    assert objects() == before
