"""The claim journal of a claiming stage (deduped, synthesized): which shards are between their first
claim in the version's indexes and the end of their output.

A run marks its shard pending before its first claim and clears the mark once its claims and its output
are written, holding its shard's run lock (`run_lock_name`) the whole time. A mark whose run lock is free
belongs to a run that died (or failed) half-way: the next holder of the stage's claim lock rolls its
partial claims and output back before deciding anything, and downstream stages refuse its output, so no
output is ever used without its claims. A mark whose run lock is held is a live run writing its output
after complete claims, and is left alone.
"""

from __future__ import annotations

import json
import os
import socket
import time
from collections.abc import Callable

from curation_dagster.errors import StageInputMissing
from curation_dagster.io.lake import Lake, check_segment
from curation_dagster.progress import note

#: Version-level folder of the journals, one sub-folder per claiming stage.
CLAIMS_DIR = "_claims"
PENDING_SUFFIX = ".pending"


class ClaimJournal:
    """Pending claims of one stage of one version: `<version>/_claims/<stage>/<shard>.pending`."""

    def __init__(self, lake: Lake, version: str, stage: str) -> None:
        self.lake, self.version, self.stage = lake, version, stage
        self.folder = f"{lake.stage_dir(version, CLAIMS_DIR)}/{check_segment(stage, 'stage')}"

    def begin(self, shard: str) -> None:
        """Mark `shard` pending before any of its claims or its output are written."""
        record = {"shard": shard, "started": time.time(), "host": socket.gethostname(), "pid": os.getpid()}
        self.lake.write_bytes(self._path(shard), json.dumps(record, sort_keys=True).encode())

    def finish(self, shard: str) -> None:
        """Clear the mark once every claim and the output are written (or rolled back)."""
        self.lake.remove(self._path(shard))

    def is_pending(self, shard: str) -> bool:
        return self.lake.exists(self._path(shard))

    def pending(self) -> list[str]:
        """The shards marked pending, sorted."""
        if not self.lake.exists(self.folder):
            return []
        names = (str(entry).rsplit("/", 1)[-1] for entry in self.lake.fs.ls(self.folder, detail=False))
        return sorted(name[: -len(PENDING_SUFFIX)] for name in names if name.endswith(PENDING_SUFFIX))

    def require_complete(self, shard: str) -> None:
        """StageInputMissing when the shard's output was written by a run that never finished its claims."""
        if self.is_pending(shard):
            raise StageInputMissing(
                f"{self.version}/{self.stage} for shard {shard!r} was written by a run that stopped before it "
                f"recorded its claims in the version's indexes; materialize {self.version}/{self.stage} for "
                f"{shard!r} again"
            )

    def require_none_pending(self) -> None:
        """StageInputMissing naming every shard whose output of this stage lacks its claims."""
        pending = self.pending()
        if pending:
            raise StageInputMissing(
                f"{self.version}/{self.stage} of shards {', '.join(pending)} was written by runs that stopped "
                f"before they recorded their claims in the version's indexes; materialize "
                f"{self.version}/{self.stage} for them again"
            )

    def _path(self, shard: str) -> str:
        return f"{self.folder}/{check_segment(shard)}{PENDING_SUFFIX}"


def roll_back_interrupted(journal: ClaimJournal, shard: str, forget: Callable[[str], None]) -> list[str]:
    """Roll back the claims and output of every other shard whose run stopped between starting its claims
    and finishing its output. Call it holding the stage's claim lock. A pending mark whose run is alive
    (it holds its shard's run lock, see `run_lock_name`) is left alone: its claims are complete and it is
    writing its output. The caller's own mark needs nothing: its lookups skip its own claims and it
    rewrites all of them."""
    lake = journal.lake
    interrupted = [
        other
        for other in journal.pending()
        if other != shard
        and not lake.is_locked(journal.version, run_lock_name(journal.stage, other))
        # Asked again after the lock: a run clears its mark before it lets go of its run lock, so a run
        # that finished between the listing and the lock check has no mark left, and only a dead one has.
        and journal.is_pending(other)
    ]
    for other in interrupted:
        forget(other)
        journal.finish(other)
        note(
            f"{journal.version}/{journal.stage}: rolled back shard {other!r}, whose run stopped before it had "
            f"recorded all its claims and output; materialize {journal.version}/{journal.stage} for it again"
        )
    return interrupted


def run_lock_name(stage: str, shard: str) -> str:
    """The lock a run of a claiming stage holds on its shard for its whole run: proof that it is alive,
    and one run per shard at a time."""
    return f"{stage}.{shard}"
