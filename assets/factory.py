"""The asset factory: one graph raw → deduped → filtered → selected → synthesized per dataset version."""

from collections.abc import Callable
from typing import Any

from dagster import (
    AssetCheckSpec,
    AssetExecutionContext,
    AssetKey,
    AssetsDefinition,
    AutomationCondition,
    Failure,
    MaterializeResult,
    MetadataValue,
    RetryRequested,
    asset,
)

from assets.metadata import check_result, stage_metadata
from assets.partitions import shards
from curation_dagster.checks import check_conservation, check_unique_ids
from curation_dagster.errors import CurationError
from curation_dagster.filters.chain import build_chain
from curation_dagster.io.landing import discover_shards, shard_fingerprint
from curation_dagster.models.runtime import ModelRuntime
from curation_dagster.pipeline import STAGES, UPSTREAM, StageResult, run_stage
from curation_dagster.spec import VersionSpec
from resources.accelerator import AcceleratorResource
from resources.lake import LakeResource
from resources.models import ModelsResource

DESCRIPTIONS = {
    "raw": "Landing shard parsed into the item contract; undecodable or empty items rejected with a reason.",
    "deduped": "Exact duplicates on normalised content removed across all shards; the earliest claim wins.",
    "filtered": "The spec's per-modality filter chain; rejected rows keep every score computed so far.",
    "selected": "A seeded sample under the version's budget, shared by all shards.",
    "synthesized": "Selected items plus synthetic variants admitted through the same validation, dedup and filters.",
}
KINDS = {
    "raw": {"python", "parquet"},
    "deduped": {"python", "duckdb", "parquet"},
    "filtered": {"python", "pytorch", "parquet"},
    "selected": {"python", "parquet"},
    "synthesized": {"python", "pytorch", "parquet"},
}
MODEL_STAGES = ("filtered", "synthesized")
CROSS_SHARD_STAGES = ("deduped", "selected")
GPU_OP_TAGS = {"dagster-k8s/config": {"container_config": {"resources": {"limits": {"nvidia.com/gpu": "1"}}}}}
#: Pool that serialises read-modify-write of cross-shard state (dedup index, selection budget) across runs.
LAKE_INDEX_POOL = "lake_index"


def stage_key(version: str, stage: str) -> AssetKey:
    return AssetKey([version, stage])


def _execute(context: AssetExecutionContext, work: Callable[[], StageResult]) -> StageResult:
    """Run the stage, turning our errors into Dagster's: retry what a retry can fix, fail the rest clearly."""
    try:
        return work()
    except CurationError as error:
        if error.retryable:
            context.log.warning(f"retryable error, retrying: {error}")
            raise RetryRequested(max_retries=3, seconds_to_wait=10) from error
        raise Failure(description=str(error), allow_retries=False) from error


def _materialize_result(
    context: AssetExecutionContext,
    spec: VersionSpec,
    stage: str,
    lake: LakeResource,
    result: StageResult,
    extra: dict[str, Any] | None = None,
) -> MaterializeResult:
    store = lake.lake()
    conservation = check_conservation(store, spec.name, stage, result.shard, result.rows_in)
    unique = check_unique_ids(store, spec.name, stage, result.shard)
    metadata = stage_metadata(result, spec.code_version(stage))
    metadata.update(extra or {})
    context.log.info(
        f"{spec.name}/{stage}[{result.shard}]: {result.rows_in} in, {result.rows_kept} kept, "
        f"{result.rows_rejected} rejected in {result.elapsed_s:.1f}s ({result.items_per_second:.0f} items/s)"
    )
    return MaterializeResult(
        metadata=metadata,
        check_results=[check_result("conservation", conservation), check_result("unique_ids", unique)],
    )


def _stage_asset(spec: VersionSpec, stage: str) -> AssetsDefinition:
    key = stage_key(spec.name, stage)
    needs_gpu = stage in MODEL_STAGES and build_chain(spec.filters).needs_accelerator
    pool = "gpu" if needs_gpu else (LAKE_INDEX_POOL if stage in CROSS_SHARD_STAGES else None)
    decorator = asset(
        key=key,
        deps=[stage_key(spec.name, UPSTREAM[stage])] if stage in UPSTREAM else [],
        partitions_def=shards,
        group_name=spec.name,
        description=DESCRIPTIONS[stage],
        code_version=spec.code_version(stage),
        kinds=KINDS[stage],
        pool=pool,
        op_tags=GPU_OP_TAGS if needs_gpu else None,
        automation_condition=None if stage == "raw" else AutomationCondition.eager(),
        check_specs=[
            AssetCheckSpec(
                "conservation",
                asset=key,
                blocking=True,
                description="rows in = rows kept + rows rejected, counted from the lake files",
            ),
            AssetCheckSpec(
                "unique_ids", asset=key, blocking=True, description="no id twice in the shard's output"
            ),
        ],
        metadata={"version": spec.name, "stage": stage, "spec_description": spec.description},
    )

    if stage == "raw":

        def raw(context: AssetExecutionContext, lake: LakeResource) -> MaterializeResult:
            shard = context.partition_key
            found = discover_shards(lake.landing_path())
            if shard not in found:
                raise Failure(
                    description=f"landing shard {shard!r} is not in {lake.landing}: it was removed or renamed",
                    allow_retries=False,
                )
            result = _execute(context, lambda: run_stage(spec, lake.lake(), "raw", shard, found[shard]))
            return _materialize_result(
                context,
                spec,
                stage,
                lake,
                result,
                {"source": str(found[shard]), "source_fingerprint": shard_fingerprint(found[shard])},
            )

        return decorator(raw)

    if stage in MODEL_STAGES:

        def with_models(
            context: AssetExecutionContext,
            lake: LakeResource,
            accelerator: AcceleratorResource,
            models: ModelsResource,
        ) -> MaterializeResult:
            runtimes: list[ModelRuntime] = []

            def work() -> StageResult:
                runtime = models.runtime(accelerator) if needs_gpu else None
                runtimes.extend([runtime] if runtime else [])
                return run_stage(spec, lake.lake(), stage, context.partition_key, runtime=runtime)

            result = _execute(context, work)
            used = (
                {
                    "device": runtimes[0].device,
                    "batch_size": runtimes[0].batch_size,
                    "text_classifier": models.text_classifier,
                }
                if runtimes
                else {"device": "none: no filter of this version runs a model"}
            )
            return _materialize_result(
                context, spec, stage, lake, result, {"models": MetadataValue.json(used)}
            )

        return decorator(with_models)

    def plain(context: AssetExecutionContext, lake: LakeResource) -> MaterializeResult:
        result = _execute(context, lambda: run_stage(spec, lake.lake(), stage, context.partition_key))
        return _materialize_result(context, spec, stage, lake, result)

    return decorator(plain)


def build_version_assets(spec: VersionSpec) -> list[AssetsDefinition]:
    """The five per-shard stage assets of one dataset version, keys prefixed by the version name."""
    return [_stage_asset(spec, stage) for stage in STAGES]
