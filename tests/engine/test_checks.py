"""Tests of curation_dagster/checks.py: conservation and unique ids over hand-made lake files."""

from __future__ import annotations

import uuid
from pathlib import Path

import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from curation_dagster import totals
from curation_dagster.checks import check_conservation, check_unique_ids
from curation_dagster.io.lake import Lake
from curation_dagster.totals import stage_totals
from tests.servers import S3Server


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


def recount(lake: Lake) -> tuple[int, int, int, dict[str, int]]:
    """The filtered stage's totals counted afresh from every file, with no ledger."""
    lake.remove(f"{lake.stage_dir('v', totals.TOTALS_DIR)}/filtered.json")
    found = stage_totals(lake, "v", "filtered")
    return found.shards, found.kept, found.rejected, found.reasons


@settings(max_examples=15, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["write", "remove"]), st.integers(0, 4), st.integers(0, 3), st.integers(0, 3)
        ),
        min_size=1,
        max_size=12,
    )
)
def test_totals_from_the_ledger_equal_a_count_of_every_file_whatever_changed(
    tmp_path_factory: pytest.TempPathFactory, steps: list[tuple[str, int, int, int]]
) -> None:
    lake = Lake(tmp_path_factory.mktemp("lake"))
    for action, number, kept, rejected in steps:
        shard = f"s{number}"
        if action == "write":  # a new shard, or a shard run again with other rows
            reasons = [f"filter.x.r{index % 2}" for index in range(rejected)]
            write_shard(lake, [f"k{index}" for index in range(kept)], ["r"] * rejected, shard, reasons)
        else:
            lake.remove(lake.path("v", "filtered", shard))
            lake.remove(lake.path("v", "filtered", shard, rejected=True))
        found = stage_totals(lake, "v", "filtered")
        assert (found.shards, found.kept, found.rejected, found.reasons) == recount(lake)


def test_a_materialization_counts_only_the_files_that_changed_since_the_ledger(
    lake: Lake, monkeypatch: pytest.MonkeyPatch
) -> None:
    for number in range(6):
        write_shard(lake, ["a", "b"], ["c"], f"s{number}")
    assert stage_totals(lake, "v", "filtered").kept == 12
    counted: list[tuple[list[str], bool]] = []
    count = totals._count

    def counting(connection, lake: Lake, version: str, stage: str, shards: list[str], rejected: bool):
        counted.append((shards, rejected))
        return count(connection, lake, version, stage, shards, rejected)

    monkeypatch.setattr(totals, "_count", counting)
    assert stage_totals(lake, "v", "filtered").kept == 12
    assert counted == []  # nothing changed: the ledger answers
    write_shard(lake, ["a"], ["b", "c"], "s6")
    write_shard(lake, ["a", "b", "c"], [], "s2")
    found = stage_totals(lake, "v", "filtered")
    assert counted == [(["s2", "s6"], False), (["s2", "s6"], True)]
    assert (found.shards, found.kept, found.rejected) == (7, 14, 7)


def test_a_ledger_that_a_racing_writer_left_behind_is_counted_again(lake: Lake) -> None:
    write_shard(lake, ["a"], ["b"], "s1")
    ledger = f"{lake.stage_dir('v', totals.TOTALS_DIR)}/filtered.json"
    stage_totals(lake, "v", "filtered")
    older = Path(lake.url(ledger)).read_bytes()
    write_shard(lake, ["a", "b"], [], "s2")
    stage_totals(lake, "v", "filtered")
    Path(lake.url(ledger)).write_bytes(older)  # another shard's run wrote its ledger last
    found = stage_totals(lake, "v", "filtered")
    assert (found.shards, found.kept, found.rejected) == (2, 3, 1)
    Path(lake.url(ledger)).write_text('{"format": 0}')  # a ledger of another format is not read
    assert stage_totals(lake, "v", "filtered") == found


def test_totals_on_object_storage_follow_each_files_etag(s3: S3Server) -> None:
    lake = Lake(f"s3://curation/lake-{uuid.uuid4().hex}")
    write_shard(lake, ["a", "b"], ["c"], "s1")
    write_shard(lake, ["a"], [], "s2")
    assert (stage_totals(lake, "v", "filtered").kept, stage_totals(lake, "v", "filtered").rejected) == (3, 1)
    write_shard(lake, ["a", "b", "c", "d"], ["e", "f"], "s2")  # run again: same key, another ETag
    found = stage_totals(lake, "v", "filtered")
    assert (found.shards, found.kept, found.rejected) == (2, 6, 3)
    assert (found.shards, found.kept, found.rejected, found.reasons) == recount(lake)
