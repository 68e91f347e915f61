"""The `audio/` part of the demo media folder: tones, chords, sweeps and noises with planted problems.

Waves are computed with numpy from fixed parameters and seeds and written as 16-bit PCM WAV.
"""

from __future__ import annotations

import io
import math
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from curation_dagster.demo.corpus_files import corpus_strings
from curation_dagster.demo.formats import random_bytes

if TYPE_CHECKING:
    import numpy as np

AUDIO_SAMPLE_RATE = 16_000

AUDIO_CAPTIONS: dict[str, str] = corpus_strings("audio_captions.json")
"""Captions for some of the audio clips."""


def _envelope(samples: int, attack: float, release: float) -> np.ndarray:
    """A linear attack and release envelope over `samples` samples (times in seconds)."""
    import numpy as np

    envelope = np.ones(samples)
    attack_samples = min(samples, int(attack * AUDIO_SAMPLE_RATE))
    release_samples = min(samples, int(release * AUDIO_SAMPLE_RATE))
    if attack_samples:
        envelope[:attack_samples] = np.linspace(0.0, 1.0, attack_samples)
    if release_samples:
        envelope[-release_samples:] *= np.linspace(1.0, 0.0, release_samples)
    return envelope


def _times(duration: float) -> np.ndarray:
    """Sample times in seconds for a clip of `duration` seconds."""
    import numpy as np

    return np.arange(round(duration * AUDIO_SAMPLE_RATE)) / AUDIO_SAMPLE_RATE


def _tone(duration: float, frequencies: Sequence[float], tremolo_hz: float = 0.0) -> np.ndarray:
    """A sum of sines (a tone or chord), optionally with amplitude modulation, faded in and out."""
    import numpy as np

    t = _times(duration)
    wave = sum(np.sin(2 * np.pi * frequency * t) for frequency in frequencies) / len(frequencies)
    if tremolo_hz:
        wave = wave * (0.6 + 0.4 * np.sin(2 * np.pi * tremolo_hz * t))
    return 0.6 * wave * _envelope(len(t), 0.05, 0.2)


def _chirp(duration: float, start_hz: float, end_hz: float) -> np.ndarray:
    """An exponential frequency sweep."""
    import numpy as np

    t = _times(duration)
    ratio = end_hz / start_hz
    phase = 2 * np.pi * start_hz * duration * (ratio ** (t / duration) - 1) / math.log(ratio)
    return 0.5 * np.sin(phase) * _envelope(len(t), 0.02, 0.1)


def _noise_bursts(duration: float, bursts: int, seed: int) -> np.ndarray:
    """White-noise bursts separated by silence."""
    import numpy as np

    rng = np.random.default_rng(seed)
    wave = np.zeros(len(_times(duration)))
    slot = len(wave) // bursts
    burst = slot // 2
    for index in range(bursts):
        start = index * slot + slot // 4
        wave[start : start + burst] = rng.normal(0.0, 0.2, burst) * _envelope(burst, 0.01, 0.05)
    return np.clip(wave, -0.9, 0.9)


def _brown_noise(duration: float, seed: int) -> np.ndarray:
    """Brown (integrated white) noise, normalised and faded."""
    import numpy as np

    rng = np.random.default_rng(seed)
    wave = np.cumsum(rng.normal(0.0, 1.0, len(_times(duration))))
    wave -= np.linspace(wave[0], wave[-1], len(wave))
    return 0.5 * wave / np.max(np.abs(wave)) * _envelope(len(wave), 0.1, 0.3)


def _arpeggio(note_hz: Sequence[float], note_seconds: float) -> np.ndarray:
    """A sequence of short plucked notes."""
    import numpy as np

    notes = []
    for frequency in note_hz:
        t = _times(note_seconds)
        notes.append(0.5 * np.sin(2 * np.pi * frequency * t) * np.exp(-4.0 * t))
    return np.concatenate(notes)


def _drum_hits(duration: float, beats_per_minute: float, seed: int) -> np.ndarray:
    """Low thumps with a noisy attack on a steady beat."""
    import numpy as np

    rng = np.random.default_rng(seed)
    wave = np.zeros(len(_times(duration)))
    beat = int(AUDIO_SAMPLE_RATE * 60 / beats_per_minute)
    hit_t = _times(0.25)
    hit = np.sin(2 * np.pi * 70 * hit_t) * np.exp(-18 * hit_t) + 0.3 * rng.normal(0, 1, len(hit_t)) * np.exp(
        -60 * hit_t
    )
    for start in range(0, len(wave) - len(hit), beat):
        wave[start : start + len(hit)] += 0.6 * hit
    return np.clip(wave, -0.9, 0.9)


