"""Tests of the synthesis settings in curation_dagster/spec.py: the forms `synthesize.text` accepts."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from curation_dagster.errors import SpecError
from curation_dagster.spec import LLMRecipe, SentenceShuffleRecipe, TextRecipe, load_spec, parse_spec

REPO = Path(__file__).resolve().parents[3]


def synthesize(text: Any) -> Any:
    return parse_spec({"name": "s", "synthesize": {"text": text}}).synthesize


def test_one_recipe_as_a_mapping_is_a_list_of_one() -> None:
    assert synthesize({"kind": "word_edits", "edit_rate": 0.2}).text == (TextRecipe(edit_rate=0.2),)


def test_null_text_makes_no_recipe() -> None:
    assert synthesize(None).text == ()


def test_a_list_keeps_its_order() -> None:
    recipes = synthesize([{"kind": "sentence_shuffle"}, {"kind": "llm", "mode": "qa"}]).text

    assert recipes == (SentenceShuffleRecipe(), LLMRecipe(mode="qa"))
    assert [recipe.label for recipe in recipes] == ["sentence_shuffle", "llm_qa"]


def test_the_default_is_word_edits() -> None:
    assert parse_spec({"name": "s"}).synthesize.text == (TextRecipe(),)


def test_shipped_versions_still_load_with_their_text_recipes() -> None:
    demo = load_spec(REPO / "versions" / "demo.yaml").synthesize
    formal = load_spec(REPO / "versions" / "text_formal.yaml").synthesize

    assert demo.text == (TextRecipe(edit_rate=0.1),)
    assert [recipe.kind for recipe in formal.text] == ["word_edits", "sentence_shuffle"]


def test_two_recipes_with_one_name_are_an_error() -> None:
    with pytest.raises(SpecError, match=r"synthesize: .*more than one recipe is named llm_paraphrase"):
        synthesize([{"kind": "llm"}, {"kind": "llm", "temperature": 1.0}])


def test_named_recipes_of_one_kind_are_allowed() -> None:
    recipes = synthesize([{"kind": "llm"}, {"kind": "llm", "name": "hot", "temperature": 1.0}]).text

    assert [recipe.label for recipe in recipes] == ["llm_paraphrase", "hot"]


def test_a_prompt_without_text_is_an_error_naming_the_field() -> None:
    with pytest.raises(SpecError, match=r"synthesize\.text\.0: .*must use \{text\}"):
        synthesize([{"kind": "llm", "prompt": "Rewrite this."}])


def test_a_prompt_with_an_unknown_field_is_an_error() -> None:
    with pytest.raises(SpecError, match=r"may use only \{text\}; found \{text\}, \{topic\}"):
        synthesize([{"kind": "llm", "prompt": "{topic}: {text}"}])


def test_self_instruct_needs_seed_tasks() -> None:
    with pytest.raises(SpecError, match="self_instruct needs seed_tasks or seed_tasks_file"):
        synthesize([{"kind": "llm", "mode": "self_instruct"}])


def test_needs_model_only_with_an_llm_recipe() -> None:
    assert synthesize([{"kind": "llm"}]).needs_model
    assert not synthesize([{"kind": "word_edits"}, {"kind": "sentence_shuffle"}]).needs_model
