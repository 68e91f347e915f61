"""Tests of the text generator in the `models` resource (`resources/models.py`): local path, lazy, cached."""

from __future__ import annotations

from pathlib import Path

import pytest

from curation_dagster.errors import ModelNotConfigured
from resources import AcceleratorResource, ModelsResource
from tests.generator_fixtures import build_tiny_causal_lm

pytestmark = pytest.mark.usefixtures("no_network")


def test_models_text_generator_without_folder_names_the_setting() -> None:
    with pytest.raises(
        ModelNotConfigured, match=r"set models\.text_generator to a local Hugging Face causal"
    ):
        ModelsResource().causal_lm("cpu")


def test_runtime_without_text_generator_raises_when_a_recipe_asks_for_it() -> None:
    runtime = ModelsResource().runtime(AcceleratorResource(device="cpu"))

    with pytest.raises(ModelNotConfigured, match=r"models\.text_generator"):
        runtime.causal_lm()


def test_runtime_loads_the_text_generator_from_the_resource_once(tmp_path: Path) -> None:
    folder = build_tiny_causal_lm(tmp_path / "lm")
    models = ModelsResource(text_generator=str(folder))
    runtime = models.runtime(AcceleratorResource(device="cpu"))

    model, tokenizer = runtime.causal_lm()

    assert runtime.text_generator == str(folder)
    assert models.causal_lm("cpu")[0] is model
    assert tokenizer.padding_side == "left"
