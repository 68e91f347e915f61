"""What the `curation` commands do with a Dagster instance: register landing shards, find what is not up to
date, recover from runs that died, and materialize in process.

`cli.py` parses arguments and calls these; the landing and dead-run sensors share the same functions.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dagster import (
    AssetKey,
    AssetRecordsFilter,
    DagsterEventType,
    DagsterInstance,
    DagsterRunStatus,
    Definitions,
    RunsFilter,
)

from assets.factory import SUMMARIES, stage_key
from assets.partitions import SHARDS
from curation_dagster import settings
from curation_dagster.io.lake import Lake
from curation_dagster.io.landing import discover_partitions, shard_fingerprint
from curation_dagster.release import MANIFEST, release_dir
from curation_dagster.report import report_path
from curation_dagster.spec import VersionSpec
from curation_dagster.stages import STAGES

#: Statuses of runs that may hold pool slots and locks.
IN_PROGRESS = [DagsterRunStatus.STARTING, DagsterRunStatus.STARTED, DagsterRunStatus.CANCELING]
#: A run this old that never recorded a process was lost on its way to starting.
NEVER_STARTED_S = 600.0
#: Events emitted by the processes that work for a run (its run worker, each step's process), so their
#: process ids are the run's. Other events come from the webserver, the daemon or the code server too.
_WORKER_EVENTS = {
    DagsterEventType.RUN_START,
    DagsterEventType.STEP_WORKER_STARTED,
    DagsterEventType.STEP_START,
}


# ------------------------------------------------------------------------------------------ shards


def register_shards(instance: DagsterInstance, landing: Path, max_shard_bytes: int) -> list[str]:
    """Add every landing shard to the `shards` partitions, a file over `max_shard_bytes` as one shard per
    bounded part; returns the keys that were new."""
    found = discover_partitions(landing, max_shard_bytes)
    registered = set(instance.get_dynamic_partitions(SHARDS))
    new = [key for key in found if key not in registered]
    if new:
        instance.add_dynamic_partitions(SHARDS, new)
    return new


def lake_of(defs: Definitions) -> Lake:
    """The lake the definitions' `lake` resource points at."""
    return (defs.resources or {})["lake"].lake()


def max_shard_bytes_of(defs: Definitions) -> int:
    """The bound above which the definitions' `lake` resource splits a landing file into parts."""
    return int((defs.resources or {})["lake"].max_shard_bytes)


def _latest(instance: DagsterInstance, key: AssetKey, shard: str | None) -> Any:
    """The newest materialization record of `key` (of one partition when `shard` is given)."""
    records = instance.fetch_materializations(
        AssetRecordsFilter(asset_key=key, asset_partitions=[shard] if shard is not None else None), limit=1
    ).records
    return records[0] if records else None


def first_stale_stage(
    instance: DagsterInstance, defs: Definitions, spec: VersionSpec, shard: str, source: Path
) -> str | None:
    """The first stage of `spec` that `shard` must run again from, None when every stage is current: a
    stage is current when it has a materialization for `shard` newer than its upstream's, made with the
    current settings (and raw from the landing shard as it is now), with its lake file in place. So a
    filter change runs the filtered stage and what follows it, and a changed landing file every stage."""
    lake = lake_of(defs)
    previous_id = -1
    for stage in STAGES:
        record = _latest(instance, stage_key(spec.name, stage), shard)
        if record is None or record.storage_id <= previous_id:
            return stage
        metadata = record.asset_materialization.metadata
        code_version = metadata.get("code_version")
        if code_version is None or code_version.value != spec.code_version(stage):
            return stage
        if stage == "raw":
            fingerprint = metadata.get("source_fingerprint")
            if fingerprint is None or fingerprint.value != shard_fingerprint(source):
                return stage
        if not lake.exists(lake.path(spec.name, stage, shard)):
            return stage
        previous_id = record.storage_id
    return None


def summaries_are_current(instance: DagsterInstance, defs: Definitions, spec: VersionSpec) -> bool:
    """Whether the version's report and release were materialized after the last materialization of any
    shard of any stage, the release with the spec's release settings, and their files are in the lake."""
    lake = lake_of(defs)
    stage_records = [_latest(instance, stage_key(spec.name, stage), None) for stage in STAGES]
    newest_stage = max((record.storage_id for record in stage_records if record is not None), default=-1)
    for name in SUMMARIES:
        record = _latest(instance, stage_key(spec.name, name), None)
        if record is None or record.storage_id <= newest_stage:
            return False
        if name == "release":  # made with other release settings (files, card) than the spec's now
            code_version = record.asset_materialization.metadata.get("code_version")
            if code_version is None or code_version.value != spec.release_code_version():
                return False
    return lake.exists(report_path(lake, spec.name)) and lake.exists(
        f"{release_dir(lake, spec.name)}/{MANIFEST}"
    )


# ---------------------------------------------------------------------------------------- dead runs


