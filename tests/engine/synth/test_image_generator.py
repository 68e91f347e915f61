"""Tests of curation_dagster/synth/image_generator.py: the `image_generator` recipe on a generator module
the test writes itself, loaded through the runtime from its local path."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from curation_dagster.errors import ModelNotConfigured
from curation_dagster.io.validate import probe_image
from curation_dagster.models.runtime import ModelRuntime
from curation_dagster.spec import ImageGeneratorSettings
from curation_dagster.synth.base import Unusable, Variant, seed_from_key
from curation_dagster.synth.image_generator import (
    REJECT_GENERATOR_OUTPUT,
    REJECT_NO_PROMPT_TEXT,
    ImageGeneration,
)
from tests.generator_fixtures import write_image_generator

pytestmark = pytest.mark.usefixtures("no_network")


@pytest.fixture
def painter(tmp_path: Path) -> Path:
    return write_image_generator(tmp_path / "models")


def runtime_for(painter: Path, function: str = "generate", batch_size: int = 8) -> ModelRuntime:
    return ModelRuntime.local("cpu", image_generator=f"{painter}:{function}", batch_size=batch_size)


def image_item(text: str | None, item_id: str) -> dict[str, Any]:
    return {"id": item_id, "modality": "image", "text": text, "media": b"", "uri": f"land/{item_id}.png"}


def logged_calls(painter: Path) -> list[dict[str, Any]]:
    log = painter.with_suffix(".calls.jsonl")
    return [json.loads(line) for line in log.read_text(encoding="utf-8").splitlines()]


def test_each_parent_caption_is_prompted_through_the_template(painter: Path) -> None:
    recipe = ImageGeneration(ImageGeneratorSettings(prompt="a photo of {text}"), runtime_for(painter))

    outcomes = recipe.make_batch([image_item("a  red fox", "a"), image_item("an owl", "b")], ["3:a", "3:b"])

    assert [(o.text, o.meta, o.media_format) for o in outcomes if isinstance(o, Variant)] == [
        ("a red fox", {"prompt": "a photo of a red fox"}, "png"),
        ("an owl", {"prompt": "a photo of an owl"}, "png"),
    ]
    assert [probe_image(o.media) for o in outcomes if isinstance(o, Variant) and o.media] == [
        (20, 8),
        (17, 8),
    ]  # (width, height): as wide as the prompt


def test_seeds_come_from_the_seed_key_and_the_recipe_name(painter: Path) -> None:
    recipe = ImageGeneration(ImageGeneratorSettings(name="painted"), runtime_for(painter, batch_size=2))

    first = recipe.make_batch(
        [image_item("fox", "a"), image_item("owl", "b"), image_item("cat", "c")], ["3:a", "3:b", "3:c"]
    )
    again = recipe.make_batch([image_item("fox", "a")], ["3:a"])

    assert [call["seeds"] for call in logged_calls(painter)] == [
        [seed_from_key("3:a:painted"), seed_from_key("3:b:painted")],
        [seed_from_key("3:c:painted")],
        [seed_from_key("3:a:painted")],
    ]
    assert first[0] == again[0]


def test_a_long_caption_is_cut_at_a_word_before_prompting(painter: Path) -> None:
    recipe = ImageGeneration(ImageGeneratorSettings(max_prompt_chars=9), runtime_for(painter))

    (outcome,) = recipe.make_batch([image_item("a red fox in the snow", "a")], ["1:a"])

    assert isinstance(outcome, Variant) and outcome.meta == {"prompt": "a red fox"}
    assert outcome.text == "a red fox in the snow"


def test_a_parent_without_text_is_unusable_and_others_still_generate(painter: Path) -> None:
    recipe = ImageGeneration(ImageGeneratorSettings(), runtime_for(painter))

    missing, fine = recipe.make_batch([image_item("  ", "a"), image_item("owl", "b")], ["1:a", "1:b"])

    assert isinstance(missing, Unusable) and missing.reason == REJECT_NO_PROMPT_TEXT
    assert isinstance(fine, Variant)
    assert [call["prompts"] for call in logged_calls(painter)] == [["owl"]]


def test_output_that_is_not_an_image_is_unusable_with_the_reason(painter: Path) -> None:
    recipe = ImageGeneration(ImageGeneratorSettings(), runtime_for(painter, "not_images"))

    bad, grey = recipe.make_batch([image_item("fox", "a"), image_item("owl", "b")], ["1:a", "1:b"])

    assert isinstance(bad, Unusable)
    assert (bad.reason, bad.detail) == (
        REJECT_GENERATOR_OUTPUT,
        "the generator returned a str, not an image, array or tensor",
    )
    assert isinstance(grey, Variant) and grey.media is not None and probe_image(grey.media) == (4, 4)


def test_text_items_can_be_the_parents(painter: Path) -> None:
    recipe = ImageGeneration(ImageGeneratorSettings(source="text"), runtime_for(painter))
    parent = {"id": "t", "modality": "text", "text": "a lighthouse", "media": None, "uri": "land#1"}

    (outcome,) = recipe.make_batch([parent], ["1:t"])

    assert (recipe.parent_modality, recipe.modality) == ("text", "image")
    assert isinstance(outcome, Variant) and outcome.text == "a lighthouse"


def test_generator_records_the_model_location_and_the_prompt(painter: Path) -> None:
    recipe = ImageGeneration(ImageGeneratorSettings(prompt="art: {text}"), runtime_for(painter))

    assert json.loads(recipe.generator) == {
        "recipe": "image_generator",
        "model": f"{painter}:generate",
        "source": "image",
        "prompt": "art: {text}",
        "max_prompt_chars": 1000,
    }


def test_without_a_configured_model_the_error_names_the_setting() -> None:
    recipe = ImageGeneration(ImageGeneratorSettings(), ModelRuntime())

    with pytest.raises(ModelNotConfigured, match=r"set models\.image_generator \(CURATION_IMAGE_GENERATOR\)"):
        recipe.make_batch([image_item("fox", "a")], ["1:a"])
