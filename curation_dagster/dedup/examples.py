"""What the deduped stage shows of its decisions: counts of media duplicates and a few removed items beside
the kept item they duplicate, as Markdown tables."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from typing import Any

import pyarrow as pa

from curation_dagster.dedup.indexes import (
    MEDIA_INDEXES,
)
from curation_dagster.dedup.media import (
    MediaDecision,
    MediaOutcome,
)
from curation_dagster.dedup.plan import (
    DedupPlan,
)
from curation_dagster.io.lake import Lake
from curation_dagster.markdown import cell, excerpt_at_difference, word_difference
from curation_dagster.shard_io import (
    BATCH_ROWS,
)


def media_counts(media: dict[str, MediaOutcome]) -> dict[str, int]:
    """Per media modality whose step ran on the shard: near duplicates removed, of them duplicates of other
    shards' items, and items without a usable fingerprint (undecodable, flat, silent or too short). A
    modality the shard lacks (or whose step is off) has no keys, rather than three zeros."""
    counts: dict[str, int] = {}
    for modality in MEDIA_INDEXES:
        outcome = media.get(modality)
        if outcome is None or outcome.index.num_rows + len(outcome.removed) + outcome.not_hashed == 0:
            continue
        counts[f"{modality}_near_duplicates"] = len(outcome.removed)
        counts[f"{modality}_near_duplicates_of_other_shards"] = outcome.cross_shard
        counts[f"{modality}_not_fingerprinted"] = outcome.not_hashed
    return counts


class MediaExamples:
    """A few removed near-duplicate images, videos and sounds with the item each duplicates and why."""

    def __init__(self, plan: DedupPlan, count: int = 5) -> None:
        chosen: dict[str, MediaDecision] = {}
        per_code: Counter[str] = Counter()
        for item, (code, decision) in plan.media.items():
            if per_code[code] < count:
                chosen[item] = decision
                per_code[code] += 1
        self.chosen = chosen
        self.uris: dict[str, str] = {}

    def collect(self, rejected: pa.Table) -> None:
        for item, uri in zip(
            rejected.column("id").to_pylist(), rejected.column("uri").to_pylist(), strict=True
        ):
            if item in self.chosen:
                self.uris[item] = uri

    def markdown(self) -> str:
        if not self.chosen:
            return "No near-duplicate images, videos or sounds in this shard."
        lines = ["| removed | kept (dup_of) | similarity | why |", "| --- | --- | ---: | --- |"]
        for item, decision in self.chosen.items():
            lines.append(
                f"| {cell(self.uris.get(item, item))} | `{decision.dup_of}` | {decision.similarity:.2f} "
                f"| {cell(decision.detail)} |"
            )
        return "\n".join(lines)


class TextPairs:
    """A few removed text items side by side with the item each duplicates, so a person can judge the
    threshold; `columns` adds cells per pair (similarity, cluster). With `difference`, both texts start
    just before their first differing word and a column shows the words that differ (near duplicates
    often share their first 160 characters); semantic pairs, which share few words, are shown from the
    start."""

    def __init__(
        self,
        decisions: dict[str, Any],
        empty: str,
        columns: dict[str, Callable[[Any], str]],
        count: int = 5,
        headers: tuple[str, str] = ("removed", "kept (dup_of)"),
        difference: bool = True,
    ) -> None:
        self.chosen = dict(list(decisions.items())[:count])
        self.empty, self.columns, self.headers = empty, columns, headers
        self.difference = difference
        self.texts: dict[str, str] = {}
        self.wanted = set(self.chosen) | {decision.dup_of for decision in self.chosen.values()}

    def collect(self, *tables: pa.Table) -> None:
        for table in tables:
            for item, text in zip(
                table.column("id").to_pylist(), table.column("text").to_pylist(), strict=True
            ):
                if item in self.wanted:
                    self.texts[item] = text or ""

    def markdown(self, lake: Lake, version: str, shard: str) -> str:
        if not self.chosen:
            return self.empty
        holders: dict[str, set[str]] = {}
        for decision in self.chosen.values():
            if decision.dup_of not in self.texts and decision.shard and decision.shard != shard:
                holders.setdefault(decision.shard, set()).add(decision.dup_of)
        if holders:
            self.texts.update(_earlier_texts(lake, version, holders))
        headers = [*self.headers, *(["difference"] if self.difference else []), *self.columns]
        lines = [
            "| " + " | ".join(headers) + " |",
            "| --- | --- | " + " | ".join(["---"] * self.difference + ["---:"] * len(self.columns)) + " |",
        ]
        for item, decision in self.chosen.items():
            removed, kept = self.texts.get(item, ""), self.texts.get(decision.dup_of)
            cells = [cell(removed), cell(kept or "(not found)")]
            if self.difference:
                if kept is not None:
                    cells = [excerpt_at_difference(removed, kept), excerpt_at_difference(kept, removed)]
                cells.append(word_difference(removed, kept) if kept is not None else "")
            cells.extend(column(decision) for column in self.columns.values())
            lines.append("| " + " | ".join(cells) + " |")
        return "\n".join(lines)


def _earlier_texts(lake: Lake, version: str, holders: dict[str, set[str]]) -> dict[str, str]:
    """The texts of a few items of earlier shards, for display, read from the shards that hold them (kept,
    or removed: a near miss may name an item that another step removed)."""
    texts: dict[str, str] = {}
    for other, ids in sorted(holders.items()):
        for rejected in (False, True):
            path = lake.path(version, "deduped", other, rejected=rejected)
            if not lake.exists(path) or ids <= texts.keys():
                continue
            for batch in lake.iter_batches(path, BATCH_ROWS, columns=["id", "text"]):
                for item, text in zip(batch.column(0).to_pylist(), batch.column(1).to_pylist(), strict=True):
                    if item in ids:
                        texts[item] = text or ""
    return texts
