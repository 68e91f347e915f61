"""Each stage asset materializes on a temporary instance, with metadata and passing checks."""

import itertools
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from dagster import (
    AssetKey,
    AssetsDefinition,
    AutomationCondition,
    DagsterInstance,
    Definitions,
    ExecuteInProcessResult,
    instance_for_test,
    materialize,
)

from assets.factory import (
    SUMMARIES,
    build_stage_assets,
    build_summary_assets,
    build_version_assets,
    stage_key,
)
from assets.partitions import SHARDS
from assets.runner import first_stale_stage, summaries_are_current
from curation_dagster.spec import VersionSpec, load_specs, parse_spec
from curation_dagster.stages import STAGES
from resources import AcceleratorResource, LakeResource, ModelsResource

REPO = Path(__file__).resolve().parents[2]


def small_spec(**overrides: object) -> VersionSpec:
    data: dict[str, object] = {
        "name": "unit",
        "modalities": ["text"],
        "filters": {"text": [{"kind": "text_length", "min_chars": 20, "min_words": 4}]},
        "select": {"seed": 1, "fraction": 1.0},
        "synthesize": {"seed": 1, "fraction": 1.0, "image": None, "audio": None, "video": None},
    }
    data.update(overrides)
    return parse_spec(data)


def resources(tmp_path: Path, landing: Path) -> dict[str, object]:
    return {
        "lake": LakeResource(root=str(tmp_path / "lake"), landing=str(landing)),
        "accelerator": AcceleratorResource(device="cpu"),
        "models": ModelsResource(),
    }


@pytest.fixture
def instance(tiny_landing: Path):
    with instance_for_test() as test_instance:
        test_instance.add_dynamic_partitions(SHARDS, ["a.jsonl", "b.jsonl"])
        yield test_instance


def run_assets(
    assets: list[AssetsDefinition],
    instance: DagsterInstance,
    tmp_path: Path,
    landing: Path,
    shard: str,
    raise_on_error: bool = True,
) -> ExecuteInProcessResult:
    return materialize(
        assets,
        partition_key=shard,
        instance=instance,
        resources=resources(tmp_path, landing),
        raise_on_error=raise_on_error,
    )


def run_all(spec: VersionSpec, instance: DagsterInstance, tmp_path: Path, landing: Path, shard: str):
    return run_assets(build_stage_assets(spec), instance, tmp_path, landing, shard)


def failure_message(result: ExecuteInProcessResult) -> str:
    """The error message of the run's first failed step."""
    return result.get_step_failure_events()[0].step_failure_data.error.message


def test_every_shipped_version_builds_the_five_stage_graph_plus_report_and_release() -> None:
    for spec in load_specs(REPO / "versions"):
        assets = {a.key: a for a in build_version_assets(spec)}
        assert len(assets) == 7
        assert set(assets) == {stage_key(spec.name, name) for name in (*STAGES, *SUMMARIES)}
        for upstream, downstream in itertools.pairwise(STAGES):
            deps = assets[stage_key(spec.name, downstream)].asset_deps[stage_key(spec.name, downstream)]
            assert deps == {stage_key(spec.name, upstream)}
        for stage in STAGES:
            definition = assets[stage_key(spec.name, stage)]
            assert definition.partitions_def is not None
            assert definition.partitions_def.name == SHARDS


def test_report_depends_on_every_stage_and_release_on_synthesized_across_all_shards() -> None:
    assets = {a.key: a for a in build_version_assets(small_spec())}
    report, release = stage_key("unit", "report"), stage_key("unit", "release")
    assert assets[report].asset_deps[report] == {stage_key("unit", stage) for stage in STAGES}
    assert assets[release].asset_deps[release] == {stage_key("unit", "synthesized")}
    for key in (report, release):
        assert assets[key].partitions_def is None  # unpartitioned: it reads every shard
        assert assets[key].group_names_by_key[key] == "unit"
    Definitions(
        assets=build_version_assets(small_spec()), resources=resources(Path("unused"), Path("unused"))
    ).resolve_implicit_global_asset_job_def()


