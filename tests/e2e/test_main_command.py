"""The README's commands, run as a user would: in subprocesses, on a temporary project folder."""

import itertools
import json
import os
import subprocess
import sys
from pathlib import Path

import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from curation_dagster.demo import DEMO_SHARD_NAMES
from curation_dagster.io.landing import discover_shards, read_shard
from curation_dagster.stages import STAGES
from tests.e2e.demo_rows import RECORD, differences, lake_rows

REPO = Path(__file__).resolve().parents[2]
VERSIONS = ("demo", "text_formal")

pytestmark = pytest.mark.slow


def clean_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DAGSTER_", "CURATION_"))}
    env["CURATION_VERSIONS"] = str(REPO / "versions")
    return env


def run(
    args: list[str], cwd: Path, env: dict[str, str], timeout: int = 600
) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert result.returncode == 0, f"{args} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    return result


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """A fresh project folder on which the main command has run once."""
    folder = tmp_path_factory.mktemp("project")
    first = run([sys.executable, "-m", "curation_dagster.cli", "run"], folder, clean_env())
    return folder, first.stdout


def rows(path: Path) -> int:
    return pq.ParquetFile(path).metadata.num_rows


def test_main_command_writes_every_stage_for_every_demo_shard(project: tuple[Path, str]) -> None:
    folder, output = project
    lake = folder / ".curation" / "lake"
    shards = discover_shards(folder / ".curation" / "landing")
    assert {path.name for path in shards.values()} == set(DEMO_SHARD_NAMES)
    for version in VERSIONS:
        for stage in STAGES:
            for shard in shards:
                assert (lake / version / stage / f"{shard}.parquet").exists(), (version, stage, shard)
                assert (lake / version / stage / "_rejected" / f"{shard}.parquet").exists()
    assert "Dagster instance" in output
    assert "curation ui" in output
    for version in VERSIONS:
        assert (lake / version / "report" / "index.html").exists()
        assert (lake / version / "release" / "manifest.json").exists()
        assert f"data card {version}:" in output
        kept = [
            sum(rows(lake / version / stage / f"{shard}.parquet") for shard in shards) for stage in STAGES
        ]
        summary = " → ".join(f"{stage} {count}" for stage, count in zip(STAGES, kept, strict=True))
        assert f"{version}: {summary}" in output  # the kept rows of every stage, as the lake holds them
    assert (folder / ".curation" / "dagster_home" / "dagster.yaml").exists()


def test_every_stage_gives_the_rows_recorded_before_the_restructuring(project: tuple[Path, str]) -> None:
    folder, _ = project
    found = lake_rows(folder / ".curation" / "lake", folder / ".curation" / "landing")
    assert differences(found, json.loads(RECORD.read_text())) == []


def test_conservation_holds_in_the_lake_files(project: tuple[Path, str]) -> None:
    folder, _ = project
    lake = folder / ".curation" / "lake"
    for version in VERSIONS:
        for shard, source in discover_shards(folder / ".curation" / "landing").items():

            def kept(stage: str, shard: str = shard, version: str = version) -> int:
                return rows(lake / version / stage / f"{shard}.parquet")

            def rejected(stage: str, shard: str = shard, version: str = version) -> int:
                return rows(lake / version / stage / "_rejected" / f"{shard}.parquet")

            assert kept("raw") + rejected("raw") == sum(1 for _ in read_shard(source, shard))
            for upstream, stage in itertools.pairwise(STAGES[:-1]):
                assert kept(upstream) == kept(stage) + rejected(stage), (version, shard, stage)
            synthesized = pq.read_table(lake / version / "synthesized" / f"{shard}.parquet")
            real = synthesized.filter(pc.invert(synthesized.column("synthetic")))
            assert real.num_rows == kept("selected")
            refused = pq.read_table(lake / version / "synthesized" / "_rejected" / f"{shard}.parquet")
            assert all(refused.column("synthetic").to_pylist())


