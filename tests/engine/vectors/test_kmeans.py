"""Tests of curation_dagster/vectors/kmeans.py: centroids stored in the lake are fitted once and read back."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from curation_dagster.io.lake import Lake
from curation_dagster.vectors.kmeans import assign_clusters, fit_centroids, stored_centroids

POINTS = np.array([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0], [0.1, 0.9]], dtype=np.float32)


def test_centroids_are_fitted_once_then_read_from_the_lake(tmp_path: Path) -> None:
    lake = Lake(tmp_path / "lake")
    path = lake.path("v", "state", "kmeans")
    fits: list[int] = []

    def fit() -> np.ndarray:
        fits.append(1)
        return fit_centroids(POINTS, 2, seed=0, restarts=1)

    first, fitted_first = stored_centroids(lake, path, fit)
    second, fitted_second = stored_centroids(lake, path, fit)

    assert (fitted_first, fitted_second, len(fits)) == (True, False, 1)
    assert np.array_equal(first, second)
    assert sorted(np.bincount(assign_clusters(POINTS, second)).tolist()) == [2, 2]


def test_no_centroids_are_stored_when_there_was_nothing_to_fit(tmp_path: Path) -> None:
    lake = Lake(tmp_path / "lake")
    path = lake.path("v", "state", "kmeans")

    centroids, fitted = stored_centroids(lake, path, lambda: fit_centroids(POINTS[:0], 2, 0, 1))

    assert (centroids.shape, fitted, lake.exists(path)) == ((0, 2), True, False)