@dataclass(frozen=True)
class DeadRun:
    """A run found in progress whose processes are all gone, and what was done about it."""

    run_id: str
    partition: str | None
    pids: tuple[int, ...]
    held_pools: tuple[str, ...]

    def describe(self) -> str:
        where = f" (shard {self.partition})" if self.partition else ""
        processes = ", ".join(str(pid) for pid in self.pids) or "none recorded"
        pools = f"; freed its slots in pool {', '.join(self.held_pools)}" if self.held_pools else ""
        return (
            f"run {self.run_id}{where} was still marked in progress but its processes ({processes}) are "
            f"gone: marked it failed{pools}"
        )


def detects_dead_runs(instance: DagsterInstance) -> bool:
    """Whether this instance's runs all run on this machine, so a process id says whether a run is alive:
    true for SQLite storage (the embedded default), which one machine uses at a time. Deployments on
    PostgreSQL launch runs elsewhere (Kubernetes), where Dagster's run monitoring checks the workers."""
    from dagster._core.storage.runs import SqliteRunStorage

    return isinstance(instance.run_storage, SqliteRunStorage)


def recover_dead_runs(instance: DagsterInstance, now: float | None = None) -> list[DeadRun]:
    """Mark failed every run in progress whose processes on this machine are all gone (killed, out of
    memory, machine restarted), and free the pool slots it held; also free the slots of finished runs.
    Without this, a killed run holds its pool slot forever and every later step of that pool waits."""
    if not detects_dead_runs(instance):
        return []
    now = time.time() if now is None else now
    dead: list[DeadRun] = []
    for record in instance.get_run_records(filters=RunsFilter(statuses=IN_PROGRESS)):
        run = record.dagster_run
        processes = _run_processes(instance, run.run_id)
        if any(process_alive_since(pid, since) for pid, since in processes.items()):
            continue
        if not processes and now - record.create_timestamp.timestamp() < NEVER_STARTED_S:
            continue
        pools = _held_pools(instance, run.run_id)
        found = DeadRun(run.run_id, run.tags.get("dagster/partition"), tuple(sorted(processes)), pools)
        instance.report_run_failed(run, found.describe())
        instance.event_log_storage.free_concurrency_slots_for_run(run.run_id)
        dead.append(found)
    _free_slots_of_finished_runs(instance)
    return dead


def _run_processes(instance: DagsterInstance, run_id: str) -> dict[int, float]:
    """The processes that worked for a run: process id -> the time of its first event. A worker's own
    events carry its id; an engine event names the run worker it started (`pid` in its metadata) even
    when a longer-lived process (the code server, the daemon) emitted it."""
    first_seen: dict[int, float] = {}
    for entry in instance.all_logs(run_id, of_type={*_WORKER_EVENTS, DagsterEventType.ENGINE_EVENT}):
        event = entry.dagster_event
        if event is None:
            continue
        pids: list[int] = []
        if event.event_type in _WORKER_EVENTS and event.pid is not None:
            pids.append(event.pid)
        if event.event_type == DagsterEventType.ENGINE_EVENT and event.engine_event_data is not None:
            named = event.engine_event_data.metadata.get("pid")
            if named is not None and str(named.value).isdigit():
                pids.append(int(str(named.value)))
        for pid in pids:
            first_seen.setdefault(pid, entry.timestamp)
    return first_seen


def process_alive_since(pid: int, since: float) -> bool:
    """Whether process `pid` is running and started no later than `since` (a later start means the number
    was reused by another process after the run's one died). A killed process that its new parent has not
    reaped yet (a zombie) is not running."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # alive, another user's
    status = _process_status(pid)
    if status is None:
        return True
    state, started = status
    return state not in ("Z", "X") and started <= since + 1.0


def _process_status(pid: int) -> tuple[str, float] | None:
    """A process's state letter and start time (seconds since the epoch), from /proc; None without it."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        boot = next(
            float(line.split()[1])
            for line in Path("/proc/stat").read_text().splitlines()
            if line.startswith("btime")
        )
    except (OSError, IndexError, StopIteration, ValueError):
        return None
    return fields[0], boot + int(fields[19]) / os.sysconf("SC_CLK_TCK")


def _held_pools(instance: DagsterInstance, run_id: str) -> tuple[str, ...]:
    storage = instance.event_log_storage
    if not storage.supports_global_concurrency_limits:
        return ()
    held = []
    for pool in sorted(storage.get_concurrency_keys()):
        info = storage.get_concurrency_info(pool)
        if any(slot.run_id == run_id for slot in info.claimed_slots) or any(
            step.run_id == run_id for step in info.pending_steps
        ):
            held.append(pool)
    return tuple(held)


def _free_slots_of_finished_runs(instance: DagsterInstance) -> None:
    """Free the pool slots still held by runs that have ended (a run failed from outside keeps them)."""
    storage = instance.event_log_storage
    if not storage.supports_global_concurrency_limits:
        return
    holders = storage.get_concurrency_run_ids()
    if not holders:
        return
    for record in instance.get_run_records(filters=RunsFilter(run_ids=list(holders))):
        if record.dagster_run.is_finished:
            storage.free_concurrency_slots_for_run(record.dagster_run.run_id)


# -------------------------------------------------------------------------------------- materialize


