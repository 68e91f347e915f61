"""Tests of curation_dagster/synth/stage.py: compute in parallel, claim in order. Two shards generate their
candidates with no lock held, at the same time, then admit them one after the other."""

from __future__ import annotations

from pathlib import Path

import pytest

from curation_dagster.dedup.exact_index import ExactIndex
from curation_dagster.dedup.indexes import SYNTH_INDEX, SYNTH_PREFIX
from curation_dagster.io.lake import Lake
from curation_dagster.pipeline import run_stage
from curation_dagster.spec import parse_spec
from curation_dagster.stages import STAGES
from tests.engine.dedup.test_keystore_merges import locks_held_while_merging
from tests.media_fixtures import write_jsonl
from tests.stage_children import run_in_child, wait_for_line

SPEC = parse_spec(
    {
        "name": "parallel",
        "modalities": ["text"],
        "select": {"seed": 1, "fraction": 1.0},
        "synthesize": {"seed": 2, "fraction": 1.0, "text": [{"kind": "sentence_shuffle"}]},
    }
)
TEXTS = {
    "a.jsonl": [
        "The harbour was busy at dawn. Boats unloaded the catch. Gulls circled over the grey water.",
        "Wheat grew slowly that year. The summers were dry. Farmers watered the fields at night.",
    ],
    "b.jsonl": [
        "The bridge was old and cracked. The council voted to repair it. Work begins in spring.",
        "A bakery opened on the square. It sells rye bread. Queues form early every morning.",
    ],
}


@pytest.mark.timeout(300)
def test_two_shards_generate_while_the_claim_lock_is_held_then_admit_in_turn(tmp_path: Path) -> None:
    lake = Lake(tmp_path / "lake")
    for shard, texts in TEXTS.items():
        write_jsonl(tmp_path / shard, texts)
        for stage in STAGES[:-1]:
            run_stage(SPEC, lake, stage, shard, tmp_path / shard)

    with lake.lock(SPEC.name, SYNTH_INDEX):
        children = {shard: run_in_child(SPEC, lake, "synthesized", shard) for shard in TEXTS}
        for child in children.values():
            wait_for_line(child, "waiting for the version's synthesis claim lock")
        assert all(child.poll() is None for child in children.values())
        assert lake.list_shards(SPEC.name, "synthesized") == []
    for child in children.values():
        wait_for_line(child, "finished")
        assert child.wait() == 0

    for shard in TEXTS:
        rows = lake.read_table(lake.path(SPEC.name, "synthesized", shard)).to_pylist()
        assert sum(row["synthetic"] for row in rows) == 2
        assert not lake.exists(lake.path(SPEC.name, "synth_candidates", shard))


def test_the_synthesis_key_stores_merge_their_tiers_after_the_claim_lock_is_released(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("curation_dagster.dedup.keystore.FANOUT", 2)
    lake = Lake(tmp_path / "lake")
    locked_while_merging = locks_held_while_merging(monkeypatch, lake, SPEC.name, SYNTH_INDEX)
    results = {}
    for shard, texts in TEXTS.items():
        write_jsonl(tmp_path / shard, texts)
        for stage in STAGES:
            results[shard] = run_stage(SPEC, lake, stage, shard, tmp_path / shard)

    assert list(results["b.jsonl"].extra["phases"]) == ["compute", "wait", "claim", "merge"]
    assert results["b.jsonl"].extra["index_tiers_merged"] >= 2  # at least the exact and near stores
    assert set(locked_while_merging) == {False}
    (tier,) = ExactIndex(lake, SPEC.name, prefix=SYNTH_PREFIX).keys.manifest()["tiers"]
    assert set(tier["shards"]) == set(TEXTS)
