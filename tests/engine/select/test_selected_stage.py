"""The selected stage through `run_stage`: strategies on filtered shards of a lake, the budget shared by
shards, embeddings and centroids kept in the lake."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from curation_dagster.errors import StageInputMissing
from curation_dagster.io.lake import Lake
from curation_dagster.pipeline import run_stage
from curation_dagster.schema import RAW_SCHEMA, conform, with_fields
from curation_dagster.select.state import SELECT_STATE, Usage, UsageLedger, usage_of_shard
from curation_dagster.spec import VersionSpec, parse_spec
from curation_dagster.vectors.text import EMBEDDINGS
from tests.stage_children import run_in_child

FILTERED_SCHEMA = with_fields(
    RAW_SCHEMA, [pa.field("lang", pa.string()), pa.field("formality", pa.float64())]
)
ANIMALS = ["The cat sleeps on the warm mat.", "A dog chases the ball in the park.", "Kittens play with yarn."]
MONEY = ["Interest rates rose this quarter.", "The bank cut its lending rate.", "Bond yields fell sharply."]


def write_filtered(lake: Lake, version: str, shard: str, rows: list[tuple[str, str, float]]) -> None:
    """A filtered shard of text items: (text, lang, formality) per row."""
    table = pa.table(
        {
            "id": [f"{shard}-{n}" for n in range(len(rows))],
            "modality": ["text"] * len(rows),
            "text": [text for text, _, _ in rows],
            "uri": [f"{shard}#{n}" for n in range(len(rows))],
            "shard": [shard] * len(rows),
            "lang": [lang for _, lang, _ in rows],
            "formality": [formality for _, _, formality in rows],
        }
    )
    lake.write_table(lake.path(version, "filtered", shard), conform(table, FILTERED_SCHEMA))


def spec_with(select: dict[str, Any]) -> VersionSpec:
    return parse_spec({"name": "sel", "modalities": ["text"], "select": select})


@pytest.fixture
def lake(tmp_path: Path) -> Lake:
    return Lake(tmp_path / "lake")


QUOTAS_THEN_TOP_K = {
    "budget": 6,
    "where": "formality >= 0.2",
    "quotas": {"by": "lang", "shares": {"en": 0.5, "de": 0.5}},
    "strategy": {"kind": "top_k", "order_by": "formality"},
}


def two_shards(lake: Lake) -> None:
    """Shard one: ten en items (formality 0.0 to 0.9) and one de item; shard two: ten de items."""
    write_filtered(lake, "sel", "one", [(f"en {n}", "en", n / 10) for n in range(10)] + [("de 0", "de", 0.9)])
    write_filtered(lake, "sel", "two", [(f"de {n}", "de", n / 10) for n in range(10)])


def selected_rows(lake: Lake) -> list[dict[str, Any]]:
    return (
        lake.duckdb("sel")
        .sql("SELECT * EXCLUDE (media) FROM selected ORDER BY id")
        .to_arrow_table()
        .to_pylist()
    )


def test_redistributed_quota_goes_to_the_shard_that_comes_first(lake: Lake) -> None:
    spec = spec_with(QUOTAS_THEN_TOP_K)
    two_shards(lake)

    first = run_stage(spec, lake, "selected", "one")
    second = run_stage(spec, lake, "selected", "two")

    # one: en takes its 3, de has 1 item for its 3, so the 2 spare go to en: 5 + 1 = the whole budget.
    assert (first.rows_kept, second.rows_kept) == (6, 0)
    assert first.reasons == {"select.budget": 3, "select.threshold": 2}  # en 0.2 to 0.4; en 0.0 and 0.1
    assert second.reasons == {"select.budget": 8, "select.threshold": 2}
    assert second.extra["budget_used_by_other_shards"] == 6
    assert len(selected_rows(lake)) == 6


def test_without_redistribution_a_later_shard_fills_its_groups_quota(lake: Lake) -> None:
    quotas = {**QUOTAS_THEN_TOP_K["quotas"], "redistribute": False}  # type: ignore[dict-item]
    spec = spec_with({**QUOTAS_THEN_TOP_K, "quotas": quotas})
    two_shards(lake)

    first = run_stage(spec, lake, "selected", "one")
    second = run_stage(spec, lake, "selected", "two")

    assert (first.rows_kept, second.rows_kept) == (4, 2)
    rows = selected_rows(lake)
    assert [(row["select_group"], row["formality"]) for row in rows if row["shard"] == "two"] == [
        ("de", 0.8),
        ("de", 0.9),
    ]
    assert {row["select_strategy"] for row in rows} == {"top_k"}
    assert "| de | 10 | 8 | 3 | 1 | 2 | 100.0% |" in second.extra["selection_by_group"]
    assert second.extra["selection_groups"]["en"]["used_by_other_shards"] == 3
    assert second.extra["budget_left"] == 0


def test_rerunning_a_shard_does_not_count_its_own_earlier_selection(lake: Lake) -> None:
    spec = spec_with(QUOTAS_THEN_TOP_K)
    two_shards(lake)
    run_stage(spec, lake, "selected", "one")

    again = run_stage(spec, lake, "selected", "one")

    assert again.rows_kept == 6
    assert again.rows_in == again.rows_kept + again.rows_rejected


CLUSTERS = {"budget": 4, "strategy": {"kind": "cluster_balanced", "clusters": 2, "per_cluster_cap": 2}}


def test_cluster_balanced_stores_embeddings_and_centroids_and_reuses_them(lake: Lake) -> None:
    spec = spec_with(CLUSTERS)
    write_filtered(lake, "sel", "one", [(text, "en", 0.5) for text in ANIMALS + MONEY])
    write_filtered(lake, "sel", "two", [(text, "en", 0.5) for text in [*MONEY, ANIMALS[0]]])

    first = run_stage(spec, lake, "selected", "one")
    rerun = run_stage(spec, lake, "selected", "one")
    second = run_stage(spec, lake, "selected", "two")

    assert first.extra["embeddings"]["computed"] == 6
    assert (rerun.extra["embeddings"]["computed"], rerun.extra["embeddings"]["reused"]) == (0, 6)
    assert lake.list_shards("sel", EMBEDDINGS) == ["one", "two"]
    assert len(lake.list_shards("sel", SELECT_STATE)) == 1  # fitted once, on shard one
    # Two clusters (animals, money), at most two items each across both shards: shard one fills them.
    assert first.rows_kept == 4
    rows = selected_rows(lake)
    animal_clusters = {row["select_cluster"] for row in rows if row["text"] in ANIMALS}
    money_clusters = {row["select_cluster"] for row in rows if row["text"] in MONEY}
    assert len(animal_clusters) == len(money_clusters) == 1 and animal_clusters != money_clusters
    assert sorted(row["select_cluster"] for row in rows) == [0, 0, 1, 1]
    assert second.rows_kept == 0
    assert second.reasons == {"select.cluster_cap": 4}
    assert first.extra["strategy_stats"]["coverage"] == 1.0


# The selection ledger: one small file read per shard, always the sum of what the selected files hold.


def scanned_usage(lake: Lake, version: str, but: str | None = None) -> Usage:
    """The reference: every selected file read."""
    total = Usage()
    for shard in lake.list_shards(version, "selected"):
        if shard != but:
            total = total.plus(usage_of_shard(lake, version, shard))
    return total


def four_shards(lake: Lake) -> None:
    for number, lang in enumerate(["en", "de", "en", "de"]):
        write_filtered(lake, "sel", f"s{number}", [(f"{lang} {n} {number}", lang, n / 10) for n in range(10)])


def test_the_ledger_is_the_sum_of_the_selected_files_through_runs_and_reruns(lake: Lake) -> None:
    four_shards(lake)
    budget = {**QUOTAS_THEN_TOP_K, "budget": 14}
    for shard in ["s0", "s1", "s2", "s1", "s3"]:
        run_stage(spec_with(budget), lake, "selected", shard)
        ledger = UsageLedger(lake, "sel")
        for other in ["s0", "s1", "s2", "s3", "new"]:
            assert ledger.others(other) == scanned_usage(lake, "sel", but=other)
    run_stage(spec_with({**budget, "budget": 3}), lake, "selected", "s0")  # a smaller part replaces the old
    assert UsageLedger(lake, "sel").others("new") == scanned_usage(lake, "sel")
    parts = lake.fs.find(f"{lake.stage_dir('sel', SELECT_STATE)}/usage")
    assert len(parts) == 4  # one part per shard, old parts removed


def test_a_version_selected_before_the_ledger_existed_gets_one_built_from_its_files(lake: Lake) -> None:
    four_shards(lake)
    spec = spec_with({**QUOTAS_THEN_TOP_K, "budget": 14})
    for shard in ["s0", "s1"]:
        run_stage(spec, lake, "selected", shard)
    lake.fs.rm(lake.stage_dir("sel", SELECT_STATE), recursive=True)  # what an earlier release left
    result = run_stage(spec, lake, "selected", "s2")
    assert result.extra["budget_used_by_other_shards"] == scanned_usage(lake, "sel", but="s2").total > 0
    assert UsageLedger(lake, "sel").others("new") == scanned_usage(lake, "sel")


def test_a_run_that_died_after_its_output_is_rolled_back_with_its_part_of_the_ledger(lake: Lake) -> None:
    four_shards(lake)
    spec = spec_with({**QUOTAS_THEN_TOP_K, "budget": 14})
    run_stage(spec, lake, "selected", "s0")
    run_stage(spec, lake, "selected", "s1")
    child = run_in_child(spec, lake, "selected", "s1", {"CURATION_CRASH_AT": "selected:after_output:s1"})
    assert child.wait() != 0  # the rerun's output is written, the ledger still has the first run's part
    with pytest.raises(StageInputMissing, match="stopped before it recorded its claims"):
        run_stage(spec, lake, "synthesized", "s1")
    result = run_stage(spec, lake, "selected", "s2")
    assert result.extra["rolled_back_interrupted_shards"] == ["s1"]
    assert not lake.exists(lake.path("sel", "selected", "s1"))
    assert UsageLedger(lake, "sel").others("new") == scanned_usage(lake, "sel")
    assert result.extra["budget_used_by_other_shards"] == usage_of_shard(lake, "sel", "s0").total
