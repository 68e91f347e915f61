"""Tests of curation_dagster/dedup/stage.py: compute in parallel, claim in order. Two shards of one version
compute with no lock held, at the same time, then claim one after the other; decisions stay consistent."""

from __future__ import annotations

from pathlib import Path

import pytest

from curation_dagster.dedup.exact import content_hash
from curation_dagster.dedup.exact_index import ExactIndex
from curation_dagster.dedup.indexes import DEDUP_INDEX
from curation_dagster.dedup.near_index import NearIndex
from curation_dagster.io.lake import Lake
from curation_dagster.pipeline import run_stage
from curation_dagster.schema import item_id
from curation_dagster.spec import parse_spec
from tests.engine.dedup.image_fixtures import jpeg, scene
from tests.engine.dedup.test_keystore_merges import locks_held_while_merging
from tests.media_fixtures import write_jsonl
from tests.stage_children import run_in_child, wait_for_line

SPEC = parse_spec({"name": "parallel", "modalities": ["text"]})
WAITING = "waiting for the version's dedup claim lock"
#: Documents with little in common, so only the planted copies are duplicates.
BASE = [
    "The harbour was busy with fishing boats unloading the morning catch for the market stalls.",
    "Researchers measured wheat growth under three watering schedules over two dry summers.",
    "The council voted to repair the old stone bridge before the spring floods reached the valley.",
    "A new bakery opened on the square, selling rye bread and cinnamon rolls every single day.",
    "Volunteers planted four hundred oak saplings along the motorway to soften the traffic noise.",
    "The orchestra rehearsed the symphony twice before the festival opened on Friday evening.",
    "Engineers replaced the signalling cables on the northern railway line during the night shift.",
    "Children at the village school built a weather station and logged rainfall for a whole year.",
]


@pytest.mark.timeout(300)
def test_two_shards_compute_while_the_claim_lock_is_held_then_claim_in_turn(tmp_path: Path) -> None:
    landing = tmp_path / "landing"
    landing.mkdir()
    write_jsonl(landing / "a.jsonl", [*BASE[:4], BASE[4]])
    write_jsonl(landing / "b.jsonl", [BASE[4].upper(), *BASE[5:], BASE[0]])
    lake = Lake(tmp_path / "lake")
    for shard in ("a.jsonl", "b.jsonl"):
        run_stage(SPEC, lake, "raw", shard, landing / shard)

    with lake.lock(SPEC.name, DEDUP_INDEX):
        children = {shard: run_in_child(SPEC, lake, "deduped", shard) for shard in ("a.jsonl", "b.jsonl")}
        for child in children.values():
            wait_for_line(child, WAITING)
        # Both computed while this test held the version's claim lock: their compute needs no lock.
        assert all(child.poll() is None for child in children.values())
        assert lake.list_shards(SPEC.name, "deduped") == []
    for child in children.values():
        wait_for_line(child, "finished")
        assert child.wait() == 0

    kept = {
        row["id"]: row["text"]
        for shard in ("a.jsonl", "b.jsonl")
        for row in lake.read_table(lake.path(SPEC.name, "deduped", shard)).to_pylist()
    }
    removed = [
        row
        for shard in ("a.jsonl", "b.jsonl")
        for row in lake.read_table(lake.path(SPEC.name, "deduped", shard, rejected=True)).to_pylist()
    ]
    assert sorted(text.lower() for text in kept.values()) == sorted(text.lower() for text in BASE)
    assert len(removed) == 2
    assert all(row["dup_of"] in kept for row in removed)
    assert sorted(ExactIndex(lake, SPEC.name).keys.shards()) == ["a.jsonl", "b.jsonl"]


def test_the_stage_reports_when_each_phase_ran(tmp_path: Path) -> None:
    write_jsonl(tmp_path / "a.jsonl", BASE)
    lake = Lake(tmp_path / "lake")
    run_stage(SPEC, lake, "raw", "a.jsonl", tmp_path / "a.jsonl")

    phases = run_stage(SPEC, lake, "deduped", "a.jsonl").extra["phases"]

    assert list(phases) == ["compute", "wait", "claim", "output", "merge"]
    ends = [phases[name]["end"] for name in phases]
    assert ends == sorted(ends)
    assert all(phases[name]["seconds"] >= 0 for name in phases)