def test_every_stage_acts_on_the_demo(project: tuple[Path, str]) -> None:
    folder, _ = project
    lake = folder / ".curation" / "lake" / "demo"
    for stage in STAGES:
        rejected = sum(rows(path) for path in (lake / stage / "_rejected").glob("*.parquet"))
        assert rejected > 0 or stage == "synthesized", stage
    synthetic = sum(
        sum(pq.read_table(path, columns=["synthetic"]).column("synthetic").to_pylist())
        for path in (lake / "synthesized").glob("*.parquet")
    )
    assert synthetic > 0


def test_second_run_changes_nothing_and_says_so(project: tuple[Path, str]) -> None:
    folder, _ = project
    lake = folder / ".curation" / "lake"
    outputs = ("*.parquet", "*.html", "*.json", "*.tar")
    before = {path: path.stat().st_mtime_ns for pattern in outputs for path in lake.rglob(pattern)}
    assert any(path.name == "index.html" for path in before)
    checksums = folder / ".curation" / "landing" / "SHA256SUMS.txt"  # of no kind the stages read
    checksums.write_text("0" * 64 + "  news_en.jsonl\n")
    try:
        second = run([sys.executable, "-m", "curation_dagster.cli", "run"], folder, clean_env())
    finally:
        checksums.unlink()
    assert "up to date" in second.stdout
    assert (
        "1 landing file of no supported kind, not read: SHA256SUMS.txt (shards are *.jsonl" in second.stdout
    )
    assert {path: path.stat().st_mtime_ns for pattern in outputs for path in lake.rglob(pattern)} == before


def test_the_release_holds_the_final_training_set_with_verified_checksums(project: tuple[Path, str]) -> None:
    from curation_dagster.io.lake import Lake
    from curation_dagster.release import read_manifest, verify_release

    folder, _ = project
    lake = Lake(folder / ".curation" / "lake")
    for version in VERSIONS:
        final = sum(
            rows(path) for path in (folder / ".curation" / "lake" / version / "synthesized").glob("*.parquet")
        )
        assert read_manifest(lake, version)["items"] == final
        assert verify_release(lake, version) == []
    assert list((folder / ".curation" / "lake" / "demo" / "release" / "webdataset").glob("image-*.tar"))


def test_ci_path_registers_shards_then_materializes_with_the_dagster_cli(tmp_path: Path) -> None:
    env = clean_env()
    env["CURATION_LANDING"] = str(tmp_path / "landing")
    env["CURATION_HOME"] = str(tmp_path / "lake")
    env["DAGSTER_HOME"] = str(tmp_path / "dagster_home")
    (tmp_path / "landing").mkdir()
    (tmp_path / "landing" / "ci.jsonl").write_text(
        '{"text": "A short document for the continuous integration check of the raw stage."}\n{bad\n'
    )
    (tmp_path / "landing" / "README.md").write_text("The CI check's landing zone.\n")
    registered = run(
        [sys.executable, "-m", "curation_dagster.cli", "register", "--no-demo-data"], tmp_path, env
    )
    assert "ci.jsonl" in registered.stdout
    assert "1 landing file of no supported kind, not read: README.md" in registered.stdout
    run(
        [
            "dagster",
            "asset",
            "materialize",
            "-m",
            "curation_dagster.definitions",
            "--select",
            "demo/raw*",
            "--partition",
            "ci.jsonl",
        ],
        REPO,
        env,
    )
    assert rows(tmp_path / "lake" / "demo" / "raw" / "ci.jsonl.parquet") == 1
    assert rows(tmp_path / "lake" / "demo" / "raw" / "_rejected" / "ci.jsonl.parquet") == 1
    assert rows(tmp_path / "lake" / "demo" / "deduped" / "ci.jsonl.parquet") == 1
    assert (tmp_path / "lake" / "demo" / "synthesized" / "ci.jsonl.parquet").exists()


def test_definitions_validate(tmp_path: Path) -> None:
    env = clean_env()
    env["DAGSTER_HOME"] = str(tmp_path)
    result = run(["dagster", "definitions", "validate", "-m", "curation_dagster.definitions"], REPO, env)
    assert "Validation successful" in result.stdout + result.stderr
