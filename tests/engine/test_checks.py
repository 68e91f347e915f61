"""Tests of curation_dagster/checks.py: conservation and unique ids over hand-made lake files."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pytest

from curation_dagster.checks import check_conservation, check_unique_ids
from curation_dagster.io.lake import Lake


@pytest.fixture
def lake(tmp_path: Path) -> Lake:
    return Lake(tmp_path / "lake")


def write_shard(lake: Lake, kept: list[str], rejected: list[str]) -> None:
    lake.write_table(lake.path("v", "filtered", "s"), pa.table({"id": pa.array(kept, pa.string())}))
    lake.write_table(
        lake.path("v", "filtered", "s", rejected=True),
        pa.table(
            {
                "id": pa.array(rejected, pa.string()),
                "reject_reason": pa.array(["filter.x.y"] * len(rejected), pa.string()),
            }
        ),
    )


def test_conservation_passes_when_kept_plus_rejected_equals_rows_in(lake: Lake) -> None:
    write_shard(lake, ["a", "b"], ["c"])

    outcome = check_conservation(lake, "v", "filtered", "s", rows_in=3)

    assert outcome.passed
    assert outcome.metadata == {"rows_in": 3, "rows_kept": 2, "rows_rejected": 1, "rows_missing": 0}


def test_conservation_fails_when_rows_are_missing(lake: Lake) -> None:
    write_shard(lake, ["a", "b"], ["c"])

    outcome = check_conservation(lake, "v", "filtered", "s", rows_in=5)

    assert not outcome.passed
    assert outcome.metadata["rows_missing"] == 2
    assert outcome.description == "5 in but 2 kept + 1 rejected = 3"


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
    assert outcome.metadata == {"ids": 3, "distinct_ids": 3}


def test_unique_ids_detects_an_id_both_kept_and_rejected(lake: Lake) -> None:
    write_shard(lake, ["a", "b"], ["b"])

    outcome = check_unique_ids(lake, "v", "filtered", "s")

    assert not outcome.passed
    assert outcome.metadata == {"ids": 3, "distinct_ids": 2}
    assert outcome.description == "1 duplicate ids, e.g. ['b']"


def test_unique_ids_detects_an_id_kept_twice(lake: Lake) -> None:
    write_shard(lake, ["a", "a"], [])

    assert not check_unique_ids(lake, "v", "filtered", "s").passed
