"""Captions of images whose geometry a recipe changes: a mirrored picture needs a mirrored caption.

A horizontal mirror turns "a gradient from orange to yellow, left to right" into a picture that runs from
orange to yellow right to left; keeping the caption would make a wrong training pair. `mirror_caption`
swaps the words that name a horizontal side or turning sense (left and right, leftmost and rightmost,
clockwise and anticlockwise, in every case and inside hyphenated words such as "left-hand"; "left" and
"right" only where the words around them make them a side, not in "she left" or "right now"), and says
when a caption describes writing in the picture (a sign that reads "STOP", a logo, lettering): mirrored
writing reads backwards, which no word swap can fix, so such items are not mirrored.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Final

from curation_dagster.synth.base import Unusable

#: A picture or clip not mirrored because its caption could not follow (writing in it, or side words
#: under `captions: skip`).
REJECT_CAPTION_GEOMETRY: Final = "synth.caption_geometry"

#: Word pairs a horizontal mirror exchanges (both directions are looked up).
MIRRORED_WORDS: Final = {
    "left": "right",
    "leftmost": "rightmost",
    "leftward": "rightward",
    "leftwards": "rightwards",
    "clockwise": "anticlockwise",
    "counterclockwise": "clockwise",
    "counter-clockwise": "clockwise",
    "anti-clockwise": "clockwise",
}
_SWAPS: Final = {
    **MIRRORED_WORDS,
    **{right: left for left, right in MIRRORED_WORDS.items() if right not in MIRRORED_WORDS},
}
# Longest first, so "counter-clockwise" is one word, not "counter-" and "clockwise".
_SIDE_WORDS: Final = re.compile(
    r"(?<![\w-])(" + "|".join(sorted(map(re.escape, _SWAPS), key=len, reverse=True)) + r")(?![\w])",
    re.IGNORECASE,
)
#: "left" and "right" are also a verb, an adjective and an interjection ("she left", "the right answer",
#: "right now"); they are swapped only next to a word that makes them a side: after one of these...
_SIDE_BEFORE: Final = frozenset(
    [
        "the",
        "to",
        "on",
        "at",
        "from",
        "toward",
        "towards",
        "far",
        "upper",
        "lower",
        "top",
        "bottom",
        "middle",
        "centre",
        "center",
        "its",
        "his",
        "her",
        "their",
        "your",
        "my",
        "our",
        "and",
        "or",
        "extreme",
    ]
)
#: ... or before one of these (or a hyphen or a colon: "left-hand", "Left: a cat").
_SIDE_AFTER: Final = frozenset(
    ["to", "side", "sides", "hand", "corner", "corners", "edge", "edges", "half", "of", "and", "or"]
)
_AMBIGUOUS: Final = frozenset({"left", "right"})
#: Words that say the picture holds writing, which reads backwards once mirrored.
_WRITING: Final = re.compile(
    r"\b(text|texts|writing|written|words?|letters?|lettering|inscription|inscribed|logo|logos|label|"
    r"labelled|labeled|sign|signs|signboard|reads|reading|says|saying|headline|title|typed|handwriting|"
    r"handwritten|digits?|numbers?|numerals?)\b",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class MirroredCaption:
    """A caption after a horizontal mirror: the new text, the words swapped (as found), and the word
    that says the picture holds writing, if any (then the picture should not be mirrored)."""

    text: str
    swapped: tuple[str, ...]
    writing: str | None


def mirror_caption(caption: str) -> MirroredCaption:
    """The caption of the mirrored picture: side and turning words exchanged, each in its case."""
    swapped: list[str] = []

    def swap(match: re.Match[str]) -> str:
        found = match.group(0)
        if found.lower() in _AMBIGUOUS and not _names_a_side(caption, match.start(), match.end()):
            return found
        swapped.append(found)
        return _in_case_of(found, _SWAPS[found.lower()])

    writing = _WRITING.search(caption)
    return MirroredCaption(
        _SIDE_WORDS.sub(swap, caption), tuple(swapped), writing.group(0) if writing else None
    )


def follow_mirror(caption: str | None, policy: str) -> tuple[str | None, dict[str, Any]] | Unusable:
    """The caption and meta of a mirrored item under a recipe's `captions` policy (`mirror`, `skip`,
    `keep`), or why the item should not be mirrored."""
    if not caption or policy == "keep":
        return caption, {}
    mirrored = mirror_caption(caption)
    if mirrored.writing is not None:
        return Unusable(
            REJECT_CAPTION_GEOMETRY,
            f"the caption mentions writing ({mirrored.writing!r}), which a mirror would reverse",
        )
    if mirrored.swapped and policy == "skip":
        return Unusable(
            REJECT_CAPTION_GEOMETRY, f"the caption names a side ({mirrored.swapped[0]!r}) and captions: skip"
        )
    if not mirrored.swapped:
        return caption, {}
    return mirrored.text, {"caption_mirrored": list(mirrored.swapped)}


def has_side_words(caption: str) -> bool:
    """Whether a caption names a horizontal side or a turning sense."""
    return bool(mirror_caption(caption).swapped)


def _names_a_side(caption: str, start: int, end: int) -> bool:
    """Whether "left" or "right" at `[start, end)` names a side, judged by the words around it."""
    before = re.findall(r"[\w-]+", caption[:start])
    after = caption[end:]
    if after.lstrip().startswith((":", "-")) or (before and before[-1].lower() in _SIDE_BEFORE):
        return True
    following = re.match(r"\s*([\w-]+)", after)
    return following is not None and following.group(1).lower() in _SIDE_AFTER


def _in_case_of(model: str, word: str) -> str:
    """`word` in the case of `model`: all capitals, a capital first, or lower case."""
    if model.isupper() and len(model) > 1:
        return word.upper()
    if model[:1].isupper():
        return word[:1].upper() + word[1:]
    return word
