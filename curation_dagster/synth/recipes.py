"""The rule-based recipes of the first release: text word edits and sentence shuffles, and one recipe
per media modality (mirror and crop, gain and shift, frame step and crop); more media recipes in
`synth/media_recipes.py`, model-running ones in `synth/llm.py`, `synth/tts.py` and
`synth/image_generator.py`, all listed in `synth/registry.py`."""

from __future__ import annotations

import io
import random
import re
from collections.abc import Mapping
from fractions import Fraction
from typing import Any

from curation_dagster.media import encode_mp4, media_bytes
from curation_dagster.spec import (
    FlipCropSettings,
    FrameStepCropSettings,
    GainShiftSettings,
    SentenceShuffleSettings,
    WordEditsSettings,
)
from curation_dagster.synth.base import Outcome, Recipe, Unusable, Variant, centre_box
from curation_dagster.synth.captions import REJECT_CAPTION_GEOMETRY, follow_mirror

__all__ = [
    "REJECT_CAPTION_GEOMETRY",
    "FlipCrop",
    "FrameStepCrop",
    "GainShift",
    "SentenceShuffle",
    "WordEdits",
]


class WordEdits(Recipe):
    """Text augmentation: at each word, with probability `edit_rate`, swap it with the next or drop it."""

    name = "word_edits"
    modality = "text"
    settings: WordEditsSettings

    def make(self, parent: Mapping[str, Any], rng: random.Random) -> Variant:
        words = str(parent["text"]).split()
        out: list[str] = []
        index = 0
        while index < len(words):
            roll = rng.random()
            if roll < self.settings.edit_rate / 2 and index + 1 < len(words):
                out.extend([words[index + 1], words[index]])
                index += 2
                continue
            if roll < self.settings.edit_rate and len(words) > 1:
                index += 1
                continue
            out.append(words[index])
            index += 1
        return Variant(" ".join(out), None, None)


# Whitespace after terminal punctuation, or after terminal punctuation and a closing quote or bracket.
_SENTENCE_END = re.compile(r"(?:(?<=[.!?…])|(?<=[.!?…][\"'”’)\]]))\s+")

_PARAGRAPH_BREAK = re.compile(r"\n\s*\n")


def _split_keeping_separators(text: str, pattern: re.Pattern[str]) -> tuple[list[str], list[str]]:
    """The pieces of `text` between matches of `pattern`, and the matched separators between them."""
    pieces: list[str] = []
    separators: list[str] = []
    start = 0
    for match in pattern.finditer(text):
        if match.start() == start:
            continue
        pieces.append(text[start : match.start()])
        separators.append(match.group())
        start = match.end()
    pieces.append(text[start:])
    return pieces, separators


class SentenceShuffle(Recipe):
    """Text augmentation: walking through the sentences, each not yet moved trades places, with
    probability `swap_rate`, with one not yet moved at most `max_distance` later, so no sentence moves
    further than that; a text of two sentences or more gets at least one swap. Whitespace and paragraph
    breaks stay where they were."""

    name = "sentence_shuffle"
    modality = "text"
    settings: SentenceShuffleSettings

    def make(self, parent: Mapping[str, Any], rng: random.Random) -> Variant:
        text = str(parent["text"])
        if self.settings.within_paragraphs:
            blocks, breaks = _split_keeping_separators(text, _PARAGRAPH_BREAK)
        else:
            blocks, breaks = [text], []
        # Per block: its sentences, the whitespace between them, and what trails the last one.
        split = [
            (*_split_keeping_separators(block.rstrip(), _SENTENCE_END), block[len(block.rstrip()) :])
            for block in blocks
        ]
        swapped = False
        for sentences, _, _ in split:
            moved: set[int] = set()
            for index in range(len(sentences) - 1):
                if index not in moved and rng.random() < self.settings.swap_rate:
                    swapped |= self._swap(sentences, index, moved, rng)
        movable = [sentences for sentences, _, _ in split if len(sentences) > 1]
        if not swapped and movable:
            sentences = rng.choice(movable)
            self._swap(sentences, rng.randrange(len(sentences) - 1), set(), rng)
        joined = [_join(sentences, separators) + trailing for sentences, separators, trailing in split]
        return Variant(_join(joined, breaks), None, None)

    def _swap(self, sentences: list[str], index: int, moved: set[int], rng: random.Random) -> bool:
        """Swap sentence `index` with one not yet moved at most `max_distance` after it; False if none."""
        last = min(len(sentences) - 1, index + self.settings.max_distance)
        choices = [other for other in range(index + 1, last + 1) if other not in moved]
        if not choices:
            return False
        other = rng.choice(choices)
        sentences[index], sentences[other] = sentences[other], sentences[index]
        moved.update((index, other))
        return True


