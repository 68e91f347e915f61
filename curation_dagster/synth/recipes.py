"""Synthesis recipes, each a deterministic transformation of a parent item: the base, the rule-based text
recipes and the first recipe of each media modality here; more media recipes in
`curation_dagster.synth.media_recipes`; model-running ones in `synth.llm`, `synth.tts` and
`synth.image_generator`."""

from __future__ import annotations

import hashlib
import io
import json
import random
import re
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from typing import TYPE_CHECKING, Any, ClassVar

from curation_dagster.media import encode_mp4, media_bytes
from curation_dagster.spec import (
    AudioRecipe,
    ImageRecipe,
    SentenceShuffleRecipe,
    SynthSpec,
    TextRecipe,
    VideoRecipe,
)

if TYPE_CHECKING:
    from curation_dagster.models.runtime import ModelRuntime

REJECT_RECIPE_FAILED = "synth.recipe_failed"


@dataclass
class Variant:
    """A synthetic item's content; the synthesizer adds ids and provenance. `meta` goes into the item's
    `meta` next to the parent's uri (e.g. parsed question-answer pairs); `other_parents` are the ids of
    items besides the parent that went into it (e.g. a composite's second image)."""

    text: str | None
    media: bytes | None
    media_format: str | None
    meta: dict[str, Any] = field(default_factory=dict)
    other_parents: tuple[str, ...] = ()


@dataclass
class Unusable:
    """A recipe's output that cannot become an item: it becomes a rejected candidate with this reason.
    `text` is what the recipe produced (e.g. a model's unparseable output), kept for inspection."""

    reason: str
    detail: str
    text: str | None = None
    other_parents: tuple[str, ...] = ()


Outcome = Variant | Unusable


