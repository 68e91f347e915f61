"""Stages run in child processes that log their progress lines, for tests of what runs at the same time."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from curation_dagster.io.lake import Lake
from curation_dagster.spec import VersionSpec

_CHILD = """
import json, logging, sys
logging.basicConfig(level=logging.INFO, stream=sys.stdout, format='%(message)s')
from curation_dagster.io.lake import Lake
from curation_dagster.pipeline import run_stage
from curation_dagster.spec import parse_spec
spec, root, stage, shard = json.loads(sys.argv[1])
run_stage(parse_spec(spec), Lake(root), stage, shard)
print('finished', flush=True)
"""


def run_in_child(
    spec: VersionSpec, lake: Lake, stage: str, shard: str, env: dict[str, str] | None = None
) -> subprocess.Popen[str]:
    """One stage of one shard in a child process of its own process group (a crash point kills its
    group) that logs its progress lines to stdout; `env` adds to the environment (a crash point, say)."""
    arguments = json.dumps([spec.model_dump(mode="json"), lake.root, stage, shard])
    return subprocess.Popen(
        [sys.executable, "-c", _CHILD, arguments],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, **(env or {})},
        start_new_session=True,
    )


def wait_for_line(child: subprocess.Popen[str], text: str) -> None:
    """Read the child's output until a line holds `text`; fail if it exits first."""
    assert child.stdout is not None
    for line in child.stdout:
        if text in line:
            return
    raise AssertionError(f"the child exited ({child.wait()}) before printing {text!r}")
