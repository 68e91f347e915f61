"""Tests for the demo audio clips in the media folder, with every planted case."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile


def test_media_audio_plants_duplicate_silent_short_and_corrupt_clips(landing: Path) -> None:
    folder = landing / "media_001" / "audio"
    assert (folder / "tone_440hz.wav").read_bytes() == (folder / "tone_440hz_copy.wav").read_bytes()
    silence, rate = soundfile.read(folder / "silence_2s.wav")
    assert rate == 16_000 and len(silence) == 32_000 and not np.any(silence)
    assert soundfile.info(str(folder / "blip_short.wav")).duration == pytest.approx(0.2)
    with pytest.raises(soundfile.LibsndfileError):
        soundfile.read(folder / "broken_clip.wav")
    assert len(list(folder.glob("*.txt"))) >= 2


def test_media_audio_clips_are_mono_16_khz_between_one_and_four_seconds(landing: Path) -> None:
    planted = {
        "silence_2s.wav",
        "blip_short.wav",
        "broken_clip.wav",
        "tone_440hz_copy.wav",
        "overdriven_330hz.wav",
        "chord_in_hiss.wav",
        "phone_tone_8khz.wav",
    }
    clips = [
        path for path in sorted((landing / "media_001" / "audio").glob("*.wav")) if path.name not in planted
    ]
    assert len(clips) == 12
    for path in clips:
        info = soundfile.info(str(path))
        assert (info.channels, info.samplerate) == (1, 16_000)
        assert 1.0 <= info.duration <= 4.0
