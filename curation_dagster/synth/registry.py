"""The one mapping from a spec's recipe `kind` to its recipe class, and the recipes a spec switches on."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from curation_dagster.models.runtime import ModelRuntime
from curation_dagster.spec import SynthSettings
from curation_dagster.synth.base import Recipe
from curation_dagster.synth.image_generator import ImageGeneration
from curation_dagster.synth.llm import LanguageModelRecipe
from curation_dagster.synth.media_recipes import (
    ColourJitter,
    Composite,
    FrameAugment,
    Noise,
    PanZoom,
    Reverb,
    SpeedPitch,
)
from curation_dagster.synth.recipes import FlipCrop, FrameStepCrop, GainShift, SentenceShuffle, WordEdits
from curation_dagster.synth.tts import TextToSpeech

#: Recipes that transform their parent by rules: built from their settings alone.
RECIPES: dict[str, type[Recipe]] = {
    "word_edits": WordEdits,
    "sentence_shuffle": SentenceShuffle,
    "flip_crop": FlipCrop,
    "gain_shift": GainShift,
    "frame_step_crop": FrameStepCrop,
    "colour_jitter": ColourJitter,
    "composite": Composite,
    "noise": Noise,
    "speed_pitch": SpeedPitch,
    "reverb": Reverb,
    "pan_zoom": PanZoom,
    "frame_augment": FrameAugment,
}
#: Recipes that run a model on the accelerator: built from their settings and the runtime.
MODEL_RECIPES: dict[str, Callable[[Any, ModelRuntime | None], Recipe]] = {
    "llm": LanguageModelRecipe,
    "tts": TextToSpeech,
    "image_generator": ImageGeneration,
}


def build_recipes(spec: SynthSettings, runtime: ModelRuntime | None = None) -> list[Recipe]:
    """The recipes the spec switches on: text, then image, audio and video, each in the spec's order.
    Recipes that run a model (`llm`, `tts`, `image_generator`) run on `runtime` and load nothing until
    they first generate."""
    recipes: list[Recipe] = []
    for settings in spec.recipes:
        if settings.kind in MODEL_RECIPES:
            recipes.append(MODEL_RECIPES[settings.kind](settings, runtime))
        else:
            recipes.append(RECIPES[settings.kind](settings))
    return recipes