def centre_box(width: int, height: int, fraction: float, multiple: int = 1) -> tuple[int, int, int, int]:
    """The (left, top, right, bottom) box keeping `fraction` of each side around the centre, each kept
    side a multiple of `multiple` and at least `multiple` pixels."""
    keep_w = max(multiple, int(width * fraction) // multiple * multiple)
    keep_h = max(multiple, int(height * fraction) // multiple * multiple)
    left, top = (width - keep_w) // 2, (height - keep_h) // 2
    return left, top, left + keep_w, top + keep_h


def seed_from_key(key: str) -> int:
    """A 63-bit integer seed from a string key, for recipes whose models take integer seeds."""
    return int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "little") >> 1


def cut_at_word(text: str, max_chars: int) -> str:
    """`text` cut to at most `max_chars` characters, at the last whitespace when there is one."""
    if len(text) <= max_chars:
        return text
    cut = text[:max_chars]
    if text[max_chars].isspace():
        return cut.rstrip()
    space = max(cut.rfind(" "), cut.rfind("\n"))
    return (cut[:space] if space > 0 else cut).rstrip()


class Recipe(ABC):
    """Makes one variant of a parent row; `rng` is seeded per parent so output is deterministic.

    `make_batch` is what the synthesized stage calls: one outcome per parent, a failure of one parent a
    rejected candidate rather than an error. Recipes that run a model override it to batch their work.
    """

    name: ClassVar[str]
    modality: ClassVar[str]
    """The modality of the items the recipe makes."""

    def __init__(self, settings: Any) -> None:
        self.settings = settings

    @property
    def parent_modality(self) -> str:
        """The modality of the parents it takes: the settings' `source` where they have one (a clip from
        an image, speech from a text), else the modality it makes."""
        return str(getattr(self.settings, "source", self.modality))

    @property
    def label(self) -> str:
        """The recipe's name in ids, provenance and metadata: the spec's `name`, else the kind."""
        return str(getattr(self.settings, "label", self.name))

    @property
    def fraction(self) -> float | None:
        """This recipe's share of the selected items, when its settings give one."""
        value = getattr(self.settings, "fraction", None)
        return None if value is None else float(value)

    @property
    def generator(self) -> str:
        """The recipe and its settings, recorded on every item it makes."""
        settings = self.settings.model_dump(exclude={"kind", "name", "fraction"}, exclude_none=True)
        return json.dumps({"recipe": self.label, **settings}, sort_keys=True)

    @abstractmethod
    def make(self, parent: Mapping[str, Any], rng: random.Random) -> Variant:
        """A new variant of `parent`."""

    def make_batch(
        self,
        parents: Sequence[Mapping[str, Any]],
        seed_keys: Sequence[str],
        pool: Sequence[Mapping[str, Any]] = (),
    ) -> list[Outcome]:
        """One outcome per parent; `seed_keys[i]` seeds parent i's randomness (spec seed and parent id).
        `pool` holds the items the parents were chosen from, for recipes that combine two items."""
        outcomes: list[Outcome] = []
        for parent, key in zip(parents, seed_keys, strict=True):
            try:
                outcomes.append(self.make(parent, random.Random(key)))
            except (OSError, ValueError, RuntimeError) as error:
                outcomes.append(Unusable(REJECT_RECIPE_FAILED, str(error)[:300]))
        return outcomes


class ModelRecipe(Recipe):
    """A recipe that runs a model from the runtime on a batch of parents. Each parent's randomness comes
    from its own seed (spec seed, parent id and recipe), so an output does not depend on its batch."""

    def __init__(self, settings: Any, runtime: ModelRuntime | None = None) -> None:
        super().__init__(settings)
        self.runtime = runtime

    @property
    def model(self) -> str:
        """The model's local path, recorded in the items' `generator`."""
        return ""

    @property
    def generator(self) -> str:
        settings = self.settings.model_dump(exclude={"kind", "name", "fraction"}, exclude_none=True)
        return json.dumps({"recipe": self.label, "model": self.model, **settings}, sort_keys=True)

    def make(self, parent: Mapping[str, Any], rng: random.Random) -> Variant:
        outcome = self.generate([parent], [rng.getrandbits(63)])[0]
        if isinstance(outcome, Unusable):
            raise ValueError(f"{outcome.reason}: {outcome.detail}")
        return outcome

    def make_batch(
        self,
        parents: Sequence[Mapping[str, Any]],
        seed_keys: Sequence[str],
        pool: Sequence[Mapping[str, Any]] = (),
    ) -> list[Outcome]:
        return self.generate(parents, [seed_from_key(f"{key}:{self.label}") for key in seed_keys])

    @abstractmethod
    def generate(self, parents: Sequence[Mapping[str, Any]], seeds: Sequence[int]) -> list[Outcome]:
        """One outcome per parent, parent i generated with integer seed `seeds[i]`."""


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
    settings: SentenceShuffleRecipe

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


RECIPES: dict[str, type[Recipe]] = {
    "word_edits": WordEdits,
    "sentence_shuffle": SentenceShuffle,
    "flip_crop": FlipCrop,
    "gain_shift": GainShift,
    "frame_step_crop": FrameStepCrop,
}


def build_recipes(spec: SynthSpec, runtime: ModelRuntime | None = None) -> list[Recipe]:
    """The recipes the spec switches on: text, then image, audio and video, each in the spec's order.
    Recipes that run a model (`llm`, `tts`, `image_generator`) run on `runtime` and load nothing until
    they first generate."""
    from curation_dagster.synth.image_generator import ImageGeneration
    from curation_dagster.synth.llm import LanguageModelRecipe
    from curation_dagster.synth.media_recipes import MEDIA_RECIPES
    from curation_dagster.synth.tts import TextToSpeech

    with_model: dict[str, Callable[[Any, ModelRuntime | None], Recipe]] = {
        "llm": LanguageModelRecipe,
        "tts": TextToSpeech,
        "image_generator": ImageGeneration,
    }
    rule_based: dict[str, type[Recipe]] = {**RECIPES, **MEDIA_RECIPES}
    recipes: list[Recipe] = []
    for settings in spec.recipes:
        if settings.kind in with_model:
            recipes.append(with_model[settings.kind](settings, runtime))
        else:
            recipes.append(rule_based[settings.kind](settings))
    return recipes