def test_the_key_stores_merge_their_tiers_after_the_claim_lock_is_released(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A merge does not stall the version's other shards: its tier is written with the dedup lock free."""
    monkeypatch.setattr("curation_dagster.dedup.keystore.FANOUT", 2)
    lake = Lake(tmp_path / "lake")
    locked_while_merging = locks_held_while_merging(monkeypatch, lake, SPEC.name, DEDUP_INDEX)
    merged = []
    documents = {"a.jsonl": BASE[:3], "b.jsonl": BASE[3:6], "c.jsonl": [*BASE[6:], BASE[0]]}
    for shard, texts in documents.items():
        write_jsonl(tmp_path / shard, texts)
        run_stage(SPEC, lake, "raw", shard, tmp_path / shard)
        merged.append(run_stage(SPEC, lake, "deduped", shard).extra["index_tiers_merged"])

    assert merged == [0, 2, 0]  # the exact and near-duplicate stores each merge a and b
    assert locked_while_merging == [False] * 2
    # A text-only version keeps no media index (it used to gather an empty run a shard in each).
    assert not any(
        lake.exists(lake.stage_dir(SPEC.name, name))
        for name in ("image_hashes_keys", "video_hashes_keys", "audio_hashes_keys")
    )
    for index in (ExactIndex(lake, SPEC.name), NearIndex(lake, SPEC.name, SPEC.dedup.near)):
        (tier,) = index.keys.manifest()["tiers"]
        assert set(tier["shards"]) == {"a.jsonl", "b.jsonl"}
    rejected = lake.read_table(lake.path(SPEC.name, "deduped", "c.jsonl", rejected=True)).to_pylist()
    (original,) = [
        row["id"]
        for row in lake.read_table(lake.path(SPEC.name, "deduped", "a.jsonl")).to_pylist()
        if row["text"] == BASE[0]
    ]
    assert [row["dup_of"] for row in rejected] == [original]  # found through the merged tier


def test_with_exact_dedup_off_a_copy_in_a_later_shard_is_kept(tmp_path: Path) -> None:
    spec = parse_spec(
        {
            "name": "no_exact",
            "modalities": ["text"],
            "dedup": {"exact": {"enabled": False}, "near": {"enabled": False}},
        }
    )
    write_jsonl(tmp_path / "a.jsonl", BASE[:2])
    write_jsonl(tmp_path / "b.jsonl", [BASE[0], BASE[0]])
    lake = Lake(tmp_path / "lake")
    for shard in ("a.jsonl", "b.jsonl"):
        run_stage(spec, lake, "raw", shard, tmp_path / shard)
        result = run_stage(spec, lake, "deduped", shard)
        assert result.rows_rejected == 0


def computed_while_locked_then_claimed(lake: Lake, spec, shards: tuple[str, ...]) -> None:
    """Each shard's deduped stage in a child process: all compute (and search the indexes) while this
    test holds the claim lock, so no shard has claimed yet; then they claim one after the other."""
    with lake.lock(spec.name, DEDUP_INDEX):
        children = [run_in_child(spec, lake, "deduped", shard) for shard in shards]
        for child in children:
            wait_for_line(child, WAITING)
    for child in children:
        wait_for_line(child, "finished")
        assert child.wait() == 0


@pytest.mark.timeout(300)
def test_near_duplicates_claimed_after_another_shard_searched_the_index_are_still_found(
    tmp_path: Path,
) -> None:
    documents = [" ".join(BASE[start : start + 4]) for start in range(0, 8, 4)]
    edited = documents[0].replace("morning", "evening")
    write_jsonl(tmp_path / "a.jsonl", documents)
    write_jsonl(tmp_path / "b.jsonl", [edited, "An unrelated note about the weather in the hills today."])
    lake = Lake(tmp_path / "lake")
    for shard in ("a.jsonl", "b.jsonl"):
        run_stage(SPEC, lake, "raw", shard, tmp_path / shard)

    computed_while_locked_then_claimed(lake, SPEC, ("a.jsonl", "b.jsonl"))

    rows = [
        row
        for shard in ("a.jsonl", "b.jsonl")
        for row in lake.read_table(lake.path(SPEC.name, "deduped", shard, rejected=True)).to_pylist()
    ]
    # Whichever claimed second removed its copy, naming the other's.
    assert [(row["text"], row["reject_reason"]) for row in rows] in (
        [(edited, "dedup.near")],
        [(documents[0], "dedup.near")],
    )


@pytest.mark.timeout(300)
def test_near_duplicate_images_claimed_after_another_shard_searched_the_index_are_still_found(
    tmp_path: Path,
) -> None:
    spec = parse_spec({"name": "parallel", "modalities": ["image"]})
    pictures = [scene(seed, (320, 240)) for seed in range(4)]
    for shard, chosen in (
        ("a", [jpeg(p) for p in pictures[:3]]),
        ("b", [jpeg(pictures[1], 30), jpeg(pictures[3])]),
    ):
        (tmp_path / shard).mkdir()
        for number, data in enumerate(chosen):
            (tmp_path / shard / f"{number}.jpg").write_bytes(data)
    lake = Lake(tmp_path / "lake")
    for shard in ("a", "b"):
        run_stage(spec, lake, "raw", shard, tmp_path / shard)

    computed_while_locked_then_claimed(lake, spec, ("a", "b"))

    removed = [
        (row["id"], row["reject_reason"], row["dup_of"])
        for shard in ("a", "b")
        for row in lake.read_table(lake.path(spec.name, "deduped", shard, rejected=True)).to_pylist()
    ]
    copy, original = item_id("b", "0.jpg"), item_id("a", "1.jpg")
    assert removed in ([(copy, "dedup.image", original)], [(original, "dedup.image", copy)])


@pytest.mark.timeout(300)
def test_every_row_carries_its_own_content_hash_when_the_passes_read_different_batches(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Pass two writes the content hashes pass one computed, by row position: they must line up whatever
    record batches each pass reads."""
    monkeypatch.setattr("curation_dagster.dedup.plan.BATCH_ROWS", 3)
    monkeypatch.setattr("curation_dagster.dedup.stage.BATCH_ROWS", 2)
    texts = [*BASE, BASE[2].upper(), BASE[5]]
    write_jsonl(tmp_path / "a.jsonl", texts)
    lake = Lake(tmp_path / "lake")
    run_stage(SPEC, lake, "raw", "a.jsonl", tmp_path / "a.jsonl")
    result = run_stage(SPEC, lake, "deduped", "a.jsonl")
    assert result.rows_rejected == 2
    rows = [
        row
        for rejected in (False, True)
        for row in lake.read_table(lake.path(SPEC.name, "deduped", "a.jsonl", rejected=rejected)).to_pylist()
    ]
    assert len(rows) == len(texts)
    normalize = SPEC.dedup.exact.normalize
    assert all(row["content_hash"] == content_hash("text", row["text"], None, normalize) for row in rows)
