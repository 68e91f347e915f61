"""Basic text filters: length bounds and a word blocklist."""

from __future__ import annotations

import re
from typing import ClassVar

import pyarrow as pa

from curation_dagster.filters.base import Filter, Verdicts
from curation_dagster.spec import BlocklistFilter, TextLengthFilter


class TextLength(Filter):
    """Rejects text that is too short, too long, or has too few words."""

    name = "text_length"
    score_fields: ClassVar = [pa.field("text_chars", pa.int64()), pa.field("text_words", pa.int64())]

    def __init__(self, settings: TextLengthFilter) -> None:
        self.settings = settings

    def evaluate(self, table: pa.Table) -> Verdicts:
        chars: list[object] = []
        words: list[object] = []
        reasons: list[str | None] = []
        details: list[str | None] = []
        s = self.settings
        for text in table.column("text").to_pylist():
            stripped = (text or "").strip()
            n_chars, n_words = len(stripped), len(stripped.split())
            chars.append(n_chars)
            words.append(n_words)
            if n_chars < s.min_chars:
                reasons.append(self.code("too_short"))
                details.append(f"{n_chars} characters < {s.min_chars}")
            elif n_chars > s.max_chars:
                reasons.append(self.code("too_long"))
                details.append(f"{n_chars} characters > {s.max_chars}")
            elif n_words < s.min_words:
                reasons.append(self.code("too_few_words"))
                details.append(f"{n_words} words < {s.min_words}")
            else:
                reasons.append(None)
                details.append(None)
        return Verdicts({"text_chars": chars, "text_words": words}, reasons, details)


class Blocklist(Filter):
    """Counts whole-word, case-insensitive hits of listed words and rejects above `max_hits`."""

    name = "blocklist"
    score_fields: ClassVar = [pa.field("blocklist_hits", pa.int32())]

    def __init__(self, settings: BlocklistFilter) -> None:
        self.settings = settings
        phrases = sorted(
            {" ".join(word.casefold().split()) for word in settings.words}, key=len, reverse=True
        )
        # A space inside a listed phrase matches any run of whitespace in the text.
        alternatives = "|".join(r"\s+".join(re.escape(part) for part in phrase.split()) for phrase in phrases)
        self._pattern = re.compile(rf"(?<!\w)(?:{alternatives})(?!\w)")

    def evaluate(self, table: pa.Table) -> Verdicts:
        hits: list[object] = []
        reasons: list[str | None] = []
        details: list[str | None] = []
        for text in table.column("text").to_pylist():
            found = [" ".join(match.split()) for match in self._pattern.findall((text or "").casefold())]
            hits.append(len(found))
            if len(found) > self.settings.max_hits:
                reasons.append(self.code("hit"))
                details.append("matched: " + ", ".join(sorted(set(found))[:5]))
            else:
                reasons.append(None)
                details.append(None)
        return Verdicts({"blocklist_hits": hits}, reasons, details)
