"""The selected stage's engine: builds the strategy named in the spec, gathers what it needs (SQL values,
texts, embeddings, clusters, what earlier shards selected) and plans a shard.

In a notebook: `Selector(spec.select).run(table)` returns (selected, rejected) for an in-memory table.
In the pipeline: `prepare` (per shard, no shared state), then `plan` under the version's selection lock.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa

from curation_dagster.embeddings import ShardEmbeddings, TextEmbedder, shard_embeddings
from curation_dagster.io.lake import Lake
from curation_dagster.kmeans import assign_clusters
from curation_dagster.models.runtime import ModelRuntime
from curation_dagster.select.base import Pool, Strategy
from curation_dagster.select.candidates import ITEMS, Candidates, read_candidates
from curation_dagster.select.clusters import ClusterBalanced
from curation_dagster.select.dsir import DSIR
from curation_dagster.select.k_center import KCenterGreedy
from curation_dagster.select.plan import SelectionPlan, plan_selection
from curation_dagster.select.proxy import ModelProxy, ProbeProxy
from curation_dagster.select.sample import SeededSample
from curation_dagster.select.state import (
    Usage,
    prior_embeddings,
    usage_of_other_shards,
    version_centroids,
)
from curation_dagster.select.top_k import TopK
from curation_dagster.spec import ClusterBalancedStrategy, ProxyStrategy, SelectSpec

#: The strategy class for each `select.strategy.kind`.
STRATEGIES: dict[str, type[Strategy]] = {
    "sample": SeededSample,
    "top_k": TopK,
    "dsir": DSIR,
    "k_center": KCenterGreedy,
    "cluster_balanced": ClusterBalanced,
    "proxy": ProbeProxy,
}


def build_strategy(settings: SelectSpec) -> Strategy:
    """The strategy `settings.strategy.kind` names, configured by `settings` (a `proxy` with a
    `model_path` scores with that model instead of a probe)."""
    strategy = settings.strategy
    if isinstance(strategy, ProxyStrategy) and not strategy.uses_probe:
        return ModelProxy(settings)
    return STRATEGIES[strategy.kind](settings)


@dataclass(frozen=True)
class Prepared:
    """A shard's candidates and, for strategies that need them, their embeddings."""

    candidates: Candidates
    embeddings: ShardEmbeddings | None


class Selector:
    """Plans the selection of one shard (or one in-memory table) by the spec's strategy."""

    def __init__(self, settings: SelectSpec, strategy: Strategy | None = None) -> None:
        self.settings = settings
        self.strategy = strategy or build_strategy(settings)

    @property
    def needs_embeddings(self) -> bool:
        return "embeddings" in self.strategy.needs

    def prepare(
        self,
        connection: Any,
        source: str,
        *,
        lake: Lake | None = None,
        version: str = "",
        shard: str = "",
        runtime: ModelRuntime | None = None,
    ) -> Prepared:
        """Evaluate the SQL settings over the `items` view of `connection` and, when needed, get the
        embeddings (from the lake where stored, else computed on the runtime's device and stored)."""
        needs_text = bool({"texts", "embeddings"} & self.strategy.needs)
        candidates = read_candidates(connection, self.settings, need_text=needs_text, source=source)
        self.strategy.bind(lake, version, runtime)
        embeddings = None
        if self.needs_embeddings:
            embedder = TextEmbedder.for_runtime(self.settings.embeddings, runtime or ModelRuntime())
            texts = candidates.texts or [None] * len(candidates.ids)
            embeddings = shard_embeddings(lake, version, shard, candidates.ids, texts, embedder)
        return Prepared(candidates, embeddings)

    def plan(
        self,
        prepared: Prepared,
        usage: Usage,
        *,
        lake: Lake | None = None,
        version: str = "",
        shard: str = "",
    ) -> SelectionPlan:
        """Decide every candidate. With a lake, earlier shards' embeddings and the version's centroids come
        from it (the caller holds the selection lock); without one, centroids are fitted on the table."""
        candidates, embeddings = prepared.candidates, prepared.embeddings
        pool = Pool(
            ids=candidates.ids,
            modalities=candidates.modalities,
            seed=self.settings.seed,
            values=candidates.values,
            texts=candidates.texts,
        )
        prior: Mapping[str, np.ndarray] = {}
        if embeddings is not None:
            pool.embeddings, pool.embedded = embeddings.vectors, embeddings.embedded
            if "prior_embeddings" in self.strategy.needs and lake is not None:
                prior = prior_embeddings(lake, version, shard, embeddings.model)
            if "clusters" in self.strategy.needs:
                self._assign_clusters(pool, embeddings, lake, version)
        plan = plan_selection(
            self.settings, self.strategy, pool, candidates.passes, candidates.groups, usage, prior
        )
        if embeddings is not None:
            plan.embeddings = {
                "model": embeddings.model,
                "computed": embeddings.computed,
                "reused": embeddings.reused,
            }
        return plan

    def _assign_clusters(
        self, pool: Pool, embeddings: ShardEmbeddings, lake: Lake | None, version: str
    ) -> None:
        strategy = self.settings.strategy
        assert isinstance(strategy, ClusterBalancedStrategy)
        points = embeddings.vectors[embeddings.embedded]
        centroids = version_centroids(lake, version, strategy, self.settings.seed, embeddings.model, points)
        clusters = np.full(len(pool), -1, dtype=np.int64)
        if len(centroids) and len(points):
            clusters[embeddings.embedded] = assign_clusters(points, centroids)
        pool.clusters, pool.cluster_count = clusters, len(centroids)

    def prepare_shard(
        self, lake: Lake, version: str, shard: str, source: str, runtime: ModelRuntime | None = None
    ) -> Prepared:
        """`prepare` for a shard of the lake: `source` is its filtered file. Needs no lock (embeddings are
        per shard)."""
        connection = lake.connect()
        connection.read_parquet(lake.url(source)).create_view(ITEMS)
        return self.prepare(
            connection,
            f"{version}/filtered/{shard}",
            lake=lake,
            version=version,
            shard=shard,
            runtime=runtime,
        )

    def plan_shard(self, prepared: Prepared, lake: Lake, version: str, shard: str) -> SelectionPlan:
        """`plan` against what the other shards of the version selected. Hold the version's selection lock
        from here until the shard's selected file is written, so shards claim the budget one at a time."""
        usage = usage_of_other_shards(lake, version, shard)
        return self.plan(prepared, usage, lake=lake, version=version, shard=shard)

    def run(
        self,
        table: pa.Table,
        used: Usage | Mapping[str, int] | None = None,
        *,
        embeddings: np.ndarray | None = None,
        runtime: ModelRuntime | None = None,
    ) -> tuple[pa.Table, pa.Table]:
        """Plan and apply on a table in memory: (selected, rejected). `used` is what other shards took;
        `embeddings` (one row per table row) skips the embedder."""
        import duckdb

        connection = duckdb.connect(":memory:")
        connection.register(ITEMS, table)
        if embeddings is not None and self.needs_embeddings:
            candidates = read_candidates(connection, self.settings, need_text=True, source="the table")
            vectors = np.asarray(embeddings, dtype=np.float32)
            embedded = np.ones(len(vectors), dtype=bool)
            given = ShardEmbeddings(vectors, embedded, computed=0, reused=len(vectors), model="given")
            prepared = Prepared(candidates, given)
            self.strategy.bind(None, "", runtime)
        else:
            prepared = self.prepare(connection, "the table", runtime=runtime)
        plan = self.plan(prepared, Usage.of(used))
        return plan.apply(table)
