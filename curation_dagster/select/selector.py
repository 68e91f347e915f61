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

from curation_dagster.io.lake import Lake
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
    UsageLedger,
    prior_embeddings,
    version_centroids,
)
from curation_dagster.select.top_k import TopK
from curation_dagster.spec import ClusterBalancedSettings, ProxySettings, SelectSettings
from curation_dagster.vectors.image import (
    IMAGE_EMBEDDINGS,
    SLICE_ROWS,
    clip_embedder,
    stream_image_embeddings,
)
from curation_dagster.vectors.kmeans import assign_clusters
from curation_dagster.vectors.text import EMBEDDINGS, ShardEmbeddings, TextEmbedder, shard_embeddings

#: The strategy class for each `select.strategy.kind`.
STRATEGIES: dict[str, type[Strategy]] = {
    "sample": SeededSample,
    "top_k": TopK,
    "dsir": DSIR,
    "k_center": KCenterGreedy,
    "cluster_balanced": ClusterBalanced,
    "proxy": ProbeProxy,
}


def build_strategy(settings: SelectSettings) -> Strategy:
    """The strategy `settings.strategy.kind` names, configured by `settings` (a `proxy` with a
    `model_path` scores with that model instead of a probe)."""
    strategy = settings.strategy
    if isinstance(strategy, ProxySettings) and not strategy.uses_probe:
        return ModelProxy(settings)
    return STRATEGIES[strategy.kind](settings)


#: The setting that turns on CLIP image embeddings in selection, named by errors.
CLIP_SETTING = "select.image_embeddings: clip"


@dataclass(frozen=True)
class Prepared:
    """A shard's candidates and, for strategies that need them, their embeddings: text vectors and, with
    `select.image_embeddings: clip`, the image items' CLIP vectors (both aligned with the candidates)."""

    candidates: Candidates
    embeddings: ShardEmbeddings | None
    image_embeddings: ShardEmbeddings | None = None


class Selector:
    """Plans the selection of one shard (or one in-memory table) by the spec's strategy."""

    def __init__(self, settings: SelectSettings, strategy: Strategy | None = None) -> None:
        self.settings = settings
        self.strategy = strategy or build_strategy(settings)

    @property
    def needs_embeddings(self) -> bool:
        return "embeddings" in self.strategy.needs

    @property
    def uses_clip(self) -> bool:
        """Whether image items are embedded with CLIP, in a space of their own."""
        return self.needs_embeddings and self.settings.image_embeddings == "clip"

    def prepare(
        self,
        connection: Any,
        source: str,
        *,
        lake: Lake | None = None,
        version: str = "",
        shard: str = "",
        runtime: ModelRuntime | None = None,
        text_vectors: np.ndarray | None = None,
        image_vectors: np.ndarray | None = None,
    ) -> Prepared:
        """Evaluate the SQL settings over the `items` view of `connection` and, when needed, get the
        embeddings (from the lake where stored, else computed on the runtime's device and stored).
        `text_vectors` / `image_vectors` (one row per item) stand in for the text embedder / CLIP."""
        needs_text = bool({"texts", "embeddings"} & self.strategy.needs)
        candidates = read_candidates(connection, self.settings, need_text=needs_text, source=source)
        clip = self.uses_clip
        if clip and image_vectors is None:
            clip_embedder(runtime, CLIP_SETTING)  # a missing model fails before any text is embedded
        self.strategy.bind(lake, version, runtime)
        if not self.needs_embeddings:
            return Prepared(candidates, None)
        is_image = np.asarray([modality == "image" for modality in candidates.modalities], dtype=bool)
        own_space = is_image if clip else np.zeros(len(is_image), dtype=bool)
        if text_vectors is not None:
            embeddings = _given(text_vectors, ~own_space)
        else:
            embedder = TextEmbedder.for_runtime(self.settings.embeddings, runtime or ModelRuntime())
            texts = candidates.texts or [None] * len(candidates.ids)
            texts = [None if image else text for text, image in zip(texts, own_space.tolist(), strict=True)]
            embeddings = shard_embeddings(lake, version, shard, candidates.ids, texts, embedder)
        images = None
        if clip:
            images = (
                _given(image_vectors, is_image)
                if image_vectors is not None
                else _image_embeddings(connection, candidates, is_image, lake, version, shard, runtime)
            )
        return Prepared(candidates, embeddings, images)

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
        candidates, embeddings, images = prepared.candidates, prepared.embeddings, prepared.image_embeddings
        pool = Pool(
            ids=candidates.ids,
            modalities=candidates.modalities,
            seed=self.settings.seed,
            values=candidates.values,
            texts=candidates.texts,
        )
        prior: Mapping[str, np.ndarray] = {}
        prior_spaces: dict[str, np.ndarray] = {}
        if embeddings is not None:
            spaces = [("text", embeddings, EMBEDDINGS)] + (
                [("image", images, IMAGE_EMBEDDINGS)] if images is not None else []
            )
            width = max(found.vectors.shape[1] for _, found, _ in spaces)
            pool.embeddings = np.zeros((len(pool), width), dtype=np.float32)
            pool.embedded = np.zeros(len(pool), dtype=bool)
            for _, found, _ in spaces:
                pool.embeddings[found.embedded, : found.vectors.shape[1]] = found.vectors[found.embedded]
                pool.embedded |= found.embedded
            if images is not None:
                is_image = np.asarray([modality == "image" for modality in candidates.modalities], dtype=bool)
                pool.spaces = np.where(is_image, "image", "text").astype(object)
            if "prior_embeddings" in self.strategy.needs and lake is not None:
                if images is None:
                    prior = prior_embeddings(lake, version, shard, embeddings.model)
                else:
                    prior, prior_spaces = _prior_by_space(lake, version, shard, spaces, width)
            if "clusters" in self.strategy.needs:
                self._assign_clusters(pool, [(space, found) for space, found, _ in spaces], lake, version)
        plan = plan_selection(
            self.settings,
            self.strategy,
            pool,
            candidates.passes,
            candidates.groups,
            usage,
            prior,
            prior_spaces,
        )
        if embeddings is not None:
            plan.embeddings = _embedding_counts(embeddings)
            if images is not None:
                plan.embeddings["image"] = _embedding_counts(images)
        return plan

    def _assign_clusters(
        self, pool: Pool, spaces: list[tuple[str, ShardEmbeddings]], lake: Lake | None, version: str
    ) -> None:
        """Each space's items to the nearest of its version centroids; image clusters are numbered after
        the text ones (from `clusters` up), so `select_cluster` never confuses two spaces."""
        strategy = self.settings.strategy
        assert isinstance(strategy, ClusterBalancedSettings)
        clusters = np.full(len(pool), -1, dtype=np.int64)
        count = 0
        for space, found in spaces:
            points = found.vectors[found.embedded]
            centroids = version_centroids(
                lake, version, strategy, self.settings.seed, found.model, points, space
            )
            offset = 0 if space == "text" else strategy.clusters
            if len(centroids) and len(points):
                clusters[found.embedded] = assign_clusters(points, centroids) + offset
            count += len(centroids)
        pool.clusters, pool.cluster_count = clusters, count

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
        usage = UsageLedger(lake, version).others(shard)
        return self.plan(prepared, usage, lake=lake, version=version, shard=shard)

    def run(
        self,
        table: pa.Table,
        used: Usage | Mapping[str, int] | None = None,
        *,
        embeddings: np.ndarray | None = None,
        image_embeddings: np.ndarray | None = None,
        runtime: ModelRuntime | None = None,
    ) -> tuple[pa.Table, pa.Table]:
        """Plan and apply on a table in memory: (selected, rejected). `used` is what other shards took;
        `embeddings` (one row per table row) skips the text embedder, `image_embeddings` (one row per table
        row; image rows are read) skips CLIP with `select.image_embeddings: clip`."""
        import duckdb

        connection = duckdb.connect(":memory:")
        connection.register(ITEMS, table)
        prepared = self.prepare(
            connection,
            "the table",
            runtime=runtime,
            text_vectors=embeddings,
            image_vectors=image_embeddings,
        )
        plan = self.plan(prepared, Usage.of(used))
        return plan.apply(table)


