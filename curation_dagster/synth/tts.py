"""The `tts` recipe: speech from an item's text with a VITS model (`models.text_to_speech`).

CPU pre-processing (the text cut at a word boundary, texts the tokenizer cannot spell set aside), batched
synthesis on the runtime's device with noise seeded per parent, CPU encoding as 16-bit WAV at the model's
sampling rate. A text with nothing to speak, or audio that is not finite, is an `Unusable` outcome.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from curation_dagster.errors import ModelNotConfigured
from curation_dagster.models.speech import (
    TEXT_TO_SPEECH_SETTING,
    SpeechSettings,
    speakable,
    synthesize_speech,
)
from curation_dagster.spec import TTSSettings
from curation_dagster.synth.base import ModelRecipe, Outcome, Unusable, Variant, cut_at_word
from curation_dagster.synth.media_recipes import wav_bytes

REJECT_NOTHING_TO_SPEAK = "synth.nothing_to_speak"
REJECT_SPEECH_OUTPUT = "synth.speech_output"


class TextToSpeech(ModelRecipe):
    """A `tts` recipe: each parent's text (or transcript) spoken by the VITS model, as a new audio item."""

    name = "tts"
    modality = "audio"
    settings: TTSSettings

    @property
    def model(self) -> str:
        return self.runtime.text_to_speech if self.runtime is not None else ""

    def generate(self, parents: Sequence[Mapping[str, Any]], seeds: Sequence[int]) -> list[Outcome]:
        if not parents:
            return []
        if self.runtime is None:
            raise ModelNotConfigured(
                f"the tts synthesis recipe {self.label} needs a model: run the stage with a ModelRuntime whose "
                f"{TEXT_TO_SPEECH_SETTING} is a local Hugging Face VITS folder"
            )
        model, tokenizer = self.runtime.speech()
        whole = [" ".join(str(parent.get("text") or "").split()) for parent in parents]
        texts = [cut_at_word(text, self.settings.max_chars) for text in whole]
        spoken = [index for index, ok in enumerate(speakable(tokenizer, texts)) if ok]
        s = self.settings
        waveforms = synthesize_speech(
            model,
            tokenizer,
            [texts[index] for index in spoken],
            [seeds[index] for index in spoken],
            SpeechSettings(s.speaking_rate, s.noise_scale, s.noise_scale_duration),
            device=self.runtime.device,
            batch_size=self.runtime.batch_size,
            dtype=self.runtime.dtype,
        )
        rate = int(model.config.sampling_rate)
        outcomes: list[Outcome] = [
            Unusable(
                REJECT_NOTHING_TO_SPEAK, f"the model's tokenizer finds nothing to speak in {text[:80]!r}"
            )
            for text in texts
        ]
        for index, waveform in zip(spoken, waveforms, strict=True):
            outcomes[index] = _encoded(texts[index], waveform, rate, truncated=texts[index] != whole[index])
        return outcomes


def _encoded(text: str, waveform: Any, rate: int, *, truncated: bool) -> Outcome:
    """The spoken `text` as a WAV variant, unless the waveform is empty or not finite."""
    import numpy as np

    if waveform.size == 0 or not np.isfinite(waveform).all():
        return Unusable(REJECT_SPEECH_OUTPUT, f"the model's audio is empty or not finite for {text[:80]!r}")
    meta = {"truncated_to_chars": len(text)} if truncated else {}
    return Variant(text, wav_bytes(waveform.astype(np.float64), rate), "wav", meta)
