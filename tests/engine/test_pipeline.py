"""Tests of curation_dagster/pipeline.py (`run_stage`) and the stages it runs, one after another, per shard on a
tiny landing zone: conservation, cross-shard dedup, determinism, recovery from a run killed half-way."""

from __future__ import annotations

import io
import itertools
import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pytest
from PIL import Image

from curation_dagster.checks import check_conservation, check_unique_ids
from curation_dagster.errors import StageInputMissing
from curation_dagster.faults import CRASH_AT
from curation_dagster.io.lake import SWEEPS_DIR, Lake
from curation_dagster.pipeline import run_stage
from curation_dagster.schema import item_id
from curation_dagster.shard_io import StageResult
from curation_dagster.spec import VersionSpec, parse_spec
from curation_dagster.stages import STAGES
from tests.media_fixtures import tone_wav, write_jsonl

SHARED = "Shared sentence appears in both shards here."
SPEC: dict[str, Any] = {
    "name": "tiny",
    "filters": {
        "text": [{"kind": "text_length", "min_chars": 10, "max_chars": 1000, "min_words": 2}],
        "image": [{"kind": "image_size", "min_width": 8, "min_height": 8}, {"kind": "image_blank"}],
        "audio": [{"kind": "duration", "min_s": 0.1, "max_s": 10.0}, {"kind": "audio_silence"}],
        "video": [],
    },
    "select": {"seed": 1, "fraction": 1.0},
    "synthesize": {"seed": 2, "fraction": 1.0},
}


def spec_with(**sections: Any) -> VersionSpec:
    return parse_spec({**SPEC, **sections})


