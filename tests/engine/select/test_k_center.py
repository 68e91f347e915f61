"""Tests of curation_dagster/select/k_center.py: k-center greedy covers the pool better than chance."""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from curation_dagster.sampling import sample_score
from curation_dagster.select.base import Pool
from curation_dagster.select.k_center import KCenterGreedy, covering_radius, nearest_distances
from curation_dagster.select.selector import Selector
from curation_dagster.spec import SelectSettings

SETTINGS = SelectSettings.model_validate({"budget": 8, "strategy": "k_center"})


def unit_vectors(count: int, dimension: int, seed: int) -> np.ndarray:
    """Points in a few tight blobs, on the unit sphere like sentence embeddings."""
    rng = np.random.default_rng(seed)
    centers = rng.normal(size=(6, dimension))
    points = centers[rng.integers(0, 6, count)] + 0.15 * rng.normal(size=(count, dimension))
    return (points / np.linalg.norm(points, axis=1, keepdims=True)).astype(np.float32)


def pool_of(points: np.ndarray, seed: int = 0) -> Pool:
    ids = [f"p{n:03d}" for n in range(len(points))]
    return Pool(ids, ["text"] * len(points), seed, embeddings=points, embedded=np.ones(len(points), bool))


def test_nearest_distances_to_hand_placed_centers() -> None:
    points = np.array([[0.0, 0.0], [3.0, 4.0], [6.0, 8.0]])

    assert nearest_distances(points, np.array([[0.0, 0.0]])).tolist() == [0.0, 5.0, 10.0]
    assert covering_radius(points, np.array([[0.0, 0.0], [6.0, 8.0]])) == 5.0


def test_picks_the_farthest_point_each_time() -> None:
    # On a line at 0, 1, 2, 10: from the seeded start, the farthest point must come next.
    points = np.array([[0.0], [1.0], [2.0], [10.0]])

    ranking = KCenterGreedy(SETTINGS).rank(pool_of(points), 3)

    start = min(range(4), key=lambda p: sample_score(0, f"p{p:03d}"))
    assert ranking.order[0] == start
    assert ranking.order[1] == (0 if start == 3 else 3)
    assert ranking.scores[ranking.order[1]] == abs(points[ranking.order[1], 0] - points[start, 0])


def test_covering_radius_is_no_worse_than_random_selection_of_the_same_size() -> None:
    for seed in range(5):
        points = unit_vectors(200, 16, seed)
        ranking = KCenterGreedy(SETTINGS).rank(pool_of(points, seed), 8)
        random = np.random.default_rng(seed).choice(200, 8, replace=False)

        assert len(ranking.order) == 8
        assert covering_radius(points, points[ranking.order]) <= covering_radius(points, points[random])


def test_earlier_shards_selection_counts_as_already_covered() -> None:
    points = np.array([[0.0, 0.0], [0.1, 0.0], [5.0, 5.0], [5.1, 5.0]])
    pool = pool_of(points)
    pool.prior_embeddings = np.array([[0.0, 0.0]])

    ranking = KCenterGreedy(SETTINGS).rank(pool, 1)

    # Distances from the prior point: 0, 0.1, 7.07 and 7.14; no seeded start is needed.
    assert ranking.order.tolist() == [3]


def test_selector_keeps_the_budget_and_ranks_the_picks() -> None:
    points = unit_vectors(60, 8, 1)
    table = pa.table({"id": [f"p{n:03d}" for n in range(60)], "modality": ["text"] * 60, "text": ["t"] * 60})

    kept, rejected = Selector(SETTINGS).run(table, embeddings=points)

    assert kept.num_rows == 8
    assert set(rejected.column("reject_reason").to_pylist()) == {"select.budget"}
    assert set(kept.column("select_strategy").to_pylist()) == {"k_center"}
    assert sorted(kept.column("select_rank").to_pylist()) == list(range(1, 9))
