"""Speech from text with a local VITS model (transformers' `VitsModel` and `VitsTokenizer`): batched, with
the noise VITS samples drawn per item from the item's seed.

VITS draws Gaussian noise for its durations and its latent prior inside `forward`. A torch function mode
answers those draws row by row, each row from a generator seeded with its item's seed and the draw's
number, filling the time axis last; so the noise an item gets at its own positions, and so its
durations, do not depend on the other items of its batch. Its waveform can still differ slightly in its
last few hundred samples, where the vocoder's convolutions reach into the batch's padding; with the same
batch size an item's audio is the same on every run.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from curation_dagster.errors import ModelNotConfigured
from curation_dagster.models.device import autocast
from curation_dagster.models.loading import require_local_path

TEXT_TO_SPEECH_SETTING = "models.text_to_speech"


@dataclass(frozen=True)
class SpeechSettings:
    """How VITS speaks: its speaking rate, and noise scales that replace the model's when set."""

    speaking_rate: float = 1.0
    noise_scale: float | None = None
    noise_scale_duration: float | None = None


def load_text_to_speech(path: str, device: str, setting: str = TEXT_TO_SPEECH_SETTING) -> tuple[Any, Any]:
    """A VITS model in eval mode on `device` and its tokenizer, from a local Hugging Face folder."""
    folder = require_local_path(
        path,
        setting,
        kind="Hugging Face VITS folder (config.json, weights, vocab.json, tokenizer_config.json)",
    )
    import json

    config = folder / "config.json"
    model_type = (
        json.loads(config.read_text(encoding="utf-8")).get("model_type") if config.is_file() else None
    )
    if model_type != "vits":
        raise ModelNotConfigured(
            f"{setting} is {path!r}, whose config.json has model_type {model_type!r}; set it to a local VITS "
            "text-to-speech folder (model_type 'vits', e.g. a saved facebook/mms-tts-* model)"
        )
    from transformers import VitsModel, VitsTokenizer

    tokenizer = VitsTokenizer.from_pretrained(folder, local_files_only=True, trust_remote_code=False)
    model: Any = VitsModel.from_pretrained(folder, local_files_only=True, trust_remote_code=False)
    return model.to(device).eval(), tokenizer


def _per_item_noise(seeds: Sequence[int]) -> Any:
    """A torch function mode that answers `randn`/`randn_like` calls whose first dimension is the batch
    with one generator per row, seeded from the row's seed and the draw's number (other calls from one
    generator seeded with every seed), so nothing comes from torch's global generator."""
    import numpy as np
    import torch
    from torch.overrides import TorchFunctionMode

    class PerItemNoise(TorchFunctionMode):
        def __init__(self) -> None:
            super().__init__()
            self.draws = 0

        def __torch_function__(
            self, func: Any, types: Any, args: Sequence[Any] = (), kwargs: dict[str, Any] | None = None
        ) -> Any:
            kwargs = dict(kwargs or {})
            if func is torch.randn_like:
                like = args[0]
                shape = tuple(like.shape)
                dtype, device = kwargs.get("dtype") or like.dtype, kwargs.get("device") or like.device
            elif func is torch.randn and not kwargs.get("generator") and not kwargs.get("out"):
                sizes = args[0] if len(args) == 1 and not isinstance(args[0], int) else args
                shape = tuple(int(size) for size in sizes)
                dtype, device = kwargs.get("dtype") or torch.get_default_dtype(), kwargs.get("device")
            else:
                return func(*args, **kwargs)
            self.draws += 1
            if not shape or shape[0] != len(seeds):
                whole = np.random.default_rng([*seeds, self.draws]).standard_normal(shape)
                return torch.from_numpy(np.asarray(whole)).to(device=device, dtype=dtype)
            rows = []
            for seed in seeds:
                # numpy draws normals one after another (torch's CPU sampler fills blocks of 16, so its
                # first values change with the size asked for). Drawn with the dimensions reversed, the
                # time axis (last) is filled last: an item's first T positions get the same values
                # whatever length the batch pads it to.
                generator = np.random.default_rng([seed, self.draws])
                drawn = torch.from_numpy(generator.standard_normal(shape[1:][::-1]))
                rows.append(drawn.permute(*reversed(range(drawn.dim()))))
            return torch.stack(rows).to(device=device, dtype=dtype)

    return PerItemNoise()


@contextlib.contextmanager
def _speaking(model: Any, settings: SpeechSettings) -> Iterator[None]:
    """The model's speaking rate and noise scales replaced by the settings' for the block, then restored
    (attributes, which every transformers version with VITS reads in `forward`)."""
    before = (model.speaking_rate, model.noise_scale, model.noise_scale_duration)
    model.speaking_rate = settings.speaking_rate
    if settings.noise_scale is not None:
        model.noise_scale = settings.noise_scale
    if settings.noise_scale_duration is not None:
        model.noise_scale_duration = settings.noise_scale_duration
    try:
        yield
    finally:
        model.speaking_rate, model.noise_scale, model.noise_scale_duration = before


def speakable(tokenizer: Any, texts: Sequence[str]) -> list[bool]:
    """Whether each text has a token besides padding (VITS tokenizers drop characters they do not know)."""
    encoded = tokenizer(list(texts))["input_ids"]
    return [any(token != tokenizer.pad_token_id for token in ids) for ids in encoded]


def synthesize_speech(
    model: Any,
    tokenizer: Any,
    texts: Sequence[str],
    seeds: Sequence[int],
    settings: SpeechSettings,
    *,
    device: str = "cpu",
    batch_size: int = 8,
    dtype: str = "float32",
) -> list[Any]:
    """A float32 waveform (a 1-D numpy array at `model.config.sampling_rate`) per text, each item's noise
    drawn from its seed; texts run `batch_size` at a time, longest first, so each batch pads little."""
    import torch

    lengths = [len(ids) for ids in tokenizer(list(texts))["input_ids"]]
    order = sorted(range(len(texts)), key=lambda index: (-lengths[index], index))
    waveforms: list[Any] = [None] * len(texts)
    step = max(1, batch_size)
    with _speaking(model, settings):
        for start in range(0, len(order), step):
            batch = order[start : start + step]
            encoded = tokenizer([texts[index] for index in batch], padding=True, return_tensors="pt").to(
                device
            )
            with torch.inference_mode(), autocast(device, dtype), _per_item_noise([seeds[i] for i in batch]):
                output = model(**encoded)
            audio = output.waveform.float().cpu().numpy()
            for row, index in enumerate(batch):
                waveforms[index] = audio[row, : int(output.sequence_lengths[row])]
    return waveforms
