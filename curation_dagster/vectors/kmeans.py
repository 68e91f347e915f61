"""k-means on embeddings, shared by cluster-balanced selection and semantic dedup: seeded fitting,
nearest-centroid assignment in chunks, and centroids kept in the lake so that a version fits them once
and every later shard is assigned to the same clusters."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pyarrow as pa

from curation_dagster.io.lake import Lake
from curation_dagster.vectors.text import vectors_of

_CHUNK = 4096


def fit_centroids(points: np.ndarray, clusters: int, seed: int, restarts: int) -> np.ndarray:
    """k-means centroids of `points` (seeded; fewer clusters when there are fewer points)."""
    from sklearn.cluster import KMeans

    count = min(clusters, len(points))
    if count == 0:
        return np.zeros((0, points.shape[1] if points.ndim == 2 else 0), dtype=np.float32)
    model = KMeans(n_clusters=count, n_init=restarts, random_state=seed)
    model.fit(np.asarray(points, dtype=np.float64))
    return np.asarray(model.cluster_centers_, dtype=np.float32)


def assign_clusters(points: np.ndarray, centroids: np.ndarray) -> np.ndarray:
    """The index of each point's nearest centroid (Euclidean, as k-means fitted them)."""
    out = np.empty(len(points), dtype=np.int64)
    center_norms = np.einsum("ij,ij->i", centroids, centroids)
    for start in range(0, len(points), _CHUNK):
        block = np.asarray(points[start : start + _CHUNK], dtype=np.float64)
        out[start : start + len(block)] = np.argmin(center_norms[None, :] - 2 * block @ centroids.T, axis=1)
    return out


def stored_centroids(
    lake: Lake | None, path: str | None, fit: Callable[[], np.ndarray]
) -> tuple[np.ndarray, bool]:
    """The centroids stored at `path` in the lake, else `fit()` stored there (when it found any), and
    whether they were fitted now. Without a lake they are always fitted."""
    if lake is not None and path is not None and lake.exists(path):
        return vectors_of(lake.read_table(path).column("centroid")), False
    centroids = fit()
    if lake is not None and path is not None and len(centroids):
        flat = pa.array(centroids.reshape(-1), pa.float32())
        lake.write_table(
            path,
            pa.table(
                {
                    "cluster": pa.array(range(len(centroids)), pa.int32()),
                    "centroid": pa.FixedSizeListArray.from_arrays(flat, centroids.shape[1]),
                }
            ),
        )
    return centroids, True
