"""Semantic duplicates (SemDeDup, Abbas et al. 2023) for one shard: items are assigned to the version's
k-means clusters and, cluster by cluster, an item whose cosine similarity to an item already kept is at
least 1 - epsilon is removed, with the modality's epsilon (`epsilon` for text, `image_epsilon` for images).

Kept means kept by an earlier shard (read cluster by cluster from their index, never their text), or kept
earlier in this shard in the spec's `keep` order. Items of earlier shards are never removed. Only items
of one cluster are held at a time: memory follows the largest cluster, not the version.

Vectors come from a `VectorSource` per modality; text uses the packaged MiniLM embedder and the lake's
`<version>/embeddings/` files, shared with selection; images use CLIP and `<version>/image_embeddings/`,
shared with the CLIP filters, read from the shard a slice at a time. Each modality has its own centroids,
index folder and fingerprint.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from curation_dagster.errors import SpecError
from curation_dagster.io.lake import Lake
from curation_dagster.models.runtime import ModelRuntime
from curation_dagster.sampling import sample_scores
from curation_dagster.schema import mark_rejected
from curation_dagster.spec import EmbeddingSettings, SemanticDedupSettings
from curation_dagster.vectors.image import clip_embedder, embedding_rows, stream_image_embeddings
from curation_dagster.vectors.kmeans import assign_clusters, fit_centroids, stored_centroids
from curation_dagster.vectors.text import (
    ShardEmbeddings,
    TextEmbedder,
    model_key,
    shard_embeddings,
    vectors_of,
)

REJECT_SEMANTIC = "dedup.semantic"
#: Parquet schema metadata key holding the fingerprint of the clustering an index file was built with.
FINGERPRINT_KEY = b"curation.semantic_settings"
#: The lake folder of the text items' per-shard index (kept items: id, cluster, vector).
SEMANTIC_INDEX = "semantic_index"
#: The lake folder of the image items' per-shard index: CLIP vectors, another space than the text index.
IMAGE_SEMANTIC_INDEX = "image_semantic_index"
#: Each modality's index folder.
SEMANTIC_INDEXES = {"text": SEMANTIC_INDEX, "image": IMAGE_SEMANTIC_INDEX}
#: The lake folder of the version's centroids, one file per modality and fingerprint.
SEMANTIC_STATE = "semantic_state"
#: Sample items per centroid at least: with about one item per cluster, k-means would give each item of
#: the first shard a cluster of its own and no two of them would ever be compared.
MIN_ITEMS_PER_CLUSTER = 10
#: Items decided together: their similarities to each other are one (block x block) product.
_BLOCK = 1024
#: Earlier items compared at once with a block: bounds the (block x chunk) similarity matrix.
_CHUNK = 8192
#: Rows per row group of an index file: a cluster's query skips the row groups of other clusters.
_ROW_GROUP = 4096
#: Rows of a shard read at a time for text vectors (their texts are embedded together afterwards).
TEXT_BATCH_ROWS = 1024


def clustering_fingerprint(settings: SemanticDedupSettings, model: str) -> str:
    """What fixes the clusters: the embedder and every k-means setting. Index files and centroids made
    with another fingerprint cannot be compared with this shard."""
    relevant = {
        "model": model,
        "clusters": settings.clusters,
        "sample_size": settings.sample_size,
        "kmeans_init": settings.kmeans_init,
        "seed": settings.seed,
    }
    return hashlib.sha256(json.dumps(relevant, sort_keys=True).encode()).hexdigest()[:16]


def index_schema(dimension: int, fingerprint: str) -> pa.Schema:
    return pa.schema(
        [
            pa.field("id", pa.string(), nullable=False),
            pa.field("cluster", pa.int32(), nullable=False),
            pa.field("vector", pa.list_(pa.float32(), dimension), nullable=False),
        ],
        metadata={FINGERPRINT_KEY: fingerprint.encode()},
    )


class VectorSource(Protocol):
    """Where one modality's vectors come from: an embedder, the lake columns it reads and the folder of
    its per-shard index. Each source has its own centroids, since vectors of two models do not compare."""

    modality: str
    index: str
    columns: tuple[str, ...]

    @property
    def model(self) -> str:
        """Identifies the vectors (model and settings), as stored with them."""
        ...

    @property
    def batch_rows(self) -> int:
        """Rows of the shard to read at a time."""
        ...

    def vectors(
        self, lake: Lake | None, version: str, shard: str, items: Iterable[pa.Table]
    ) -> tuple[list[str], ShardEmbeddings]:
        """The ids of the rows of `items` (batches with its `columns`) and one vector per row, in order;
        rows it cannot embed are marked so."""
        ...


class TextVectors:
    """Text items' MiniLM vectors (or a local sentence-transformers folder), reused from and stored in
    `<version>/embeddings/<shard>.parquet`, computed on the runtime's device."""

    modality: str = "text"
    index: str = SEMANTIC_INDEX
    columns: tuple[str, ...] = ("id", "text")

    def __init__(self, settings: EmbeddingSettings, runtime: ModelRuntime | None = None) -> None:
        self.settings, self.runtime = settings, runtime or ModelRuntime()

    @property
    def model(self) -> str:
        return model_key(self.settings)

    @property
    def batch_rows(self) -> int:
        return TEXT_BATCH_ROWS

    def vectors(
        self, lake: Lake | None, version: str, shard: str, items: Iterable[pa.Table]
    ) -> tuple[list[str], ShardEmbeddings]:
        embedder = TextEmbedder.for_runtime(self.settings, self.runtime)
        ids: list[str] = []
        texts: list[str | None] = []
        for batch in items:
            ids.extend(batch.column("id").to_pylist())
            texts.extend(batch.column("text").to_pylist())
        return ids, shard_embeddings(lake, version, shard, ids, texts, embedder)


