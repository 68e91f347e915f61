"""The landing sensor: registers new landing shards as partitions and requests their raw runs."""

import json

from dagster import (
    AssetKey,
    DefaultSensorStatus,
    RunRequest,
    SensorDefinition,
    SensorEvaluationContext,
    SensorResult,
    sensor,
)

from assets.partitions import SHARDS, shards
from curation_dagster.io.landing import discover_shards, shard_fingerprint
from resources.lake import LakeResource

SENSOR_NAME = "landing_sensor"


def build_landing_sensor(raw_keys: list[AssetKey], minimum_interval_seconds: int = 30) -> SensorDefinition:
    """A sensor over the landing zone. Its cursor maps each shard key to a fingerprint of its files, so a
    new shard is registered and run once, a changed shard is re-run, and an unchanged one is left alone."""

    @sensor(
        name=SENSOR_NAME,
        minimum_interval_seconds=minimum_interval_seconds,
        default_status=DefaultSensorStatus.RUNNING,
        asset_selection=raw_keys,
        description="Registers new landing files and folders as `shards` partitions and runs their raw stage "
        "for every dataset version; downstream stages follow through declarative automation.",
    )
    def landing_sensor(context: SensorEvaluationContext, lake: LakeResource) -> SensorResult:
        found = discover_shards(lake.landing_path())
        previous: dict[str, str] = json.loads(context.cursor) if context.cursor else {}
        registered = set(context.instance.get_dynamic_partitions(SHARDS))
        fingerprints = {key: shard_fingerprint(path) for key, path in found.items()}
        new_keys = [key for key in found if key not in registered]
        changed = [key for key in found if key in previous and previous[key] != fingerprints[key]]
        run_requests = [
            RunRequest(
                run_key=f"{key}:{fingerprints[key]}",
                partition_key=key,
                asset_selection=raw_keys,
                tags={"curation/shard": key, "curation/trigger": "new" if key in new_keys else "changed"},
            )
            for key in sorted(set(new_keys) | set(changed))
        ]
        if new_keys:
            context.log.info(f"registering {len(new_keys)} new shards: {', '.join(new_keys[:10])}")
        return SensorResult(
            run_requests=run_requests,
            dynamic_partitions_requests=[shards.build_add_request(new_keys)] if new_keys else [],
            cursor=json.dumps(fingerprints, sort_keys=True),
        )

    return landing_sensor
