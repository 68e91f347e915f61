"""Cross-shard selection state read from and written to the lake: what earlier shards selected (the
budget they used, per modality, group and cluster, and their embeddings) and the version's k-means
centroids, fitted once on the first shard selected and kept in `<version>/select_state/`."""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa

from curation_dagster.io.lake import Lake
from curation_dagster.spec import ClusterBalancedSettings
from curation_dagster.vectors.kmeans import fit_centroids, stored_centroids
from curation_dagster.vectors.text import EMBEDDINGS, vectors_of

SELECT_STATE = "select_state"
#: The group of rows selected without quotas.
NO_GROUP = "*"


@dataclass
class Usage:
    """Items other shards already selected: in total, per modality, per quota group and per
    (group, cluster)."""

    total: int = 0
    modality: Counter[str] = field(default_factory=Counter)
    group: Counter[str] = field(default_factory=Counter)
    cluster: Counter[tuple[str, int]] = field(default_factory=Counter)

    @classmethod
    def of(cls, used: Usage | Mapping[str, int] | None) -> Usage:
        """A `Usage` from itself, or from the older mapping form (`"*"`: total, else per modality)."""
        if isinstance(used, Usage):
            return used
        counts = dict(used or {})
        modality = Counter({key: value for key, value in counts.items() if key != "*"})
        return cls(total=counts.get("*", sum(modality.values())), modality=modality)


def usage_of_other_shards(lake: Lake, version: str, shard: str) -> Usage:
    """What every other shard's selected file holds, read column by column (older files lack some)."""
    usage = Usage()
    for other in lake.list_shards(version, "selected"):
        if other == shard:
            continue
        path = lake.path(version, "selected", other)
        names = set(lake.schema(path).names)
        columns = [name for name in ("modality", "select_group", "select_cluster") if name in names]
        table = lake.read_table(path, columns=columns)
        modalities = table.column("modality").to_pylist()
        groups = (
            table.column("select_group").to_pylist() if "select_group" in names else [None] * len(modalities)
        )
        clusters = (
            table.column("select_cluster").to_pylist()
            if "select_cluster" in names
            else [None] * len(modalities)
        )
        usage.total += len(modalities)
        usage.modality.update(modalities)
        usage.group.update(group or NO_GROUP for group in groups)
        usage.cluster.update(
            (group or NO_GROUP, int(cluster))
            for group, cluster in zip(groups, clusters, strict=True)
            if cluster is not None
        )
    return usage


#: Which selected items each embedding space holds, as a condition on their `modality`.
SPACE_CONDITIONS = {None: "", "text": " AND s.modality <> 'image'", "image": " AND s.modality = 'image'"}


def prior_embeddings(
    lake: Lake,
    version: str,
    shard: str,
    model: str,
    folder: str = EMBEDDINGS,
    space: str | None = None,
) -> dict[str, np.ndarray]:
    """Embeddings of the items other shards selected, by quota group, from their vectors files in `folder`
    (made by `model`); with `space`, only the items of that embedding space (`image`: image items, `text`:
    the others)."""
    pairs = []
    for other in lake.list_shards(version, "selected"):
        vectors_path = lake.path(version, folder, other)
        if other == shard or not lake.exists(vectors_path):
            continue
        selected = lake.path(version, "selected", other)
        has_group = "select_group" in lake.schema(selected).names
        pairs.append((lake.url(selected), lake.url(vectors_path), has_group))
    if not pairs:
        return {}
    connection = lake.connect()
    rows = []
    for selected_file, vectors_file, has_group in pairs:
        group = "s.select_group" if has_group else "NULL::VARCHAR"
        rows.append(
            connection.sql(
                f"SELECT {group} AS grp, e.vector FROM read_parquet(?) AS s "
                f"JOIN read_parquet(?) AS e USING (id) WHERE e.model = ?{SPACE_CONDITIONS[space]} ORDER BY s.id",
                params=[selected_file, vectors_file, model],
            ).to_arrow_table()
        )
    table = pa.concat_tables(rows)
    if not table.num_rows:
        return {}
    vectors = vectors_of(table.column("vector"))
    groups = np.asarray([group or NO_GROUP for group in table.column("grp").to_pylist()], dtype=object)
    return {str(group): vectors[groups == group] for group in sorted(set(groups.tolist()))}


def centroids_fingerprint(strategy: ClusterBalancedSettings, seed: int, model: str) -> str:
    """What determines the version's centroids: the clustering settings, the seed and the embedder."""
    settings = {"clusters": strategy.clusters, "restarts": strategy.kmeans_init, "seed": seed, "model": model}
    return hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:12]


def version_centroids(
    lake: Lake | None,
    version: str,
    strategy: ClusterBalancedSettings,
    seed: int,
    model: str,
    points: np.ndarray,
    space: str = "text",
) -> np.ndarray:
    """The version's k-means centroids of an embedding space: read from
    `<version>/select_state/kmeans_<fingerprint>.parquet` (`image_kmeans_...` for CLIP image vectors), or
    fitted on `points` (the first shard selected with items of the space) and stored there. Other settings
    get other files, so changing them starts afresh (then materialize the selected stage of every shard
    again)."""
    path = None
    if lake is not None:
        prefix = "" if space == "text" else f"{space}_"
        name = f"{prefix}kmeans_{centroids_fingerprint(strategy, seed, model)}"
        path = lake.path(version, SELECT_STATE, name)
    centroids, _ = stored_centroids(
        lake, path, lambda: fit_centroids(points, strategy.clusters, seed, strategy.kmeans_init)
    )
    return centroids
