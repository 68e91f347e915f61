"""Tests of curation_dagster/select/clusters.py: k-means clusters and a cap per cluster."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pyarrow as pa

from curation_dagster.select.base import Pool
from curation_dagster.select.clusters import ClusterBalanced
from curation_dagster.select.selector import Selector
from curation_dagster.spec import SelectSettings
from curation_dagster.vectors.kmeans import assign_clusters, fit_centroids


def blobs(sizes: list[int], seed: int = 0) -> np.ndarray:
    """Well-separated blobs of the given sizes, one per axis, on the unit sphere."""
    rng = np.random.default_rng(seed)
    parts = []
    for axis, size in enumerate(sizes):
        center = np.eye(8)[axis] * 4
        parts.append(center + 0.1 * rng.normal(size=(size, 8)))
    points = np.vstack(parts)
    return (points / np.linalg.norm(points, axis=1, keepdims=True)).astype(np.float32)


def settings(cap: int, clusters: int = 3, budget: int | None = None) -> SelectSettings:
    return SelectSettings.model_validate(
        {
            "budget": budget,
            "strategy": {"kind": "cluster_balanced", "clusters": clusters, "per_cluster_cap": cap},
        }
    )


def table_of(count: int) -> pa.Table:
    return pa.table(
        {"id": [f"x{n:03d}" for n in range(count)], "modality": ["text"] * count, "text": ["t"] * count}
    )


def test_kmeans_finds_the_blobs_and_is_seeded() -> None:
    points = blobs([30, 10, 5])

    centroids = fit_centroids(points, 3, seed=0, restarts=3)
    clusters = assign_clusters(points, centroids)

    assert sorted(Counter(clusters.tolist()).values()) == [5, 10, 30]
    assert np.array_equal(centroids, fit_centroids(points, 3, seed=0, restarts=3))


def test_cap_per_cluster_is_respected() -> None:
    kept, rejected = Selector(settings(cap=4)).run(table_of(45), embeddings=blobs([30, 10, 5]))

    per_cluster = Counter(kept.column("select_cluster").to_pylist())
    assert sorted(per_cluster.values()) == [4, 4, 4]
    assert set(rejected.column("reject_reason").to_pylist()) == {"select.cluster_cap"}
    assert rejected.num_rows == 45 - 12


def test_small_budget_covers_every_cluster_round_robin() -> None:
    kept, _ = Selector(settings(cap=100, budget=3)).run(table_of(45), embeddings=blobs([30, 10, 5]))

    assert sorted(kept.column("select_cluster").to_pylist()) == [0, 1, 2]
    assert sorted(kept.column("select_rank").to_pylist()) == [1, 2, 3]


def test_earlier_shards_items_count_toward_the_cap() -> None:
    points = blobs([6, 6])
    clusters = assign_clusters(points, fit_centroids(points, 2, seed=0, restarts=1))
    pool = Pool([f"x{n}" for n in range(12)], ["text"] * 12, 0, clusters=clusters, cluster_count=2)
    pool.prior_cluster_counts = {int(clusters[0]): 3}

    ranking = ClusterBalanced(settings(cap=4, clusters=2)).rank(pool, None)

    chosen = Counter(int(clusters[p]) for p in ranking.order)
    assert chosen == {int(clusters[0]): 1, int(clusters[6]): 4}


def test_coverage_is_the_share_of_clusters_represented() -> None:
    points = blobs([6, 6, 6])
    clusters = assign_clusters(points, fit_centroids(points, 3, seed=0, restarts=1))
    pool = Pool([f"x{n:02d}" for n in range(18)], ["text"] * 18, 0, clusters=clusters, cluster_count=4)
    selected = np.zeros(18, bool)
    selected[[0, 1, 6]] = True  # two of the three blobs

    stats = ClusterBalanced(settings(cap=10, clusters=4)).describe(pool, selected)

    assert (stats["clusters_selected"], stats["clusters_in_pool"], stats["clusters_fitted"]) == (2, 3, 4)
    assert stats["coverage"] == 0.5
    assert stats["coverage_of_pool"] == round(2 / 3, 4)
