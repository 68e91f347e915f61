"""CLIP image embeddings kept in the lake, once per item: `<version>/image_embeddings/<shard>.parquet` holds
(id, media hash, model key, float32 unit vector). A later run of the CLIP filters, or any other step through
`shard_image_embeddings`, reuses every vector whose model key and media hash still match and computes only
the rest."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa

from curation_dagster.errors import ModelNotConfigured
from curation_dagster.io.lake import Lake
from curation_dagster.media import media_bytes
from curation_dagster.models.clip import IMAGE_ERRORS, ClipEmbedder, ImageVectors, describe_error
from curation_dagster.models.runtime import ModelRuntime
from curation_dagster.vectors.text import vectors_of

#: The lake folder (in place of a stage) that holds each shard's image embeddings.
IMAGE_EMBEDDINGS = "image_embeddings"
#: Rows turned into Python objects, and their images embedded, at a time when embedding a whole shard.
SLICE_ROWS = 1024


def media_hash(data: bytes) -> str:
    """A short content hash of the encoded media an embedding was computed from."""
    return hashlib.blake2b(data, digest_size=12).hexdigest()


def image_embeddings_schema(dimension: int) -> pa.Schema:
    return pa.schema(
        [
            pa.field("id", pa.string(), nullable=False),
            pa.field("media_hash", pa.string(), nullable=False),
            pa.field("model", pa.string(), nullable=False),
            pa.field("vector", pa.list_(pa.float32(), dimension), nullable=False),
        ]
    )


class ImageEmbeddingStore:
    """One shard's image embeddings: stored vectors are reused, missing ones computed in the embedder's
    batches, each item at most once per store; `save` merges what was computed into the shard's file.
    Without a lake nothing is read or written."""

    def __init__(
        self, embedder: ClipEmbedder, lake: Lake | None = None, version: str = "", shard: str = ""
    ) -> None:
        self.embedder = embedder
        self.lake, self.version, self.shard = lake, version, shard
        self.computed: set[str] = set()
        self.reused: set[str] = set()
        self.failed: set[str] = set()
        self._key: str | None = None
        self._stored: dict[str, tuple[str, np.ndarray]] | None = None
        self._seen: dict[str, tuple[np.ndarray | None, str | None]] = {}
        self._dirty = False

    @property
    def key(self) -> str:
        if self._key is None:
            self._key = self.embedder.key
        return self._key

    @property
    def path(self) -> str | None:
        return self.lake.path(self.version, IMAGE_EMBEDDINGS, self.shard) if self.lake is not None else None

    def _load(self) -> dict[str, tuple[str, np.ndarray]]:
        """The shard file's vectors made with this model, by id; vectors of other models are dropped on save."""
        if self._stored is not None:
            return self._stored
        self._stored = {}
        path = self.path
        if self.lake is None or path is None or not self.lake.exists(path):
            return self._stored
        table = self.lake.read_table(path)
        vectors = vectors_of(table.column("vector")) if table.num_rows else np.zeros((0, 0), np.float32)
        columns = (table.column(name).to_pylist() for name in ("id", "media_hash", "model"))
        for row, (item, digest, model) in enumerate(zip(*columns, strict=True)):
            if model == self.key:
                self._stored[item] = (digest, vectors[row])
            else:
                self._dirty = True
        return self._stored

    def embed(self, rows: Sequence[Mapping[str, Any]]) -> ImageVectors:
        """Vectors for rows with `id` and `media` (or a file `uri`), aligned with them; an item whose media
        cannot be read or decoded gets a zero row and its error."""
        stored = self._load()
        pending: dict[str, tuple[str, bytes]] = {}
        for row in rows:
            item = str(row["id"])
            if item in self._seen or item in pending:
                continue
            try:
                data = media_bytes(row)
            except IMAGE_ERRORS as error:
                self._record(item, None, f"media unreadable: {describe_error(error)}")
                continue
            digest = media_hash(data)
            if item in stored and stored[item][0] == digest:
                self._seen[item] = (stored[item][1], None)
                self.reused.add(item)
            else:
                pending[item] = (digest, data)
        if pending:
            fresh = self.embedder.embed_images([data for _, data in pending.values()])
            for position, (item, (digest, _)) in enumerate(pending.items()):
                problem = fresh.errors[position]
                vector = None if problem else fresh.vectors[position]
                self._record(item, vector, problem)
                if vector is not None:
                    stored[item] = (digest, vector)
                    self.computed.add(item)
                    self._dirty = True
        found = [self._seen[str(row["id"])] for row in rows]
        dimension = next((len(vector) for vector, _ in found if vector is not None), None)
        if dimension is None:
            dimension = self.embedder.dimension() if found else 0
        vectors = np.zeros((len(found), dimension), dtype=np.float32)
        for position, (vector, _) in enumerate(found):
            if vector is not None:
                vectors[position] = vector
        return ImageVectors(vectors, [error for _, error in found])

    def _record(self, item: str, vector: np.ndarray | None, error: str | None) -> None:
        self._seen[item] = (vector, error)
        if error is not None:
            self.failed.add(item)

    def save(self) -> None:
        """Rewrite the shard's file when this store computed vectors or dropped another model's, atomically;
        rows are sorted by id, so the same items give the same file."""
        path = self.path
        if self.lake is None or path is None or not self._dirty:
            return
        stored = self._load()
        if not stored:
            self.lake.remove(path)
            return
        order = sorted(stored)
        dimension = len(stored[order[0]][1])
        flat = pa.array(np.concatenate([stored[item][1] for item in order]).astype(np.float32), pa.float32())
        table = pa.table(
            {
                "id": order,
                "media_hash": [stored[item][0] for item in order],
                "model": [self.key] * len(order),
                "vector": pa.FixedSizeListArray.from_arrays(flat, dimension),
            },
            schema=image_embeddings_schema(dimension),
        )
        self.lake.write_table(path, table)
        self._dirty = False

    def finish(self) -> dict[str, Any]:
        """Save, and say what the store did, for the stage's metadata."""
        self.save()
        path = self.path
        return {
            "image_embeddings": {
                "model": self.key if (self.computed or self.reused) else None,
                "computed": len(self.computed),
                "reused": len(self.reused),
                "failed": len(self.failed),
                "path": self.lake.url(path) if self.lake is not None and path is not None else None,
            }
        }


