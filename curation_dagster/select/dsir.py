"""DSIR: data selection by importance resampling toward a target sample (Xie et al. 2023).

Each text becomes hashed word unigram and bigram features (`buckets` buckets). A bag-of-ngrams model is
fitted to the target files and one to the pool; an item's log importance weight is its log likelihood
under the target model minus that under the pool model, and a Gumbel top-k draw (seeded per id) samples
items without replacement in proportion to the weights.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from curation_dagster.errors import SpecError
from curation_dagster.sampling import sample_scores
from curation_dagster.select.base import REJECT_NO_TEXT, Pool, Ranking, Strategy, ordered
from curation_dagster.spec import DSIRSettings, SelectSettings

_WORD = re.compile(r"\w+")
_MIX = np.uint64(0x9E3779B97F4A7C15)
#: Share of the uniform distribution mixed into feature distributions before KL is measured.
KL_UNIFORM_SHARE = 0.01


class NgramHasher:
    """Hashed unigram and bigram features of lower-cased words; the same word hashes alike everywhere."""

    def __init__(self, buckets: int) -> None:
        self.buckets = np.uint64(buckets)
        self._words: dict[str, int] = {}

    def _word_hash(self, word: str) -> int:
        known = self._words.get(word)
        if known is None:
            known = int.from_bytes(hashlib.blake2b(word.encode(), digest_size=8).digest(), "big")
            self._words[word] = known
        return known

    def features(self, text: str) -> np.ndarray:
        """The bucket of every unigram and bigram of `text`."""
        words = _WORD.findall(text.lower())
        if not words:
            return np.zeros(0, dtype=np.int64)
        hashes = np.fromiter((self._word_hash(w) for w in words), dtype=np.uint64, count=len(words))
        bigrams = (hashes[:-1] * _MIX) ^ hashes[1:]  # wraps modulo 2**64 on purpose
        return (np.concatenate([hashes, bigrams]) % self.buckets).astype(np.int64)

    def distribution(self, features: Iterable[np.ndarray], smoothing: float) -> np.ndarray:
        """The smoothed bag-of-ngrams model of the texts whose features are given: a probability per bucket."""
        counts = np.full(int(self.buckets), smoothing, dtype=np.float64)
        for ngrams in features:
            counts += np.bincount(ngrams, minlength=int(self.buckets))
        return counts / counts.sum()

    def mixture(self, features: Iterable[np.ndarray], uniform_share: float = KL_UNIFORM_SHARE) -> np.ndarray:
        """The empirical bucket distribution mixed with a uniform one: unlike add-one counts, the mixing
        does not depend on how many texts there are, so sets of different sizes compare fairly."""
        counts = np.zeros(int(self.buckets), dtype=np.float64)
        for ngrams in features:
            counts += np.bincount(ngrams, minlength=int(self.buckets))
        empirical = counts / counts.sum() if counts.sum() else np.full(len(counts), 1 / len(counts))
        return (1 - uniform_share) * empirical + uniform_share / len(counts)


def kl_divergence(target: np.ndarray, other: np.ndarray) -> float:
    """KL(target || other) in nats, for two smoothed (strictly positive) distributions."""
    return float(np.sum(target * (np.log(target) - np.log(other))))


def read_target_texts(spec: DSIRSettings) -> list[str]:
    """The target documents: `text_field` of each JSON line, or each non-empty line of a text file."""
    texts: list[str] = []
    for name in spec.target_files:
        path = Path(name).expanduser()
        if not path.is_file():
            raise SpecError(f"select.strategy.target_files: {name} does not exist (give local files)")
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
            if not line.strip():
                continue
            if path.suffix not in (".jsonl", ".json"):
                texts.append(line)
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as error:
                raise SpecError(f"select.strategy.target_files: {name} line {number}: {error}") from None
            value = record.get(spec.text_field) if isinstance(record, dict) else None
            if isinstance(value, str) and value.strip():
                texts.append(value)
    if not texts:
        raise SpecError(
            f"select.strategy.target_files: no target text in {', '.join(spec.target_files)} "
            f"(JSON Lines need the field {spec.text_field!r})"
        )
    return texts


class DSIR(Strategy):
    """Importance resampling toward the target files; items without text are refused as `select.no_text`.

    The pool model is fitted to the pool it is given (one quota group of one shard), so weights compare
    items within a shard; the first-come budget then decides across shards.
    """

    name = "dsir"
    needs = frozenset({"texts"})

    def __init__(self, settings: SelectSettings | None = None) -> None:
        super().__init__(settings)
        self._models_loaded: tuple[NgramHasher, np.ndarray, int] | None = None

    @property
    def spec(self) -> DSIRSettings:
        strategy = self.settings.strategy
        if not isinstance(strategy, DSIRSettings):
            raise TypeError(f"DSIR needs select.strategy of kind dsir, got {strategy.kind}")
        return strategy

    def _models(self) -> tuple[NgramHasher, np.ndarray]:
        """The hasher and the target model, read from the target files on first use."""
        if self._models_loaded is None:
            spec = self.spec
            hasher = NgramHasher(spec.buckets)
            texts = read_target_texts(spec)
            target = hasher.distribution((hasher.features(text) for text in texts), spec.smoothing)
            self._models_loaded = (hasher, target, len(texts))
        return self._models_loaded[0], self._models_loaded[1]

    def _features(self, pool: Pool) -> tuple[np.ndarray, list[np.ndarray]]:
        hasher, _ = self._models()
        texts = pool.texts or [None] * len(pool)
        with_text = np.asarray([p for p, t in enumerate(texts) if t and t.strip()], dtype=np.int64)
        return with_text, [hasher.features(str(texts[p])) for p in with_text]

    def rank(self, pool: Pool, k: int | None) -> Ranking:
        hasher, target = self._models()
        with_text, features = self._features(pool)
        raw = hasher.distribution(features, self.spec.smoothing)
        log_ratio = np.log(target) - np.log(raw)
        weights = np.full(len(pool), np.nan)
        weights[with_text] = [float(log_ratio[f].sum()) for f in features]
        uniform = np.clip(sample_scores(pool.seed, [f"dsir:{item}" for item in pool.ids]), 1e-12, 1 - 1e-12)
        keys = weights - np.log(-np.log(uniform))  # log weight + Gumbel noise
        has_text = set(with_text.tolist())
        excluded = {p: (REJECT_NO_TEXT, "dsir needs text") for p in range(len(pool)) if p not in has_text}
        return Ranking(ordered(-keys, pool.ids, with_text), weights, excluded)

    def describe(self, pool: Pool, selected: np.ndarray) -> dict[str, Any]:
        """KL(target || selected) against KL(target || a seeded random sample of the pool of the same size)
        (`kl_reduction`) and KL(target || pool), on the hashed features mixed with 1% uniform. Sparse
        bigram features make smaller sets look farther, so the same-size random sample is the fair baseline."""
        hasher, _ = self._models()
        with_text, features = self._features(pool)
        chosen = [f for p, f in zip(with_text.tolist(), features, strict=True) if selected[p]]
        if not chosen or self._models_loaded is None:
            return {}
        target = hasher.mixture(hasher.features(text) for text in read_target_texts(self.spec))
        random_order = np.argsort(sample_scores(pool.seed, [f"random:{pool.ids[p]}" for p in with_text]))
        random = [features[i] for i in random_order[: len(chosen)]]
        kl_pool = kl_divergence(target, hasher.mixture(features))
        kl_random = kl_divergence(target, hasher.mixture(random))
        kl_selected = kl_divergence(target, hasher.mixture(chosen))
        return {
            "target_documents": self._models_loaded[2],
            "kl_target_to_pool": round(kl_pool, 6),
            "kl_target_to_random": round(kl_random, 6),
            "kl_target_to_selected": round(kl_selected, 6),
            "kl_reduction": round(kl_random - kl_selected, 6),
            "kl_reduction_vs_pool": round(kl_pool - kl_selected, 6),
        }
