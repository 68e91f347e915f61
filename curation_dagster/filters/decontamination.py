"""Decontamination: reject text that shares a word n-gram with an evaluation set.

The evaluation n-grams are hashed to 64-bit integers and kept as one sorted numpy array per n-gram
length (with the evaluation item each came from), built once per process and shared by every filter
with the same settings; a text's n-grams are hashed the same way and looked up with a binary search.
"""

from __future__ import annotations

import functools
import hashlib
import re
import unicodedata
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pyarrow as pa

from curation_dagster.filters.base import Reject, RowFilter
from curation_dagster.io.local_files import read_text_items, resolve_local_file
from curation_dagster.mixing import splitmix64
from curation_dagster.spec import DecontaminationSettings

_WORD = re.compile(r"\w+")
_MULTIPLIER = np.uint64(0x9E3779B97F4A7C15)
_DETAIL_CHARS = 80


def normalized_words(text: str) -> list[str]:
    """The words n-grams are made of: NFKC, case-folded, punctuation and other non-word characters dropped."""
    return _WORD.findall(unicodedata.normalize("NFKC", text).casefold())


class _WordHashes:
    """64-bit hashes of words, remembered for the words seen most recently."""

    def __init__(self, limit: int = 1_000_000) -> None:
        self._known: dict[str, int] = {}
        self._limit = limit

    def __call__(self, words: list[str]) -> np.ndarray:
        known = self._known
        if len(known) > self._limit:
            known.clear()
        values = []
        for word in words:
            value = known.get(word)
            if value is None:
                value = int.from_bytes(hashlib.blake2b(word.encode(), digest_size=8).digest(), "little")
                known[word] = value
            values.append(value)
        return np.array(values, dtype=np.uint64)


def ngram_hashes(word_hashes: np.ndarray, n: int) -> np.ndarray:
    """The hash of every run of `n` consecutive words, in text order (empty when there are fewer words)."""
    count = len(word_hashes) - n + 1
    if count <= 0:
        return np.zeros(0, np.uint64)
    with np.errstate(over="ignore"):
        combined = np.zeros(count, np.uint64)
        for offset in range(n):
            combined = combined * _MULTIPLIER + word_hashes[offset : offset + count]
        # splitmix64's finaliser: spreads the polynomial hash over all 64 bits.
        combined = splitmix64(combined)
    return combined


@dataclass(frozen=True)
class EvalItem:
    """Where an evaluation item came from, for the reject detail."""

    file: str
    line: int


@dataclass
class EvalNgrams:
    """The hashed n-grams of every evaluation item: per n-gram length, sorted hashes and the item of each."""

    hashes: dict[int, np.ndarray]
    owners: dict[int, np.ndarray]
    items: list[EvalItem]

    @property
    def size(self) -> int:
        return sum(len(values) for values in self.hashes.values())

    def matches(self, word_hashes: np.ndarray) -> list[tuple[int, int, int]]:
        """(n, position in the text, evaluation item) of each distinct n-gram of the text that an
        evaluation item holds, in text order."""
        found: dict[int, tuple[int, int, int]] = {}
        for n, index in self.hashes.items():
            query = ngram_hashes(word_hashes, n)
            if not len(query) or not len(index):
                continue
            slots = np.minimum(np.searchsorted(index, query), len(index) - 1)
            for position in np.flatnonzero(index[slots] == query).tolist():
                found.setdefault(int(query[position]), (n, position, int(self.owners[n][slots[position]])))
        return sorted(found.values(), key=lambda match: (match[1], match[0]))


@functools.lru_cache(maxsize=8)
def _cached_eval_ngrams(
    files: tuple[tuple[str, int, int], ...], text_field: str, ngram: int, min_item_words: int
) -> EvalNgrams:
    """Build the n-gram index; keyed on each file's path, size and modification time, so an edited
    evaluation file is read again."""
    words_hash = _WordHashes()
    parts: dict[int, list[np.ndarray]] = {}
    owner_parts: dict[int, list[np.ndarray]] = {}
    items: list[EvalItem] = []
    for name, _, _ in files:
        for line, text in read_text_items(Path(name), (text_field,), "decontamination.eval_files"):
            words = normalized_words(text)
            if len(words) < min_item_words:
                continue
            n = min(ngram, len(words))
            hashes = np.unique(ngram_hashes(words_hash(words), n))
            parts.setdefault(n, []).append(hashes)
            owner_parts.setdefault(n, []).append(np.full(len(hashes), len(items), np.int32))
            items.append(EvalItem(Path(name).name, line))
    hashes_by_n: dict[int, np.ndarray] = {}
    owners_by_n: dict[int, np.ndarray] = {}
    for n, arrays in parts.items():
        joined, owners = np.concatenate(arrays), np.concatenate(owner_parts[n])
        # Sorted by hash, the earliest item first among equal hashes; one entry per hash.
        order = np.lexsort((owners, joined))
        joined, owners = joined[order], owners[order]
        first = np.concatenate([[True], joined[1:] != joined[:-1]])
        hashes_by_n[n], owners_by_n[n] = joined[first], owners[first]
    return EvalNgrams(hashes_by_n, owners_by_n, items)


def load_eval_ngrams(settings: DecontaminationSettings) -> EvalNgrams:
    """The hashed n-grams of the settings' evaluation files, built once per process."""
    keys = []
    for name in settings.eval_files:
        path = resolve_local_file(name, "decontamination.eval_files").resolve()
        status = path.stat()
        keys.append((str(path), status.st_size, status.st_mtime_ns))
    return _cached_eval_ngrams(tuple(keys), settings.text_field, settings.ngram, settings.min_item_words)


class Decontamination(RowFilter):
    """Counts the text's word n-grams found in the evaluation sets and rejects above `max_overlaps`; the
    detail names the evaluation file and line and the first overlapping n-gram."""

    name = "decontamination"
    reads_text = True
    score_fields: ClassVar = [pa.field("eval_overlap_ngrams", pa.int32())]

    def __init__(self, settings: DecontaminationSettings) -> None:
        self.settings = settings
        self._words_hash = _WordHashes()
        self._index: EvalNgrams | None = None

    @property
    def index(self) -> EvalNgrams:
        """The evaluation n-grams, loaded on first use (not when the chain is built)."""
        if self._index is None:
            self._index = load_eval_ngrams(self.settings)
        return self._index

    def judge(self, row: dict[str, Any]) -> tuple[dict[str, object], Reject]:
        words = normalized_words(row["text"] or "")
        matches = self.index.matches(self._words_hash(words))
        scores: dict[str, object] = {"eval_overlap_ngrams": len(matches)}
        if len(matches) <= self.settings.max_overlaps:
            return scores, None
        n, position, owner = matches[0]
        item = self.index.items[owner]
        shared = " ".join(words[position : position + n])
        if len(shared) > _DETAIL_CHARS:
            shared = shared[: _DETAIL_CHARS - 1] + "…"
        return scores, (
            "eval_overlap",
            f"{len(matches)} overlapping {n}-gram(s); first {shared!r} from {item.file} line {item.line}",
        )
