"""Tests of curation_dagster/checks.py: conservation and unique ids over hand-made lake files."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pytest

from curation_dagster.checks import check_conservation, check_unique_ids
from curation_dagster.io.lake import Lake
from curation_dagster.totals import stage_totals


@pytest.fixture
def lake(tmp_path: Path) -> Lake:
    return Lake(tmp_path / "lake")


def write_shard(
    lake: Lake, kept: list[str], rejected: list[str], shard: str = "s", reasons: list[str] | None = None
) -> None:
    lake.write_table(lake.path("v", "filtered", shard), pa.table({"id": pa.array(kept, pa.string())}))
    lake.write_table(
        lake.path("v", "filtered", shard, rejected=True),
        pa.table(
            {
                "id": pa.array(rejected, pa.string()),
                "reject_reason": pa.array(reasons or ["filter.x.y"] * len(rejected), pa.string()),
            }
        ),
    )


def test_conservation_passes_when_kept_plus_rejected_equals_rows_in(lake: Lake) -> None:
    write_shard(lake, ["a", "b"], ["c"])

    outcome = check_conservation(lake, "v", "filtered", "s", rows_in=3)

    assert outcome.passed
    assert outcome.metadata == {
        "shard": "s",
        "rows_in": 3,
        "rows_kept": 2,
        "rows_rejected": 1,
        "rows_missing": 0,
    }
    assert outcome.description == "shard s: 3 in = 2 kept + 1 rejected"


def test_conservation_fails_when_rows_are_missing(lake: Lake) -> None:
    write_shard(lake, ["a", "b"], ["c"])

    outcome = check_conservation(lake, "v", "filtered", "s", rows_in=5)

    assert not outcome.passed
    assert outcome.metadata["rows_missing"] == 2
    assert outcome.description == "shard s: 5 in but 2 kept + 1 rejected = 3"


def test_conservation_fails_when_rows_appear_from_nowhere(lake: Lake) -> None:
    write_shard(lake, ["a", "b"], ["c"])

    assert not check_conservation(lake, "v", "filtered", "s", rows_in=2).passed


def test_conservation_passes_for_an_empty_shard(lake: Lake) -> None:
    write_shard(lake, [], [])

    assert check_conservation(lake, "v", "filtered", "s", rows_in=0).passed


def test_unique_ids_passes_when_every_id_is_distinct(lake: Lake) -> None:
    write_shard(lake, ["a", "b"], ["c"])

    outcome = check_unique_ids(lake, "v", "filtered", "s")

    assert outcome.passed
    assert outcome.metadata == {"shard": "s", "ids": 3, "distinct_ids": 3}


def test_unique_ids_detects_an_id_both_kept_and_rejected(lake: Lake) -> None:
    write_shard(lake, ["a", "b"], ["b"])

    outcome = check_unique_ids(lake, "v", "filtered", "s")

    assert not outcome.passed
    assert outcome.metadata == {"shard": "s", "ids": 3, "distinct_ids": 2}
    assert outcome.description == "shard s: 1 duplicate ids, e.g. ['b']"


def test_unique_ids_detects_an_id_kept_twice(lake: Lake) -> None:
    write_shard(lake, ["a", "a"], [])

    assert not check_unique_ids(lake, "v", "filtered", "s").passed


def test_totals_add_up_every_shard_of_the_stage(lake: Lake) -> None:
    write_shard(lake, ["a", "b"], ["c"], shard="s1", reasons=["filter.language.not_kept"])
    write_shard(
        lake,
        ["d"],
        ["e", "f"],
        shard="s2",
        reasons=["filter.language.not_kept", "filter.gopher_quality.short"],
    )
    write_shard(lake, [], [], shard="s3")

    totals = stage_totals(lake, "v", "filtered")

    assert (totals.shards, totals.kept, totals.rejected) == (3, 3, 3)
    assert totals.reasons == {"filter.language.not_kept": 2, "filter.gopher_quality.short": 1}
    assert totals.markdown().splitlines()[0].startswith("**3 kept, 3 rejected of 6 rows in 3 shards**")
    assert "| `filter.language.not_kept` | 2 | 33.3% |" in totals.markdown()


def test_totals_of_a_stage_without_output_are_zero(lake: Lake) -> None:
    assert stage_totals(lake, "v", "deduped") == stage_totals(lake, "v", "selected")
    assert stage_totals(lake, "v", "deduped").shards == 0
