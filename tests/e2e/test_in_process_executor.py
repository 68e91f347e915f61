"""The CI path with CURATION_EXECUTOR=in_process: one `dagster asset materialize` carries a shard through
several stages with every step in the run's own process (Python started and the code location loaded
once), and writes what the default executor writes."""

from __future__ import annotations

from pathlib import Path

from dagster import DagsterEventType

from tests.e2e.small_project import (
    curation,
    lake_files,
    materialize,
    new_project,
    open_instance,
    write_landing,
)

VERSION = "ci"
SPEC = f"""\
name: {VERSION}
modalities: [text]
filters:
  text:
    - {{kind: text_length, min_chars: 10, max_chars: 10000, min_words: 2}}
"""
SHARD = "a.jsonl"
TEXTS = [
    "The river bank was quiet in the early morning light and the boats were still tied up at the pier.",
    "THE RIVER BANK WAS QUIET IN THE EARLY MORNING LIGHT AND THE BOATS WERE STILL TIED UP AT THE PIER.",
    "Too short",
    "A new bakery opened on the corner of the square, selling rye bread and cinnamon rolls every day.",
]
STAGES = f"{VERSION}/raw,{VERSION}/deduped,{VERSION}/filtered"


def project(folder: Path, landing: Path) -> Path:
    made = new_project(folder, landing, {VERSION: SPEC})
    curation(made, "register", "--no-demo-data")
    return made


def test_one_command_runs_every_stage_in_the_runs_process_and_writes_the_same_lake(tmp_path: Path) -> None:
    landing = write_landing(tmp_path / "landing", {SHARD: TEXTS})
    one = project(tmp_path / "in_process", landing)
    result = materialize(one, STAGES, SHARD, CURATION_EXECUTOR="in_process")
    assert result.returncode == 0, result.stderr[-3000:]
    with open_instance(one) as instance:
        (run,) = instance.get_runs()
        events = instance.all_logs(run.run_id)
    steps = [event for event in events if event.dagster_event_type == DagsterEventType.STEP_SUCCESS]
    assert len(steps) == 3
    processes = {event.dagster_event.pid for event in events if event.dagster_event is not None}
    assert len(processes - {None}) == 1
    assert not any(event.dagster_event_type == DagsterEventType.STEP_WORKER_STARTED for event in events)

    default = project(tmp_path / "multiprocess", landing)
    assert materialize(default, STAGES, SHARD).returncode == 0
    written = lake_files(one)
    assert any(path.startswith(f"{VERSION}/filtered/") for path in written)
    assert written == lake_files(default)
