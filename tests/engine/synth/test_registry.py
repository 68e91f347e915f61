"""Tests of curation_dagster/synth/registry.py: every recipe kind the spec accepts has a class, and back."""

from curation_dagster.models.runtime import ModelRuntime
from curation_dagster.spec import RECIPE_MODEL_SETTINGS, RECIPE_SETTINGS, parse_spec
from curation_dagster.spec.base import kind_of
from curation_dagster.synth.registry import MODEL_RECIPES, RECIPES, build_recipes


def test_every_recipe_kind_the_spec_accepts_has_a_class_and_no_class_is_unreachable() -> None:
    assert {kind_of(settings) for settings in RECIPE_SETTINGS} == set(RECIPES) | set(MODEL_RECIPES)
    assert not set(RECIPES) & set(MODEL_RECIPES)


def test_the_recipes_that_run_a_model_are_those_that_need_a_models_setting() -> None:
    assert set(MODEL_RECIPES) == set(RECIPE_MODEL_SETTINGS)


def test_build_recipes_follows_the_spec_order_per_modality() -> None:
    spec = parse_spec(
        {
            "name": "v",
            "synthesize": {
                "text": [{"kind": "sentence_shuffle"}, {"kind": "word_edits"}],
                "image": [{"kind": "colour_jitter"}, {"kind": "flip_crop"}],
                "audio": [],
                "video": [],
            },
        }
    )

    recipes = build_recipes(spec.synthesize, ModelRuntime.local())

    assert [recipe.name for recipe in recipes] == [
        "sentence_shuffle",
        "word_edits",
        "colour_jitter",
        "flip_crop",
    ]
