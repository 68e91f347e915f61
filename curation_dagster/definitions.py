"""The one Definitions object: every dataset version's asset graph, the landing sensor, the resources.

Loaded by `dagster dev` (workspace.yaml), `dagster asset materialize -m curation_dagster.definitions` and
the daemon. Nothing here touches a GPU or loads a model: that happens inside runs.
"""

import gc
from pathlib import Path

from dagster import (
    AssetKey,
    AssetSelection,
    AutomationConditionSensorDefinition,
    DefaultSensorStatus,
    Definitions,
)

from assets.executor import build_executor
from assets.factory import build_spec_problem_asset, build_version_assets, stage_key
from assets.sensors import build_dead_run_sensor, build_landing_sensor
from curation_dagster import settings
from curation_dagster.spec import SpecProblem, VersionSpec, load_version_specs
from resources import AcceleratorResource, LakeResource, ModelsResource


def build_definitions(
    specs: list[VersionSpec] | None = None,
    lake_root: str | None = None,
    landing: str | None = None,
    versions: Path | None = None,
    executor: str | None = None,
) -> Definitions:
    """Definitions for the given specs (default: every spec in the versions folder), lake locations and
    executor (default: $CURATION_EXECUTOR). A spec file that does not load becomes one
    `<version>/invalid_spec` asset that shows its error; the other versions load as usual."""
    problems: list[SpecProblem] = []
    if specs is None:
        specs, problems = load_version_specs(versions or settings.versions_folder())
    assets = [item for spec in specs for item in build_version_assets(spec)]
    assets += [build_spec_problem_asset(problem) for problem in problems]
    raw_keys: list[AssetKey] = [stage_key(spec.name, "raw") for spec in specs]
    interval = settings.sensor_interval_s()
    automation = AutomationConditionSensorDefinition(
        "curation_automation",
        target=AssetSelection.all(),
        default_status=DefaultSensorStatus.RUNNING,
        minimum_interval_seconds=interval,
        description="Runs each shard's downstream stages once its upstream stage has materialized.",
    )
    return Definitions(
        assets=assets,
        executor=build_executor(executor or settings.executor()),
        sensors=[build_landing_sensor(raw_keys, interval), automation, build_dead_run_sensor()],
        resources={
            "lake": LakeResource(
                root=lake_root or settings.curation_home(),
                landing=landing or settings.landing_root(),
                max_shard_bytes=settings.max_shard_bytes(),
                claim_lock_dsn=settings.claim_lock_dsn(),
            ),
            "accelerator": AcceleratorResource(),
            "models": ModelsResource(
                text_classifier=settings.model_path("text_classifier"),
                text_generator=settings.model_path("text_generator"),
                image_generator=settings.model_path("image_generator"),
                text_to_speech=settings.model_path("text_to_speech"),
                clip_weights=settings.model_path("clip_weights"),
                clip_arch=settings.model_path("clip_arch") or "ViT-B-32",
            ),
        },
    )


defs = build_definitions()
# What is loaded by now lives as long as the process: moved out of the cyclic collector's reach, a run's
# full collections and the interpreter's exit do not walk it again (exit went from about 0.4 s to 0.04 s
# in each Dagster process that loads this module: the command, each step's process, the code server).
gc.freeze()
