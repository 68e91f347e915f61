"""Tests of curation_dagster/synth/tts.py: the `tts` recipe on a tiny randomly initialised VITS loaded from
a local folder, through the runtime, with real tokenising, batching and WAV encoding."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile

from curation_dagster.errors import ModelNotConfigured
from curation_dagster.io.validate import probe_audio
from curation_dagster.models.runtime import ModelRuntime
from curation_dagster.spec import TTSSettings
from curation_dagster.synth.base import Unusable, Variant
from curation_dagster.synth.tts import REJECT_NOTHING_TO_SPEAK, TextToSpeech

pytestmark = pytest.mark.usefixtures("no_network", "torch_single_thread")


@pytest.fixture(scope="module")
def runtime(tiny_vits_folder: Path) -> ModelRuntime:
    return ModelRuntime.local("cpu", text_to_speech=str(tiny_vits_folder), batch_size=2)


def text_item(text: str | None, item_id: str) -> dict[str, Any]:
    return {"id": item_id, "modality": "text", "text": text, "media": None, "uri": f"land#{item_id}"}


PARENTS = [
    text_item("The boats were still tied up at the pier.", "a"),
    text_item("Wheat grew under three watering schedules.", "b"),
    text_item("Cats.", "c"),
]


def test_tts_speaks_each_text_as_a_wav_at_the_model_rate(runtime: ModelRuntime) -> None:
    outcomes = TextToSpeech(TTSSettings(), runtime).make_batch(PARENTS, ["4:a", "4:b", "4:c"])

    assert all(isinstance(outcome, Variant) for outcome in outcomes)
    for parent, outcome in zip(PARENTS, outcomes, strict=True):
        assert isinstance(outcome, Variant) and outcome.media is not None
        assert (outcome.text, outcome.media_format, outcome.meta) == (parent["text"], "wav", {})
        probed = probe_audio(outcome.media)
        assert (probed["sample_rate"], probed["channels"]) == (8000, 1)
        samples, _ = soundfile.read(io.BytesIO(outcome.media), dtype="int16")
        assert len(samples) > 0 and len(samples) % 16 == 0  # whole spectrogram frames of 16 samples
        assert np.abs(samples).max() > 0


def test_tts_is_deterministic_per_seed_key_and_varies_with_it(runtime: ModelRuntime) -> None:
    recipe = TextToSpeech(TTSSettings(), runtime)

    first = recipe.make_batch(PARENTS, ["4:a", "4:b", "4:c"])
    again = recipe.make_batch(PARENTS, ["4:a", "4:b", "4:c"])
    reseeded = recipe.make_batch(PARENTS, ["5:a", "5:b", "5:c"])

    assert first == again
    assert all(
        isinstance(one, Variant) and isinstance(two, Variant) and one.media != two.media
        for one, two in zip(first, reseeded, strict=True)
    )


def test_recipes_with_different_names_draw_different_noise(runtime: ModelRuntime) -> None:
    plain = TextToSpeech(TTSSettings(), runtime).make_batch(PARENTS[:1], ["4:a"])
    named = TextToSpeech(TTSSettings(name="voice_two"), runtime).make_batch(PARENTS[:1], ["4:a"])

    assert isinstance(plain[0], Variant) and isinstance(named[0], Variant)
    assert plain[0].media != named[0].media


def test_tts_runs_the_model_in_batches_of_the_runtime_batch_size(runtime: ModelRuntime) -> None:
    model, _ = runtime.speech()
    sizes: list[int] = []
    hook = model.register_forward_pre_hook(
        lambda module, args, kwargs: sizes.append(kwargs["input_ids"].shape[0]), with_kwargs=True
    )
    try:
        TextToSpeech(TTSSettings(), runtime).make_batch(
            [*PARENTS, text_item("one more", "d"), text_item("and the last", "e")],
            ["1:a", "1:b", "1:c", "1:d", "1:e"],
        )
    finally:
        hook.remove()

    assert sizes == [2, 2, 1]


def test_text_with_nothing_the_tokenizer_can_spell_is_unusable(runtime: ModelRuntime) -> None:
    outcomes = TextToSpeech(TTSSettings(), runtime).make_batch(
        [text_item("#### 1234 ####", "x"), text_item(None, "y"), PARENTS[2]], ["1:x", "1:y", "1:c"]
    )

    assert [outcome.reason for outcome in outcomes[:2] if isinstance(outcome, Unusable)] == [
        REJECT_NOTHING_TO_SPEAK
    ] * 2
    assert isinstance(outcomes[0], Unusable)
    assert outcomes[0].detail == "the model's tokenizer finds nothing to speak in '#### 1234 ####'"
    assert isinstance(outcomes[2], Variant)


def test_a_long_text_is_cut_at_a_word_boundary_and_the_cut_recorded(runtime: ModelRuntime) -> None:
    (outcome,) = TextToSpeech(TTSSettings(max_chars=20), runtime).make_batch(
        [text_item("The boats were  still tied up at the pier.", "a")], ["1:a"]
    )

    assert isinstance(outcome, Variant)
    assert (outcome.text, outcome.meta) == ("The boats were still", {"truncated_to_chars": 20})


def test_tts_takes_text_items_unless_its_source_is_audio(runtime: ModelRuntime) -> None:
    assert TextToSpeech(TTSSettings(), runtime).parent_modality == "text"
    assert TextToSpeech(TTSSettings(source="audio"), runtime).parent_modality == "audio"
    assert TextToSpeech(TTSSettings(source="audio"), runtime).modality == "audio"


def test_generator_records_the_model_folder_and_settings(
    runtime: ModelRuntime, tiny_vits_folder: Path
) -> None:
    generator = json.loads(TextToSpeech(TTSSettings(speaking_rate=1.2, noise_scale=0.5), runtime).generator)

    assert generator == {
        "recipe": "tts",
        "model": str(tiny_vits_folder),
        "source": "text",
        "speaking_rate": 1.2,
        "noise_scale": 0.5,
        "max_chars": 500,
    }


def test_tts_without_a_model_names_the_setting() -> None:
    with pytest.raises(ModelNotConfigured, match=r"set models\.text_to_speech \(CURATION_TEXT_TO_SPEECH\)"):
        TextToSpeech(TTSSettings(), ModelRuntime()).make_batch(PARENTS[:1], ["1:a"])
