"""Loading models from local files only: nothing is downloaded, no remote code is trusted."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from curation_dagster.errors import ModelNotConfigured


def require_local_path(value: str, setting: str, *, kind: str) -> Path:
    """`value` as an existing local path, else `ModelNotConfigured` naming the setting to fill in."""
    if not value:
        raise ModelNotConfigured(f"set {setting} to a local {kind}; nothing is downloaded at run time")
    path = Path(value).expanduser()
    if not path.exists():
        raise ModelNotConfigured(f"{setting} is {value!r}, which does not exist; set it to a local {kind}")
    return path


def load_sequence_classifier(
    path: str, device: str, setting: str = "models.text_classifier"
) -> tuple[Any, Any]:
    """A Hugging Face sequence classifier and its tokenizer from a local folder, in eval mode on `device`."""
    folder = require_local_path(path, setting, kind="Hugging Face model folder (config.json + weights)")
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(folder, local_files_only=True, trust_remote_code=False)
    model = AutoModelForSequenceClassification.from_pretrained(
        folder, local_files_only=True, trust_remote_code=False, use_safetensors=None
    )
    return model.to(device).eval(), tokenizer


def load_clip(
    architecture: str, weights: str, device: str, setting: str = "models.clip_weights"
) -> tuple[Any, Any, Any]:
    """An open_clip model, its image preprocessing and tokenizer, with weights from a local file."""
    path = require_local_path(weights, setting, kind=".pt or .safetensors open_clip checkpoint")
    import open_clip

    if architecture not in open_clip.list_models():
        raise ModelNotConfigured(
            f"models.clip_arch {architecture!r} is not an open_clip architecture; e.g. ViT-B-32, ViT-L-14"
        )
    model, _, preprocess = open_clip.create_model_and_transforms(
        architecture, pretrained=str(path), device=device
    )
    return model.eval(), preprocess, open_clip.get_tokenizer(architecture)
