"""A small project folder for end-to-end tests of the commands: spec files, a landing zone, the embedded
default instance and lake inside, and the commands run in subprocesses as a user runs them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from dagster import DagsterInstance
from dagster._core.instance.ref import InstanceRef

from curation_dagster.io.lake import SWEEPS_DIR
from curation_dagster.totals import TOTALS_DIR


def write_landing(folder: Path, shards: dict[str, list[str]]) -> Path:
    """JSON Lines shards, one `{"text": ...}` per line."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, texts in shards.items():
        (folder / name).write_text("".join(json.dumps({"text": t}) + "\n" for t in texts))
    return folder


def new_project(folder: Path, landing: Path, specs: dict[str, str]) -> Path:
    """A project folder with `versions/<name>.yaml` for each spec and a note of its landing zone (projects
    that compare lakes byte for byte share one: items' uris name their landing file)."""
    (folder / "versions").mkdir(parents=True)
    for name, text in specs.items():
        (folder / "versions" / f"{name}.yaml").write_text(text)
    (folder / "landing").write_text(str(landing))
    return folder


def environment(project: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DAGSTER_", "CURATION_"))}
    env.update(
        DAGSTER_HOME=str(project / ".curation" / "dagster_home"),
        CURATION_HOME=str(project / ".curation" / "lake"),
        CURATION_LANDING=(project / "landing").read_text(),
        CURATION_VERSIONS=str(project / "versions"),
    )
    return env


def run(args: list[str], project: Path, **extra: str) -> subprocess.CompletedProcess[str]:
    """A command in the project, in its own session (so a crash point kills it and nothing else)."""
    return subprocess.run(
        args,
        cwd=project,
        env={**environment(project), **extra},
        capture_output=True,
        text=True,
        timeout=600,
        start_new_session=True,
    )


def curation(project: Path, *args: str, expect: int = 0) -> subprocess.CompletedProcess[str]:
    result = run([sys.executable, "-m", "curation_dagster.cli", *args], project)
    assert result.returncode == expect, (
        f"curation {args} exited {result.returncode}:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    )
    return result


def materialize(project: Path, selection: str, shard: str, **extra: str) -> subprocess.CompletedProcess[str]:
    """`dagster asset materialize` of one shard, as the README's CI path runs it."""
    command = ["dagster", "asset", "materialize", "-m", "curation_dagster.definitions"]
    return run([*command, "--select", selection, "--partition", shard], project, **extra)


def lake_files(project: Path) -> dict[str, bytes]:
    """Every file of the lake by relative path, lock files aside (they hold nothing), the stage totals'
    ledgers (a cache of each shard file's counts, keyed by the file's modification time and inode, which
    differ between two lakes of the same rows) and the record of when each folder was last looked through
    for leftovers."""
    root = project / ".curation" / "lake"
    return {
        path.relative_to(root).as_posix(): path.read_bytes()
        for path in sorted(root.rglob("*"))
        if path.is_file()
        and not path.name.endswith(".lock")
        and path.parent.name not in (TOTALS_DIR, SWEEPS_DIR)
    }


def open_instance(project: Path) -> DagsterInstance:
    return DagsterInstance.from_ref(InstanceRef.from_dir(str(project / ".curation" / "dagster_home")))
