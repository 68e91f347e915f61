"""Tests of curation_dagster/select/top_k.py: ordering, ties, thresholds and SQL expressions."""

from __future__ import annotations

from typing import Any

import pyarrow as pa
import pytest

from curation_dagster.errors import SpecError
from curation_dagster.select.selector import Selector
from curation_dagster.spec import SelectSettings, parse_spec


def items(**columns: list[Any]) -> pa.Table:
    count = len(next(iter(columns.values())))
    return pa.table({"id": [f"i{n}" for n in range(count)], "modality": ["text"] * count, **columns})


def select(settings: dict[str, Any], table: pa.Table) -> tuple[pa.Table, pa.Table]:
    return Selector(SelectSettings.model_validate(settings)).run(table)


def test_highest_values_first_with_the_budget() -> None:
    kept, _ = select(
        {"budget": 2, "strategy": {"kind": "top_k", "order_by": "formality"}},
        items(formality=[0.2, 0.9, 0.5, 0.7]),
    )

    assert kept.column("id").to_pylist() == ["i1", "i3"]
    assert kept.column("select_rank").to_pylist() == [1, 2]
    assert kept.column("select_score").to_pylist() == [0.9, 0.7]
    assert set(kept.column("select_strategy").to_pylist()) == {"top_k"}


def test_ascending_takes_the_lowest_values() -> None:
    kept, _ = select(
        {"budget": 2, "strategy": {"kind": "top_k", "order_by": "toxicity_score", "descending": False}},
        items(toxicity_score=[0.2, 0.9, 0.05, 0.7]),
    )

    assert kept.column("id").to_pylist() == ["i0", "i2"]


def test_ties_are_broken_by_id() -> None:
    table = pa.table({"id": ["c", "a", "d", "b"], "modality": ["text"] * 4, "score": [1.0, 1.0, 1.0, 0.0]})

    kept, rejected = select({"budget": 2, "strategy": {"kind": "top_k", "order_by": "score"}}, table)

    assert sorted(kept.column("id").to_pylist()) == ["a", "c"]
    assert rejected.column("select_rank").to_pylist() == [3, 4]  # d, then b
    assert rejected.column("id").to_pylist() == ["d", "b"]


def test_sql_expression_over_the_row_orders_the_items() -> None:
    kept, _ = select(
        {"budget": 1, "strategy": {"kind": "top_k", "order_by": "gopher_stop_words * 0.5 - toxicity_score"}},
        items(gopher_stop_words=[4, 6, 2], toxicity_score=[0.5, 2.5, 0.0]),
    )

    # Values 1.5, 0.5 and 1.0.
    assert kept.column("id").to_pylist() == ["i0"]
    assert kept.column("select_score").to_pylist() == [1.5]


def test_bounds_make_it_a_threshold_without_a_budget() -> None:
    kept, rejected = select(
        {"strategy": {"kind": "top_k", "order_by": "formality", "min_value": 0.5}},
        items(formality=[0.2, 0.9, 0.5, None]),
    )

    assert kept.column("id").to_pylist() == ["i1", "i2"]
    assert rejected.column("reject_reason").to_pylist() == ["select.threshold", "select.threshold"]
    assert rejected.column("reject_detail").to_pylist() == ["formality = 0.2 < 0.5", "formality is null"]


def test_where_rejects_before_ranking() -> None:
    kept, rejected = select(
        {"where": "toxicity_score < 0.5", "strategy": {"kind": "top_k", "order_by": "formality"}},
        items(formality=[0.2, 0.9], toxicity_score=[0.1, 0.8]),
    )

    assert kept.column("id").to_pylist() == ["i0"]
    assert rejected.column("reject_reason").to_pylist() == ["select.threshold"]


def test_unknown_column_is_a_spec_error_naming_the_setting() -> None:
    with pytest.raises(SpecError, match=r"^select\.strategy\.order_by: 'formalty' failed .*formality"):
        select({"strategy": {"kind": "top_k", "order_by": "formalty"}}, items(formality=[0.1]))


def test_non_numeric_expression_is_a_spec_error_naming_the_setting() -> None:
    with pytest.raises(SpecError, match=r"^select\.strategy\.order_by: 'lang' failed"):
        select({"strategy": {"kind": "top_k", "order_by": "lang"}}, items(lang=["en"]))


def test_where_on_a_missing_column_is_a_spec_error_naming_where() -> None:
    with pytest.raises(SpecError, match=r"^select\.where: "):
        select({"where": "nope > 1"}, items(formality=[0.1]))


def test_unparseable_expression_is_rejected_when_the_spec_loads() -> None:
    spec = {"name": "v", "select": {"strategy": {"kind": "top_k", "order_by": "formality +"}}}

    with pytest.raises(SpecError, match=r"select\.strategy\.order_by: .*not a valid SQL expression"):
        parse_spec(spec)


def test_two_statements_are_rejected_when_the_spec_loads() -> None:
    with pytest.raises(SpecError, match=r"select\.where: .*one SQL expression"):
        parse_spec({"name": "v", "select": {"where": "true; DROP TABLE items"}})