def materialize(
    defs: Definitions,
    instance: DagsterInstance,
    version: str,
    names: Sequence[str],
    partition: str | None = None,
    say: Callable[[str], None] = print,
) -> bool:
    """Materialize the version's assets `names` in this process (one shard when `partition` is given),
    once the pools their steps need have a free slot."""
    pools = {defs.resolve_assets_def(stage_key(version, name)).op.pool for name in names}
    wait_for_free_slots(instance, sorted(pool for pool in pools if pool), say)
    job = defs.resolve_implicit_global_asset_job_def()
    result = job.execute_in_process(
        instance=instance,
        partition_key=partition,
        asset_selection=[stage_key(version, name) for name in names],
        tags={"curation/trigger": "curation run"},
        run_config={"loggers": {"console": {"config": {"log_level": "WARNING"}}}},
        raise_on_error=False,
    )
    return bool(result.success)


def wait_for_free_slots(
    instance: DagsterInstance, pools: Sequence[str], say: Callable[[str], None], poll_s: float = 2.0
) -> None:
    """Wait, asleep, until each pool has a free slot, saying once which run holds it; a holder that dies
    meanwhile is failed and its slot freed. (Dagster's in-process executor would wait for the slot too,
    but busily, at a full core, and deaf to SIGTERM.)"""
    announced: set[tuple[str, str]] = set()
    while True:
        for dead in recover_dead_runs(instance):
            say(dead.describe())
        busy = {pool: holders for pool in pools if (holders := _holders_of_full_pool(instance, pool))}
        if not busy:
            return
        for pool, holders in sorted(busy.items()):
            for run_id in sorted(holders - {run_id for _, run_id in announced}):
                say(f"  waiting: run {run_id} holds the last slot of pool {pool!r}")
                announced.add((pool, run_id))
        time.sleep(poll_s)


def _holders_of_full_pool(instance: DagsterInstance, pool: str) -> set[str]:
    """The runs holding a pool's slots when none is free; empty when one is (or the pool has no limit)."""
    storage = instance.event_log_storage
    if not storage.supports_global_concurrency_limits:
        return set()
    info = storage.get_concurrency_info(pool)
    if info.limit is None or len(info.claimed_slots) < info.limit:
        return set()
    return {slot.run_id for slot in info.claimed_slots}


@dataclass
class RunSummary:
    """What `run_everything` did: materializations run and failed, and the versions with a failed shard."""

    ran: int = 0
    failed: int = 0
    failed_versions: set[str] = field(default_factory=set)


def run_everything(
    defs: Definitions,
    instance: DagsterInstance,
    specs: Sequence[VersionSpec],
    landing: Path,
    say: Callable[[str], None] = print,
) -> RunSummary:
    """For every version and landing shard not up to date, its first stale stage and every stage after it
    (`first_stale_stage`), then each version's report and release; one line per materialization."""
    summary = RunSummary()
    found = discover_partitions(landing, max_shard_bytes_of(defs))

    def attempt(version: str, label: str, names: Sequence[str], partition: str | None) -> None:
        started = time.perf_counter()
        succeeded = materialize(defs, instance, version, names, partition, say)
        state = "ok" if succeeded else "FAILED"
        say(f"  {version:<12} {label:<28} {state} ({time.perf_counter() - started:.1f}s)")
        summary.ran += 1
        if not succeeded:
            summary.failed += 1
            summary.failed_versions.add(version)

    for spec in specs:
        for shard, source in found.items():
            stale = first_stale_stage(instance, defs, spec, shard, source.path)
            if stale is not None:
                names = STAGES[STAGES.index(stale) :]
                label = shard if stale == STAGES[0] else f"{shard} (from {stale})"
                attempt(spec.name, label, names, shard)
    for spec in specs:
        if spec.name in summary.failed_versions:
            say(f"  {spec.name:<12} {'report, release':<28} not refreshed: a shard of this version failed")
        elif not summaries_are_current(instance, defs, spec):
            attempt(spec.name, "report, release", SUMMARIES, None)
    return summary


def main_job(specs: Sequence[VersionSpec], landing: Path, say: Callable[[str], None] = print) -> RunSummary:
    """`curation run` on the instance of `$DAGSTER_HOME`: fail the runs that died and free their slots,
    register the landing shards, then every stage of every version for every shard not up to date, and
    each version's report and release."""
    from curation_dagster.definitions import build_definitions

    defs = build_definitions(list(specs))
    instance = DagsterInstance.get()
    for dead in recover_dead_runs(instance):
        say(dead.describe())
    new = register_shards(instance, landing, max_shard_bytes_of(defs))
    if new:
        say(f"registered {len(new)} new shards: {', '.join(new)}")
    return run_everything(defs, instance, specs, landing, say)


def register_landing(landing: Path, say: Callable[[str], None] = print) -> list[str]:
    """`curation register` (CI's step before `dagster asset materialize`): fail the runs that died, so a
    killed CI run on a kept instance does not hold its pool slot, then register the landing shards, split
    at $CURATION_MAX_SHARD_BYTES as the definitions' lake resource splits them."""
    instance = DagsterInstance.get()
    for dead in recover_dead_runs(instance):
        say(dead.describe())
    return register_shards(instance, landing, settings.max_shard_bytes())
