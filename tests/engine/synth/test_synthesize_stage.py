"""The synthesized stage with text recipes (curation_dagster/synth/stage.py, `run_synthesize`): candidates from
rule-based and language-model recipes admitted through the same dedup and filters as real data, the
decontamination filter on real and synthetic items, and the stage's metadata."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from curation_dagster.checks import check_conservation
from curation_dagster.dedup.near_index import NearIndex
from curation_dagster.io.lake import Lake
from curation_dagster.models.runtime import ModelRuntime
from curation_dagster.pipeline import run_stage
from curation_dagster.schema import item_id
from curation_dagster.shard_io import StageResult
from curation_dagster.spec import VersionSpec, parse_spec
from curation_dagster.stages import STAGES
from tests.media_fixtures import write_jsonl

pytestmark = pytest.mark.usefixtures("no_network", "torch_single_thread")

SHARD = "docs.jsonl"
DOCS = [
    "The river bank was quiet in the early morning light. The boats were still tied up at the pier.",
    "Researchers measured the growth of wheat under three watering schedules over two summers.",
    "A short note about cats.",
]
# Spans the end of DOCS[0]'s second sentence and the start of its first: only a swap of the two makes it.
EVAL_ACROSS_SWAP = "boats were still tied up at the pier. The river bank was quiet in the early morning"


@pytest.fixture
def runtime(tiny_lm_folder: Path) -> ModelRuntime:
    return ModelRuntime.local("cpu", text_generator=str(tiny_lm_folder), batch_size=4)


@pytest.fixture
def landing(tmp_path: Path) -> Path:
    root = tmp_path / "landing"
    root.mkdir()
    write_jsonl(root / SHARD, DOCS)
    return root


@pytest.fixture
def lake(tmp_path: Path) -> Lake:
    return Lake(tmp_path / "lake")


def make_spec(recipes: list[dict[str, Any]], text_filters: list[dict[str, Any]] | None = None) -> VersionSpec:
    return parse_spec(
        {
            "name": "synth",
            "modalities": ["text"],
            "filters": {"text": text_filters or [{"kind": "text_length", "min_chars": 1, "min_words": 1}]},
            "select": {"seed": 1, "fraction": 1.0},
            "synthesize": {"seed": 3, "fraction": 1.0, "text": recipes},
        }
    )


def run_all(
    spec: VersionSpec, lake: Lake, landing: Path, runtime: ModelRuntime | None = None
) -> dict[str, StageResult]:
    return {stage: run_stage(spec, lake, stage, SHARD, landing / SHARD, runtime=runtime) for stage in STAGES}


def synthetic_rows(lake: Lake, spec: VersionSpec, *, rejected: bool) -> list[dict[str, Any]]:
    rows = lake.read_table(lake.path(spec.name, "synthesized", SHARD, rejected=rejected)).to_pylist()
    return [row for row in rows if row["synthetic"]]


def assert_conserved(lake: Lake, spec: VersionSpec, result: StageResult) -> None:
    assert result.rows_in == result.rows_kept + result.rows_rejected
    assert check_conservation(lake, spec.name, "synthesized", SHARD, result.rows_in).passed


def test_llm_paraphrases_are_admitted_with_parent_and_generator(
    landing: Path, lake: Lake, runtime: ModelRuntime, tiny_lm_folder: Path
) -> None:
    spec = make_spec([{"kind": "llm", "mode": "paraphrase", "max_new_tokens": 8}])

    result = run_all(spec, lake, landing, runtime)["synthesized"]

    admitted = synthetic_rows(lake, spec, rejected=False)
    selected = lake.read_table(lake.path(spec.name, "selected", SHARD)).to_pylist()
    uri_of = {row["id"]: row["uri"] for row in selected}
    assert sorted(row["parent_ids"][0] for row in admitted) == sorted(
        item_id(SHARD, f"L{n}") for n in (1, 2, 3)
    )
    for row in admitted:
        generator = json.loads(row["generator"])
        assert (generator["recipe"], generator["model"]) == ("llm_paraphrase", str(tiny_lm_folder))
        assert row["id"] == item_id(SHARD, f"synth:llm_paraphrase:{row['parent_ids'][0]}")
        assert json.loads(row["meta"])["parent_uri"] == uri_of[row["parent_ids"][0]]
    assert result.extra["synthetic_by_recipe"] == {
        "llm_paraphrase": {"generated": 3, "admitted": 3, "rejected": 0, "rejected_by_reason": {}}
    }
    assert_conserved(lake, spec, result)


def test_llm_outputs_are_the_same_on_a_second_run(
    landing: Path, tmp_path: Path, runtime: ModelRuntime, tiny_lm_folder: Path
) -> None:
    spec = make_spec([{"kind": "llm", "max_new_tokens": 8}])
    texts = []
    for name in ("one", "two"):
        lake = Lake(tmp_path / name)
        run_all(spec, lake, landing, ModelRuntime.local("cpu", text_generator=str(tiny_lm_folder)))
        texts.append(sorted(row["text"] for row in synthetic_rows(lake, spec, rejected=False)))

    assert texts[0] == texts[1]
    assert len(texts[0]) == 3


def test_unparseable_qa_output_is_a_rejected_candidate_with_its_reason(
    landing: Path, lake: Lake, runtime: ModelRuntime
) -> None:
    spec = make_spec([{"kind": "llm", "mode": "qa", "max_new_tokens": 6}])

    result = run_all(spec, lake, landing, runtime)["synthesized"]

    rejected = synthetic_rows(lake, spec, rejected=True)
    assert [(row["reject_stage"], row["reject_reason"]) for row in rejected] == [
        ("synthesized", "synth.qa_unparseable")
    ] * 3
    assert all(row["text"].startswith("Q: ") and "no 'Q:' line" in row["reject_detail"] for row in rejected)
    assert result.extra["synthetic_by_recipe"]["llm_qa"]["rejected_by_reason"] == {"synth.qa_unparseable": 3}
    assert_conserved(lake, spec, result)


def test_llm_output_equal_to_its_parent_is_rejected_as_exact_duplicate(
    landing: Path, lake: Lake, runtime: ModelRuntime, monkeypatch: pytest.MonkeyPatch
) -> None:
    import curation_dagster.synth.llm as llm

    # A "model" that returns its prompt, with a prompt that is the parent's text alone.
    monkeypatch.setattr(
        llm, "generate_texts", lambda model, tokenizer, prompts, *args, **kwargs: list(prompts)
    )
    spec = make_spec([{"kind": "llm", "prompt": "{text}"}])

    result = run_all(spec, lake, landing, runtime)["synthesized"]

    rejected = synthetic_rows(lake, spec, rejected=True)
    assert [(row["reject_reason"], row["dup_of"]) for row in rejected] == [
        ("dedup.exact", item_id(SHARD, f"L{n}")) for n in (1, 2, 3)
    ]
    assert result.extra["synthetic_admitted"] == 0
    assert_conserved(lake, spec, result)


def test_decontamination_rejects_a_real_item_in_the_filtered_stage(
    landing: Path, lake: Lake, tmp_path: Path
) -> None:
    eval_file = tmp_path / "eval.txt"
    eval_file.write_text("Q: Was wheat under three watering schedules over two summers measured?\n")
    filters = [
        {"kind": "text_length", "min_chars": 1, "min_words": 1},
        {"kind": "decontamination", "eval_files": [str(eval_file)], "ngram": 8},
    ]
    spec = make_spec([], filters)

    result = run_all(spec, lake, landing)["filtered"]

    assert result.reasons == {"filter.decontamination.eval_overlap": 1}
    (rejected,) = lake.read_table(lake.path(spec.name, "filtered", SHARD, rejected=True)).to_pylist()
    assert (rejected["id"], rejected["reject_stage"]) == (item_id(SHARD, "L2"), "filtered")
    assert rejected["reject_detail"] == (
        "1 overlapping 8-gram(s); first 'wheat under three watering schedules over two summers' from eval.txt line 1"
    )
    kept = lake.read_table(lake.path(spec.name, "filtered", SHARD)).to_pylist()
    assert [row["eval_overlap_ngrams"] for row in kept] == [0, 0]
    assert result.rows_in == result.rows_kept + result.rows_rejected


def test_synthetic_text_overlapping_the_eval_set_is_rejected(
    landing: Path, lake: Lake, tmp_path: Path
) -> None:
    eval_file = tmp_path / "eval.txt"
    eval_file.write_text(EVAL_ACROSS_SWAP + "\n")
    filters: list[dict[str, Any]] = [
        {"kind": "text_length", "min_chars": 1, "min_words": 1},
        {"kind": "decontamination", "eval_files": [str(eval_file)]},
    ]
    spec = make_spec([{"kind": "sentence_shuffle"}], filters)

    results = run_all(spec, lake, landing)

    assert results["filtered"].rows_rejected == 0  # the real item in its own order does not overlap
    # The single-sentence texts cannot change, so their candidates are exact duplicates.
    rejected = synthetic_rows(lake, spec, rejected=True)
    by_parent = {row["parent_ids"][0]: row for row in rejected}
    assert {parent: row["reject_reason"] for parent, row in by_parent.items()} == {
        item_id(SHARD, "L1"): "filter.decontamination.eval_overlap",
        item_id(SHARD, "L2"): "dedup.exact",
        item_id(SHARD, "L3"): "dedup.exact",
    }
    assert by_parent[item_id(SHARD, "L1")]["text"].startswith(
        "The boats were still tied up at the pier. The river bank"
    )
    assert_conserved(lake, spec, results["synthesized"])


def test_metadata_counts_each_recipe_and_shows_samples_beside_parents(landing: Path, lake: Lake) -> None:
    spec = make_spec(
        [{"kind": "word_edits", "edit_rate": 0.3}, {"kind": "sentence_shuffle", "fraction": 1.0}],
        [{"kind": "text_length", "min_chars": 1, "min_words": 3}],
    )

    result = run_all(spec, lake, landing)["synthesized"]

    assert result.extra["synthetic_by_recipe"] == {
        "word_edits": {"generated": 3, "admitted": 3, "rejected": 0, "rejected_by_reason": {}},
        # Two of the texts are a single sentence, so shuffling leaves them as they were.
        "sentence_shuffle": {
            "generated": 3,
            "admitted": 1,
            "rejected": 2,
            "rejected_by_reason": {"dedup.exact": 2},
        },
    }
    assert (result.extra["synthetic_generated"], result.extra["synthetic_admitted"]) == (6, 4)
    assert result.extra["synthetic_rejected"] == 2
    samples = result.extra["synthetic_samples"].splitlines()
    assert samples[0] == "| recipe | parent | synthetic | outcome |"
    assert len(samples) == 2 + 4  # two per recipe
    assert samples[2].startswith(f"| word_edits | {DOCS[0]} |")
    assert any(
        line.startswith("| sentence_shuffle |") and line.endswith("| dedup.exact |") for line in samples
    )
    assert_conserved(lake, spec, result)


def test_a_recipe_fraction_takes_a_share_of_the_parents(landing: Path, lake: Lake) -> None:
    spec = make_spec([{"kind": "word_edits"}, {"kind": "sentence_shuffle", "fraction": 0.0}])

    result = run_all(spec, lake, landing)["synthesized"]

    assert result.extra["synthetic_by_recipe"]["sentence_shuffle"]["generated"] == 0
    assert result.extra["synthetic_by_recipe"]["word_edits"]["generated"] == 3


def test_an_llm_recipe_without_a_model_fails_the_stage_naming_the_setting(landing: Path, lake: Lake) -> None:
    from curation_dagster.errors import ModelNotConfigured

    spec = make_spec([{"kind": "llm"}])
    for stage in STAGES[:-1]:
        run_stage(spec, lake, stage, SHARD, landing / SHARD)

    with pytest.raises(ModelNotConfigured, match=r"models\.text_generator"):
        run_stage(spec, lake, "synthesized", SHARD, runtime=ModelRuntime())


def test_admitted_variants_are_indexed_and_a_rerun_does_not_reject_them_as_their_own_duplicates(
    landing: Path, lake: Lake
) -> None:
    spec = make_spec([{"kind": "word_edits", "edit_rate": 0.1}])
    first = run_all(spec, lake, landing)["synthesized"]
    again = run_stage(spec, lake, "synthesized", SHARD)

    index = NearIndex(lake, spec.name, spec.dedup.near, prefix="synth_")
    assert index.keys.shards() == [SHARD]
    assert index.signatures(SHARD).num_rows == first.extra["synthetic_admitted"] == 3
    assert again.extra["synthetic_admitted"] == 3
    assert again.reasons == first.reasons
