"""The `image_generator` recipe: new images from a user-supplied image model (`models.image_generator`).

Each parent's caption (or text) goes through the prompt template; prompts go to the model in batches on
the runtime's device, each with a seed from the spec seed, the parent and the recipe. An output that is
not an image, and a parent without text, are `Unusable` outcomes.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from curation_dagster.errors import ModelNotConfigured
from curation_dagster.models.image_generation import IMAGE_GENERATOR_SETTING, generate_images
from curation_dagster.spec import ImageGeneratorSettings
from curation_dagster.synth.base import ModelRecipe, Outcome, Unusable, Variant, cut_at_word

REJECT_NO_PROMPT_TEXT = "synth.no_prompt_text"
REJECT_GENERATOR_OUTPUT = "synth.generator_output"


class ImageGeneration(ModelRecipe):
    """An `image_generator` recipe: an image per parent from its prompt, captioned with the parent's text."""

    name = "image_generator"
    modality = "image"
    settings: ImageGeneratorSettings

    @property
    def model(self) -> str:
        return self.runtime.image_generator if self.runtime is not None else ""

    def generate(self, parents: Sequence[Mapping[str, Any]], seeds: Sequence[int]) -> list[Outcome]:
        if not parents:
            return []
        if self.runtime is None:
            raise ModelNotConfigured(
                f"the image_generator synthesis recipe {self.label} needs a model: run the stage with a "
                f"ModelRuntime whose {IMAGE_GENERATOR_SETTING} is a local file.py:function or TorchScript file"
            )
        generator = self.runtime.image_generation()
        texts = [" ".join(str(parent.get("text") or "").split()) for parent in parents]
        outcomes: list[Outcome] = [
            Unusable(
                REJECT_NO_PROMPT_TEXT, "the parent has no caption or text to prompt the image model with"
            )
            for _ in parents
        ]
        prompted = [index for index, text in enumerate(texts) if text]
        prompts = [
            self.settings.prompt.format(text=cut_at_word(texts[index], self.settings.max_prompt_chars))
            for index in prompted
        ]
        images = generate_images(
            generator,
            prompts,
            [seeds[index] for index in prompted],
            device=self.runtime.device,
            batch_size=self.runtime.batch_size,
            dtype=self.runtime.dtype,
        )
        for index, prompt, image in zip(prompted, prompts, images, strict=True):
            if isinstance(image, str):
                outcomes[index] = Unusable(REJECT_GENERATOR_OUTPUT, image)
            else:
                outcomes[index] = Variant(texts[index], image, "png", {"prompt": prompt})
        return outcomes