def _given(vectors: np.ndarray, rows: np.ndarray) -> ShardEmbeddings:
    """Vectors given by the caller, used for the items of `rows`."""
    given = np.asarray(vectors, dtype=np.float32)
    return ShardEmbeddings(given, rows.copy(), computed=0, reused=int(rows.sum()), model="given")


def _embedding_counts(found: ShardEmbeddings) -> dict[str, Any]:
    return {"model": found.model, "computed": found.computed, "reused": found.reused}


def _image_embeddings(
    connection: Any,
    candidates: Candidates,
    is_image: np.ndarray,
    lake: Lake | None,
    version: str,
    shard: str,
    runtime: ModelRuntime | None,
) -> ShardEmbeddings:
    """The CLIP vectors of the image candidates (reused from `<version>/image_embeddings/` where stored),
    aligned with all candidates; other items and undecodable images are not embedded."""
    embedder = clip_embedder(runtime, CLIP_SETTING)
    names = set(connection.sql(f"SELECT * FROM {ITEMS} LIMIT 0").columns)
    columns = ", ".join(name for name in ("id", "media", "uri") if name in names)
    # Streamed in record batches: memory holds a slice of images, not the shard's image bytes.
    items = connection.sql(f"SELECT {columns} FROM {ITEMS} WHERE modality = 'image'")
    found = stream_image_embeddings(lake, version, shard, items.to_arrow_reader(SLICE_ROWS), embedder)
    row_of = {item: row for row, item in enumerate(found.ids)}
    vectors = np.zeros((len(candidates.ids), found.vectors.shape[1]), dtype=np.float32)
    embedded = np.zeros(len(candidates.ids), dtype=bool)
    for position in np.flatnonzero(is_image).tolist():
        row = row_of[candidates.ids[position]]
        vectors[position], embedded[position] = found.vectors[row], bool(found.embedded[row])
    return ShardEmbeddings(vectors, embedded, found.computed, found.reused, found.model)


def _prior_by_space(
    lake: Lake, version: str, shard: str, spaces: list[tuple[str, ShardEmbeddings, str]], width: int
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Each group's embeddings of what other shards selected, every space's vectors zero-padded to
    `width`, and the space of each row; only spaces this shard has embedded items in, the others' earlier
    vectors being of no use (and maybe wider)."""
    vectors: dict[str, list[np.ndarray]] = {}
    labels: dict[str, list[np.ndarray]] = {}
    for space, found, folder in spaces:
        if not found.embedded.any():
            continue
        for group, rows in prior_embeddings(lake, version, shard, found.model, folder, space).items():
            padded = np.zeros((len(rows), width), dtype=np.float32)
            padded[:, : rows.shape[1]] = rows
            vectors.setdefault(group, []).append(padded)
            labels.setdefault(group, []).append(np.full(len(rows), space, dtype=object))
    return (
        {group: np.vstack(parts) for group, parts in vectors.items()},
        {group: np.concatenate(parts) for group, parts in labels.items()},
    )
