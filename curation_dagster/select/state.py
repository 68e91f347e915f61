"""Cross-shard selection state read from and written to the lake: what earlier shards selected (the
budget they used, per modality, group and cluster, and their embeddings) and the version's k-means
centroids, fitted once on the first shard selected and kept in `<version>/select_state/`."""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa

from curation_dagster.io.lake import Lake, check_segment
from curation_dagster.spec import ClusterBalancedSettings
from curation_dagster.vectors.kmeans import fit_centroids, stored_centroids
from curation_dagster.vectors.text import EMBEDDINGS, vectors_of

SELECT_STATE = "select_state"
#: The version's lock that shards claim the selection budget under, one at a time.
SELECTION_LOCK = "selection"
#: The selection ledger's name in `select_state/` (`usage.json`, `usage/<shard>/<digest>.json`).
USAGE = "usage"
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

    def plus(self, other: Usage) -> Usage:
        return Usage(
            total=self.total + other.total,
            modality=self.modality + other.modality,
            group=self.group + other.group,
            cluster=self.cluster + other.cluster,
        )

    def minus(self, other: Usage) -> Usage:
        return Usage(
            total=self.total - other.total,
            modality=self.modality - other.modality,
            group=self.group - other.group,
            cluster=self.cluster - other.cluster,
        )

    @classmethod
    def of(cls, used: Usage | Mapping[str, int] | None) -> Usage:
        """A `Usage` from itself, or from the older mapping form (`"*"`: total, else per modality)."""
        if isinstance(used, Usage):
            return used
        counts = dict(used or {})
        modality = Counter({key: value for key, value in counts.items() if key != "*"})
        return cls(total=counts.get("*", sum(modality.values())), modality=modality)


def usage_of_table(table: pa.Table) -> Usage:
    """What a table of selected rows uses (a selected file of an earlier release may lack the group and
    cluster columns)."""
    usage = Usage()
    names = set(table.column_names)
    modalities = table.column("modality").to_pylist()
    groups = table.column("select_group").to_pylist() if "select_group" in names else [None] * len(modalities)
    clusters = (
        table.column("select_cluster").to_pylist() if "select_cluster" in names else [None] * len(modalities)
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


def usage_of_shard(lake: Lake, version: str, shard: str) -> Usage:
    """What a shard's selected file uses, read column by column."""
    path = lake.path(version, "selected", shard)
    names = set(lake.schema(path).names)
    columns = [name for name in ("modality", "select_group", "select_cluster") if name in names]
    return usage_of_table(lake.read_table(path, columns=columns))


def _usage_json(usage: Usage) -> dict[str, Any]:
    return {
        "total": usage.total,
        "modality": dict(sorted(usage.modality.items())),
        "group": dict(sorted(usage.group.items())),
        "cluster": sorted([group, cluster, count] for (group, cluster), count in usage.cluster.items()),
    }


def _usage_of_json(data: dict[str, Any]) -> Usage:
    return Usage(
        total=int(data["total"]),
        modality=Counter(data["modality"]),
        group=Counter(data["group"]),
        cluster=Counter({(group, int(cluster)): int(count) for group, cluster, count in data["cluster"]}),
    )


class UsageLedger:
    """What the version's shards selected, kept as a running total so a shard reads one small file, not
    every earlier shard's selection: `<version>/select_state/usage.json` holds the total and, per shard,
    the digest of its part; `<version>/select_state/usage/<shard>/<digest>.json` holds each part. The
    total is rewritten in one atomic write, and the part it names is kept until a newer total replaces
    it, so whatever a writer's crash leaves, the total is the sum of the parts it names. Callers hold
    the version's selection lock; the selected stage's claim journal rolls back a shard whose run died
    between its part and its output (`forget`)."""

    def __init__(self, lake: Lake, version: str) -> None:
        self.lake, self.version = lake, version
        self.folder = lake.stage_dir(version, SELECT_STATE)

    def others(self, shard: str) -> Usage:
        """What every shard but `shard` selected."""
        ledger = self._ledger()
        part = ledger["parts"].get(shard)
        total = _usage_of_json(ledger["total"])
        return total.minus(self._part(shard, part)) if part else total

    def put(self, shard: str, usage: Usage) -> None:
        """Record `usage` as `shard`'s part, replacing any it had."""
        ledger = self._ledger()
        digest = self._write_part(shard, usage)
        old = ledger["parts"].get(shard)
        total = _usage_of_json(ledger["total"])
        if old:
            total = total.minus(self._part(shard, old))
        total = total.plus(usage)
        ledger["parts"][shard] = digest
        self._save(total, ledger["parts"])
        if old and old != digest:
            self.lake.remove(self._part_path(shard, old))

    def forget(self, shard: str) -> None:
        """Take `shard`'s part out of the total."""
        ledger = self._ledger()
        old = ledger["parts"].pop(shard, None)
        if old is None:
            return
        self._save(_usage_of_json(ledger["total"]).minus(self._part(shard, old)), ledger["parts"])
        self.lake.remove(self._part_path(shard, old))

    def _ledger(self) -> dict[str, Any]:
        """The ledger; on a version selected by an earlier release (selected files, no ledger), built
        once from the selected files."""
        data = self.lake.read_bytes(f"{self.folder}/{USAGE}.json")
        if data is not None:
            ledger: dict[str, Any] = json.loads(data)
            return ledger
        total, parts = Usage(), {}
        for shard in self.lake.list_shards(self.version, "selected"):
            usage = usage_of_shard(self.lake, self.version, shard)
            parts[shard] = self._write_part(shard, usage)
            total = total.plus(usage)
        if parts:
            self._save(total, parts)
        return {"total": _usage_json(total), "parts": parts}

    def _save(self, total: Usage, parts: dict[str, str]) -> None:
        data = {"total": _usage_json(total), "parts": dict(sorted(parts.items()))}
        self.lake.write_bytes(f"{self.folder}/{USAGE}.json", json.dumps(data, sort_keys=True).encode())

    def _write_part(self, shard: str, usage: Usage) -> str:
        """Write a shard's part under its content's digest; returns the digest."""
        data = json.dumps(_usage_json(usage), sort_keys=True).encode()
        digest = hashlib.sha256(data).hexdigest()[:16]
        self.lake.write_bytes(self._part_path(shard, digest), data)
        return digest

    def _part(self, shard: str, digest: str) -> Usage:
        with self.lake.fs.open(self._part_path(shard, digest), "rb") as handle:
            return _usage_of_json(json.loads(handle.read()))

    def _part_path(self, shard: str, digest: str) -> str:
        return f"{self.folder}/{USAGE}/{check_segment(shard)}/{check_segment(digest, 'digest')}.json"


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
