"""One recipe per modality, each a deterministic transformation of a parent item."""

from __future__ import annotations

import io
import json
import random
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

from curation_dagster.media import media_bytes
from curation_dagster.spec import AudioRecipe, ImageRecipe, SynthSpec, TextRecipe, VideoRecipe


@dataclass
class Variant:
    """A synthetic item's content; the synthesizer adds ids and provenance."""

    text: str | None
    media: bytes | None
    media_format: str | None


def centre_box(width: int, height: int, fraction: float, multiple: int = 1) -> tuple[int, int, int, int]:
    """The (left, top, right, bottom) box keeping `fraction` of each side around the centre, each kept
    side a multiple of `multiple` and at least `multiple` pixels."""
    keep_w = max(multiple, int(width * fraction) // multiple * multiple)
    keep_h = max(multiple, int(height * fraction) // multiple * multiple)
    left, top = (width - keep_w) // 2, (height - keep_h) // 2
    return left, top, left + keep_w, top + keep_h


class Recipe(ABC):
    """Makes one variant of a parent row; `rng` is seeded per parent so output is deterministic."""

    name: ClassVar[str]
    modality: ClassVar[str]

    def __init__(self, settings: Any) -> None:
        self.settings = settings

    @property
    def generator(self) -> str:
        """The recipe and its settings, recorded on every item it makes."""
        return json.dumps({"recipe": self.name, **self.settings.model_dump(exclude={"kind"})}, sort_keys=True)

    @abstractmethod
    def make(self, parent: Mapping[str, Any], rng: random.Random) -> Variant:
        """A new variant of `parent`."""


class WordEdits(Recipe):
    """Text augmentation: at each word, with probability `edit_rate`, swap it with the next or drop it."""

    name = "word_edits"
    modality = "text"
    settings: TextRecipe

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


class FlipCrop(Recipe):
    """Image augmentation: horizontal mirror, then a centre crop keeping `crop_fraction` of each side."""

    name = "flip_crop"
    modality = "image"
    settings: ImageRecipe

    def make(self, parent: Mapping[str, Any], rng: random.Random) -> Variant:
        from PIL import Image, ImageOps

        with Image.open(io.BytesIO(media_bytes(parent))) as source:
            image = ImageOps.mirror(source.convert("RGB"))
        image = image.crop(centre_box(*image.size, self.settings.crop_fraction))
        buffer = io.BytesIO()
        image.save(buffer, format="PNG", optimize=False)
        return Variant(parent.get("text"), buffer.getvalue(), "png")


class GainShift(Recipe):
    """Audio augmentation: a gain change in dB, then a circular shift in time."""

    name = "gain_shift"
    modality = "audio"
    settings: AudioRecipe

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
    settings: VideoRecipe

    def make(self, parent: Mapping[str, Any], rng: random.Random) -> Variant:
        from fractions import Fraction

        import av

        step = self.settings.frame_step
        out_buffer = io.BytesIO()
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
        keep_w, keep_h = right - left, bottom - top
        with av.open(out_buffer, mode="w", format="mp4") as target:
            encoder = target.add_stream("mpeg4", rate=max(1, round(rate)))
            encoder.width, encoder.height, encoder.pix_fmt = keep_w, keep_h, "yuv420p"
            encoder.options = {"qscale": "4"}
            encoder.thread_count = 1
            for frame in frames:
                array = frame.to_ndarray(format="rgb24")[top : top + keep_h, left : left + keep_w]
                for packet in encoder.encode(av.VideoFrame.from_ndarray(array.copy(), format="rgb24")):
                    target.mux(packet)
            for packet in encoder.encode():
                target.mux(packet)
        return Variant(parent.get("text"), out_buffer.getvalue(), "mp4")


RECIPES: dict[str, type[Recipe]] = {
    "word_edits": WordEdits,
    "flip_crop": FlipCrop,
    "gain_shift": GainShift,
    "frame_step_crop": FrameStepCrop,
}


def build_recipes(spec: SynthSpec) -> dict[str, Recipe]:
    """The recipe per modality that the spec switches on."""
    recipes: dict[str, Recipe] = {}
    for modality in ("text", "image", "audio", "video"):
        settings = getattr(spec, modality)
        if settings is not None:
            recipes[modality] = RECIPES[settings.kind](settings)
    return recipes
