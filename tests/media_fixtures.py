"""Small media and landing files that tests build themselves."""

import io
import json
from pathlib import Path

import numpy as np
import soundfile
from PIL import Image


def write_jsonl(path: Path, texts: list[str]) -> Path:
    """A JSON Lines landing shard with one `{"text": ...}` object per text."""
    path.write_text("".join(json.dumps({"text": text}) + "\n" for text in texts), encoding="utf-8")
    return path


def png_bytes(size: tuple[int, int] = (4, 3)) -> bytes:
    """A single-colour PNG of `size`."""
    buffer = io.BytesIO()
    Image.new("RGB", size, (200, 10, 10)).save(buffer, format="PNG")
    return buffer.getvalue()


def tone_wav(seconds: float = 0.5, rate: int = 8000) -> bytes:
    """A 440 Hz sine at half scale as 16-bit mono WAV."""
    samples = 0.5 * np.sin(2 * np.pi * 440 * np.arange(int(seconds * rate)) / rate)
    buffer = io.BytesIO()
    soundfile.write(buffer, samples, rate, format="WAV", subtype="PCM_16")
    return buffer.getvalue()
