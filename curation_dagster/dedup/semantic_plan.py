"""The semantic step of the deduped stage: per modality of `dedup.semantic.modalities`, the shard's items
that exact and near dedup kept, embedded, clustered and compared with what earlier shards kept."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from curation_dagster.dedup.plan import (
    DedupPlan,
)
from curation_dagster.dedup.semantic import (
    SEMANTIC_INDEXES,
    SemanticDedup,
    SemanticIndex,
    SemanticOutcome,
    VectorSource,
    clustering_fingerprint,
    vector_source,
    version_centroids,
)
from curation_dagster.io.lake import Lake
from curation_dagster.models.runtime import ModelRuntime
from curation_dagster.spec import VersionSpec
from curation_dagster.vectors.text import ShardEmbeddings


@dataclass
class _SemanticModality:
    """One modality's semantic dedup in a shard: its decisions, the index of the items it kept, and what
    it took (vectors computed or reused, centroids fitted or reused)."""

    modality: str
    index: SemanticIndex
    ids: list[str]
    points: np.ndarray
    outcome: SemanticOutcome
    clusters: int
    centroids_fitted: bool
    embeddings: dict[str, Any]
    epsilon: float

    def write_index(self, shard: str) -> None:
        """The shard's kept items, or no file when it kept none."""
        if self.outcome.kept.any():
            self.index.write(shard, self.outcome.index(self.ids, self.points, self.index.fingerprint))
        else:
            self.index.remove(shard)

    def details(self) -> dict[str, Any]:
        outcome = self.outcome
        return {
            "items_checked": len(self.ids),
            "epsilon": self.epsilon,
            "clusters": self.clusters,
            "centroids": "fitted on this shard" if self.centroids_fitted else "reused",
            "largest_cluster_in_shard": max(outcome.cluster_sizes.values(), default=0),
            "earlier_items_compared": outcome.earlier_compared,
            "embeddings": self.embeddings,
        }


@dataclass
class SemanticStep:
    """The semantic step of a shard's dedup: one part per modality of `dedup.semantic.modalities`, each in
    its own embedding space (centroids, index folder, fingerprint)."""

    lake: Lake
    version: str
    parts: list[_SemanticModality]

    def write_index(self, shard: str) -> None:
        """Each modality's index file for the shard; index files of modalities now off are removed."""
        for part in self.parts:
            part.write_index(shard)
        on = {part.modality for part in self.parts}
        for modality, folder in SEMANTIC_INDEXES.items():
            if modality not in on:
                self.lake.remove(self.lake.path(self.version, folder, shard))

    def metadata(self, examples: str) -> dict[str, Any]:
        """Totals over the modalities, and each modality's details (`semantic_dedup` for text,
        `<modality>_semantic_dedup` for the others)."""
        out: dict[str, Any] = {
            "semantic_duplicates": sum(len(part.outcome.removed) for part in self.parts),
            "semantic_duplicates_of_other_shards": sum(part.outcome.cross_shard for part in self.parts),
            "semantic_clusters_touched": sum(part.outcome.clusters_touched for part in self.parts),
            "semantic_duplicates_by_modality": {
                part.modality: len(part.outcome.removed) for part in self.parts
            },
        }
        for part in self.parts:
            key = "semantic_dedup" if part.modality == "text" else f"{part.modality}_semantic_dedup"
            out[key] = part.details()
        out["semantic_example_pairs"] = examples
        return out


@dataclass
class ModalityVectors:
    """One modality's vectors of a shard, computed with no lock held: every item of the modality that is
    unique in the shard (exact and near dedup may remove some of them later)."""

    source: VectorSource
    ids: list[str]
    embedded: ShardEmbeddings


def compute_semantic(
    spec: VersionSpec,
    lake: Lake,
    shard: str,
    source: str,
    local_duplicates: set[str],
    runtime: ModelRuntime | None,
) -> list[ModalityVectors] | None:
    """The embeddings semantic dedup needs, for every modality of `dedup.semantic.modalities`, stored in
    and reused from the version's embedding stores; None when semantic dedup is off. Reads the shard
    `batch_rows` rows at a time (images are embedded as they arrive, never all held at once)."""
    settings = spec.dedup.semantic
    if not settings.enabled:
        return None
    modalities = [modality for modality in SEMANTIC_INDEXES if modality in settings.modalities]
    sources = [vector_source(modality, settings, runtime) for modality in modalities]
    for vectors in sources:  # fail on an incompatible index before embedding, not after
        SemanticIndex(
            lake, spec.name, vectors.index, clustering_fingerprint(settings, vectors.model)
        ).earlier(shard)
    skip = pa.array(sorted(local_duplicates), pa.string())
    names = set(lake.schema(source).names)
    computed = []
    for vectors in sources:
        columns = sorted({"modality", *(name for name in vectors.columns if name in names)})

        def items(vectors: VectorSource = vectors, columns: list[str] = columns) -> Iterator[pa.Table]:
            for batch in lake.iter_batches(source, vectors.batch_rows, columns=columns):
                chosen = pc.and_(
                    pc.equal(batch.column("modality"), vectors.modality),
                    pc.invert(pc.is_in(batch.column("id"), skip)),
                )
                yield pa.Table.from_batches([batch]).filter(chosen)

        ids, embedded = vectors.vectors(lake, spec.name, shard, items())
        computed.append(ModalityVectors(vectors, ids, embedded))
    return computed


def plan_semantic(
    spec: VersionSpec, lake: Lake, shard: str, computed: list[ModalityVectors] | None, plan: DedupPlan
) -> SemanticStep | None:
    """Semantic dedup of the items of each modality that exact, near and media dedup kept, against the
    items earlier shards kept in the same clusters of the same modality (hold the version's dedup lock:
    the first shard fits the version's centroids); records its decisions in `plan`."""
    if computed is None:
        return None
    settings = spec.dedup.semantic
    removed = plan.exact.keys() | plan.near.keys() | plan.media.keys()
    parts = []
    for modality in computed:
        index = SemanticIndex(
            lake, spec.name, modality.source.index, clustering_fingerprint(settings, modality.source.model)
        )
        parts.append(_plan_semantic_modality(spec, lake, shard, removed, modality, index))
    for part in parts:
        plan.semantic.update(part.outcome.removed)
    return SemanticStep(lake, spec.name, parts)


def _plan_semantic_modality(
    spec: VersionSpec,
    lake: Lake,
    shard: str,
    removed: set[str],
    computed: ModalityVectors,
    index: SemanticIndex,
) -> _SemanticModality:
    """Semantic dedup of one modality's embedded items that no other step removed."""
    settings = spec.dedup.semantic
    vectors, embedded = computed.source, computed.embedded
    usable = [
        position
        for position, (item, ok) in enumerate(zip(computed.ids, embedded.embedded, strict=True))
        if ok and item not in removed
    ]
    ids = [computed.ids[position] for position in usable]
    points = embedded.vectors[usable]
    centroids, fitted = version_centroids(lake, spec.name, settings, vectors, ids, points)
    outcome = SemanticDedup(settings).decide(
        ids, points, centroids, index.earlier(shard), modality=vectors.modality
    )
    return _SemanticModality(
        vectors.modality,
        index,
        ids,
        points,
        outcome,
        len(centroids),
        fitted and len(centroids) > 0,
        {"model": embedded.model, "computed": embedded.computed, "reused": embedded.reused},
        settings.epsilon_of(vectors.modality),
    )
