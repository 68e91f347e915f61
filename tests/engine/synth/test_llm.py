"""Tests of curation_dagster/synth/llm.py: language-model recipes on a tiny GPT-2 built here, and parsing."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from curation_dagster.errors import ModelNotConfigured, SpecError
from curation_dagster.models.runtime import ModelRuntime
from curation_dagster.spec import LLMSettings, SynthSettings
from curation_dagster.synth.base import Unusable, Variant
from curation_dagster.synth.llm import (
    REJECT_QA_UNPARSEABLE,
    LanguageModelRecipe,
    first_instruction,
    parse_qa_pairs,
)
from curation_dagster.synth.registry import build_recipes

pytestmark = pytest.mark.usefixtures("no_network", "torch_single_thread")

PARENTS = [
    {"id": "p1", "modality": "text", "text": "the cat sat on the mat", "uri": "l#1"},
    {
        "id": "p2",
        "modality": "text",
        "text": "the council approved a plan to turn the old railway yard into a park",
        "uri": "l#2",
    },
    {"id": "p3", "modality": "text", "text": "the dog ran", "uri": "l#3"},
]
KEYS = ["5:p1", "5:p2", "5:p3"]


@pytest.fixture
def runtime(tiny_lm_folder: Path) -> ModelRuntime:
    return ModelRuntime.local("cpu", text_generator=str(tiny_lm_folder), batch_size=2)


def recipe(runtime: ModelRuntime | None, **settings: Any) -> LanguageModelRecipe:
    return LanguageModelRecipe(LLMSettings(max_new_tokens=10, **settings), runtime)


# Parsing ---------------------------------------------------------------------------------------------


def test_qa_pairs_are_parsed_from_q_and_a_lines() -> None:
    output = "Q: Who sat on the mat?\nA: The cat.\n\nQ: Where?\nA: On the\n mat.\n\nSome rambling after."

    assert parse_qa_pairs(output) == [("Who sat on the mat?", "The cat."), ("Where?", "On the mat.")]


def test_qa_pairs_on_one_line_and_in_lower_case_are_parsed() -> None:
    assert parse_qa_pairs("q: one? a: yes. Q: two? A: no.") == [("one?", "yes."), ("two?", "no.")]


def test_a_question_without_an_answer_is_no_pair() -> None:
    assert parse_qa_pairs("Q: Who? Q: What?\nA: \n") == []


def test_first_instruction_drops_numbering_and_labels() -> None:
    assert first_instruction("\n  4. Task: Summarise the report in one line.\n5. Another") == (
        "Summarise the report in one line."
    )


# Generation ------------------------------------------------------------------------------------------


def test_paraphrase_generates_one_variant_per_parent_in_one_batch(runtime: ModelRuntime) -> None:
    outcomes = recipe(runtime).make_batch(PARENTS, KEYS)

    assert [type(outcome) for outcome in outcomes] == [Variant, Variant, Variant]
    assert all(isinstance(o, Variant) and o.text and o.media is None for o in outcomes)


def test_same_seeds_give_the_same_variants(runtime: ModelRuntime, tiny_lm_folder: Path) -> None:
    again = ModelRuntime.local("cpu", text_generator=str(tiny_lm_folder), batch_size=3)

    assert recipe(runtime).make_batch(PARENTS, KEYS) == recipe(again).make_batch(PARENTS, KEYS)


def test_a_parent_gets_the_same_variant_alone_or_in_a_batch(runtime: ModelRuntime) -> None:
    batched = recipe(runtime).make_batch(PARENTS, KEYS)

    alone = [
        recipe(runtime).make_batch([parent], [key])[0] for parent, key in zip(PARENTS, KEYS, strict=True)
    ]

    assert alone == batched


def test_another_spec_seed_gives_other_variants(runtime: ModelRuntime) -> None:
    first = recipe(runtime).make_batch(PARENTS, KEYS)
    other = recipe(runtime).make_batch(PARENTS, ["6:p1", "6:p2", "6:p3"])

    assert first != other


def test_the_parent_text_is_cut_to_max_input_tokens(
    runtime: ModelRuntime, monkeypatch: pytest.MonkeyPatch
) -> None:
    import curation_dagster.synth.llm as llm

    prompts: list[str] = []

    def capture(model: Any, tokenizer: Any, batch: list[str], *args: Any, **kwargs: Any) -> list[str]:
        prompts.extend(batch)
        return ["out"] * len(batch)

    monkeypatch.setattr(llm, "generate_texts", capture)

    recipe(runtime, prompt="Text: {text}", max_input_tokens=8).make_batch(PARENTS[1:2], KEYS[1:2])

    assert prompts == ["Text: the council approved a plan to turn the"]


def test_qa_output_without_pairs_is_unusable_with_its_reason(runtime: ModelRuntime) -> None:
    # The tiny tokenizer knows no "Q" or "A", so the model cannot write a pair.
    outcomes = recipe(runtime, mode="qa").make_batch(PARENTS, KEYS)

    assert [o.reason for o in outcomes if isinstance(o, Unusable)] == [REJECT_QA_UNPARSEABLE] * 3
    first = outcomes[0]
    assert isinstance(first, Unusable)
    assert first.detail.startswith("no 'Q:' line followed by an 'A:' line in the model output 'Q: ")
    assert first.text is not None and first.text.startswith("Q: ")


def test_qa_pairs_become_the_text_and_the_meta(
    runtime: ModelRuntime, monkeypatch: pytest.MonkeyPatch
) -> None:
    import curation_dagster.synth.llm as llm

    monkeypatch.setattr(
        llm,
        "generate_texts",
        lambda *args, **kwargs: [" Who sat?\nA: The cat.\nQ: Where?\nA: Mat.\nQ: X?\nA: Y."],
    )

    (variant,) = recipe(runtime, mode="qa", max_pairs=2).make_batch(PARENTS[:1], KEYS[:1])

    assert isinstance(variant, Variant)
    assert variant.text == "Q: Who sat?\nA: The cat.\n\nQ: Where?\nA: Mat."
    assert variant.meta == {"qa_pairs": [{"q": "Who sat?", "a": "The cat."}, {"q": "Where?", "a": "Mat."}]}


def test_self_instruct_prompts_with_seed_tasks_from_the_spec_and_a_file(
    runtime: ModelRuntime, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import curation_dagster.synth.llm as llm

    tasks_file = tmp_path / "tasks.jsonl"
    tasks_file.write_text(
        json.dumps({"instruction": "List three facts from the report."}) + "\n", encoding="utf-8"
    )
    prompts: list[str] = []

    def capture(model: Any, tokenizer: Any, batch: list[str], *args: Any, **kwargs: Any) -> list[str]:
        prompts.extend(batch)
        return ["1. Task: Write a headline for the article.\n2. More"] * len(batch)

    monkeypatch.setattr(llm, "generate_texts", capture)
    settings = {
        "mode": "self_instruct",
        "seed_tasks": ["Summarise the article."],
        "seed_tasks_file": str(tasks_file),
    }

    (variant,) = recipe(runtime, tasks_per_prompt=2, **settings).make_batch(PARENTS[:1], KEYS[:1])

    assert isinstance(variant, Variant)
    assert variant.text == "Write a headline for the article."
    assert sorted(variant.meta["seed_tasks"]) == [
        "List three facts from the report.",
        "Summarise the article.",
    ]
    assert "1. " in prompts[0] and "2. " in prompts[0] and "the cat sat on the mat" in prompts[0]


def test_self_instruct_with_a_missing_seed_tasks_file_is_a_spec_error(
    runtime: ModelRuntime, tmp_path: Path
) -> None:
    llm_recipe = recipe(runtime, mode="self_instruct", seed_tasks_file=str(tmp_path / "absent.txt"))

    with pytest.raises(SpecError, match=r"llm\.seed_tasks_file: .*absent\.txt does not exist"):
        llm_recipe.make_batch(PARENTS[:1], KEYS[:1])


def test_no_model_path_raises_model_not_configured_naming_the_setting() -> None:
    with pytest.raises(ModelNotConfigured, match=r"models\.text_generator"):
        recipe(ModelRuntime()).make_batch(PARENTS[:1], KEYS[:1])


def test_no_runtime_raises_model_not_configured_naming_the_setting() -> None:
    with pytest.raises(ModelNotConfigured, match=r"models\.text_generator"):
        recipe(None).make_batch(PARENTS[:1], KEYS[:1])


def test_generator_records_the_recipe_settings_and_model(runtime: ModelRuntime, tiny_lm_folder: Path) -> None:
    generator = json.loads(recipe(runtime, mode="qa", temperature=0.5).generator)

    assert generator == {
        "recipe": "llm_qa",
        "mode": "qa",
        "model": str(tiny_lm_folder),
        "prompt": LLMSettings(mode="qa").template,
        "max_new_tokens": 10,
        "temperature": 0.5,
        "top_p": 0.9,
        "max_input_tokens": 512,
        "max_pairs": 3,
    }


def test_build_recipes_gives_llm_recipes_the_runtime(runtime: ModelRuntime) -> None:
    spec = SynthSettings(text=[{"kind": "llm", "mode": "paraphrase"}], image=None, audio=None, video=None)

    (built,) = build_recipes(spec, runtime)

    assert isinstance(built, LanguageModelRecipe) and built.runtime is runtime
    assert built.label == "llm_paraphrase"