class ClipImageVectors:
    """Image items' CLIP image vectors (the runtime's `models.clip_weights`), reused from and stored in
    `<version>/image_embeddings/<shard>.parquet`; an image that cannot be decoded is not embedded. Images
    are read and embedded a slice of whole model batches at a time (`embedding_rows`), never the shard's
    bytes at once."""

    modality: str = "image"
    index: str = IMAGE_SEMANTIC_INDEX
    columns: tuple[str, ...] = ("id", "media", "uri")

    def __init__(
        self, runtime: ModelRuntime | None = None, setting: str = "dedup.semantic.modalities: image"
    ) -> None:
        self.embedder = clip_embedder(runtime, setting)

    @property
    def model(self) -> str:
        return self.embedder.key

    @property
    def batch_rows(self) -> int:
        return embedding_rows(self.embedder.runtime.batch_size)

    def vectors(
        self, lake: Lake | None, version: str, shard: str, items: Iterable[pa.Table]
    ) -> tuple[list[str], ShardEmbeddings]:
        found = stream_image_embeddings(lake, version, shard, items, self.embedder)
        embedded = ShardEmbeddings(found.vectors, found.embedded, found.computed, found.reused, found.model)
        return found.ids, embedded


def vector_source(
    modality: str, settings: SemanticDedupSettings, runtime: ModelRuntime | None = None
) -> VectorSource:
    """The vector source of one of `dedup.semantic.modalities`."""
    if modality == "image":
        return ClipImageVectors(runtime)
    return TextVectors(settings.embeddings, runtime)


def version_centroids(
    lake: Lake | None,
    version: str,
    settings: SemanticDedupSettings,
    source: VectorSource,
    ids: Sequence[str],
    points: np.ndarray,
) -> tuple[np.ndarray, bool]:
    """The version's centroids for the source, from `<version>/semantic_state/`, else fitted on a seeded
    sample of at most `sample_size` of `points` (at most one cluster per `MIN_ITEMS_PER_CLUSTER` of them)
    and stored there; and whether they were fitted now."""
    path = None
    if lake is not None:
        name = f"{source.modality}_kmeans_{clustering_fingerprint(settings, source.model)}"
        path = lake.path(version, SEMANTIC_STATE, name)
    return stored_centroids(lake, path, lambda: fit_sample_centroids(settings, ids, points))


