"""What model-running steps get at run time: a device, a batch size and loaders that load once."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from curation_dagster.errors import ModelNotConfigured
from curation_dagster.models.generation import TEXT_GENERATOR_SETTING, load_causal_lm
from curation_dagster.models.image_generation import (
    IMAGE_GENERATOR_SETTING,
    ImageGenerator,
    load_image_generator,
)
from curation_dagster.models.loading import load_clip, load_sequence_classifier
from curation_dagster.models.speech import TEXT_TO_SPEECH_SETTING, load_text_to_speech

CLIP_NOT_CONFIGURED = (
    "the CLIP filters need a model: set models.clip_weights (CURATION_CLIP_WEIGHTS) to a local .pt or "
    ".safetensors open_clip checkpoint and models.clip_arch (CURATION_CLIP_ARCH) to its architecture, an "
    "open_clip name or a local model-config .json; nothing is downloaded at run time"
)


@dataclass
class ModelRuntime:
    """The device and batch size to run on, and a lazy loader per model.

    In a notebook: `ModelRuntime.local("cpu", text_classifier="/models/toxicity")`. In Dagster the
    `models` resource builds one from the `accelerator` resource, so its process-wide cache is shared.
    """

    device: str = "cpu"
    batch_size: int = 32
    dtype: str = "float32"
    """Autocast precision on CUDA (float16, bfloat16); ignored elsewhere."""
    load_sequence_classifier: Callable[[], tuple[Any, Any]] | None = None
    load_causal_lm: Callable[[], tuple[Any, Any]] | None = None
    text_generator: str = ""
    """The causal language model's local path or name, recorded in synthetic items' `generator`."""
    load_clip: Callable[[], tuple[Any, Any, Any]] | None = None
    clip_arch: str = ""
    """The CLIP architecture (open_clip name or model-config JSON); with `clip_weights` it keys stored
    image embeddings."""
    clip_weights: str = ""
    """The CLIP weight file `load_clip` reads; empty when no CLIP model is configured."""
    load_image_generator: Callable[[], ImageGenerator] | None = None
    image_generator: str = ""
    """The image model's entry point or TorchScript file, recorded in synthetic items' `generator`."""
    load_text_to_speech: Callable[[], tuple[Any, Any]] | None = None
    text_to_speech: str = ""
    """The VITS text-to-speech folder, recorded in synthetic items' `generator`."""
    _loaded: dict[str, Any] = field(default_factory=dict, repr=False)

    @classmethod
    def local(
        cls,
        device: str = "cpu",
        *,
        text_classifier: str = "",
        text_generator: str = "",
        batch_size: int = 32,
        clip_arch: str = "ViT-B-32",
        clip_weights: str = "",
        dtype: str = "float32",
        image_generator: str = "",
        text_to_speech: str = "",
    ) -> ModelRuntime:
        """A runtime that loads models from local paths itself."""
        loader = (lambda: load_sequence_classifier(text_classifier, device)) if text_classifier else None
        generator = (lambda: load_causal_lm(text_generator, device)) if text_generator else None
        clip = (lambda: load_clip(clip_arch, clip_weights, device)) if clip_weights else None
        return cls(
            device=device,
            batch_size=batch_size,
            dtype=dtype,
            load_sequence_classifier=loader,
            load_causal_lm=generator,
            text_generator=text_generator,
            load_clip=clip,
            clip_arch=clip_arch,
            clip_weights=clip_weights,
            load_image_generator=(lambda: load_image_generator(image_generator, device))
            if image_generator
            else None,
            image_generator=image_generator,
            load_text_to_speech=(lambda: load_text_to_speech(text_to_speech, device))
            if text_to_speech
            else None,
            text_to_speech=text_to_speech,
        )

    def sequence_classifier(self) -> tuple[Any, Any]:
        """The text classifier and its tokenizer, loaded on first use."""
        if self.load_sequence_classifier is None:
            raise ModelNotConfigured(
                "the text_classifier filter needs a model: set models.text_classifier to a local Hugging Face "
                "sequence-classification folder"
            )
        if "sequence_classifier" not in self._loaded:
            self._loaded["sequence_classifier"] = self.load_sequence_classifier()
        return self._loaded["sequence_classifier"]

    def causal_lm(self) -> tuple[Any, Any]:
        """The text generator (a causal language model) and its left-padding tokenizer, loaded on first use."""
        if self.load_causal_lm is None:
            raise ModelNotConfigured(
                f"the llm synthesis recipe needs a model: set {TEXT_GENERATOR_SETTING} to a local Hugging Face "
                "causal language model folder (CURATION_TEXT_GENERATOR); nothing is downloaded at run time"
            )
        if "causal_lm" not in self._loaded:
            self._loaded["causal_lm"] = self.load_causal_lm()
        return self._loaded["causal_lm"]

    def clip(self) -> tuple[Any, Any, Any]:
        """The CLIP model, its image preprocessing and its tokenizer, loaded on first use."""
        if self.load_clip is None:
            raise ModelNotConfigured(CLIP_NOT_CONFIGURED)
        if "clip" not in self._loaded:
            self._loaded["clip"] = self.load_clip()
        return self._loaded["clip"]

    def image_generation(self) -> ImageGenerator:
        """The user-supplied image model, loaded on first use."""
        if self.load_image_generator is None:
            raise ModelNotConfigured(
                f"the image_generator synthesis recipe needs a model: set {IMAGE_GENERATOR_SETTING} "
                "(CURATION_IMAGE_GENERATOR) to a local path/to/file.py:function entry point or TorchScript file"
            )
        if "image_generator" not in self._loaded:
            self._loaded["image_generator"] = self.load_image_generator()
        return self._loaded["image_generator"]

    def speech(self) -> tuple[Any, Any]:
        """The text-to-speech model (VITS) and its tokenizer, loaded on first use."""
        if self.load_text_to_speech is None:
            raise ModelNotConfigured(
                f"the tts synthesis recipe needs a model: set {TEXT_TO_SPEECH_SETTING} (CURATION_TEXT_TO_SPEECH) "
                "to a local Hugging Face VITS folder; nothing is downloaded at run time"
            )
        if "text_to_speech" not in self._loaded:
            self._loaded["text_to_speech"] = self.load_text_to_speech()
        return self._loaded["text_to_speech"]
