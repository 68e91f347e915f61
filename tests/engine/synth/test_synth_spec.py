"""Tests of the synthesis settings in curation_dagster/spec.py: the forms the recipe lists accept, names,
and the checks on each recipe's settings."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from curation_dagster.errors import SpecError
from curation_dagster.spec import (
    FlipCropSettings,
    FrameStepCropSettings,
    GainShiftSettings,
    LLMSettings,
    NoiseSettings,
    ReverbSettings,
    SentenceShuffleSettings,
    SpeedPitchSettings,
    WordEditsSettings,
    load_spec,
    parse_spec,
)

REPO = Path(__file__).resolve().parents[3]


def synthesize(text: Any) -> Any:
    return parse_spec({"name": "s", "synthesize": {"text": text}}).synthesize


def test_one_recipe_as_a_mapping_is_a_list_of_one() -> None:
    assert synthesize({"kind": "word_edits", "edit_rate": 0.2}).text == (WordEditsSettings(edit_rate=0.2),)


def test_null_text_makes_no_recipe() -> None:
    assert synthesize(None).text == ()


def test_a_list_keeps_its_order() -> None:
    recipes = synthesize([{"kind": "sentence_shuffle"}, {"kind": "llm", "mode": "qa"}]).text

    assert recipes == (SentenceShuffleSettings(), LLMSettings(mode="qa"))
    assert [recipe.label for recipe in recipes] == ["sentence_shuffle", "llm_qa"]


def test_the_default_is_word_edits() -> None:
    assert parse_spec({"name": "s"}).synthesize.text == (WordEditsSettings(),)


def test_shipped_versions_still_load_with_their_text_recipes() -> None:
    demo = load_spec(REPO / "versions" / "demo.yaml").synthesize
    formal = load_spec(REPO / "versions" / "text_formal.yaml").synthesize

    assert demo.text == (WordEditsSettings(edit_rate=0.1),)
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


# Media recipes ----------------------------------------------------------------------------------------


def synthesize_media(**sections: Any) -> Any:
    return parse_spec({"name": "s", "synthesize": sections}).synthesize


def test_one_media_recipe_as_a_mapping_is_a_list_of_one_and_null_makes_none() -> None:
    settings = synthesize_media(image={"kind": "flip_crop", "crop_fraction": 0.8}, audio=None, video=[])

    assert settings.image == (FlipCropSettings(crop_fraction=0.8),)
    assert (settings.audio, settings.video) == ((), ())


def test_the_default_media_recipes_are_one_per_modality() -> None:
    settings = parse_spec({"name": "s"}).synthesize

    assert (settings.image, settings.audio, settings.video) == (
        (FlipCropSettings(),),
        (GainShiftSettings(),),
        (FrameStepCropSettings(),),
    )


def test_a_media_list_keeps_its_order_and_each_recipe_its_fraction() -> None:
    settings = synthesize_media(
        audio=[{"kind": "noise", "snr_db": 10, "fraction": 0.5}, {"kind": "reverb"}, {"kind": "speed_pitch"}]
    )

    assert settings.audio == (NoiseSettings(snr_db=10, fraction=0.5), ReverbSettings(), SpeedPitchSettings())


def test_shipped_demo_version_still_loads_its_single_media_recipes() -> None:
    demo = load_spec(REPO / "versions" / "demo.yaml").synthesize

    assert [recipe.kind for recipe in (*demo.image, *demo.audio, *demo.video)] == [
        "flip_crop",
        "gain_shift",
        "frame_step_crop",
    ]


def test_recipe_names_must_differ_across_modalities() -> None:
    with pytest.raises(SpecError, match=r"synthesize: .*more than one recipe is named variant"):
        synthesize_media(
            text=[{"kind": "word_edits", "name": "variant"}], image={"kind": "flip_crop", "name": "variant"}
        )


def test_two_recipes_of_one_media_kind_need_names() -> None:
    with pytest.raises(SpecError, match="more than one recipe is named composite"):
        synthesize_media(image=[{"kind": "composite"}, {"kind": "composite", "layout": "blend"}])

    named = synthesize_media(
        image=[{"kind": "composite"}, {"kind": "composite", "name": "blended", "layout": "blend"}]
    )
    assert [recipe.label for recipe in named.image] == ["composite", "blended"]


def test_model_recipes_need_their_model_settings() -> None:
    settings = synthesize_media(
        text=[{"kind": "llm"}],
        image=[{"kind": "image_generator"}],
        audio=[{"kind": "tts"}, {"kind": "tts", "name": "t2"}],
    )

    assert settings.needs_model
    assert settings.model_settings == [
        "models.text_generator",
        "models.image_generator",
        "models.text_to_speech",
    ]
    assert not synthesize_media(image=[{"kind": "composite"}], audio=[{"kind": "noise"}]).needs_model


@pytest.mark.parametrize(
    ("sections", "message"),
    [
        (
            {"image": [{"kind": "composite", "caption_template": "{first} only"}]},
            r"synthesize\.image\.0: .*caption_template must use \{first\}, \{second\}",
        ),
        (
            {"image": {"kind": "image_generator", "prompt": "a photo of {topic}"}},
            r"image_generator\.prompt must use \{text\}",
        ),
        (
            {"image": {"kind": "colour_jitter", "brightness": 0, "contrast": 0, "saturation": 0, "hue": 0}},
            "set at least one",
        ),
        ({"audio": {"kind": "speed_pitch", "speed": 1.0}}, "with speed 1 set semitones"),
        ({"audio": [{"kind": "noise", "colour": "brown"}]}, r"synthesize\.audio\.0\.colour"),
        (
            {
                "video": {
                    "kind": "frame_augment",
                    "flip": False,
                    "brightness": 0,
                    "contrast": 0,
                    "saturation": 0,
                    "hue": 0,
                }
            },
            "set flip or at least one",
        ),
        ({"video": [{"kind": "pan_zoom", "zoom": 1.0}]}, r"synthesize\.video\.0\.zoom"),
    ],
)
def test_media_recipe_settings_that_change_nothing_or_do_not_fit_are_errors(
    sections: dict[str, Any], message: str
) -> None:
    with pytest.raises(SpecError, match=message):
        synthesize_media(**sections)
