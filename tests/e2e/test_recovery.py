"""Recovery from a killed run, as a user meets it: `dagster asset materialize` killed with SIGKILL at a
point of the deduped or synthesized stage (between output and claims included), then `curation run` on
the same embedded default instance. No manual step: the dead run is failed, its pool slot freed, and the
lake ends identical to one that was never interrupted."""

from __future__ import annotations

import shutil
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest
from dagster import DagsterRunStatus, RunsFilter

from curation_dagster.faults import CRASH_AT
from tests.e2e.small_project import (
    curation,
    lake_files,
    materialize,
    new_project,
    open_instance,
    write_landing,
)

pytestmark = pytest.mark.slow

VERSION = "recovery"
#: Semantic dedup puts the deduped stage in the `gpu` pool, so a killed dedup run holds a pool slot.
SPEC = f"""\
name: {VERSION}
modalities: [text]
dedup:
  semantic: {{clusters: 2}}
filters:
  text:
    - {{kind: text_length, min_chars: 10, max_chars: 10000, min_words: 2}}
select: {{seed: 1, fraction: 1.0}}
synthesize: {{seed: 2, fraction: 1.0, text: {{kind: word_edits, edit_rate: 0.1}}}}
"""
RIVER = "The river bank was quiet in the early morning light and the boats were still tied up at the pier."
BAKERY = "A new bakery opened on the corner of the square, selling rye bread and cinnamon rolls every day."
BRIDGE = "The council voted to repair the old stone bridge before the spring floods arrive in the valley."
#: Three shards with exact and near duplicates across them, so every index holds claims that matter.
SHARDS = {
    "a.jsonl": [RIVER, BRIDGE, "Researchers measured the growth of wheat under three watering schedules."],
    "b.jsonl": [RIVER.upper(), BAKERY, BRIDGE.replace("arrive", "arrived")],
    "c.jsonl": [BAKERY, "Volunteers planted four hundred oak saplings along the motorway last winter."],
}


@pytest.fixture(scope="module")
def landing(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_landing(tmp_path_factory.mktemp("landing"), SHARDS)


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory: pytest.TempPathFactory, landing: Path) -> dict[str, bytes]:
    """The lake of `curation run` on the three shards, never interrupted."""
    project = new_project(tmp_path_factory.mktemp("uninterrupted"), landing, {VERSION: SPEC})
    curation(project, "run", "--no-demo-data")
    return lake_files(project)


@pytest.fixture(scope="module")
def first_shard_done(tmp_path_factory: pytest.TempPathFactory, landing: Path) -> Path:
    """A project whose shards are registered and whose first shard went through every stage by the CI
    path (`dagster asset materialize`)."""
    project = new_project(tmp_path_factory.mktemp("first_shard"), landing, {VERSION: SPEC})
    curation(project, "register", "--no-demo-data")
    done = materialize(project, f"{VERSION}/raw*", "a.jsonl")
    assert done.returncode == 0, done.stderr[-3000:]
    return project


@pytest.fixture
def project(first_shard_done: Path, tmp_path: Path) -> Iterator[Path]:
    copy = tmp_path / "project"
    shutil.copytree(first_shard_done, copy)
    yield copy


@pytest.mark.parametrize(
    ("point", "holds_gpu_slot"),
    [
        ("deduped:after_output", True),
        ("deduped:after_claims", True),
        ("synthesized:after_output", False),
    ],
)
def test_a_run_killed_half_way_is_recovered_by_the_next_curation_run(
    project: Path, uninterrupted: dict[str, bytes], point: str, holds_gpu_slot: bool
) -> None:
    killed = materialize(project, f"{VERSION}/raw*", "b.jsonl", **{CRASH_AT: f"{point}:b.jsonl"})
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-3000:]
    with open_instance(project) as instance:
        (stuck,) = instance.get_run_records(RunsFilter(statuses=[DagsterRunStatus.STARTED]))
        held = len(instance.event_log_storage.get_concurrency_info("gpu").claimed_slots)
        assert held == (1 if holds_gpu_slot else 0)

    second = curation(project, "run", "--no-demo-data")

    run_id = stuck.dagster_run.run_id
    assert f"run {run_id} (shard b.jsonl) was still marked in progress" in second.stdout
    assert ("freed its slots in pool gpu" in second.stdout) == holds_gpu_slot
    with open_instance(project) as instance:
        killed_run = instance.get_run_by_id(run_id)
        assert killed_run is not None and killed_run.status == DagsterRunStatus.FAILURE
        assert instance.get_run_records(RunsFilter(statuses=[DagsterRunStatus.STARTED])) == []
        assert instance.event_log_storage.get_concurrency_info("gpu").claimed_slots == []
    files = lake_files(project)
    assert not [name for name in files if name.endswith((".tmp", ".pending"))]
    assert sorted(files) == sorted(uninterrupted)
    assert [name for name in files if files[name] != uninterrupted[name]] == []


def test_the_ci_path_recovers_too_register_frees_the_slot_and_materialize_runs(project: Path) -> None:
    killed = materialize(project, f"{VERSION}/raw*", "b.jsonl", **{CRASH_AT: "deduped:after_output:b.jsonl"})
    assert killed.returncode == -signal.SIGKILL

    registered = curation(project, "register", "--no-demo-data")

    assert "freed its slots in pool gpu" in registered.stdout
    again = materialize(project, f"{VERSION}/raw*", "b.jsonl")
    assert again.returncode == 0, again.stderr[-3000:]
    assert "RUN_SUCCESS" in again.stderr + again.stdout
    assert not list((project / ".curation" / "lake" / VERSION / "_claims").rglob("*.pending"))
