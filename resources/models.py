"""The `models` resource: loads models lazily, once per process, from local paths only."""

from __future__ import annotations

from typing import Any

from dagster import ConfigurableResource
from pydantic import PrivateAttr

from curation_dagster.models.generation import load_causal_lm
from curation_dagster.models.image_generation import ImageGenerator, load_image_generator
from curation_dagster.models.loading import load_clip, load_sequence_classifier
from curation_dagster.models.runtime import ModelRuntime
from curation_dagster.models.speech import load_text_to_speech
from resources.accelerator import AcceleratorResource


class ModelsResource(ConfigurableResource):
    """Local model locations; a model is loaded on first use and cached for the rest of the process."""

    clip_arch: str = "ViT-B-32"
    """open_clip architecture of the CLIP checkpoint: a built-in name, or a local model-config .json."""
    clip_weights: str = ""
    """Local .pt or .safetensors open_clip checkpoint; empty means CLIP filters cannot run."""
    text_classifier: str = ""
    """Local Hugging Face sequence-classification folder (e.g. a toxicity model); empty means none."""
    text_generator: str = ""
    """Local Hugging Face causal language model folder for the `llm` synthesis recipes; empty means none."""
    image_generator: str = ""
    """The `image_generator` recipes' model: a local `path/to/file.py:function` entry point or TorchScript
    file; empty means none."""
    text_to_speech: str = ""
    """Local Hugging Face VITS folder for the `tts` synthesis recipes; empty means none."""

    _cache: dict[tuple[str, str], Any] = PrivateAttr(default_factory=dict)

    def clip(self, device: str) -> tuple[Any, Any, Any]:
        key = ("clip", device)
        if key not in self._cache:
            self._cache[key] = load_clip(self.clip_arch, self.clip_weights, device)
        return self._cache[key]

    def sequence_classifier(self, device: str) -> tuple[Any, Any]:
        key = ("text_classifier", device)
        if key not in self._cache:
            self._cache[key] = load_sequence_classifier(self.text_classifier, device)
        return self._cache[key]

    def causal_lm(self, device: str) -> tuple[Any, Any]:
        key = ("text_generator", device)
        if key not in self._cache:
            self._cache[key] = load_causal_lm(self.text_generator, device)
        return self._cache[key]

    def image_generation(self, device: str) -> ImageGenerator:
        key = ("image_generator", device)
        if key not in self._cache:
            self._cache[key] = load_image_generator(self.image_generator, device)
        return self._cache[key]

    def speech(self, device: str) -> tuple[Any, Any]:
        key = ("text_to_speech", device)
        if key not in self._cache:
            self._cache[key] = load_text_to_speech(self.text_to_speech, device)
        return self._cache[key]

    def runtime(self, accelerator: AcceleratorResource) -> ModelRuntime:
        """What model-running filters use: the accelerator's device and batch size, this cache's loaders."""
        device = accelerator.resolved_device()
        return ModelRuntime(
            device=device,
            batch_size=accelerator.batch_size,
            dtype=accelerator.dtype,
            load_sequence_classifier=(lambda: self.sequence_classifier(device))
            if self.text_classifier
            else None,
            load_causal_lm=(lambda: self.causal_lm(device)) if self.text_generator else None,
            text_generator=self.text_generator,
            load_clip=(lambda: self.clip(device)) if self.clip_weights else None,
            clip_arch=self.clip_arch,
            clip_weights=self.clip_weights,
            load_image_generator=(lambda: self.image_generation(device)) if self.image_generator else None,
            image_generator=self.image_generator,
            load_text_to_speech=(lambda: self.speech(device)) if self.text_to_speech else None,
            text_to_speech=self.text_to_speech,
        )
