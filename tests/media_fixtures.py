"""Small media and landing files that tests build themselves."""

import io
import json
from pathlib import Path

import numpy as np
import soundfile
from PIL import Image

from curation_dagster.media import H264_VIDEO, encode_mp4


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


def noisy_png(size: int = 32, seed: int = 0) -> bytes:
    """A PNG of random pixels: passes size and blankness filters, and every seed gives a different image."""
    pixels = np.random.default_rng(seed).integers(0, 256, (size, size, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


def tiny_mp4(frames: int = 8, size: int = 32, fps: int = 8) -> bytes:
    """A one-second H.264 clip of a white square moving across black."""
    images = []
    for index in range(frames):
        image = Image.new("RGB", (size, size))
        image.paste((255, 255, 255), (index * 2, 8, index * 2 + 8, 16))
        images.append(image)
    return encode_mp4(images, fps, H264_VIDEO)


#: Filters for `write_multimodal_landing`: each modality has one item that a filter rejects.
MULTIMODAL_SPEC: dict[str, object] = {
    "name": "mm",
    "filters": {
        "text": [{"kind": "text_length", "min_chars": 20, "max_chars": 1000, "min_words": 4}],
        "image": [{"kind": "image_size", "min_width": 8, "min_height": 8}, {"kind": "image_blank"}],
        "audio": [{"kind": "duration", "min_s": 0.1, "max_s": 10.0}, {"kind": "audio_silence"}],
        "video": [{"kind": "duration", "min_s": 0.5, "max_s": 10.0}],
    },
    "select": {"seed": 1, "fraction": 1.0},
    "synthesize": {"seed": 2, "fraction": 1.0},
}


def write_multimodal_landing(root: Path) -> Path:
    """Shards `text.jsonl` (a duplicate, a short text, a bad line) and `media` (images, sounds, a clip,
    with a duplicate, a blank image, a silent sound and an undecodable file)."""
    root.mkdir(parents=True, exist_ok=True)
    first = "The river bank was quiet in the early morning light and the boats were still tied up."
    write_jsonl(
        root / "text.jsonl",
        [
            first,
            "Researchers measured the growth of wheat under three watering schedules over two summers.",
            first.upper(),
            "too short",
        ],
    )
    with (root / "text.jsonl").open("a", encoding="utf-8") as handle:
        handle.write("{not json\n")
    media = root / "media"
    media.mkdir()
    (media / "noise.png").write_bytes(noisy_png(seed=1))
    (media / "noise.txt").write_text("Random coloured pixels.", encoding="utf-8")
    (media / "other.png").write_bytes(noisy_png(seed=2))
    (media / "noise_copy.png").write_bytes(noisy_png(seed=1))
    (media / "blank.png").write_bytes(png_bytes((32, 32)))
    (media / "broken.jpg").write_bytes(b"not an image at all")
    (media / "tone.wav").write_bytes(tone_wav())
    (media / "tone.txt").write_text("A 440 Hz tone.", encoding="utf-8")
    (media / "silence.wav").write_bytes(tone_wav_silent())
    (media / "clip.mp4").write_bytes(tiny_mp4())
    return root


def tone_wav_silent(seconds: float = 0.5, rate: int = 8000) -> bytes:
    """Half a second of digital silence as 16-bit mono WAV."""
    buffer = io.BytesIO()
    soundfile.write(buffer, np.zeros(int(seconds * rate)), rate, format="WAV", subtype="PCM_16")
    return buffer.getvalue()
