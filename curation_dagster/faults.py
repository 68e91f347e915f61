"""Crash points for the recovery tests: a process that reaches the point named by `$CURATION_CRASH_AT`
dies on the spot, with its whole process group, as a power cut or the kernel's OOM killer would kill it.

A point is `<stage>:<moment>:<shard>` (`deduped:after_output:b.jsonl`). Unset, a crash point costs one
environment lookup; nothing in a normal run sets it.
"""

from __future__ import annotations

import os
import signal

CRASH_AT = "CURATION_CRASH_AT"


def crash_point(stage: str, moment: str, shard: str) -> None:
    """Kill this process group with SIGKILL when `$CURATION_CRASH_AT` names this point."""
    if os.environ.get(CRASH_AT) == f"{stage}:{moment}:{shard}":
        os.killpg(os.getpgid(0), signal.SIGKILL)