def fit_sample_centroids(
    settings: SemanticDedupSettings, ids: Sequence[str], points: np.ndarray
) -> np.ndarray:
    """Centroids fitted on a seeded sample of at most `sample_size` of `points`, one cluster per
    `MIN_ITEMS_PER_CLUSTER` sample items at most."""
    sample = points
    if len(points) > settings.sample_size:
        scores = sample_scores(settings.seed, list(ids))
        ranked = sorted(range(len(ids)), key=lambda row: (scores[row], ids[row]))
        sample = points[np.sort(np.asarray(ranked[: settings.sample_size], dtype=np.int64))]
    count = max(1, min(settings.clusters, len(sample) // MIN_ITEMS_PER_CLUSTER))
    return fit_centroids(sample, count, settings.seed, settings.kmeans_init)


@dataclass(frozen=True)
class SemanticDecision:
    """Why an item is removed: the kept item it duplicates, their cosine similarity and their cluster."""

    dup_of: str
    similarity: float
    cluster: int
    shard: str | None = None
    """The earlier shard that holds `dup_of`; None when it is in this shard."""


@dataclass(frozen=True)
class EarlierVectors:
    """The items earlier shards kept in one cluster, ordered by id, and the shard of each."""

    ids: list[str]
    vectors: np.ndarray
    shards: list[str] = field(default_factory=list)

    @classmethod
    def none(cls) -> EarlierVectors:
        return cls([], np.zeros((0, 0), dtype=np.float32))


#: Given a cluster, the items earlier shards kept in it.
EarlierLookup = Callable[[int], EarlierVectors]


def no_earlier_items(cluster: int) -> EarlierVectors:
    """An `EarlierLookup` for the first shard, or a table on its own."""
    return EarlierVectors.none()


@dataclass
class SemanticOutcome:
    """Decisions for a shard's embedded items plus what goes into its index and the metadata."""

    removed: dict[str, SemanticDecision]
    clusters: np.ndarray
    """Each item's cluster, aligned with the ids decided."""
    kept: np.ndarray
    """Whether each item was kept."""
    cross_shard: int = 0
    """Items removed as duplicates of an earlier shard's item."""
    earlier_compared: int = 0
    """Earlier shards' items read from the index (summed over the clusters touched)."""
    cluster_sizes: dict[int, int] = field(default_factory=dict)
    """Items of this shard per cluster touched."""

    @property
    def clusters_touched(self) -> int:
        return len(self.cluster_sizes)

    def index(self, ids: Sequence[str], vectors: np.ndarray, fingerprint: str) -> pa.Table:
        """The kept items as the shard's index: id, cluster and vector, sorted by cluster then row, so
        a later shard's query for one cluster reads few row groups."""
        kept = np.flatnonzero(self.kept)
        order = kept[np.lexsort((kept, self.clusters[kept]))]
        dimension = vectors.shape[1] if vectors.ndim == 2 else 0
        flat = pa.array(np.ascontiguousarray(vectors[order], dtype=np.float32).reshape(-1), pa.float32())
        return pa.table(
            {
                "id": pa.array([ids[position] for position in order], pa.string()),
                "cluster": pa.array(self.clusters[order], pa.int32()),
                "vector": pa.FixedSizeListArray.from_arrays(flat, dimension),
            },
            schema=index_schema(dimension, fingerprint),
        )


class SemanticIndex:
    """One vector source's semantic-dedup index in a version: each shard's kept items (id, cluster,
    vector) in `<version>/<index>/<shard>.parquet`, sorted by cluster, read one cluster at a time."""

    def __init__(self, lake: Lake, version: str, index: str, fingerprint: str) -> None:
        self.lake, self.version, self.index, self.fingerprint = lake, version, index, fingerprint

    def write(self, shard: str, table: pa.Table) -> None:
        self.lake.write_table(
            self.lake.path(self.version, self.index, shard), table, row_group_size=_ROW_GROUP
        )

    def remove(self, shard: str) -> None:
        self.lake.remove(self.lake.path(self.version, self.index, shard))

    def earlier(self, shard: str) -> EarlierLookup:
        """The lookup `SemanticDedup.decide` calls per cluster, over every other shard's index file, after
        checking that each was made with the same clustering (other clusters' numbers mean nothing)."""
        lake = self.lake
        shard_of_file: dict[str, str] = {}
        for other in lake.list_shards(self.version, self.index):
            path = lake.path(self.version, self.index, other)
            if other == shard:
                continue
            if (lake.schema(path).metadata or {}).get(FINGERPRINT_KEY) != self.fingerprint.encode():
                raise SpecError(
                    f"{lake.url(path)} was built with another embedder or other dedup.semantic clustering "
                    f"settings; remove {lake.url(lake.stage_dir(self.version, self.index))} and materialize "
                    "the deduped stage again for every shard of this version, in arrival order"
                )
            shard_of_file[lake.url(path)] = other
        if not shard_of_file:
            return no_earlier_items
        connection = lake.connect()
        files = sorted(shard_of_file)

        def lookup(cluster: int) -> EarlierVectors:
            table = connection.sql(
                "SELECT id, vector, filename FROM read_parquet(?, filename=true) WHERE cluster = ? ORDER BY id",
                params=[files, cluster],
            ).to_arrow_table()
            if table.num_rows == 0:
                return EarlierVectors.none()
            return EarlierVectors(
                table.column("id").to_pylist(),
                vectors_of(table.column("vector")),
                [shard_of_file[str(name)] for name in table.column("filename").to_pylist()],
            )

        return lookup


class SemanticDedup:
    """Decides which embedded items of a shard are semantic duplicates, of each other or of items that
    earlier shards kept."""

    def __init__(self, settings: SemanticDedupSettings | None = None) -> None:
        self.settings = settings or SemanticDedupSettings()

    def threshold(self, modality: str = "text") -> float:
        """Cosine similarity at which two items of the modality are duplicates: 1 - its epsilon
        (`epsilon` for text, `image_epsilon` for images)."""
        return 1.0 - self.settings.epsilon_of(modality)

    def decide(
        self,
        ids: Sequence[str],
        vectors: np.ndarray,
        centroids: np.ndarray,
        earlier: EarlierLookup = no_earlier_items,
        *,
        modality: str = "text",
    ) -> SemanticOutcome:
        """Assign every item (rows in shard order) to its nearest centroid, then, per cluster in
        ascending order, remove each item that has a kept item within the modality's threshold. A duplicate
        of an earlier shard's item points to the most similar of those; otherwise to the most similar item
        kept before it in this shard."""
        points = _unit(np.asarray(vectors, dtype=np.float32))
        if len(points) == 0:
            return SemanticOutcome({}, np.zeros(0, np.int64), np.zeros(0, bool))
        if len(centroids) == 0:
            raise ValueError("semantic dedup needs at least one centroid for a shard with embedded items")
        clusters = assign_clusters(points, centroids)
        outcome = SemanticOutcome({}, clusters, np.ones(len(points), dtype=bool))
        threshold = self.threshold(modality)
        for cluster in np.unique(clusters).tolist():
            members = self._priority(np.flatnonzero(clusters == cluster), points, centroids[cluster])
            outcome.cluster_sizes[int(cluster)] = len(members)
            self._decide_cluster(
                int(cluster), ids, points, members, earlier(int(cluster)), threshold, outcome
            )
        return outcome

    def _priority(self, positions: np.ndarray, points: np.ndarray, centroid: np.ndarray) -> np.ndarray:
        """The cluster's rows in the order they claim to be kept: row order, or by cosine similarity to
        the centroid (highest first for `nearest_centroid`, lowest first for `farthest_centroid`)."""
        keep = self.settings.keep
        if keep == "earliest":
            return positions
        closeness = points[positions] @ _unit(centroid[None, :].astype(np.float32))[0]
        key = -closeness if keep == "nearest_centroid" else closeness
        return positions[np.lexsort((positions, key))]

    def _decide_cluster(
        self,
        cluster: int,
        ids: Sequence[str],
        points: np.ndarray,
        members: np.ndarray,
        earlier: EarlierVectors,
        threshold: float,
        outcome: SemanticOutcome,
    ) -> None:
        earlier_points = _unit(np.asarray(earlier.vectors, dtype=np.float32)) if len(earlier.ids) else None
        outcome.earlier_compared += len(earlier.ids)
        kept_points = np.empty((len(members), points.shape[1]), dtype=np.float32)
        kept_rows: list[int] = []
        for start in range(0, len(members), _BLOCK):
            block = members[start : start + _BLOCK]
            block_points = points[block]
            best_earlier, which_earlier = _best_match(block_points, earlier_points)
            before = len(kept_rows)
            best_kept, which_kept = _best_match(block_points, kept_points[:before])
            within = block_points @ block_points.T
            kept_in_block: list[int] = []
            for offset, row in enumerate(block.tolist()):
                if best_earlier[offset] >= threshold:
                    match = int(which_earlier[offset])
                    outcome.removed[ids[row]] = SemanticDecision(
                        earlier.ids[match],
                        _similarity(best_earlier[offset]),
                        cluster,
                        earlier.shards[match] if earlier.shards else None,
                    )
                    outcome.kept[row] = False
                    outcome.cross_shard += 1
                    continue
                similarity, owner_row = float(best_kept[offset]), int(which_kept[offset])
                if kept_in_block:
                    candidates = within[offset, kept_in_block]
                    best = int(np.argmax(candidates))
                    if candidates[best] > similarity:
                        similarity, owner_row = float(candidates[best]), before + best
                if similarity >= threshold:
                    owner = ids[kept_rows[owner_row]]
                    outcome.removed[ids[row]] = SemanticDecision(owner, _similarity(similarity), cluster)
                    outcome.kept[row] = False
                    continue
                kept_in_block.append(offset)
                kept_rows.append(row)
            kept_points[before : len(kept_rows)] = block_points[kept_in_block]

    def run(
        self,
        table: pa.Table,
        vectors: np.ndarray | None = None,
        *,
        runtime: ModelRuntime | None = None,
        modality: str = "text",
    ) -> tuple[pa.Table, pa.Table]:
        """A table on its own (a notebook): (kept, rejected), centroids fitted on the table. `modality`
        `image` embeds the media of the image rows with the runtime's CLIP instead of text, and compares
        with `image_epsilon`. `vectors` (one row per table row) skips the embedder; rows it cannot embed
        are kept unchecked."""
        usable = np.ones(table.num_rows, dtype=bool)
        if modality == "image" and "modality" in table.column_names:
            usable = np.asarray(pc.equal(table.column("modality"), "image").to_pylist(), dtype=bool)
        if vectors is None:
            source = vector_source(modality, self.settings, runtime)
            _, embedded = source.vectors(None, "", "", [table.filter(pa.array(usable))])
            points = np.zeros((table.num_rows, embedded.vectors.shape[1]), dtype=np.float32)
            points[usable] = embedded.vectors
            usable[np.flatnonzero(usable)[~embedded.embedded]] = False
        else:
            points = np.asarray(vectors, dtype=np.float32)
        all_ids = table.column("id").to_pylist()
        rows = np.flatnonzero(usable)
        chosen = points[rows]
        ids = [all_ids[row] for row in rows]
        outcome = self.decide(
            ids, chosen, fit_sample_centroids(self.settings, ids, chosen), modality=modality
        )
        removed = pa.array([item in outcome.removed for item in all_ids], pa.bool_())
        decisions = [outcome.removed[item] for item in all_ids if item in outcome.removed]
        rejected = table.filter(removed)
        rejected = rejected.append_column("dup_of", pa.array([d.dup_of for d in decisions], pa.string()))
        rejected = rejected.append_column(
            "dup_similarity", pa.array([d.similarity for d in decisions], pa.float64())
        )
        return table.filter(pc.invert(removed)), mark_rejected(
            rejected, "deduped", [REJECT_SEMANTIC] * len(decisions), [describe(d) for d in decisions]
        )


def describe(decision: SemanticDecision) -> str:
    """The reject detail of a semantic duplicate."""
    return (
        f"semantic duplicate of {decision.dup_of} (cosine similarity {decision.similarity:.3f}, "
        f"cluster {decision.cluster})"
    )


def _unit(points: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length (all-zero rows stay zero, so they match nothing)."""
    if points.size == 0:
        return points
    norms = np.linalg.norm(points, axis=1, keepdims=True)
    return np.divide(points, norms, out=np.zeros_like(points), where=norms > 0)


def _best_match(block: np.ndarray, others: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """For each row of `block`, the highest cosine similarity to a row of `others` and that row (the
    first on ties); minus infinity without others. `others` is read in chunks."""
    best = np.full(len(block), -np.inf, dtype=np.float32)
    which = np.zeros(len(block), dtype=np.int64)
    if others is None or len(others) == 0:
        return best, which
    for start in range(0, len(others), _CHUNK):
        similarity = block @ others[start : start + _CHUNK].T
        column = np.argmax(similarity, axis=1)
        value = similarity[np.arange(len(block)), column]
        better = value > best
        best[better], which[better] = value[better], column[better] + start
    return best, which


def _similarity(value: float | np.floating) -> float:
    """A cosine similarity as recorded: rounded to 6 places and at most 1."""
    return round(min(float(value), 1.0), 6)