def test_report_and_release_follow_the_shards_eagerly() -> None:
    for definition in build_summary_assets(small_spec()):
        assert definition.automation_conditions_by_key == {definition.key: AutomationCondition.eager()}


def test_raw_waits_for_the_sensor_and_downstream_stages_are_eager() -> None:
    assets = {a.key: a for a in build_stage_assets(small_spec())}
    assert stage_key("unit", "raw") not in assets[stage_key("unit", "raw")].automation_conditions_by_key
    for stage in STAGES[1:]:
        condition = assets[stage_key("unit", stage)].automation_conditions_by_key[stage_key("unit", stage)]
        assert condition == AutomationCondition.eager()


def test_every_stage_declares_blocking_conservation_and_unique_id_checks() -> None:
    for definition in build_stage_assets(small_spec()):
        specs = {spec.name: spec for spec in definition.check_specs}
        assert set(specs) == {"conservation", "unique_ids"}
        assert all(spec.blocking for spec in specs.values())


def test_versions_differ_in_code_version_where_their_settings_differ() -> None:
    first = small_spec()
    second = small_spec(filters={"text": [{"kind": "text_length", "min_chars": 200}]})
    versions = {stage: (first.code_version(stage), second.code_version(stage)) for stage in STAGES}
    assert versions["filtered"][0] != versions["filtered"][1]
    assert versions["deduped"][0] == versions["deduped"][1]
    assets = {a.key: a for a in build_version_assets(second)}
    key = stage_key("unit", "filtered")
    assert assets[key].code_versions_by_key[key] == second.code_version("filtered")


def test_the_release_asset_has_the_release_settings_code_version() -> None:
    licensed = small_spec(release={"license": "cc-by-4.0"})
    key = stage_key("unit", "release")
    versions = [
        {a.key: a for a in build_version_assets(spec)}[key].code_versions_by_key[key]
        for spec in (small_spec(), licensed)
    ]
    assert versions == [small_spec().release_code_version(), licensed.release_code_version()]
    assert versions[0] != versions[1]


def test_all_stages_materialize_for_a_shard_with_passing_checks(
    instance, tmp_path: Path, tiny_landing: Path
) -> None:
    result = run_all(small_spec(), instance, tmp_path, tiny_landing, "a.jsonl")
    assert result.success
    checks = result.get_asset_check_evaluations()
    assert len(checks) == 2 * len(STAGES)
    assert all(check.passed for check in checks)
    for stage in STAGES:
        assert (tmp_path / "lake" / "unit" / stage / "a.jsonl.parquet").exists()
        assert (tmp_path / "lake" / "unit" / stage / "_rejected" / "a.jsonl.parquet").exists()


def test_materialization_metadata_reports_counts_reasons_schema_and_timing(
    instance, tmp_path: Path, tiny_landing: Path
) -> None:
    result = run_all(small_spec(), instance, tmp_path, tiny_landing, "a.jsonl")
    events = {
        event.asset_key: event.materialization.metadata for event in result.get_asset_materialization_events()
    }
    raw = events[stage_key("unit", "raw")]
    assert raw["rows_in"].value == 4
    assert raw["rows_kept"].value == 3
    assert raw["dagster/row_count"].value == 3
    assert raw["dagster/partition_row_count"].value == 3
    assert raw["rejections_by_reason"].value == {"raw.bad_json": 1}
    assert "raw.bad_json" in raw["rejections"].value
    assert {column.name for column in raw["dagster/column_schema"].schema.columns} >= {
        "id",
        "text",
        "uri",
        "shard",
    }
    assert raw["source_fingerprint"].value
    filtered = events[stage_key("unit", "filtered")]
    assert filtered["rejections_by_reason"].value == {"filter.text_length.too_short": 1}
    assert "| `text_words` |" in filtered["score_quantiles"].value
    lineage = filtered["dagster/column_lineage"].column_lineage.deps_by_column
    assert [(dep.asset_key, dep.column_name) for dep in lineage["text_words"]] == [
        (stage_key("unit", "deduped"), "text")
    ]
    assert [dep.column_name for dep in lineage["id"]] == ["id"]
    deduped_lineage = events[stage_key("unit", "deduped")]["dagster/column_lineage"].column_lineage
    assert [dep.column_name for dep in deduped_lineage.deps_by_column["dup_of"]] == ["id"]
    assert "dagster/column_lineage" not in raw
    assert "| id | modality | text or uri |" in filtered["kept_samples"].value
    assert "`filter.text_length.too_short`" in filtered["rejected_examples"].value
    text_words = next(c for c in filtered["dagster/column_schema"].schema.columns if c.name == "text_words")
    assert text_words.description == "Computed by the `text_length` filter from `text`."
    for metadata in events.values():
        undescribed = [c.name for c in metadata["dagster/column_schema"].schema.columns if not c.description]
        assert undescribed == []
        assert metadata["elapsed_s"].value >= 0
        assert metadata["items_per_second"].value >= 0
        assert Path(metadata["kept_path"].value).exists()


