"""Distinct tunes made in code, and their encodings, for the audio dedup tests."""

from __future__ import annotations

import io

import numpy as np
import soundfile


def tune(seed: int, seconds: float = 12.0, rate: int = 22050) -> np.ndarray:
    """A melody of plucked notes with harmonics over a slowly pulsing chord, some drum hits."""
    rng = np.random.default_rng(seed)
    time = np.arange(int(seconds * rate)) / rate
    signal = np.zeros_like(time)
    root, beat, onset = rng.uniform(110, 330), rng.uniform(0.15, 0.5), 0.0
    while onset < seconds:
        length = beat * rng.choice([0.5, 1, 2])
        pitch = root * 2 ** (rng.choice([0, 2, 4, 5, 7, 9, 11, 12]) / 12) * rng.choice([1, 2])
        note = (time >= onset) & (time < onset + length)
        envelope = np.exp(-(time[note] - onset) * rng.uniform(2, 8))
        for harmonic, amplitude in enumerate(rng.uniform(0.2, 1, 4) / np.arange(1, 5), start=1):
            signal[note] += amplitude * envelope * np.sin(2 * np.pi * pitch * harmonic * (time[note] - onset))
        if rng.random() < 0.3:
            start = int(onset * rate)
            hit = signal[start : start + int(0.05 * rate)]
            hit += rng.normal(0, 0.3, len(hit)) * np.exp(-np.arange(len(hit)) / (0.01 * rate))
        onset += length
    chord = sum(np.sin(2 * np.pi * root * 2 ** (step / 12) / 2 * time) for step in (0, 4, 7))
    signal += 0.2 * chord * (0.5 + 0.5 * np.sin(2 * np.pi * time / rng.uniform(2, 6)))
    return (signal / np.abs(signal).max() * 0.8).astype(np.float32)


def sound(samples: np.ndarray, file_format: str = "WAV", rate: int = 22050) -> bytes:
    buffer = io.BytesIO()
    soundfile.write(buffer, samples, rate, format=file_format)
    return buffer.getvalue()
