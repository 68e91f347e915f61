"""Tests of curation_dagster/lineage.py: one item's history through the five stages of a tiny lake."""

from __future__ import annotations

from pathlib import Path

import pytest

from curation_dagster.cli import main
from curation_dagster.io.lake import Lake
from curation_dagster.lineage import item_history
from curation_dagster.pipeline import run_stage
from curation_dagster.schema import item_id
from curation_dagster.spec import VersionSpec, parse_spec
from curation_dagster.stages import STAGES

SPEC = parse_spec(
    {
        "name": "unit",
        "modalities": ["text"],
        "filters": {"text": [{"kind": "text_length", "min_chars": 20, "min_words": 4}]},
        "select": {"seed": 1, "fraction": 1.0},
        "synthesize": {"seed": 1, "fraction": 1.0, "image": None, "audio": None, "video": None},
    }
)


def run_all(spec: VersionSpec, lake: Lake, landing: Path) -> None:
    for shard in ("a.jsonl", "b.jsonl"):
        for stage in STAGES:
            run_stage(spec, lake, stage, shard, landing / shard)


@pytest.fixture
def lake(tmp_path: Path, tiny_landing: Path) -> Lake:
    store = Lake(tmp_path / "lake")
    run_all(SPEC, store, tiny_landing)
    return store


def test_kept_item_is_kept_at_every_stage_with_its_scores_and_source(lake: Lake) -> None:
    history = item_history(lake, "unit", item_id("a.jsonl", "L2"))

    assert [(entry.stage, entry.outcome) for entry in history] == [(stage, "kept") for stage in STAGES]
    filtered = history[2]
    assert filtered.scores["text_words"] == 13
    assert filtered.reject_reason is None
    assert filtered.shard == "a.jsonl"
    assert filtered.uri.endswith("a.jsonl#L2")
    assert history[-1].synthetic is False


def test_exact_duplicate_stops_at_dedup_naming_the_item_it_duplicates(lake: Lake) -> None:
    history = item_history(lake, "unit", item_id("b.jsonl", "L1"))

    assert [(entry.stage, entry.outcome) for entry in history] == [("raw", "kept"), ("deduped", "rejected")]
    assert history[1].reject_reason == "dedup.exact"
    assert history[1].dup_of == item_id("a.jsonl", "L1")


def test_filtered_out_item_carries_the_reason_and_the_score_that_decided(lake: Lake) -> None:
    history = item_history(lake, "unit", item_id("a.jsonl", "L3"))

    assert [(entry.stage, entry.outcome) for entry in history] == [
        ("raw", "kept"),
        ("deduped", "kept"),
        ("filtered", "rejected"),
    ]
    assert history[2].reject_reason == "filter.text_length.too_short"
    assert history[2].scores["text_chars"] == len("too short")
    assert history[2].reject_detail


def test_unparseable_line_is_rejected_at_raw(lake: Lake) -> None:
    (entry,) = item_history(lake, "unit", item_id("a.jsonl", "L4"))

    assert (entry.stage, entry.outcome, entry.reject_reason) == ("raw", "rejected", "raw.bad_json")


def test_synthetic_item_starts_at_synthesis_and_names_its_parent(lake: Lake) -> None:
    synthesized = lake.read_table(lake.path("unit", "synthesized", "a.jsonl")).to_pylist()
    synthetic = next(row for row in synthesized if row["synthetic"])

    (entry,) = item_history(lake, "unit", synthetic["id"])

    assert (entry.stage, entry.outcome, entry.synthetic) == ("synthesized", "kept", True)
    assert entry.parent_ids == synthetic["parent_ids"]
    (parent,) = entry.parent_ids
    assert item_history(lake, "unit", parent)[-1].stage == "synthesized"
    assert entry.generator


def test_unknown_item_has_an_empty_history(lake: Lake) -> None:
    assert item_history(lake, "unit", "0000000000000000") == []


def test_a_version_without_files_has_an_empty_history(tmp_path: Path) -> None:
    assert item_history(Lake(tmp_path / "empty"), "unit", item_id("a.jsonl", "L1")) == []


def test_cli_prints_the_history_as_a_table(
    lake: Lake, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("CURATION_HOME", lake.root)

    code = main(["lineage", "unit", item_id("b.jsonl", "L1")])

    output = capsys.readouterr().out
    assert code == 0
    assert "dedup.exact" in output
    assert item_id("a.jsonl", "L1") in output
    assert "b.jsonl#L1" in output


def test_cli_says_when_there_is_no_such_item(
    lake: Lake, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("CURATION_HOME", lake.root)

    assert main(["lineage", "unit", "nope"]) == 1
    assert "no such item" in capsys.readouterr().out
