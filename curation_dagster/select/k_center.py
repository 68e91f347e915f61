"""k-center greedy coreset on embeddings: the most spread-out items first (a 2-approximation of the
smallest covering radius)."""

from __future__ import annotations

from typing import Any

import numpy as np

from curation_dagster.sampling import sample_scores
from curation_dagster.select.base import MISSING, REJECT_NO_TEXT, Pool, Ranking, Strategy

_CHUNK = 4096


def nearest_distances(points: np.ndarray, centers: np.ndarray) -> np.ndarray:
    """The Euclidean distance from each point to its nearest center (inf when there are no centers)."""
    if not len(centers):
        return np.full(len(points), np.inf)
    out = np.empty(len(points))
    center_norms = np.einsum("ij,ij->i", centers, centers)
    for start in range(0, len(points), _CHUNK):
        block = points[start : start + _CHUNK]
        squared = np.einsum("ij,ij->i", block, block)[:, None] - 2 * block @ centers.T + center_norms[None, :]
        out[start : start + len(block)] = np.sqrt(np.maximum(squared.min(axis=1), 0))
    return out


def covering_radius(points: np.ndarray, centers: np.ndarray) -> float:
    """The largest distance from a point to its nearest center: how well `centers` cover `points`."""
    return float(nearest_distances(points, centers).max()) if len(points) else 0.0


class KCenterGreedy(Strategy):
    """Repeatedly adds the item farthest from everything selected, here and in earlier shards (their
    embeddings are `Pool.prior_embeddings`). With nothing selected yet, the item with the lowest seeded
    score starts. The score is the item's distance to the selected set when it was picked (unpicked
    items: to the final set). Items without an embedding are refused as `select.no_text`. A pool that
    mixes embedding spaces is ranked per space and the rankings interleaved in proportion to each space's
    embedded items, so any budget is split between the spaces by their size."""

    name = "k_center"
    needs = frozenset({"embeddings", "prior_embeddings"})

    def rank(self, pool: Pool, k: int | None) -> Ranking:
        parts = pool.by_space()
        if len(parts) == 1:
            return self._rank_space(parts[0][2], k, parts[0][0])
        scores = np.full(len(pool), np.nan)
        excluded: dict[int, tuple[str, str]] = {}
        keyed: list[tuple[float, str, int]] = []
        for space, positions, part in parts:
            ranking = self._rank_space(part, k, space)
            scores[positions] = ranking.scores
            excluded.update((int(positions[local]), why) for local, why in ranking.excluded.items())
            eligible = max(len(part) - len(ranking.excluded), 1)
            keyed.extend(
                ((turn + 0.5) / eligible, space, int(positions[local]))
                for turn, local in enumerate(ranking.order.tolist())
            )
        order = np.asarray([position for *_, position in sorted(keyed)], dtype=np.int64)
        return Ranking(order, scores, excluded)

    def _rank_space(self, pool: Pool, k: int | None, space: str) -> Ranking:
        embedded = np.flatnonzero(_embedded(pool))
        points = np.asarray(pool.embeddings, dtype=np.float64)[embedded]
        prior = np.zeros((0, points.shape[1] if points.ndim == 2 else 0))
        if pool.prior_embeddings is not None and len(pool.prior_embeddings):
            prior = np.asarray(pool.prior_embeddings, dtype=np.float64)
        distance = nearest_distances(points, prior)
        start = np.argsort(sample_scores(pool.seed, [pool.ids[p] for p in embedded]), kind="stable")
        count = len(embedded) if k is None else min(k, len(embedded))
        picked_score = np.full(len(embedded), np.nan)
        picks: list[int] = []
        taken = np.zeros(len(embedded), dtype=bool)
        for _ in range(count):
            if np.isinf(distance[~taken]).all():
                pick = int(start[~taken[start]][0])
            else:
                pick = int(np.argmax(np.where(taken, -1.0, distance)))
                picked_score[pick] = distance[pick]
            picks.append(pick)
            taken[pick] = True
            distance = np.minimum(distance, np.linalg.norm(points - points[pick], axis=1))
        scores = np.full(len(pool), np.nan)
        unpicked = ~taken & np.isfinite(distance)
        scores[embedded[unpicked]] = distance[unpicked]
        scores[embedded[taken]] = picked_score[taken]
        excluded = {
            int(p): (REJECT_NO_TEXT, f"k_center needs {MISSING[space]}")
            for p in np.flatnonzero(~_embedded(pool))
        }
        return Ranking(embedded[np.asarray(picks, dtype=np.int64)], scores, excluded)

    def describe(self, pool: Pool, selected: np.ndarray) -> dict[str, Any]:
        parts = pool.by_space()
        if len(parts) == 1:
            return self._describe_space(parts[0][2], selected)
        by_space = {
            space: self._describe_space(part, selected[positions]) for space, positions, part in parts
        }
        return {"by_space": {space: numbers for space, numbers in by_space.items() if numbers}}

    def _describe_space(self, pool: Pool, selected: np.ndarray) -> dict[str, Any]:
        mask = _embedded(pool)
        points = np.asarray(pool.embeddings, dtype=np.float64)[mask]
        chosen = np.asarray(pool.embeddings, dtype=np.float64)[mask & selected]
        if not len(points) or not len(chosen):
            return {}
        prior = np.zeros((0, points.shape[1]))
        if pool.prior_embeddings is not None and len(pool.prior_embeddings):
            prior = np.asarray(pool.prior_embeddings, dtype=np.float64)
        random = np.argsort(sample_scores(pool.seed, [f"random:{pool.ids[p]}" for p in np.flatnonzero(mask)]))
        random_centers = np.vstack([prior, points[random[: len(chosen)]]])
        return {
            "covering_radius": round(covering_radius(points, np.vstack([prior, chosen])), 6),
            "covering_radius_random": round(covering_radius(points, random_centers), 6),
        }


def _embedded(pool: Pool) -> np.ndarray:
    if pool.embedded is None or pool.embeddings is None:
        return np.zeros(len(pool), dtype=bool)
    return np.asarray(pool.embedded, dtype=bool)
