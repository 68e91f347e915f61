"""Markdown for metadata tables: cells cut to a readable length, and the difference between two texts."""

from __future__ import annotations

import difflib
import re
from typing import Final

#: Characters that Markdown (GitHub flavour, as the Dagster UI renders it) would read as formatting.
_SPECIAL: Final = re.compile(r"([\\`*_~\[\]<>#|])")
#: Unchanged words shown on each side of a change.
_CONTEXT: Final = 4


def cell(text: str, limit: int = 160) -> str:
    flat = " ".join(text.split())
    flat = flat if len(flat) <= limit else flat[: limit - 1] + "…"
    return flat.replace("|", "\\|")


def escape(text: str) -> str:
    """`text` with Markdown's formatting characters escaped, so it shows as written."""
    return _SPECIAL.sub(r"\\\1", text)


def excerpt_at_difference(text: str, other: str, limit: int = 160) -> str:
    """A table cell of `text` that starts a few words before its first difference from `other` (with
    "…" when that is not the beginning), so two near-identical texts cut to the same length do not look
    the same; the whole text when it fits."""
    words, others = text.split(), other.split()
    if len(" ".join(words)) <= limit:
        return cell(text, limit)
    first = next(
        (index for index, (word, theirs) in enumerate(zip(words, others, strict=False)) if word != theirs),
        min(len(words), len(others)),
    )
    start = max(0, first - _CONTEXT)
    shown = " ".join(words[start:])
    if start:
        shown = "…" + shown
    return cell(shown, limit)


def word_difference(removed: str, kept: str, limit: int = 240) -> str:
    """The words that differ between two texts, as a Markdown table cell: each change with a few words of
    context, words only in `kept` struck through (~~like this~~), words only in `removed` in bold, changes
    apart joined with "…"; "(same words)" when only spacing or nothing differs."""
    old, new = kept.split(), removed.split()
    matcher = difflib.SequenceMatcher(a=old, b=new, autojunk=False)
    pieces: list[str] = []
    for group in matcher.get_grouped_opcodes(_CONTEXT):
        parts = []
        for tag, old_start, old_end, new_start, new_end in group:
            if tag == "equal":
                parts.append(escape(" ".join(old[old_start:old_end])))
                continue
            if old_end > old_start:
                parts.append(f"~~{escape(' '.join(old[old_start:old_end]))}~~")
            if new_end > new_start:
                parts.append(f"**{escape(' '.join(new[new_start:new_end]))}**")
        pieces.append(" ".join(parts))
    if not pieces:
        return "(same words)"
    shown = " … ".join(pieces)
    if len(shown) > limit:
        # Cut between words and close any emphasis left open, so the cell still renders.
        shown = shown[: limit - 1].rsplit(" ", 1)[0]
        for marker in ("~~", "**"):
            if shown.count(marker) % 2:
                shown += marker
        shown += " …"
    return shown
