"""Loading models from local files only: nothing is downloaded, no remote code is trusted."""

from __future__ import annotations

import json
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


#: Weight files open_clip reads: safetensors, or a pickled state dict loaded with `weights_only=True`.
CLIP_WEIGHT_SUFFIXES = (".safetensors", ".pt", ".pth", ".bin")
_CONFIG_KEYS = ("embed_dim", "vision_cfg", "text_cfg")


def clip_architecture(architecture: str, setting: str = "models.clip_arch") -> str:
    """The open_clip model name for `architecture`: a built-in name as it is, or a local model-config
    JSON registered with open_clip under its file name (without `.json`)."""
    import open_clip

    if not architecture.endswith(".json"):
        if architecture not in open_clip.list_models():
            raise ModelNotConfigured(
                f"{setting} {architecture!r} is not an open_clip architecture; e.g. ViT-B-32, ViT-L-14, "
                "or the path of a local open_clip model-config .json"
            )
        _check_offline(open_clip.get_model_config(architecture) or {}, architecture, setting)
        if "siglip" in architecture.lower():
            raise ModelNotConfigured(
                f"{setting} {architecture!r}: open_clip fetches SigLIP tokenizers from the Hugging Face Hub; "
                "use a model-config .json whose text_cfg.hf_tokenizer_name is a local folder"
            )
        return architecture
    path = require_local_path(architecture, setting, kind="open_clip model-config .json")
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise ModelNotConfigured(f"{setting} {architecture!r} is not readable JSON: {error}") from None
    if not isinstance(config, dict) or not all(key in config for key in _CONFIG_KEYS):
        raise ModelNotConfigured(
            f"{setting} {architecture!r} is not an open_clip model config: it needs {', '.join(_CONFIG_KEYS)}"
        )
    _check_offline(config, architecture, setting)
    name = path.stem
    known = open_clip.get_model_config(name)
    if known is not None and known != config:
        raise ModelNotConfigured(
            f"{setting} {architecture!r}: open_clip already has another architecture named {name!r}; "
            "rename the file"
        )
    if known is None:
        open_clip.add_model_config(path)
    return name


def _check_offline(config: dict[str, Any], architecture: str, setting: str) -> None:
    """Refuse a config whose text tower or tokenizer open_clip would fetch from the Hugging Face Hub."""
    text = config.get("text_cfg")
    for key in ("hf_tokenizer_name", "hf_model_name"):
        named = text.get(key) if isinstance(text, dict) else None
        if named and not Path(named).expanduser().is_dir():
            raise ModelNotConfigured(
                f"{setting} {architecture!r} sets text_cfg.{key} to {named!r}; it must be a local folder, "
                "since nothing is downloaded at run time"
            )


def load_clip(
    architecture: str, weights: str, device: str, setting: str = "models.clip_weights"
) -> tuple[Any, Any, Any]:
    """An open_clip model, its image preprocessing and tokenizer, with weights from a local file.

    `architecture` is an open_clip name (ViT-B-32) or a local model-config JSON for other architectures.
    """
    path = require_local_path(weights, setting, kind=".pt or .safetensors open_clip checkpoint")
    if path.suffix not in CLIP_WEIGHT_SUFFIXES:
        raise ModelNotConfigured(
            f"{setting} is {weights!r}; use a {' or '.join(CLIP_WEIGHT_SUFFIXES)} open_clip checkpoint"
        )
    name = clip_architecture(architecture)
    import open_clip

    try:
        model, _, preprocess = open_clip.create_model_and_transforms(
            name, pretrained=str(path.resolve()), device=device
        )
    except RuntimeError as error:
        if "state_dict" not in str(error) and "size mismatch" not in str(error):
            raise
        raise ModelNotConfigured(
            f"{setting} {weights!r} does not fit models.clip_arch {architecture!r}: {str(error)[:300]}"
        ) from None
    return model.eval(), preprocess, open_clip.get_tokenizer(name)