def test_duplicate_in_a_later_shard_is_rejected_against_the_earlier_one(
    instance, tmp_path: Path, tiny_landing: Path
) -> None:
    spec = small_spec()
    assert run_all(spec, instance, tmp_path, tiny_landing, "a.jsonl").success
    assert run_all(spec, instance, tmp_path, tiny_landing, "b.jsonl").success
    rejected = pq.read_table(tmp_path / "lake" / "unit" / "deduped" / "_rejected" / "b.jsonl.parquet")
    assert rejected.column("reject_reason").to_pylist() == ["dedup.exact"]
    kept_a = pq.read_table(tmp_path / "lake" / "unit" / "deduped" / "a.jsonl.parquet")
    assert rejected.column("dup_of").to_pylist()[0] in kept_a.column("id").to_pylist()


def test_a_shards_metadata_leads_with_the_totals_of_every_shard_and_its_checks_name_it(
    instance, tmp_path: Path, tiny_landing: Path
) -> None:
    spec = small_spec()
    assert run_all(spec, instance, tmp_path, tiny_landing, "a.jsonl").success
    result = run_all(spec, instance, tmp_path, tiny_landing, "b.jsonl")
    events = {
        event.asset_key: event.materialization.metadata for event in result.get_asset_materialization_events()
    }
    raw = events[stage_key("unit", "raw")]
    # a.jsonl: 3 of 4 lines kept (one bad line); b.jsonl: 2 kept.
    assert (raw["shard"].value, raw["rows_kept"].value, raw["dagster/partition_row_count"].value) == (
        "b.jsonl",
        2,
        2,
    )
    assert raw["total_rows_kept"].value == raw["dagster/row_count"].value == 5
    assert raw["total_rows_rejected"].value == 1 and raw["shards_with_output"].value == 2
    assert next(iter(raw)) == "all_shards"
    assert "5 kept, 1 rejected of 6 rows in 2 shards" in raw["all_shards"].value
    assert "| `raw.bad_json` | 1 |" in raw["all_shards"].value
    deduped = events[stage_key("unit", "deduped")]
    assert deduped["total_rows_rejected"].value == 1  # b's copy of a's document
    assert not any(key.startswith(("image_", "video_", "audio_")) for key in deduped)  # text shards
    for check in result.get_asset_check_evaluations():
        assert check.metadata["shard"].value == "b.jsonl"
        assert (check.description or "").startswith("shard b.jsonl: ")


def test_rerunning_a_shard_rewrites_identical_rows(instance, tmp_path: Path, tiny_landing: Path) -> None:
    spec = small_spec()
    run_all(spec, instance, tmp_path, tiny_landing, "a.jsonl")
    path = tmp_path / "lake" / "unit" / "synthesized" / "a.jsonl.parquet"
    first = pq.read_table(path)
    run_all(spec, instance, tmp_path, tiny_landing, "a.jsonl")
    assert pq.read_table(path).equals(first)


