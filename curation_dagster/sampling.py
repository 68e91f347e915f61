"""Seeded sampling by id: a number in [0, 1) fixed by a seed and an item's id, so whether an item is
sampled never depends on the rest of its shard (selection's sample, k-means fit samples, synthesis)."""

from __future__ import annotations

import hashlib

import numpy as np


def sample_score(seed: int, item: str) -> float:
    """A uniform number in [0, 1) fixed by the seed and the item id."""
    digest = hashlib.blake2b(f"{seed}:{item}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64


def sample_scores(seed: int, ids: list[str]) -> np.ndarray:
    """`sample_score` of every id, as an array."""
    return np.fromiter((sample_score(seed, item) for item in ids), dtype=np.float64, count=len(ids))