def _join(pieces: list[str], separators: list[str]) -> str:
    out = pieces[0]
    for separator, piece in zip(separators, pieces[1:], strict=True):
        out += separator + piece
    return out


class FlipCrop(Recipe):
    """Image augmentation: horizontal mirror, then a centre crop keeping `crop_fraction` of each side; the
    caption follows the mirror (`captions`, `synth/captions.py`)."""

    name = "flip_crop"
    modality = "image"
    settings: FlipCropSettings

    def make(self, parent: Mapping[str, Any], rng: random.Random) -> Outcome:
        from PIL import Image, ImageOps

        followed = follow_mirror(parent.get("text"), self.settings.captions)
        if isinstance(followed, Unusable):
            return followed
        caption, meta = followed

        with Image.open(io.BytesIO(media_bytes(parent))) as source:
            image = ImageOps.mirror(source.convert("RGB"))
        image = image.crop(centre_box(*image.size, self.settings.crop_fraction))
        buffer = io.BytesIO()
        image.save(buffer, format="PNG", optimize=False)
        return Variant(caption, buffer.getvalue(), "png", meta)


class GainShift(Recipe):
    """Audio augmentation: a gain change in dB, then a circular shift in time."""

    name = "gain_shift"
    modality = "audio"
    settings: GainShiftSettings

    def make(self, parent: Mapping[str, Any], rng: random.Random) -> Variant:
        import numpy as np
        import soundfile

        samples, rate = soundfile.read(io.BytesIO(media_bytes(parent)), dtype="float64", always_2d=True)
        scaled = samples * (10 ** (self.settings.gain_db / 20))
        shifted = np.roll(scaled, int(len(scaled) * self.settings.shift_fraction), axis=0)
        buffer = io.BytesIO()
        soundfile.write(buffer, np.clip(shifted, -1.0, 1.0), rate, format="WAV", subtype="PCM_16")
        return Variant(parent.get("text"), buffer.getvalue(), "wav")


class FrameStepCrop(Recipe):
    """Video augmentation: keep every `frame_step`-th frame (a lower frame rate) and crop the centre."""

    name = "frame_step_crop"
    modality = "video"
    settings: FrameStepCropSettings

    def make(self, parent: Mapping[str, Any], rng: random.Random) -> Variant:
        import av

        step = self.settings.frame_step
        with av.open(io.BytesIO(media_bytes(parent)), mode="r") as source:
            stream = source.streams.video[0]
            rate = Fraction(stream.average_rate or 24) / step
            frames = [frame for index, frame in enumerate(source.decode(stream)) if index % step == 0]
        if not frames:
            raise ValueError("the parent video has no frames")
        # Video encoders want even dimensions.
        left, top, right, bottom = centre_box(
            frames[0].width, frames[0].height, self.settings.crop_fraction, 2
        )
        arrays = (frame.to_ndarray(format="rgb24")[top:bottom, left:right] for frame in frames)
        return Variant(parent.get("text"), encode_mp4(arrays, max(1, round(rate))), "mp4")