def noisy_png(size: int = 16) -> bytes:
    pixels = np.random.default_rng(0).integers(0, 256, (size, size, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.fixture
def landing(tmp_path: Path) -> Path:
    """Shards `a.jsonl` and `b.jsonl` share one text (up to case and spacing); `media` has a PNG and a WAV."""
    root = tmp_path / "landing"
    root.mkdir()
    write_jsonl(root / "a.jsonl", ["The quick brown fox jumps over the lazy dog.", SHARED, "tiny"])
    write_jsonl(
        root / "b.jsonl", ["shared   SENTENCE appears in both shards here.", "One more unique document."]
    )
    (root / "media").mkdir()
    (root / "media" / "picture.png").write_bytes(noisy_png())
    (root / "media" / "sound.wav").write_bytes(tone_wav())
    return root


@pytest.fixture
def lake(tmp_path: Path) -> Lake:
    return Lake(tmp_path / "lake")


def run_stages(
    spec: VersionSpec, lake: Lake, landing: Path, shard: str, stages: tuple[str, ...] = STAGES
) -> dict[str, StageResult]:
    return {stage: run_stage(spec, lake, stage, shard, landing / shard) for stage in stages}


def rows(
    lake: Lake, spec: VersionSpec, stage: str, shard: str, *, rejected: bool = False
) -> list[dict[str, Any]]:
    return lake.read_table(lake.path(spec.name, stage, shard, rejected=rejected)).to_pylist()


def kept_ids(lake: Lake, spec: VersionSpec, stage: str, shard: str) -> list[str]:
    return [row["id"] for row in rows(lake, spec, stage, shard)]


def stage_tables(lake: Lake, spec: VersionSpec, shard: str) -> dict[str, pa.Table]:
    return {
        f"{stage}{'/_rejected' if rejected else ''}": lake.read_table(
            lake.path(spec.name, stage, shard, rejected=rejected)
        )
        for stage in STAGES
        for rejected in (False, True)
    }


# Conservation ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("shard", ["a.jsonl", "b.jsonl", "media"])
def test_every_stage_conserves_rows_on_disk(landing: Path, lake: Lake, shard: str) -> None:
    spec = spec_with()
    run_stages(spec, lake, landing, "a.jsonl")

    results = run_stages(spec, lake, landing, shard)

    for stage, result in results.items():
        assert result.conserved, stage
        assert check_conservation(lake, spec.name, stage, shard, result.rows_in).passed, stage
        assert check_unique_ids(lake, spec.name, stage, shard).passed, stage


@pytest.mark.parametrize("shard", ["a.jsonl", "media"])
def test_each_stage_reads_exactly_the_rows_its_upstream_kept(landing: Path, lake: Lake, shard: str) -> None:
    spec = spec_with()

    results = run_stages(spec, lake, landing, shard)

    for upstream, stage in itertools.pairwise(STAGES):
        generated = results[stage].extra.get("synthetic_generated", 0)
        assert results[stage].rows_in == results[upstream].rows_kept + generated, stage


def test_raw_reads_every_landing_item(landing: Path, lake: Lake) -> None:
    result = run_stage(spec_with(), lake, "raw", "a.jsonl", landing / "a.jsonl")

    assert (result.rows_in, result.rows_kept, result.rows_rejected) == (3, 3, 0)


def test_filter_rejects_are_counted_by_reason(landing: Path, lake: Lake) -> None:
    results = run_stages(spec_with(), lake, landing, "a.jsonl", STAGES[:3])

    assert results["filtered"].reasons == {"filter.text_length.too_short": 1}
    assert [row["text"] for row in rows(lake, spec_with(), "filtered", "a.jsonl", rejected=True)] == ["tiny"]


# Exact dedup across shards ---------------------------------------------------------------------------


def test_duplicate_across_shards_is_rejected_in_the_later_shard(landing: Path, lake: Lake) -> None:
    spec = spec_with()
    run_stages(spec, lake, landing, "a.jsonl", ("raw", "deduped"))

    result = run_stages(spec, lake, landing, "b.jsonl", ("raw", "deduped"))["deduped"]

    (duplicate,) = rows(lake, spec, "deduped", "b.jsonl", rejected=True)
    assert duplicate["id"] == item_id("b.jsonl", "L1")
    assert duplicate["dup_of"] == item_id("a.jsonl", "L2")
    assert duplicate["reject_reason"] == "dedup.exact"
    assert result.extra["exact_duplicates_of_other_shards"] == 1


def test_rerunning_the_earlier_shard_keeps_its_claimed_item(landing: Path, lake: Lake) -> None:
    spec = spec_with()
    run_stages(spec, lake, landing, "a.jsonl", ("raw", "deduped"))
    run_stages(spec, lake, landing, "b.jsonl", ("raw", "deduped"))

    run_stage(spec, lake, "deduped", "a.jsonl")

    assert item_id("a.jsonl", "L2") in kept_ids(lake, spec, "deduped", "a.jsonl")
    assert rows(lake, spec, "deduped", "a.jsonl", rejected=True) == []


def test_dedup_index_holds_only_kept_items(landing: Path, lake: Lake) -> None:
    spec = spec_with()
    run_stages(spec, lake, landing, "a.jsonl", ("raw", "deduped"))
    run_stages(spec, lake, landing, "b.jsonl", ("raw", "deduped"))

    index = lake.read_table(lake.path(spec.name, "dedup_index", "b.jsonl"))

    assert index.column("id").to_pylist() == [item_id("b.jsonl", "L2")]


def test_duplicate_within_a_shard_keeps_the_first_line(tmp_path: Path, lake: Lake) -> None:
    (tmp_path / "twice.jsonl").write_text(
        json.dumps({"text": "same words here"}) + "\n" + json.dumps({"text": "SAME words here"}) + "\n"
    )
    spec = spec_with()
    run_stage(spec, lake, "raw", "twice.jsonl", tmp_path / "twice.jsonl")

    result = run_stage(spec, lake, "deduped", "twice.jsonl")

    assert kept_ids(lake, spec, "deduped", "twice.jsonl") == [item_id("twice.jsonl", "L1")]
    assert result.extra["exact_duplicates"] == 1
    assert result.extra["exact_duplicates_of_other_shards"] == 0


# Determinism and inputs ------------------------------------------------------------------------------


def test_rerunning_a_shard_gives_identical_rows(landing: Path, lake: Lake) -> None:
    spec = spec_with()
    run_stages(spec, lake, landing, "media")
    first = stage_tables(lake, spec, "media")

    run_stages(spec, lake, landing, "media")

    second = stage_tables(lake, spec, "media")
    assert {name: table.equals(second[name]) for name, table in first.items()} == dict.fromkeys(first, True)


@pytest.mark.parametrize("stage", ["deduped", "filtered", "selected", "synthesized"])
def test_stage_without_its_upstream_raises_stage_input_missing(lake: Lake, stage: str) -> None:
    with pytest.raises(StageInputMissing, match="first"):
        run_stage(spec_with(), lake, stage, "a.jsonl")


def test_raw_stage_without_a_landing_path_is_an_error(lake: Lake) -> None:
    with pytest.raises(ValueError, match="landing"):
        run_stage(spec_with(), lake, "raw", "a.jsonl")


def test_raw_stage_of_a_vanished_landing_shard_raises_stage_input_missing(tmp_path: Path, lake: Lake) -> None:
    with pytest.raises(StageInputMissing):
        run_stage(spec_with(), lake, "raw", "gone.jsonl", tmp_path / "gone.jsonl")


def test_modality_outside_the_spec_is_rejected_at_raw(landing: Path, lake: Lake) -> None:
    spec = spec_with(modalities=["text"])

    result = run_stage(spec, lake, "raw", "media", landing / "media")

    assert result.rows_kept == 0
    assert result.reasons == {"raw.modality_excluded": 2}


# Selection budget ------------------------------------------------------------------------------------


def test_budget_across_shards_is_never_exceeded(landing: Path, lake: Lake) -> None:
    spec = spec_with(select={"seed": 1, "fraction": 1.0, "budget": 3})
    for shard in ("a.jsonl", "b.jsonl", "media"):
        run_stages(spec, lake, landing, shard, STAGES[:4])
    run_stage(spec, lake, "selected", "a.jsonl")

    selected = lake.duckdb(spec.name).execute("SELECT count(*) FROM selected").fetchone()

    assert selected == (3,)


def test_shards_over_the_shared_budget_reject_as_budget(landing: Path, lake: Lake) -> None:
    spec = spec_with(select={"seed": 1, "fraction": 1.0, "budget": 2})
    run_stages(spec, lake, landing, "a.jsonl", STAGES[:4])

    result = run_stages(spec, lake, landing, "media", STAGES[:4])["selected"]

    assert result.rows_kept == 0
    assert result.reasons == {"select.budget": 2}
    assert result.extra["budget_used_by_other_shards"] == 2


# Synthesis -------------------------------------------------------------------------------------------


def test_synthesized_holds_the_selected_real_items_unmarked(landing: Path, lake: Lake) -> None:
    spec = spec_with()
    run_stages(spec, lake, landing, "media")

    real = [row for row in rows(lake, spec, "synthesized", "media") if not row["synthetic"]]

    assert [row["id"] for row in real] == kept_ids(lake, spec, "selected", "media")
    assert all(row["synthetic"] is False and row["parent_ids"] == [] for row in real)
    assert all(row["generator"] is None for row in real)


def test_synthetic_items_record_their_parent_and_generator(landing: Path, lake: Lake) -> None:
    spec = spec_with()
    run_stages(spec, lake, landing, "media")
    selected = set(kept_ids(lake, spec, "selected", "media"))

    synthetic = [row for row in rows(lake, spec, "synthesized", "media") if row["synthetic"]]

    assert {row["modality"] for row in synthetic} == {"image", "audio"}
    for row in synthetic:
        (parent,) = row["parent_ids"]
        assert parent in selected
        assert json.loads(row["generator"])["recipe"] in {"flip_crop", "gain_shift"}
        assert row["id"] not in selected


def test_synthetic_text_identical_to_its_parent_is_rejected_as_exact_duplicate(
    tmp_path: Path, lake: Lake
) -> None:
    write_jsonl(tmp_path / "one.jsonl", ["hello"])  # word edits cannot change a single word
    spec = spec_with(
        filters={"text": [{"kind": "text_length", "min_chars": 1, "min_words": 1}]},
        synthesize={"seed": 2, "fraction": 1.0, "text": {"kind": "word_edits", "edit_rate": 0.5}},
    )

    results = run_stages(spec, lake, tmp_path, "one.jsonl")

    (rejected,) = rows(lake, spec, "synthesized", "one.jsonl", rejected=True)
    assert (rejected["reject_stage"], rejected["reject_reason"]) == ("synthesized", "dedup.exact")
    assert rejected["dup_of"] == item_id("one.jsonl", "L1")
    assert rejected["synthetic"] is True
    assert results["synthesized"].extra["synthetic_admitted"] == 0


def test_synthetic_items_pass_the_same_filters(tmp_path: Path, lake: Lake) -> None:
    write_jsonl(tmp_path / "one.jsonl", ["alpha beta gamma delta epsilon zeta eta theta iota kappa"])
    spec = spec_with(
        filters={"text": [{"kind": "text_length", "min_chars": 1, "min_words": 10}]},
        synthesize={"seed": 2, "fraction": 1.0, "text": {"kind": "word_edits", "edit_rate": 0.5}},
    )

    run_stages(spec, lake, tmp_path, "one.jsonl")

    (rejected,) = rows(lake, spec, "synthesized", "one.jsonl", rejected=True)
    assert (rejected["reject_stage"], rejected["reject_reason"]) == (
        "synthesized",
        "filter.text_length.too_few_words",
    )


def test_synthesis_fraction_zero_adds_nothing(landing: Path, lake: Lake) -> None:
    spec = spec_with(synthesize={"fraction": 0.0})

    result = run_stages(spec, lake, landing, "media")["synthesized"]

    assert (result.rows_in, result.extra["synthetic_generated"]) == (2, 0)


def test_shard_with_every_item_rejected_at_raw_runs_every_later_stage_empty(
    landing: Path, lake: Lake
) -> None:
    spec = spec_with(modalities=["text"])

    results = run_stages(spec, lake, landing, "media")

    assert [(results[stage].rows_in, results[stage].rows_kept) for stage in STAGES[1:]] == [(0, 0)] * 4


# dup_of names the survivor ---------------------------------------------------------------------------

ORIGINAL = (
    "The committee met on Tuesday to review the budget for the new library, and after a long debate "
    "the members agreed to fund the reading room, the childrens corner and a small garden by the river."
)
#: ORIGINAL with two words swapped: a near duplicate of it.
SWAPPED = ORIGINAL.replace("long debate", "debate long")


def test_an_exact_copy_of_a_near_duplicate_names_the_kept_original(tmp_path: Path, lake: Lake) -> None:
    write_jsonl(tmp_path / "chain.jsonl", [ORIGINAL, SWAPPED, SWAPPED])
    spec = spec_with()
    run_stage(spec, lake, "raw", "chain.jsonl", tmp_path / "chain.jsonl")

    run_stage(spec, lake, "deduped", "chain.jsonl")

    removed = {row["id"]: row for row in rows(lake, spec, "deduped", "chain.jsonl", rejected=True)}
    original, swapped, copy = (item_id("chain.jsonl", f"L{line}") for line in (1, 2, 3))
    assert kept_ids(lake, spec, "deduped", "chain.jsonl") == [original]
    assert removed[swapped]["dup_of"] == original
    assert removed[copy]["dup_of"] == original
    assert removed[copy]["reject_reason"] == "dedup.exact"
    assert removed[copy]["dup_similarity"] == pytest.approx(removed[swapped]["dup_similarity"])
    assert f"{swapped} was removed too" in removed[copy]["reject_detail"]


# Recovery from a run killed half-way -----------------------------------------------------------------


def crash_stage(spec: VersionSpec, lake: Lake, landing: Path, stage: str, moment: str, shard: str) -> None:
    """Run one stage of one shard in a child process that SIGKILLs itself at the named crash point."""
    code = (
        "import json, sys\n"
        "from pathlib import Path\n"
        "from curation_dagster.io.lake import Lake\n"
        "from curation_dagster.pipeline import run_stage\n"
        "from curation_dagster.spec import parse_spec\n"
        "spec, root, landing, stage, shard = json.loads(sys.argv[1])\n"
        "run_stage(parse_spec(spec), Lake(root), stage, shard, Path(landing) / shard)\n"
    )
    arguments = json.dumps([spec.model_dump(mode="json"), lake.root, str(landing), stage, shard])
    environment = {**os.environ, CRASH_AT: f"{stage}:{moment}:{shard}"}
    child = subprocess.run(
        [sys.executable, "-c", code, arguments], env=environment, start_new_session=True, timeout=300
    )
    assert child.returncode == -signal.SIGKILL


def lake_files(root: Path) -> dict[str, bytes]:
    """Every file of a lake by relative path, except the lock files and the record of when each folder was
    last looked through for leftovers."""
    return {
        path.relative_to(root).as_posix(): path.read_bytes()
        for path in sorted(root.rglob("*"))
        if path.is_file() and not path.name.endswith(".lock") and path.parent.name != SWEEPS_DIR
    }


@pytest.fixture
def uninterrupted(landing: Path, tmp_path: Path) -> dict[str, bytes]:
    """The lake after a and b through every stage, then media, with nothing killed."""
    lake = Lake(tmp_path / "uninterrupted")
    for shard in ("a.jsonl", "b.jsonl", "media"):
        run_stages(spec_with(), lake, landing, shard)
    return lake_files(tmp_path / "uninterrupted")


@pytest.mark.parametrize(
    ("stage", "moment"),
    [
        ("deduped", "after_output"),
        ("deduped", "after_claims"),
        ("synthesized", "after_output"),
        ("synthesized", "after_claims"),
    ],
)
def test_rerunning_a_shard_killed_half_way_gives_the_uninterrupted_lake(
    landing: Path, lake: Lake, tmp_path: Path, uninterrupted: dict[str, bytes], stage: str, moment: str
) -> None:
    spec = spec_with()
    run_stages(spec, lake, landing, "a.jsonl")
    run_stages(spec, lake, landing, "b.jsonl", STAGES[: STAGES.index(stage)])
    crash_stage(spec, lake, landing, stage, moment, "b.jsonl")

    run_stages(spec, lake, landing, "b.jsonl", STAGES[STAGES.index(stage) :])
    run_stages(spec, lake, landing, "media")

    assert lake_files(tmp_path / "lake") == uninterrupted


@pytest.mark.parametrize("stage", ["deduped", "synthesized"])
def test_the_stage_after_refuses_an_output_whose_claims_were_cut_off(
    landing: Path, lake: Lake, stage: str
) -> None:
    spec = spec_with()
    run_stages(spec, lake, landing, "a.jsonl", STAGES[: STAGES.index(stage)])
    crash_stage(spec, lake, landing, stage, "after_output", "a.jsonl")
    assert lake.exists(lake.path(spec.name, stage, "a.jsonl"))

    with pytest.raises(
        StageInputMissing, match=r"stopped before (it|they) recorded (its|their) claims.*again"
    ):
        if stage == "deduped":
            run_stage(spec, lake, "filtered", "a.jsonl")
        else:
            from curation_dagster.release import build_release

            build_release(spec, lake)


def test_another_shard_rolls_back_claims_cut_off_half_way_before_it_decides(
    landing: Path, lake: Lake
) -> None:
    spec = spec_with()
    run_stage(spec, lake, "raw", "a.jsonl", landing / "a.jsonl")
    run_stage(spec, lake, "raw", "b.jsonl", landing / "b.jsonl")
    crash_stage(spec, lake, landing, "deduped", "after_output", "a.jsonl")

    result = run_stage(spec, lake, "deduped", "b.jsonl")

    assert result.extra["rolled_back_interrupted_shards"] == ["a.jsonl"]
    assert not lake.exists(lake.path(spec.name, "deduped", "a.jsonl"))
    assert not lake.exists(lake.path(spec.name, "dedup_index", "a.jsonl"))
    # With a's claims gone, b's copy of the shared sentence is b's to keep, and a's copy is now the duplicate.
    assert item_id("b.jsonl", "L1") in kept_ids(lake, spec, "deduped", "b.jsonl")
    run_stage(spec, lake, "deduped", "a.jsonl")
    (duplicate,) = rows(lake, spec, "deduped", "a.jsonl", rejected=True)
    assert duplicate["dup_of"] == item_id("b.jsonl", "L1")
