"""Cluster-balanced selection (MetaCLIP-style): k-means clusters of the embeddings, then at most
`per_cluster_cap` items per cluster, taken round-robin so that a small budget still covers many clusters."""

from __future__ import annotations

from collections import Counter
from typing import Any

import numpy as np

from curation_dagster.sampling import sample_scores
from curation_dagster.select.base import (
    MISSING,
    REJECT_CLUSTER_CAP,
    REJECT_NO_TEXT,
    Pool,
    Ranking,
    Strategy,
)
from curation_dagster.spec import ClusterBalancedSettings


class ClusterBalanced(Strategy):
    """Round-robin over clusters in seeded order: every cluster's first item, then every cluster's
    second, and so on; clusters that earlier shards filled more come later in each round. Items past
    `per_cluster_cap` (counting earlier shards) are refused as `select.cluster_cap`, items without an
    embedding as `select.no_text`. The score is the item's seeded order within its cluster. Clusters of
    different embedding spaces are different clusters (image clusters are numbered after the text ones)."""

    name = "cluster_balanced"
    needs = frozenset({"embeddings", "clusters"})

    @property
    def spec(self) -> ClusterBalancedSettings:
        strategy = self.settings.strategy
        if not isinstance(strategy, ClusterBalancedSettings):
            raise TypeError(
                f"ClusterBalanced needs select.strategy of kind cluster_balanced, got {strategy.kind}"
            )
        return strategy

    def rank(self, pool: Pool, k: int | None) -> Ranking:
        cap = self.spec.per_cluster_cap
        clusters = _clusters(pool)
        scores = sample_scores(pool.seed, pool.ids)
        excluded: dict[int, tuple[str, str]] = {}
        keyed: list[tuple[int, float, str, int]] = []
        members: dict[int, list[int]] = {}
        for position in np.flatnonzero(clusters >= 0).tolist():
            members.setdefault(int(clusters[position]), []).append(position)
        for cluster, positions in members.items():
            before = int(pool.prior_cluster_counts.get(cluster, 0))
            positions.sort(key=lambda p: (scores[p], pool.ids[p]))
            for turn, position in enumerate(positions):
                if before + turn >= cap:
                    excluded[position] = (
                        REJECT_CLUSTER_CAP,
                        f"cluster {cluster} already has {cap} items (select.strategy.per_cluster_cap)",
                    )
                else:
                    keyed.append((before + turn, float(scores[position]), pool.ids[position], position))
        for position in np.flatnonzero(clusters < 0).tolist():
            space = "text" if pool.spaces is None else str(pool.spaces[position])
            excluded[position] = (REJECT_NO_TEXT, f"cluster_balanced needs {MISSING[space]}")
        order = np.asarray([position for *_, position in sorted(keyed)], dtype=np.int64)
        return Ranking(order, scores, excluded)

    def describe(self, pool: Pool, selected: np.ndarray) -> dict[str, Any]:
        clusters = _clusters(pool)
        before = Counter(int(c) for c in clusters[clusters >= 0])
        after = Counter(int(c) for c in clusters[selected & (clusters >= 0)])
        version = Counter({int(c): int(n) for c, n in pool.prior_cluster_counts.items() if n}) + after
        fitted = max(pool.cluster_count, len(before))
        return {
            "clusters_fitted": fitted,
            "clusters_in_pool": len(before),
            "clusters_selected": len(after),
            "coverage_of_pool": round(len(after) / max(len(before), 1), 4),
            "coverage": round(len(version) / max(fitted, 1), 4),
            "largest_cluster_share_before": _largest_share(before),
            "largest_cluster_share_after": _largest_share(after),
            "items_per_cluster": {str(c): {"before": before[c], "after": after[c]} for c in sorted(before)},
        }


def _largest_share(counts: Counter[int]) -> float:
    return round(max(counts.values(), default=0) / max(sum(counts.values()), 1), 4)


def _clusters(pool: Pool) -> np.ndarray:
    if pool.clusters is None:
        return np.full(len(pool), -1, dtype=np.int64)
    return np.asarray(pool.clusters, dtype=np.int64)