def _square(duration: float, frequency: float) -> np.ndarray:
    """A band-limited square wave built from its odd harmonics."""
    import numpy as np

    t = _times(duration)
    wave = sum(np.sin(2 * np.pi * frequency * k * t) / k for k in range(1, 16, 2))
    return 0.4 * wave * _envelope(len(t), 0.02, 0.1)


def _fm_bell(duration: float, carrier_hz: float, modulator_hz: float) -> np.ndarray:
    """A frequency-modulated bell-like tone with a long decay."""
    import numpy as np

    t = _times(duration)
    index = 3.0 * np.exp(-1.5 * t)
    return (
        0.5
        * np.sin(2 * np.pi * carrier_hz * t + index * np.sin(2 * np.pi * modulator_hz * t))
        * np.exp(-1.2 * t)
    )


def _wav_bytes(wave: np.ndarray, rate: int = AUDIO_SAMPLE_RATE) -> bytes:
    """Encode a mono float wave as 16-bit PCM WAV (16 kHz unless told)."""
    import soundfile

    buffer = io.BytesIO()
    soundfile.write(buffer, wave, rate, format="WAV", subtype="PCM_16")
    return buffer.getvalue()


def _in_hiss(wave: np.ndarray, snr_db: float, seed: int) -> np.ndarray:
    """`wave` plus white noise `snr_db` below its mean power."""
    import numpy as np

    noise = np.random.default_rng(seed).normal(0.0, 1.0, len(wave))
    noise *= math.sqrt(float(np.mean(wave**2)) / 10 ** (snr_db / 10))
    return np.clip(wave + noise, -0.95, 0.95)


def audio_files() -> dict[str, bytes]:
    """`audio/`: tones, chords, sweeps and noises, plus a duplicate, silence, a too-short and a corrupt clip,
    and for the audio quality filter an overdriven (clipped), a hissing and an 8 kHz clip."""
    import numpy as np

    clips: dict[str, Callable[[], np.ndarray]] = {
        "tone_440hz": lambda: _tone(2.0, [440.0]),
        "tone_660hz_tremolo": lambda: _tone(3.0, [660.0], tremolo_hz=4.0),
        "chord_c_major": lambda: _tone(2.5, [261.63, 329.63, 392.0]),
        "chord_a_minor": lambda: _tone(2.0, [220.0, 261.63, 329.63]),
        "chirp_up": lambda: _chirp(1.5, 200.0, 2000.0),
        "chirp_down": lambda: _chirp(2.0, 3000.0, 300.0),
        "noise_bursts": lambda: _noise_bursts(3.0, 5, seed=21),
        "brown_noise": lambda: _brown_noise(2.5, seed=22),
        "arpeggio": lambda: _arpeggio([261.63, 329.63, 392.0, 523.25, 392.0, 329.63, 261.63, 196.0], 0.4),
        "drum_hits": lambda: _drum_hits(2.0, 120.0, seed=23),
        "square_220hz": lambda: _square(1.0, 220.0),
        "fm_bell": lambda: _fm_bell(4.0, 440.0, 620.0),
    }
    files = {f"audio/{name}.wav": _wav_bytes(make()) for name, make in clips.items()}
    files["audio/tone_440hz_copy.wav"] = files["audio/tone_440hz.wav"]
    files["audio/silence_2s.wav"] = _wav_bytes(np.zeros(2 * AUDIO_SAMPLE_RATE))
    files["audio/blip_short.wav"] = _wav_bytes(_tone(0.2, [880.0]))
    files["audio/broken_clip.wav"] = random_bytes(31, 4096)
    files["audio/overdriven_330hz.wav"] = _wav_bytes(np.clip(4.0 * _tone(2.0, [330.0]), -1.0, 1.0))
    files["audio/chord_in_hiss.wav"] = _wav_bytes(_in_hiss(_tone(2.0, [392.0, 493.88, 587.33]), 0.0, seed=24))
    files["audio/phone_tone_8khz.wav"] = _wav_bytes(_tone(2.0, [523.25])[::2], AUDIO_SAMPLE_RATE // 2)
    for name, caption in AUDIO_CAPTIONS.items():
        files[f"audio/{name}.txt"] = caption.encode("utf-8")
    return files