def test_a_failing_blocking_check_stops_downstream_stages(
    instance, tmp_path: Path, tiny_landing: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import assets.factory as factory
    from curation_dagster.checks import CheckOutcome

    def broken(*args: object) -> CheckOutcome:
        return CheckOutcome(False, "pretend rows went missing")

    monkeypatch.setattr(factory, "check_conservation", broken)
    result = run_assets(
        build_stage_assets(small_spec()), instance, tmp_path, tiny_landing, "a.jsonl", raise_on_error=False
    )
    assert not result.success
    materialized = {event.asset_key for event in result.get_asset_materialization_events()}
    assert materialized == {stage_key("unit", "raw")}


def test_a_missing_landing_shard_fails_with_a_message_naming_it(
    instance, tmp_path: Path, tiny_landing: Path
) -> None:
    instance.add_dynamic_partitions(SHARDS, ["gone.jsonl"])
    result = run_assets(
        [a for a in build_stage_assets(small_spec()) if a.key == stage_key("unit", "raw")],
        instance,
        tmp_path,
        tiny_landing,
        "gone.jsonl",
        raise_on_error=False,
    )
    assert not result.success
    assert "gone.jsonl" in failure_message(result)


def test_a_stage_without_its_upstream_fails_naming_the_missing_stage(
    instance, tmp_path: Path, tiny_landing: Path
) -> None:
    result = run_assets(
        [a for a in build_stage_assets(small_spec()) if a.key == stage_key("unit", "filtered")],
        instance,
        tmp_path,
        tiny_landing,
        "a.jsonl",
        raise_on_error=False,
    )
    assert not result.success
    assert "unit/deduped first" in failure_message(result)


def test_asset_keys_are_prefixed_by_the_version_name() -> None:
    keys = {a.key for a in build_version_assets(small_spec(name="other"))}
    assert AssetKey(["other", "raw"]) in keys


def classifier_spec() -> VersionSpec:
    return small_spec(
        filters={
            "text": [{"kind": "text_length", "min_chars": 20, "min_words": 4}, {"kind": "text_classifier"}]
        }
    )


def test_stages_that_run_models_join_the_gpu_pool_and_request_a_gpu() -> None:
    assets = {a.key: a for a in build_version_assets(classifier_spec())}
    for stage in STAGES:
        definition = assets[stage_key("unit", stage)]
        op_tags = definition.node_def.tags
        if stage in ("filtered", "synthesized"):
            assert definition.node_def.pool == "gpu"
            assert "nvidia.com/gpu" in str(op_tags["dagster-k8s/config"])
        else:
            assert definition.node_def.pool != "gpu"
            assert "dagster-k8s/config" not in op_tags


def test_selection_on_embeddings_joins_the_gpu_pool_and_a_plain_sample_does_not() -> None:
    spec = small_spec(select={"seed": 1, "budget": 5, "strategy": "k_center"})
    pools = {a.key: a.node_def.pool for a in build_version_assets(spec)}
    assert pools[stage_key("unit", "selected")] == "gpu"
    assert pools[stage_key("unit", "filtered")] != "gpu"
    plain = {a.key: a.node_def.pool for a in build_version_assets(small_spec())}
    assert plain[stage_key("unit", "selected")] is None


def test_cross_shard_stages_without_models_are_in_no_pool_since_their_claims_are_locked() -> None:
    pools = {a.key: a.node_def.pool for a in build_version_assets(small_spec())}
    assert pools[stage_key("unit", "deduped")] is None
    assert pools[stage_key("unit", "synthesized")] is None


def test_a_language_model_recipe_puts_the_synthesized_stage_in_the_gpu_pool() -> None:
    spec = small_spec(synthesize={"text": [{"kind": "llm", "mode": "paraphrase"}]})
    pools = {a.key: a.node_def.pool for a in build_version_assets(spec)}
    assert pools[stage_key("unit", "synthesized")] == "gpu"
    assert pools[stage_key("unit", "filtered")] != "gpu"


def test_semantic_dedup_runs_the_deduped_stage_on_the_accelerator_in_the_gpu_pool(
    instance, tmp_path: Path, no_network: None, torch_single_thread: None
) -> None:
    from tests.media_fixtures import write_jsonl

    spec = small_spec(dedup={"semantic": {}})
    pools = {a.key: a.node_def.pool for a in build_version_assets(spec)}
    assert pools[stage_key("unit", "deduped")] == "gpu"
    landing = tmp_path / "semantic_landing"
    landing.mkdir()
    write_jsonl(
        landing / "a.jsonl",
        [
            "Scientists discovered a new species of frog in the rainforest of Ecuador.",
            "The recipe calls for two cups of flour and a pinch of salt.",
            "A new frog species was discovered by scientists in Ecuador's rainforest.",
        ],
    )
    result = run_assets(
        [a for a in build_stage_assets(spec) if a.key.path[1] in ("raw", "deduped")],
        instance,
        tmp_path,
        landing,
        "a.jsonl",
    )
    metadata = {e.asset_key: e.materialization.metadata for e in result.get_asset_materialization_events()}
    deduped = metadata[stage_key("unit", "deduped")]
    assert deduped["semantic_duplicates"].value == 1
    assert deduped["models"].value["device"] == "cpu"
    assert type(deduped["semantic_example_pairs"]).__name__ == "MarkdownMetadataValue"


def test_a_version_without_model_filters_keeps_its_stages_out_of_the_gpu_pool() -> None:
    assert all(a.node_def.pool != "gpu" for a in build_version_assets(small_spec()))


def test_the_classifier_runs_through_the_injected_accelerator_and_models(
    instance, tmp_path: Path, tiny_landing: Path, no_network: None
) -> None:
    from tests.model_fixtures import build_tiny_classifier

    folder = build_tiny_classifier(tmp_path / "classifier", num_labels=2)
    bound = resources(tmp_path, tiny_landing)
    bound["models"] = ModelsResource(text_classifier=str(folder))
    result = materialize(
        build_stage_assets(classifier_spec()), partition_key="a.jsonl", instance=instance, resources=bound
    )
    assert result.success
    filtered = pq.read_table(tmp_path / "lake" / "unit" / "filtered" / "a.jsonl.parquet")
    scores = filtered.column("text_classifier_score").to_pylist()
    assert scores and all(0.0 <= score <= 1.0 for score in scores)
    events = {e.asset_key: e.materialization.metadata for e in result.get_asset_materialization_events()}
    assert events[stage_key("unit", "filtered")]["models"].value["device"] == "cpu"


def test_a_missing_classifier_fails_the_stage_naming_the_setting(
    instance, tmp_path: Path, tiny_landing: Path
) -> None:
    result = run_assets(
        build_stage_assets(classifier_spec()),
        instance,
        tmp_path,
        tiny_landing,
        "a.jsonl",
        raise_on_error=False,
    )
    assert not result.success
    assert "models.text_classifier" in failure_message(result)


def test_deduped_metadata_shows_near_duplicate_pairs_as_a_table(instance, tmp_path: Path) -> None:
    from tests.media_fixtures import write_jsonl

    landing = tmp_path / "near_landing"
    landing.mkdir()
    text = (
        "The council approved the new cycling lanes along the river after a long public debate about "
        "parking, safety and the cost of the works, which will start in the spring and last two years."
    )
    write_jsonl(
        landing / "a.jsonl", [text, text.replace("two years", "three years").replace("long", "lengthy")]
    )
    result = run_assets(
        [a for a in build_stage_assets(small_spec()) if a.key.path[1] in ("raw", "deduped")],
        instance,
        tmp_path,
        landing,
        "a.jsonl",
    )
    metadata = {e.asset_key: e.materialization.metadata for e in result.get_asset_materialization_events()}
    deduped = metadata[stage_key("unit", "deduped")]
    assert deduped["near_duplicates"].value == 1
    assert deduped["cluster_sizes"].value == {"2": 1}
    assert "alengthy" in deduped["example_pairs"].value
    assert type(deduped["example_pairs"]).__name__ == "MarkdownMetadataValue"


def test_report_and_release_materialize_over_every_shard_with_metadata(
    instance, tmp_path: Path, tiny_landing: Path
) -> None:
    spec = small_spec()
    for shard in ("a.jsonl", "b.jsonl"):
        assert run_all(spec, instance, tmp_path, tiny_landing, shard).success

    result = materialize(
        build_summary_assets(spec), instance=instance, resources=resources(tmp_path, tiny_landing)
    )

    assert result.success
    events = {e.asset_key: e.materialization.metadata for e in result.get_asset_materialization_events()}
    report = events[stage_key("unit", "report")]
    assert Path(report["report_path"].value).name == "index.html"
    assert Path(report["report_path"].value).exists()
    # No file:// link (a browser will not follow one from the UI); the card's first plots come along instead.
    assert "report_url" not in report
    preview = report["data_card_preview"].value
    assert preview.count("](data:image/png;base64,") == 2
    assert report["report_path"].value in preview
    assert "| synthesized |" in report["funnel"].value
    final = sum(
        pq.ParquetFile(tmp_path / "lake" / "unit" / "synthesized" / f"{shard}.parquet").metadata.num_rows
        for shard in ("a.jsonl", "b.jsonl")
    )
    assert report["final_items"].value == final
    assert report["shards"].value == 2
    release = events[stage_key("unit", "release")]
    assert release["items"].value == release["dagster/row_count"].value == final
    assert release["items_by_modality"].value == {"text": final}
    assert (Path(release["release_path"].value) / "manifest.json").exists()
    assert "train-00000-of-00001.parquet" in release["files"].value
    card = Path(release["dataset_card_path"].value)
    assert card.name == "README.md" and card.read_text().startswith("---\n")
    assert not release["dataset_card"].value.startswith("---")  # the body, rendered in the UI
    assert release["dataset_card"].value.strip() in card.read_text()
    (check,) = result.get_asset_check_evaluations()
    assert (check.check_name, check.passed) == ("checksums", True)
    # `curation run` finds the summaries current, until the release settings change.
    defs = Definitions(assets=build_summary_assets(spec), resources=resources(tmp_path, tiny_landing))
    assert summaries_are_current(instance, defs, spec)
    assert not summaries_are_current(instance, defs, small_spec(release={"license": "cc-by-4.0"}))


def test_release_before_any_synthesized_shard_fails_naming_the_stage(
    instance, tmp_path: Path, tiny_landing: Path
) -> None:
    result = materialize(
        [a for a in build_summary_assets(small_spec()) if a.key == stage_key("unit", "release")],
        instance=instance,
        resources=resources(tmp_path, tiny_landing),
        raise_on_error=False,
    )
    assert not result.success
    assert "unit/synthesized first" in failure_message(result)


def test_curation_run_resumes_a_shard_from_its_first_stale_stage(
    instance, tmp_path: Path, tiny_landing: Path
) -> None:
    spec = small_spec()
    assert run_all(spec, instance, tmp_path, tiny_landing, "a.jsonl").success
    defs = Definitions(assets=build_stage_assets(spec), resources=resources(tmp_path, tiny_landing))
    source = tiny_landing / "a.jsonl"
    assert first_stale_stage(instance, defs, spec, "a.jsonl", source) is None
    # A filter change reruns the filtered stage and what follows, not raw and deduped.
    refiltered = small_spec(filters={"text": [{"kind": "text_length", "min_chars": 30, "min_words": 4}]})
    assert first_stale_stage(instance, defs, refiltered, "a.jsonl", source) == "filtered"
    # A changed landing file, or a shard never run, starts from raw.
    assert first_stale_stage(instance, defs, spec, "b.jsonl", tiny_landing / "b.jsonl") == "raw"
    source.write_text(source.read_text(encoding="utf-8") + '{"text": "one more line of text here"}\n')
    assert first_stale_stage(instance, defs, spec, "a.jsonl", source) == "raw"
