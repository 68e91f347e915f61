"""The selected stage through `run_stage`: strategies on filtered shards of a lake, the budget shared by
shards, embeddings and centroids kept in the lake."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from curation_dagster.io.lake import Lake
from curation_dagster.pipeline import run_stage
from curation_dagster.schema import RAW_SCHEMA, conform, with_fields
from curation_dagster.select.state import SELECT_STATE
from curation_dagster.spec import VersionSpec, parse_spec
from curation_dagster.vectors.text import EMBEDDINGS

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
