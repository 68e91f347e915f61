"""Tests for the `accelerator` and `models` resources (`resources/accelerator.py`, `resources/models.py`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from curation_dagster.errors import ModelNotConfigured
from resources import AcceleratorResource, ModelsResource
from tests.model_fixtures import build_tiny_classifier

pytestmark = pytest.mark.usefixtures("no_network")


@pytest.fixture
def tiny_classifier(tmp_path: Path) -> Path:
    """A randomly initialised two-label BERT classifier with its WordPiece tokenizer, saved in a folder."""
    return build_tiny_classifier(tmp_path / "classifier", num_labels=2)


def test_accelerator_rejects_unknown_device() -> None:
    with pytest.raises(ValidationError, match="use auto, cpu, mps, cuda or cuda:N"):
        AcceleratorResource(device="bogus")


def test_accelerator_rejects_unknown_dtype() -> None:
    with pytest.raises(ValidationError, match="use one of float32, float16, bfloat16"):
        AcceleratorResource(dtype="int8")


def test_accelerator_default_resolves_to_cpu_without_accelerator() -> None:
    import torch

    mps = getattr(torch.backends, "mps", None)
    if torch.cuda.is_available() or (mps is not None and mps.is_available()):
        pytest.skip("auto picks an accelerator on this machine")
    assert AcceleratorResource().resolved_device() == "cpu"


def test_accelerator_on_cpu_uses_float32_for_default_half_precision() -> None:
    import torch

    assert AcceleratorResource(device="cpu").torch_dtype() is torch.float32


def test_models_clip_without_weights_names_the_setting() -> None:
    with pytest.raises(ModelNotConfigured, match=r"set models\.clip_weights to a local"):
        ModelsResource().clip("cpu")


def test_models_text_classifier_without_folder_names_the_setting() -> None:
    with pytest.raises(ModelNotConfigured, match=r"set models\.text_classifier to a local"):
        ModelsResource().sequence_classifier("cpu")


def test_models_loads_text_classifier_once_and_caches_it(
    tiny_classifier: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import resources.models

    calls: list[tuple[str, str]] = []
    real_loader = resources.models.load_sequence_classifier

    def counting_loader(path: str, device: str) -> tuple[Any, Any]:
        calls.append((path, device))
        return real_loader(path, device)

    monkeypatch.setattr(resources.models, "load_sequence_classifier", counting_loader)
    models = ModelsResource(text_classifier=str(tiny_classifier))

    first = models.sequence_classifier("cpu")
    second = models.sequence_classifier("cpu")

    assert second is first
    assert second[0] is first[0]
    assert calls == [(str(tiny_classifier), "cpu")]
    assert not first[0].training
