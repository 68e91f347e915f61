"""The base of every synthesis recipe: what a recipe makes for a parent (a `Variant`, or `Unusable` with a
reject code), the per-parent seeding that makes outputs independent of their batch, and small helpers
shared by recipes."""

from __future__ import annotations

import hashlib
import json
import random
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

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
    def make(self, parent: Mapping[str, Any], rng: random.Random) -> Outcome:
        """A new variant of `parent`, or why this parent cannot have one."""

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
