"""Text generation with a local causal language model: batched, left-padded, seeded per item.

Sampling draws each item's tokens from its own `torch.Generator`, seeded from the item, on the CPU; so an
item's output depends on its seed and prompt, not on which other items share its batch or on the run.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from curation_dagster.errors import ModelNotConfigured
from curation_dagster.models.device import autocast
from curation_dagster.models.loading import require_local_path

TEXT_GENERATOR_SETTING = "models.text_generator"


@dataclass(frozen=True)
class SamplingSettings:
    """How tokens are drawn: temperature, nucleus (top-p) sampling, and how many."""

    max_new_tokens: int = 128
    temperature: float = 0.7
    top_p: float = 0.9


def load_causal_lm(path: str, device: str, setting: str = TEXT_GENERATOR_SETTING) -> tuple[Any, Any]:
    """A Hugging Face causal language model and its tokenizer from a local folder, in eval mode on
    `device`; the tokenizer pads on the left, with the end-of-text token when it has no pad token."""
    folder = require_local_path(
        path, setting, kind="Hugging Face causal language model folder (config.json, weights, tokenizer)"
    )
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(folder, local_files_only=True, trust_remote_code=False)
    tokenizer.padding_side = "left"
    if tokenizer.pad_token is None:
        if tokenizer.eos_token is None:
            raise ModelNotConfigured(
                f"{setting}: the tokenizer in {folder} has neither a pad nor an end-of-text token; "
                "set eos_token in its tokenizer_config.json"
            )
        tokenizer.pad_token = tokenizer.eos_token
    model: Any = AutoModelForCausalLM.from_pretrained(folder, local_files_only=True, trust_remote_code=False)
    return model.to(device).eval(), tokenizer


class _SeededSampler:
    """A logits processor that samples every row with its own generator (temperature, then top-p) and
    leaves only the drawn token possible, so `generate`'s greedy step picks it."""

    def __init__(self, generators: list[Any], settings: SamplingSettings) -> None:
        self.generators = generators
        self.settings = settings

    def __call__(self, input_ids: Any, scores: Any) -> Any:
        import torch

        probabilities = torch.softmax(scores.float().cpu() / self.settings.temperature, dim=-1)
        ordered, order = torch.sort(probabilities, dim=-1, descending=True)
        # Drop a token when the tokens more likely than it already reach top_p; the first always stays.
        outside = ordered.cumsum(dim=-1) - ordered >= self.settings.top_p
        ordered = ordered.masked_fill(outside, 0.0)
        chosen = torch.empty(len(self.generators), dtype=torch.long)
        for row, generator in enumerate(self.generators):
            pick = torch.multinomial(ordered[row], 1, generator=generator)
            chosen[row] = order[row, pick]
        forced = torch.full_like(scores, float("-inf"))
        forced[torch.arange(len(chosen), device=scores.device), chosen.to(scores.device)] = 0.0
        return forced


def truncate_to_tokens(tokenizer: Any, texts: Sequence[str], max_tokens: int) -> list[str]:
    """Each text cut to its first `max_tokens` tokens (unchanged when shorter)."""
    encoded = tokenizer(list(texts), add_special_tokens=False)["input_ids"]
    return [
        text if len(ids) <= max_tokens else tokenizer.decode(ids[:max_tokens], skip_special_tokens=True)
        for text, ids in zip(texts, encoded, strict=True)
    ]


def generate_texts(
    model: Any,
    tokenizer: Any,
    prompts: Sequence[str],
    seeds: Sequence[int],
    settings: SamplingSettings,
    *,
    device: str = "cpu",
    batch_size: int = 8,
    dtype: str = "float32",
) -> list[str]:
    """The continuation of each prompt, sampled with its seed; prompts run `batch_size` at a time, longest
    first so that each batch holds prompts of similar length."""
    import torch
    from transformers import GenerationConfig, LogitsProcessorList

    # A config of our own: the model's sampling defaults must not mix with the spec's settings.
    eos = getattr(model.generation_config, "eos_token_id", None)
    config = GenerationConfig(
        do_sample=False,
        max_new_tokens=settings.max_new_tokens,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=eos if eos is not None else tokenizer.eos_token_id,
    )
    order = sorted(range(len(prompts)), key=lambda index: (-len(prompts[index]), index))
    outputs = [""] * len(prompts)
    for start in range(0, len(order), max(1, batch_size)):
        batch = order[start : start + max(1, batch_size)]
        encoded = tokenizer(
            [prompts[index] for index in batch], padding=True, return_tensors="pt", add_special_tokens=False
        ).to(device)
        generators = [torch.Generator().manual_seed(int(seeds[index]) % 2**63) for index in batch]
        with torch.inference_mode(), autocast(device, dtype):
            generated = model.generate(
                **encoded,
                generation_config=config,
                logits_processor=LogitsProcessorList([_SeededSampler(generators, settings)]),
            )
        new_tokens = generated[:, encoded["input_ids"].shape[1] :]
        for index, text in zip(
            batch, tokenizer.batch_decode(new_tokens, skip_special_tokens=True), strict=True
        ):
            outputs[index] = text
    return outputs
