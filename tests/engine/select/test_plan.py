"""Tests of curation_dagster/select/plan.py: where, quota groups and the budget shared across shards."""

from __future__ import annotations

from collections import Counter
from typing import Any

import numpy as np
import pyarrow as pa

from curation_dagster.select.base import Pool
from curation_dagster.select.plan import plan_selection
from curation_dagster.select.sample import SeededSample
from curation_dagster.select.selector import Selector, build_strategy
from curation_dagster.select.state import Usage
from curation_dagster.spec import SelectSettings


def items(langs: list[str], prefix: str = "i") -> pa.Table:
    count = len(langs)
    return pa.table(
        {
            "id": [f"{prefix}{n:03d}" for n in range(count)],
            "modality": ["text"] * count,
            "lang": langs,
            "formality": [round(n / max(count, 1), 4) for n in range(count)],
        }
    )


def settings(**select: Any) -> SelectSettings:
    return SelectSettings.model_validate(select)


def kept_langs(kept: pa.Table) -> Counter[str]:
    return Counter(kept.column("lang").to_pylist())


QUOTA_TOP_K = {
    "budget": 10,
    "quotas": {"by": "lang", "shares": {"en": 0.5, "de": 0.3, "fr": 0.2}},
    "strategy": {"kind": "top_k", "order_by": "formality"},
}


def test_quota_shares_split_the_budget_exactly() -> None:
    kept, _ = Selector(settings(**QUOTA_TOP_K)).run(items(["en"] * 20 + ["de"] * 20 + ["fr"] * 20))

    assert kept_langs(kept) == {"en": 5, "de": 3, "fr": 2}
    assert set(kept.column("select_group").to_pylist()) == {"en", "de", "fr"}


def test_strategy_runs_within_each_group() -> None:
    table = items(["en"] * 20 + ["de"] * 20 + ["fr"] * 20)

    kept, _ = Selector(settings(**QUOTA_TOP_K)).run(table)

    # Formality rises with the position, so each group keeps its last (most formal) items.
    assert [i for i in kept.column("id").to_pylist() if i < "i020"] == [
        "i015",
        "i016",
        "i017",
        "i018",
        "i019",
    ]
    assert kept.filter(pa.compute.equal(kept.column("lang"), "fr")).column("select_rank").to_pylist() == [
        2,
        1,
    ]


def test_leftover_of_a_short_group_is_redistributed_by_share() -> None:
    # fr has one item for its 2; the spare one goes to en (0.5) before de (0.3).
    kept, _ = Selector(settings(**QUOTA_TOP_K)).run(items(["en"] * 20 + ["de"] * 20 + ["fr"]))

    assert kept_langs(kept) == {"en": 6, "de": 3, "fr": 1}


def test_without_redistribution_the_short_groups_quota_stays_unused() -> None:
    spec = {**QUOTA_TOP_K, "quotas": {**QUOTA_TOP_K["quotas"], "redistribute": False}}

    kept, rejected = Selector(settings(**spec)).run(items(["en"] * 20 + ["de"] * 20 + ["fr"]))

    assert kept_langs(kept) == {"en": 5, "de": 3, "fr": 1}
    assert "quota of group 'en' used (5 items)" in rejected.column("reject_detail").to_pylist()


def test_quota_counts_without_a_budget() -> None:
    spec = {"quotas": {"by": "lang", "counts": {"en": 2, "de": 1}}}

    kept, _ = Selector(settings(**spec)).run(items(["en"] * 5 + ["de"] * 5))

    assert kept_langs(kept) == {"en": 2, "de": 1}


def test_groups_without_a_quota_are_rejected_as_quota() -> None:
    spec = {"budget": 4, "quotas": {"by": "lang", "shares": {"en": 1.0}}}

    kept, rejected = Selector(settings(**spec)).run(items(["en"] * 5 + ["es"] * 3))

    assert kept_langs(kept) == {"en": 4}
    es = rejected.filter(pa.compute.equal(rejected.column("lang"), "es"))
    assert set(es.column("reject_reason").to_pylist()) == {"select.quota"}


def test_group_by_sql_expression_on_meta() -> None:
    table = items(["en"] * 4).append_column(
        "meta", pa.array(['{"source": "web"}', '{"source": "books"}', '{"source": "web"}', "{}"])
    )
    spec = {"quotas": {"by": "json_extract_string(meta, '$.source')", "counts": {"web": 1, "books": 1}}}

    kept, rejected = Selector(settings(**spec)).run(table)

    assert sorted(kept.column("select_group").to_pylist()) == ["books", "web"]
    assert rejected.filter(pa.compute.equal(rejected.column("id"), "i003")).column(
        "select_group"
    ).to_pylist() == ["(none)"]


def test_budget_is_never_exceeded_across_two_shards() -> None:
    selector = Selector(settings(**QUOTA_TOP_K))
    first, _ = selector.run(items(["en"] * 3 + ["de"] * 8, prefix="a"))
    used = Usage(total=first.num_rows, modality=Counter(first.column("modality").to_pylist()))
    used.group.update(first.column("select_group").to_pylist())

    second, _ = selector.run(items(["en"] * 20 + ["de"] * 20 + ["fr"] * 20, prefix="b"), used)

    assert first.num_rows == 10  # en is short (3 of 5): its 2 go to de, and fr's 2 too (no fr here)
    assert second.num_rows == 0
    assert first.num_rows + second.num_rows <= 10


def test_a_later_shard_fills_only_the_budget_left() -> None:
    selector = Selector(settings(budget=7, fraction=1.0))
    first, _ = selector.run(items(["en"] * 5, prefix="a"))

    second, rejected = selector.run(
        items(["en"] * 5, prefix="b"), {"*": first.num_rows, "text": first.num_rows}
    )

    assert (first.num_rows, second.num_rows) == (5, 2)
    assert set(rejected.column("reject_detail").to_pylist()) == {"version budget of 7 items used"}


def test_same_seed_gives_the_same_plan_and_another_seed_another() -> None:
    table = items(["en"] * 30 + ["de"] * 30)
    spec = {"seed": 3, "budget": 12, "quotas": {"by": "lang", "shares": {"en": 0.5, "de": 0.5}}}

    once = Selector(settings(**spec)).run(table)[0].column("id").to_pylist()
    again = Selector(settings(**spec)).run(table)[0].column("id").to_pylist()
    other = Selector(settings(**{**spec, "seed": 4})).run(table)[0].column("id").to_pylist()

    assert once == again
    assert once != other


def test_metadata_shows_each_group_before_and_after() -> None:
    spec = settings(**QUOTA_TOP_K)
    table = items(["en"] * 20 + ["de"] * 4 + ["fr"] * 6)
    pool = Pool(
        ids=table.column("id").to_pylist(),
        modalities=table.column("modality").to_pylist(),
        seed=0,
        values=np.asarray(table.column("formality").to_pylist()),
    )

    plan = plan_selection(
        spec, build_strategy(spec), pool, np.ones(30, bool), table.column("lang").to_pylist(), Usage()
    )
    metadata = plan.metadata()

    assert metadata["selection_groups"]["de"] == {
        "candidates": 4,
        "eligible": 4,
        "quota": 3,
        "used_by_other_shards": 0,
        "allotted": 3,
        "selected": 3,
    }
    assert (metadata["budget_used_by_this_shard"], metadata["budget_left"]) == (10, 0)
    assert metadata["selection_by_group"].startswith("| group | before (in shard) |")


def test_seeded_sample_is_the_default_strategy() -> None:
    assert isinstance(build_strategy(SelectSettings()), SeededSample)
