"""Tests of curation_dagster/select/sample.py: a seeded, budgeted sample shared across shards."""

from __future__ import annotations

import pyarrow as pa

from curation_dagster.sampling import sample_score
from curation_dagster.select.sample import SeededSample
from curation_dagster.select.selector import Selector
from curation_dagster.spec import SelectSettings


def pool(count: int, modality: str = "text", prefix: str = "id") -> pa.Table:
    return pa.table(
        {
            "id": [f"{prefix}{index}" for index in range(count)],
            "modality": [modality] * count,
        }
    )


def mixed(texts: int, images: int) -> pa.Table:
    return pa.concat_tables([pool(texts, "text", "t"), pool(images, "image", "i")])


def run(settings: SelectSettings, table: pa.Table, used: dict[str, int]) -> tuple[pa.Table, pa.Table]:
    return Selector(settings, SeededSample(settings)).run(table, used)


def selected_ids(settings: SelectSettings, table: pa.Table, used: dict[str, int] | None = None) -> list[str]:
    kept, _ = run(settings, table, used or {})
    return kept.column("id").to_pylist()


def test_same_seed_selects_the_same_items() -> None:
    settings = SelectSettings(seed=5, fraction=0.5)

    assert selected_ids(settings, pool(100)) == selected_ids(settings, pool(100))


def test_different_seed_selects_differently() -> None:
    one = selected_ids(SelectSettings(seed=1, fraction=0.5), pool(100))
    two = selected_ids(SelectSettings(seed=2, fraction=0.5), pool(100))

    assert one != two


def test_fraction_is_respected_approximately_on_a_thousand_items() -> None:
    chosen = selected_ids(SelectSettings(seed=0, fraction=0.3), pool(1000))

    assert 250 <= len(chosen) <= 350


def test_fraction_selects_exactly_the_items_scoring_below_it() -> None:
    chosen = selected_ids(SelectSettings(seed=9, fraction=0.3), pool(1000))

    assert chosen == [f"id{index}" for index in range(1000) if sample_score(9, f"id{index}") < 0.3]


def test_selection_of_an_item_does_not_depend_on_the_rest_of_the_shard() -> None:
    settings = SelectSettings(seed=4, fraction=0.5)
    whole = set(selected_ids(settings, pool(100)))

    assert set(selected_ids(settings, pool(100).slice(50))) == {f"id{i}" for i in range(50, 100)} & whole


def test_fraction_one_selects_everything() -> None:
    assert len(selected_ids(SelectSettings(fraction=1.0), pool(50))) == 50


def test_kept_rows_keep_input_order_and_get_score_and_strategy() -> None:
    kept, _ = run(SelectSettings(seed=2, fraction=1.0), pool(5), {})

    assert kept.column("id").to_pylist() == [f"id{index}" for index in range(5)]
    assert kept.column("select_score").to_pylist() == [sample_score(2, f"id{i}") for i in range(5)]
    assert set(kept.column("select_strategy").to_pylist()) == {"seeded_sample"}


def test_unsampled_items_are_rejected_as_not_sampled() -> None:
    _, rejected = run(SelectSettings(seed=0, fraction=0.2), pool(50), {})

    assert rejected.num_rows > 0
    assert set(rejected.column("reject_reason").to_pylist()) == {"select.not_sampled"}
    assert set(rejected.column("reject_stage").to_pylist()) == {"selected"}


def test_budget_caps_the_selection() -> None:
    assert len(selected_ids(SelectSettings(fraction=1.0, budget=10), pool(50))) == 10


def test_budget_takes_the_lowest_scores_first() -> None:
    chosen = selected_ids(SelectSettings(seed=6, fraction=1.0, budget=5), pool(50))

    lowest = sorted((f"id{i}" for i in range(50)), key=lambda item: sample_score(6, item))[:5]
    assert sorted(chosen) == sorted(lowest)


def test_items_over_budget_are_rejected_as_budget() -> None:
    _, rejected = run(SelectSettings(fraction=1.0, budget=10), pool(50), {})

    assert rejected.num_rows == 40
    assert set(rejected.column("reject_reason").to_pylist()) == {"select.budget"}
    assert rejected.column("reject_detail").to_pylist()[0] == "version budget of 10 items used"


def test_budget_used_by_other_shards_counts() -> None:
    assert len(selected_ids(SelectSettings(fraction=1.0, budget=10), pool(50), {"*": 7, "text": 7})) == 3


def test_budget_fully_used_by_other_shards_selects_nothing() -> None:
    assert selected_ids(SelectSettings(fraction=1.0, budget=10), pool(50), {"*": 12}) == []


def test_budget_per_modality_caps_only_that_modality() -> None:
    kept, _ = run(SelectSettings(fraction=1.0, budget_per_modality={"image": 2}), mixed(5, 5), {})

    modalities = kept.column("modality").to_pylist()
    assert (modalities.count("text"), modalities.count("image")) == (5, 2)


def test_budget_per_modality_counts_what_other_shards_used() -> None:
    settings = SelectSettings(fraction=1.0, budget_per_modality={"image": 3})

    kept, rejected = run(settings, mixed(4, 4), {"*": 2, "image": 2})

    assert kept.column("modality").to_pylist().count("image") == 1
    assert rejected.column("reject_detail").to_pylist()[0] == "image budget of 3 items used"


def test_version_budget_and_modality_budget_both_hold() -> None:
    settings = SelectSettings(fraction=1.0, budget=6, budget_per_modality={"text": 5})

    kept, _ = run(settings, mixed(10, 10), {})

    modalities = kept.column("modality").to_pylist()
    assert len(modalities) == 6
    assert modalities.count("text") <= 5


def test_selected_and_rejected_together_hold_every_item_once() -> None:
    table = mixed(30, 30)

    kept, rejected = run(SelectSettings(seed=1, fraction=0.6, budget=20), table, {})

    assert sorted(kept.column("id").to_pylist() + rejected.column("id").to_pylist()) == sorted(
        table.column("id").to_pylist()
    )
