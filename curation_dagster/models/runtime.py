"""What model-running steps get at run time: a device, a batch size and loaders that load once."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from curation_dagster.errors import ModelNotConfigured
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
    _loaded: dict[str, Any] = field(default_factory=dict, repr=False)

    @classmethod
    def local(cls, device: str = "cpu", *, text_classifier: str = "", batch_size: int = 32) -> ModelRuntime:
        """A runtime that loads models from local paths itself."""
        loader = (lambda: load_sequence_classifier(text_classifier, device)) if text_classifier else None
        return cls(device=device, batch_size=batch_size, load_sequence_classifier=loader)

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
