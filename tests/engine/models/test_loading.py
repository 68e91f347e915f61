"""Tests for `curation_dagster/models/loading.py`: local paths only, tiny models built here, nothing downloaded."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from curation_dagster.errors import ModelNotConfigured
from curation_dagster.models.loading import load_clip, load_sequence_classifier, require_local_path
from tests.model_fixtures import build_tiny_classifier

pytestmark = pytest.mark.usefixtures("no_network")

TINY_CLIP = "tiny-test-clip"
"""An architecture name that open_clip only knows once the test registers it; no `siglip` in it."""

SAVED_LOGIT_SCALE = 1.25
"""Differs from open_clip's fixed initial value log(1 / 0.07), so seeing it proves the file was read."""


@pytest.fixture
def tiny_clip_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """Register a tiny ViT/text-tower open_clip config for this test only, and return its name."""
    import open_clip.factory

    # add_model_config mutates the module's registry; restore it so later tests see the stock list.
    monkeypatch.setattr(open_clip.factory, "_MODEL_CONFIG_PATHS", list(open_clip.factory._MODEL_CONFIG_PATHS))
    monkeypatch.setattr(open_clip.factory, "_MODEL_CONFIGS", dict(open_clip.factory._MODEL_CONFIGS))
    config = {
        "embed_dim": 32,
        "vision_cfg": {"image_size": 32, "layers": 1, "width": 32, "head_width": 16, "patch_size": 16},
        "text_cfg": {"context_length": 16, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 1},
    }
    config_file = tmp_path / f"{TINY_CLIP}.json"
    config_file.write_text(json.dumps(config), encoding="utf-8")
    open_clip.add_model_config(config_file)
    return TINY_CLIP


@pytest.fixture
def tiny_clip_weights(tiny_clip_config: str, tmp_path: Path) -> Path:
    """A state dict of a randomly initialised tiny CLIP saved as a .pt file, its logit scale marked."""
    import open_clip

    torch.manual_seed(0)
    model = open_clip.create_model(tiny_clip_config, pretrained=None, device="cpu")
    with torch.no_grad():
        model.logit_scale.fill_(SAVED_LOGIT_SCALE)
    weights = tmp_path / "tiny-clip.pt"
    torch.save(model.state_dict(), weights)
    return weights


def test_require_local_path_empty_names_the_setting() -> None:
    with pytest.raises(ModelNotConfigured, match=r"set models\.clip_weights to a local \.pt file"):
        require_local_path("", "models.clip_weights", kind=".pt file")


def test_require_local_path_missing_names_the_setting_and_value(tmp_path: Path) -> None:
    missing = tmp_path / "absent.pt"
    with pytest.raises(
        ModelNotConfigured, match=r"models\.clip_weights is '.*absent\.pt', which does not exist"
    ):
        require_local_path(str(missing), "models.clip_weights", kind=".pt file")


def test_require_local_path_returns_existing_path(tmp_path: Path) -> None:
    weights = tmp_path / "present.pt"
    weights.write_bytes(b"")
    assert require_local_path(str(weights), "models.clip_weights", kind=".pt file") == weights


def test_sequence_classifier_empty_path_names_default_setting() -> None:
    with pytest.raises(
        ModelNotConfigured, match=r"set models\.text_classifier to a local Hugging Face model folder"
    ):
        load_sequence_classifier("", "cpu")


def test_sequence_classifier_gives_one_logit_row_per_text_in_eval_mode(tmp_path: Path) -> None:
    folder = build_tiny_classifier(tmp_path / "classifier", num_labels=3)

    model, tokenizer = load_sequence_classifier(str(folder), "cpu")

    assert not model.training
    assert model.device.type == "cpu"
    batch = tokenizer(["the cat sat on the mat .", "a dog ran"], padding=True, return_tensors="pt")
    with torch.no_grad():
        logits = model(**batch).logits
    assert logits.shape == (2, 3)


def test_sequence_classifier_uses_the_saved_tokenizer(tmp_path: Path) -> None:
    folder = build_tiny_classifier(tmp_path / "classifier")

    _, tokenizer = load_sequence_classifier(str(folder), "cpu")

    assert tokenizer.convert_ids_to_tokens(tokenizer("cat zebra")["input_ids"]) == [
        "[CLS]",
        "cat",
        "[UNK]",
        "[SEP]",
    ]


def test_clip_empty_weights_names_the_setting() -> None:
    with pytest.raises(
        ModelNotConfigured, match=r"set models\.clip_weights to a local \.pt or \.safetensors"
    ):
        load_clip("ViT-B-32", "", "cpu")


def test_clip_gives_features_of_embed_dim_in_eval_mode(
    tiny_clip_weights: Path, tiny_clip_config: str
) -> None:
    from PIL import Image

    model, preprocess, tokenizer = load_clip(tiny_clip_config, str(tiny_clip_weights), "cpu")

    assert not model.training
    images = torch.stack([preprocess(Image.new("RGB", (48, 40), colour)) for colour in ("red", "blue")])
    assert images.shape == (2, 3, 32, 32)
    tokens = tokenizer(["a photo of a cat", "a dog"])
    assert tokens.shape == (2, 16)
    with torch.no_grad():
        assert model.encode_image(images).shape == (2, 32)
        assert model.encode_text(tokens).shape == (2, 32)


def test_clip_loads_the_saved_weights(tiny_clip_weights: Path, tiny_clip_config: str) -> None:
    saved = torch.load(tiny_clip_weights, weights_only=True)

    model, _, _ = load_clip(tiny_clip_config, str(tiny_clip_weights), "cpu")

    assert model.logit_scale.item() == SAVED_LOGIT_SCALE
    loaded = model.state_dict()
    assert set(loaded) == set(saved)
    assert all(torch.equal(loaded[name], saved[name]) for name in saved)


def test_clip_unknown_architecture_names_the_setting(tiny_clip_weights: Path) -> None:
    with pytest.raises(
        ModelNotConfigured, match=r"models\.clip_arch 'ViT-Nonexistent-7' is not an open_clip"
    ):
        load_clip("ViT-Nonexistent-7", str(tiny_clip_weights), "cpu")
