"""Tests of curation_dagster/models/speech.py: loading a local VITS, batching, and noise seeded per item,
on a tiny randomly initialised VITS."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from curation_dagster.errors import ModelNotConfigured
from curation_dagster.models.speech import (
    SpeechSettings,
    _per_item_noise,
    load_text_to_speech,
    speakable,
    synthesize_speech,
)

pytestmark = pytest.mark.usefixtures("no_network", "torch_single_thread")

TEXTS = ["a much longer sentence with many words in it", "hello world", "hi"]


@pytest.fixture(scope="module")
def vits(tiny_vits_folder: Path) -> tuple[object, object]:
    return load_text_to_speech(str(tiny_vits_folder), "cpu")


def test_load_without_a_path_names_the_setting() -> None:
    with pytest.raises(ModelNotConfigured, match=r"set models\.text_to_speech to a local Hugging Face VITS"):
        load_text_to_speech("", "cpu")


def test_load_of_a_missing_folder_names_the_setting_and_the_path(tmp_path: Path) -> None:
    with pytest.raises(ModelNotConfigured, match=r"models\.text_to_speech is .*absent.*does not exist"):
        load_text_to_speech(str(tmp_path / "absent"), "cpu")


def test_load_of_a_folder_that_is_not_vits_says_what_it_found(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text('{"model_type": "gpt2"}', encoding="utf-8")

    with pytest.raises(ModelNotConfigured, match=r"model_type 'gpt2'; set it to a local VITS"):
        load_text_to_speech(str(tmp_path), "cpu")


def test_loaded_model_is_in_eval_mode_with_its_tokenizer(vits: tuple[object, object]) -> None:
    model, tokenizer = vits

    assert type(model).__name__ == "VitsModel" and not model.training  # type: ignore[attr-defined]
    assert type(tokenizer).__name__ == "VitsTokenizer"
    assert speakable(tokenizer, ["Hello!", "#### 1234", ""]) == [True, False, False]


def test_per_item_noise_gives_an_item_the_same_values_whatever_the_batch_pads_it_to() -> None:
    with _per_item_noise([5, 9]):
        batched = torch.randn(2, 2, 40)
        batched_like = torch.randn_like(torch.zeros(2, 3, 30))
    with _per_item_noise([9]):
        alone = torch.randn(1, 2, 11)
        alone_like = torch.randn_like(torch.zeros(1, 3, 7))

    assert torch.equal(batched[1, :, :11], alone[0])
    assert torch.equal(batched_like[1, :, :7], alone_like[0])
    assert not torch.equal(batched[0, :, :11], alone[0])


def test_per_item_noise_leaves_torch_global_generator_alone() -> None:
    torch.manual_seed(3)
    expected = torch.rand(4)
    torch.manual_seed(3)
    with _per_item_noise([1, 2]):
        torch.randn(2, 5)
        torch.randn(7)  # not batch-shaped: from a generator seeded with every seed
    assert torch.equal(torch.rand(4), expected)


def test_speech_is_the_same_for_the_same_seeds_and_changes_with_them(vits: tuple[object, object]) -> None:
    model, tokenizer = vits

    first = synthesize_speech(model, tokenizer, TEXTS, [1, 2, 3], SpeechSettings(), batch_size=3)
    again = synthesize_speech(model, tokenizer, TEXTS, [1, 2, 3], SpeechSettings(), batch_size=3)
    reseeded = synthesize_speech(model, tokenizer, TEXTS, [1, 2, 4], SpeechSettings(), batch_size=3)

    assert all(np.array_equal(a, b) for a, b in zip(first, again, strict=True))
    assert np.array_equal(first[0], reseeded[0])
    assert not np.array_equal(first[2], reseeded[2])
    assert all(wave.dtype == np.float32 and wave.ndim == 1 and len(wave) % 16 == 0 for wave in first)


def test_an_item_gets_the_same_durations_and_audio_before_its_tail_in_any_batch(
    vits: tuple[object, object],
) -> None:
    model, tokenizer = vits

    batched = synthesize_speech(model, tokenizer, TEXTS, [1, 2, 3], SpeechSettings(), batch_size=3)
    alone = synthesize_speech(model, tokenizer, TEXTS, [1, 2, 3], SpeechSettings(), batch_size=1)

    assert [len(wave) for wave in batched] == [len(wave) for wave in alone]
    # The vocoder's receptive field reaches into the padding only near the end of a padded item.
    head = len(batched[1]) // 2
    assert np.allclose(batched[1][:head], alone[1][:head], atol=1e-4)


def test_batches_hold_at_most_batch_size_texts(vits: tuple[object, object]) -> None:
    model, tokenizer = vits
    sizes: list[int] = []
    hook = model.register_forward_pre_hook(  # type: ignore[attr-defined]
        lambda module, args, kwargs: sizes.append(kwargs["input_ids"].shape[0]), with_kwargs=True
    )
    try:
        waves = synthesize_speech(
            model, tokenizer, [*TEXTS, "one more", "and another"], range(5), SpeechSettings(), batch_size=2
        )
    finally:
        hook.remove()

    assert sizes == [2, 2, 1]
    assert len(waves) == 5


def test_zero_noise_scales_make_the_seed_irrelevant_and_are_restored(vits: tuple[object, object]) -> None:
    model, tokenizer = vits
    before = (model.noise_scale, model.noise_scale_duration, model.speaking_rate)  # type: ignore[attr-defined]
    silent_noise = SpeechSettings(noise_scale=0.0, noise_scale_duration=0.0)

    one = synthesize_speech(model, tokenizer, TEXTS[1:2], [1], silent_noise)
    two = synthesize_speech(model, tokenizer, TEXTS[1:2], [2], silent_noise)

    assert np.array_equal(one[0], two[0])
    assert (model.noise_scale, model.noise_scale_duration, model.speaking_rate) == before  # type: ignore[attr-defined]


def test_the_settings_hold_on_the_model_while_it_speaks(vits: tuple[object, object]) -> None:
    model, tokenizer = vits
    seen: list[tuple[float, float, float]] = []
    hook = model.register_forward_pre_hook(  # type: ignore[attr-defined]
        lambda module, args: seen.append(
            (module.speaking_rate, module.noise_scale, module.noise_scale_duration)
        )
    )
    try:
        synthesize_speech(model, tokenizer, TEXTS[:1], [1], SpeechSettings(1.5, 0.3, 0.2))
    finally:
        hook.remove()

    assert seen == [(1.5, 0.3, 0.2)]
