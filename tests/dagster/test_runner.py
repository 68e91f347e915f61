"""Tests of assets/runner.py: dead runs found and failed, their pool slots freed, live runs left alone."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from dagster import DagsterInstance, DagsterRunStatus, RunsFilter

from assets.runner import process_alive_since, recover_dead_runs
from curation_dagster.cli import INSTANCE_YAML

#: A job with one asset in the `gpu` pool that holds its slot until a file appears, run by a child process.
CHILD = """
import sys, time
from pathlib import Path
from dagster import DagsterInstance, asset, materialize

release = Path(sys.argv[1])

@asset(pool="gpu")
def holds_the_gpu() -> None:
    print("running", flush=True)
    while not release.exists():
        time.sleep(0.1)

materialize([holds_the_gpu], instance=DagsterInstance.get())
"""


@pytest.fixture
def dagster_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An instance folder with the settings `curation run` writes (SQLite, pools of one slot)."""
    home = tmp_path / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text(INSTANCE_YAML)
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    return home


@pytest.fixture
def instance(dagster_home: Path) -> Iterator[DagsterInstance]:
    with DagsterInstance.get() as opened:
        yield opened


def start_holder(dagster_home: Path, release: Path) -> subprocess.Popen[str]:
    """A child process whose run holds the `gpu` slot, returned once its step is running."""
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(release)],
        env={**os.environ, "DAGSTER_HOME": str(dagster_home)},
        stdout=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    assert child.stdout is not None
    for line in child.stdout:
        if line.strip() == "running":
            return child
    raise AssertionError(f"the child exited with {child.wait()} before its step ran")


def occupied(instance: DagsterInstance, pool: str = "gpu") -> int:
    return len(instance.event_log_storage.get_concurrency_info(pool).claimed_slots)


def in_progress(instance: DagsterInstance) -> list[str]:
    statuses = [DagsterRunStatus.STARTING, DagsterRunStatus.STARTED]
    return [record.dagster_run.run_id for record in instance.get_run_records(RunsFilter(statuses=statuses))]


def test_a_killed_run_is_marked_failed_and_its_pool_slot_freed(
    dagster_home: Path, instance: DagsterInstance, tmp_path: Path
) -> None:
    child = start_holder(dagster_home, tmp_path / "never")
    os.killpg(child.pid, signal.SIGKILL)
    child.wait()
    (run_id,) = in_progress(instance)
    assert occupied(instance) == 1

    dead = recover_dead_runs(instance)

    assert [found.run_id for found in dead] == [run_id]
    assert dead[0].held_pools == ("gpu",)
    assert "marked it failed; freed its slots in pool gpu" in dead[0].describe()
    run = instance.get_run_by_id(run_id)
    assert run is not None and run.status == DagsterRunStatus.FAILURE
    assert occupied(instance) == 0
    assert recover_dead_runs(instance) == []


def test_a_live_run_keeps_its_status_and_slot(
    dagster_home: Path, instance: DagsterInstance, tmp_path: Path
) -> None:
    release = tmp_path / "release"
    child = start_holder(dagster_home, release)
    try:
        assert recover_dead_runs(instance) == []
        assert len(in_progress(instance)) == 1
        assert occupied(instance) == 1
    finally:
        release.touch()
        child.wait(timeout=120)
    assert child.returncode == 0


def test_a_process_started_after_the_run_is_not_the_run_s_process() -> None:
    started = time.time()
    newer = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        time.sleep(0.5)
        # The run's process number now belongs to a process that started after the run's first event.
        assert not process_alive_since(newer.pid, started - 5)
        assert process_alive_since(newer.pid, time.time())
    finally:
        newer.kill()
        newer.wait()
    assert not process_alive_since(newer.pid, time.time())


def test_instances_not_on_sqlite_are_left_to_their_run_launcher() -> None:
    with DagsterInstance.ephemeral() as ephemeral:
        assert recover_dead_runs(ephemeral) == []


def test_a_killed_process_not_yet_reaped_is_not_alive() -> None:
    started = time.time()
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        child.kill()
        # Not waited for: until its parent reaps it, the killed child stays a zombie with its number.
        deadline = time.monotonic() + 30
        while Path(f"/proc/{child.pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z":
            assert time.monotonic() < deadline
            time.sleep(0.05)
        assert not process_alive_since(child.pid, started + 5)
    finally:
        child.wait()
