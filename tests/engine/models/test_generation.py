"""Tests of curation_dagster/models/generation.py on a tiny GPT-2 built here: loading, batching, sampling."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

from curation_dagster.errors import ModelNotConfigured
from curation_dagster.models.generation import (
    SamplingSettings,
    generate_texts,
    load_causal_lm,
    truncate_to_tokens,
)
from curation_dagster.models.runtime import ModelRuntime
from tests.generator_fixtures import END_OF_TEXT

pytestmark = pytest.mark.usefixtures("no_network", "torch_single_thread")

PROMPTS = [
    "rewrite the following text the cat sat on the mat",
    "the dog",
    "here are some tasks write one new task on the topic of this the council approved a plan",
]
SAMPLING = SamplingSettings(max_new_tokens=12, temperature=1.0, top_p=0.95)


@pytest.fixture(scope="module")
def tiny_lm(tiny_lm_folder: Path) -> tuple[Any, Any]:
    return load_causal_lm(str(tiny_lm_folder), "cpu")


def test_loading_pads_on_the_left_with_the_end_of_text_token(tiny_lm: tuple[Any, Any]) -> None:
    model, tokenizer = tiny_lm

    assert (tokenizer.padding_side, tokenizer.pad_token) == ("left", END_OF_TEXT)
    assert not model.training


def test_loading_without_a_path_names_the_setting() -> None:
    with pytest.raises(
        ModelNotConfigured, match=r"set models\.text_generator to a local Hugging Face causal"
    ):
        load_causal_lm("", "cpu")


def test_loading_a_missing_folder_names_the_setting(tmp_path: Path) -> None:
    with pytest.raises(ModelNotConfigured, match=r"models\.text_generator is .*absent.*does not exist"):
        load_causal_lm(str(tmp_path / "absent"), "cpu")


def test_runtime_without_a_text_generator_raises_model_not_configured() -> None:
    with pytest.raises(ModelNotConfigured, match=r"set models\.text_generator"):
        ModelRuntime().causal_lm()


def test_runtime_loads_the_text_generator_once(tiny_lm_folder: Path) -> None:
    runtime = ModelRuntime.local("cpu", text_generator=str(tiny_lm_folder))

    assert runtime.causal_lm() is runtime.causal_lm()
    assert runtime.text_generator == str(tiny_lm_folder)


def test_generation_is_deterministic_for_the_same_seeds(tiny_lm: tuple[Any, Any]) -> None:
    model, tokenizer = tiny_lm

    first = generate_texts(model, tokenizer, PROMPTS, [1, 2, 3], SAMPLING, batch_size=3)
    second = generate_texts(model, tokenizer, PROMPTS, [1, 2, 3], SAMPLING, batch_size=3)

    assert first == second
    assert all(text.strip() for text in first)


def test_other_seeds_sample_other_text(tiny_lm: tuple[Any, Any]) -> None:
    model, tokenizer = tiny_lm

    first = generate_texts(model, tokenizer, PROMPTS, [1, 2, 3], SAMPLING)
    other = generate_texts(model, tokenizer, PROMPTS, [4, 5, 6], SAMPLING)

    assert [a != b for a, b in zip(first, other, strict=True)] == [True, True, True]


def test_a_batch_of_different_lengths_gives_each_prompt_its_own_output(tiny_lm: tuple[Any, Any]) -> None:
    model, tokenizer = tiny_lm

    batched = generate_texts(model, tokenizer, PROMPTS, [1, 2, 3], SAMPLING, batch_size=3)
    alone = [
        generate_texts(model, tokenizer, [prompt], [seed], SAMPLING, batch_size=1)[0]
        for prompt, seed in zip(PROMPTS, [1, 2, 3], strict=True)
    ]

    assert batched == alone


def test_tiny_top_p_samples_the_most_likely_token(tiny_lm: tuple[Any, Any]) -> None:
    model, tokenizer = tiny_lm
    encoded = tokenizer(PROMPTS[:1], return_tensors="pt", add_special_tokens=False)
    with torch.inference_mode():
        greedy = model.generate(
            **encoded, do_sample=False, max_new_tokens=8, pad_token_id=tokenizer.pad_token_id
        )
    expected = tokenizer.decode(greedy[0, encoded["input_ids"].shape[1] :], skip_special_tokens=True)

    sampled = generate_texts(
        model, tokenizer, PROMPTS[:1], [7], SamplingSettings(max_new_tokens=8, temperature=1.0, top_p=1e-6)
    )

    assert sampled == [expected]


def test_max_new_tokens_bounds_the_output(tiny_lm: tuple[Any, Any]) -> None:
    model, tokenizer = tiny_lm

    (text,) = generate_texts(model, tokenizer, PROMPTS[:1], [1], SamplingSettings(max_new_tokens=3))

    assert 1 <= len(text.split()) <= 3


def test_truncate_to_tokens_cuts_only_long_texts(tiny_lm: tuple[Any, Any]) -> None:
    _, tokenizer = tiny_lm

    assert truncate_to_tokens(tokenizer, ["the cat sat on the mat", "the dog"], 3) == [
        "the cat sat",
        "the dog",
    ]
