"""The sensors: the landing sensor registers new landing shards as partitions and requests their raw runs;
the dead-run monitor fails runs whose processes died and frees the pool slots they held."""

import json

from dagster import (
    AssetKey,
    DefaultSensorStatus,
    RunRequest,
    SensorDefinition,
    SensorEvaluationContext,
    SensorResult,
    SkipReason,
    sensor,
)

from assets.partitions import SHARDS, shards
from assets.runner import detects_dead_runs, recover_dead_runs
from curation_dagster.io.landing import describe_unsupported, scan_landing, shard_fingerprint
from resources.lake import LakeResource

SENSOR_NAME = "landing_sensor"
DEAD_RUN_SENSOR_NAME = "dead_run_monitor"


def build_landing_sensor(raw_keys: list[AssetKey], minimum_interval_seconds: int = 30) -> SensorDefinition:
    """A sensor over the landing zone. Its cursor maps each shard key to a fingerprint of its files, so a
    new shard is registered and run once, a changed shard is re-run, and an unchanged one is left alone.
    A file over the lake's `max_shard_bytes` is one shard per bounded part, all sharing its fingerprint.
    The cursor also names the landing files of no supported kind: the tick that first sees one warns
    (naming every such file), later ticks do not repeat it."""

    @sensor(
        name=SENSOR_NAME,
        minimum_interval_seconds=minimum_interval_seconds,
        default_status=DefaultSensorStatus.RUNNING,
        asset_selection=raw_keys or None,  # None: every spec is invalid, shards are registered only
        description="Registers new landing files and folders as `shards` partitions and runs their raw stage "
        "for every dataset version; downstream stages follow through declarative automation.",
    )
    def landing_sensor(context: SensorEvaluationContext, lake: LakeResource) -> SensorResult:
        found, unsupported = scan_landing(lake.landing_path(), lake.max_shard_bytes)
        previous, said = _read_cursor(context.cursor)
        registered = set(context.instance.get_dynamic_partitions(SHARDS))
        fingerprints = {key: shard_fingerprint(shard.path) for key, shard in found.items()}
        new_keys = [key for key in found if key not in registered]
        changed = [key for key in found if key in previous and previous[key] != fingerprints[key]]
        run_requests = [
            RunRequest(
                run_key=f"{key}:{fingerprints[key]}",
                partition_key=key,
                asset_selection=raw_keys or None,  # None: every spec is invalid, shards are registered only
                tags={"curation/shard": key, "curation/trigger": "new" if key in new_keys else "changed"},
            )
            for key in sorted(set(new_keys) | set(changed))
            if raw_keys
        ]
        if new_keys:
            context.log.info(f"registering {len(new_keys)} new shards: {', '.join(new_keys[:10])}")
        if set(unsupported) - set(said):
            context.log.warning(describe_unsupported(unsupported))
        return SensorResult(
            run_requests=run_requests,
            dynamic_partitions_requests=[shards.build_add_request(new_keys)] if new_keys else [],
            cursor=json.dumps({"shards": fingerprints, "unsupported": unsupported}, sort_keys=True),
        )

    return landing_sensor


def _read_cursor(cursor: str | None) -> tuple[dict[str, str], list[str]]:
    """The landing sensor's cursor: the fingerprint of each shard key, and the unsupported files said. A
    cursor of an earlier release is the fingerprints alone (its files of no supported kind are said again)."""
    if not cursor:
        return {}, []
    data = json.loads(cursor)
    if isinstance(data.get("shards"), dict):
        return dict(data["shards"]), list(data.get("unsupported", []))
    return dict(data), []


def build_dead_run_sensor(minimum_interval_seconds: int = 60) -> SensorDefinition:
    """A sensor that marks failed the runs whose processes are gone and frees their pool slots, so a run
    killed with `kill -9` or by the OOM killer never blocks a pool. It acts on SQLite instances only, where
    every run runs on this machine (see `assets.runner.recover_dead_runs`)."""

    @sensor(
        name=DEAD_RUN_SENSOR_NAME,
        minimum_interval_seconds=minimum_interval_seconds,
        default_status=DefaultSensorStatus.RUNNING,
        description="Fails runs whose processes died (killed, out of memory, machine restarted) and frees "
        "the pool slots they held; on the embedded SQLite instance, where every run runs on this machine.",
    )
    def dead_run_monitor(context: SensorEvaluationContext) -> SkipReason:
        if not detects_dead_runs(context.instance):
            return SkipReason("runs of this instance are monitored by its run launcher, not by this sensor")
        dead = recover_dead_runs(context.instance)
        for run in dead:
            context.log.warning(run.describe())
        return SkipReason(f"{len(dead)} dead runs marked failed" if dead else "no dead runs")

    return dead_run_monitor