@dataclass(frozen=True)
class ShardImageEmbeddings:
    """The image embeddings of a shard's items, aligned with the rows given, and what it took."""

    ids: list[str]
    """The items, in the order of the rows given."""
    vectors: np.ndarray
    """(n, d) float32 unit vectors; rows where `embedded` is false are zeros."""
    embedded: np.ndarray
    """Whether the item's image could be read and decoded."""
    errors: list[str | None]
    computed: int
    reused: int
    model: str


def embedding_rows(batch_size: int) -> int:
    """Rows embedded per call: whole model batches, about `SLICE_ROWS` images, so a call holds that many
    encoded images and the model runs on one batch while the next is decoded."""
    return batch_size * max(1, SLICE_ROWS // batch_size)


def shard_image_embeddings(
    lake: Lake | None, version: str, shard: str, items: pa.Table, embedder: ClipEmbedder
) -> ShardImageEmbeddings:
    """The CLIP embedding of every item in `items` (columns `id`, `media` and/or `uri`), reused from
    `<version>/image_embeddings/<shard>.parquet` where model key and media hash match, else computed and
    saved there. For selection and semantic dedup; the CLIP filters share one store per shard instead."""
    return stream_image_embeddings(lake, version, shard, [items], embedder)


def stream_image_embeddings(
    lake: Lake | None,
    version: str,
    shard: str,
    batches: Iterable[pa.Table | pa.RecordBatch],
    embedder: ClipEmbedder,
) -> ShardImageEmbeddings:
    """As `shard_image_embeddings`, for rows that arrive in batches (a shard read with `Lake.iter_batches`):
    they are embedded `embedding_rows` at a time, so memory holds that many images, not the shard's."""
    store = ImageEmbeddingStore(embedder, lake, version, shard)
    rows = embedding_rows(embedder.runtime.batch_size)
    ids: list[str] = []
    parts: list[ImageVectors] = []
    pending: list[pa.Table] = []
    waiting = 0

    def embed(table: pa.Table) -> None:
        columns = [name for name in ("id", "media", "uri") if name in table.column_names]
        ids.extend(str(item) for item in table.column("id").to_pylist())
        parts.append(store.embed(table.select(columns).to_pylist()))

    for batch in batches:
        table = batch if isinstance(batch, pa.Table) else pa.Table.from_batches([batch])
        if table.num_rows == 0:
            continue
        pending.append(table)
        waiting += table.num_rows
        if waiting < rows:
            continue
        joined = pa.concat_tables(pending)
        full = waiting - waiting % rows
        for start in range(0, full, rows):
            embed(joined.slice(start, rows))
        pending, waiting = ([joined.slice(full)], waiting - full) if waiting > full else ([], 0)
    if pending:
        embed(pa.concat_tables(pending))
    store.save()
    dimension = max((part.vectors.shape[1] for part in parts), default=0)
    vectors = (
        np.concatenate([part.vectors for part in parts]) if parts else np.zeros((0, dimension), np.float32)
    )
    errors = [error for part in parts for error in part.errors]
    return ShardImageEmbeddings(
        ids=ids,
        vectors=vectors,
        embedded=np.array([error is None for error in errors], dtype=bool),
        errors=errors,
        computed=len(store.computed),
        reused=len(store.reused),
        model=store.key,
    )


def clip_embedder(runtime: ModelRuntime | None, setting: str) -> ClipEmbedder:
    """The runtime's CLIP embedder for a step that `setting` turned on; without CLIP weights configured, a
    `ModelNotConfigured` that names the setting and `models.clip_weights`."""
    runtime = runtime or ModelRuntime()
    if runtime.load_clip is None or not runtime.clip_weights:
        raise ModelNotConfigured(
            f"{setting} needs CLIP image embeddings: set models.clip_weights (CURATION_CLIP_WEIGHTS) to a local "
            ".pt or .safetensors open_clip checkpoint and models.clip_arch (CURATION_CLIP_ARCH) to its "
            "architecture, an open_clip name or a local model-config .json; nothing is downloaded at run time"
        )
    return ClipEmbedder(runtime)
