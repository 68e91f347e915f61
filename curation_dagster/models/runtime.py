"""What model-running steps get at run time: a device, a batch size and loaders that load once."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from curation_dagster.errors import ModelNotConfigured
from curation_dagster.models.generation import TEXT_GENERATOR_SETTING, load_causal_lm
from curation_dagster.models.loading import load_sequence_classifier


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
    _loaded: dict[str, Any] = field(default_factory=dict, repr=False)

    @classmethod
    def local(
        cls, device: str = "cpu", *, text_classifier: str = "", text_generator: str = "", batch_size: int = 32
    ) -> ModelRuntime:
        """A runtime that loads models from local paths itself."""
        loader = (lambda: load_sequence_classifier(text_classifier, device)) if text_classifier else None
        generator = (lambda: load_causal_lm(text_generator, device)) if text_generator else None
        return cls(
            device=device,
            batch_size=batch_size,
            load_sequence_classifier=loader,
            load_causal_lm=generator,
            text_generator=text_generator,
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
