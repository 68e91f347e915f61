"""Basic text filters: length bounds and a word blocklist."""

from __future__ import annotations

import re
from typing import Any, ClassVar

import pyarrow as pa

from curation_dagster.filters.base import Reject, RowFilter
from curation_dagster.spec import BlocklistSettings, TextLengthSettings


class TextLength(RowFilter):
    """Rejects text that is too short, too long, or has too few words."""

    name = "text_length"
    reads_text = True
    score_fields: ClassVar = [pa.field("text_chars", pa.int64()), pa.field("text_words", pa.int64())]

    def __init__(self, settings: TextLengthSettings) -> None:
        self.settings = settings

    def judge(self, row: dict[str, Any]) -> tuple[dict[str, object], Reject]:
        s = self.settings
        stripped = (row["text"] or "").strip()
        chars, words = len(stripped), len(stripped.split())
        scores: dict[str, object] = {"text_chars": chars, "text_words": words}
        if chars < s.min_chars:
            return scores, ("too_short", f"{chars} characters < {s.min_chars}")
        if chars > s.max_chars:
            return scores, ("too_long", f"{chars} characters > {s.max_chars}")
        if words < s.min_words:
            return scores, ("too_few_words", f"{words} words < {s.min_words}")
        return scores, None


class Blocklist(RowFilter):
    """Counts whole-word, case-insensitive hits of listed words and rejects above `max_hits`."""

    name = "blocklist"
    reads_text = True
    score_fields: ClassVar = [pa.field("blocklist_hits", pa.int32())]

    def __init__(self, settings: BlocklistSettings) -> None:
        self.settings = settings
        phrases = sorted(
            {" ".join(word.casefold().split()) for word in settings.words}, key=len, reverse=True
        )
        # A space inside a listed phrase matches any run of whitespace in the text.
        alternatives = "|".join(r"\s+".join(re.escape(part) for part in phrase.split()) for phrase in phrases)
        self._pattern = re.compile(rf"(?<!\w)(?:{alternatives})(?!\w)")

    def judge(self, row: dict[str, Any]) -> tuple[dict[str, object], Reject]:
        found = [" ".join(match.split()) for match in self._pattern.findall((row["text"] or "").casefold())]
        scores: dict[str, object] = {"blocklist_hits": len(found)}
        if len(found) > self.settings.max_hits:
            return scores, ("hit", "matched: " + ", ".join(sorted(set(found))[:5]))
        return scores, None
