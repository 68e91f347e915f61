"""Filters on CLIP image embeddings: image-caption alignment, and aesthetic and NSFW heads.

The three filters of a chain share one embedding store per shard (`FilterContext.shared`): each image is
embedded at most once, on the accelerator, and kept in the lake, where re-runs reuse it and other steps
can read it (`shard_image_embeddings`).
"""

from __future__ import annotations

import math
import re
from abc import abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import pyarrow as pa

from curation_dagster.errors import ModelNotConfigured
from curation_dagster.filters.base import Filter, Reject, Verdicts
from curation_dagster.filters.context import FilterContext
from curation_dagster.models.clip import ClipEmbedder
from curation_dagster.models.loading import require_local_path
from curation_dagster.models.runtime import CLIP_NOT_CONFIGURED, ModelRuntime
from curation_dagster.spec import AestheticSettings, ClipScoreSettings, NsfwSettings
from curation_dagster.vectors.image import ImageEmbeddingStore

#: The key of the chain's shared image-embedding store in its `FilterContext`.
STORE = "clip_image_embeddings"
HEAD_SUFFIXES = (".safetensors", ".pt", ".pth", ".bin")


class ClipFilter(Filter):
    """Base of the CLIP filters: embeddings from the shared store, a reject for unreadable images, and a
    skip (null scores, recorded in the context) for an optional filter when no CLIP model is configured.
    A subclass turns vectors into scores and a score into a verdict."""

    needs_accelerator = True
    settings: ClipScoreSettings | AestheticSettings | NsfwSettings

    def __init__(self, runtime: ModelRuntime | None = None, context: FilterContext | None = None) -> None:
        self.runtime = runtime
        self.context = context if context is not None else FilterContext()

    def input_columns(self) -> Sequence[str]:
        return ("media", "uri")

    def store(self) -> ImageEmbeddingStore | None:
        """The chain's embedding store; None when this optional filter is skipped for want of CLIP."""
        runtime = self.runtime
        if runtime is None or runtime.load_clip is None:
            if self.settings.optional:
                self.context.skipped[self.name] = "no CLIP model: models.clip_weights is not set"
                return None
            raise ModelNotConfigured(
                f"the {self.name} filter: {CLIP_NOT_CONFIGURED}. Or set `optional: true` on the filter to "
                "skip it when no CLIP model is configured"
            )
        context = self.context
        return context.shared(
            STORE,
            lambda: ImageEmbeddingStore(ClipEmbedder(runtime), context.lake, context.version, context.shard),
        )

    @abstractmethod
    def scores(
        self, table: pa.Table, vectors: np.ndarray, usable: np.ndarray, embedder: ClipEmbedder
    ) -> list[float | None]:
        """One score per row from its unit image vector; rows not `usable` get None."""

    @abstractmethod
    def verdict(self, score: float | None) -> Reject:
        """None to keep a row whose image was embedded, or `(rule, detail)` to reject it."""

    def evaluate(self, table: pa.Table) -> Verdicts:
        score_name = self.score_fields[0].name
        store = self.store()
        if store is None:
            return Verdicts(
                {score_name: [None] * table.num_rows}, [None] * table.num_rows, [None] * table.num_rows
            )
        columns = [name for name in ("id", "media", "uri") if name in table.column_names]
        embedded = store.embed(table.select(columns).to_pylist())
        usable = np.array([error is None for error in embedded.errors], dtype=bool)
        scores = self.scores(table, embedded.vectors, usable, store.embedder)
        reasons: list[str | None] = []
        details: list[str | None] = []
        for score, error in zip(scores, embedded.errors, strict=True):
            verdict: Reject = ("decode", error) if error is not None else self.verdict(score)
            reasons.append(None if verdict is None else self.code(verdict[0]))
            details.append(None if verdict is None else verdict[1])
        return Verdicts({score_name: list(scores)}, reasons, details)


class ClipScore(ClipFilter):
    """Image-caption alignment: cosine similarity of CLIP's image and text embeddings. Captions are
    embedded per batch; image vectors come from the shared store."""

    name = "clip_score"
    settings: ClipScoreSettings
    score_fields: ClassVar = [pa.field("clip_score", pa.float64())]

    def __init__(
        self,
        settings: ClipScoreSettings,
        runtime: ModelRuntime | None = None,
        context: FilterContext | None = None,
    ) -> None:
        super().__init__(runtime, context)
        self.settings = settings

    def input_columns(self) -> Sequence[str]:
        return ("media", "uri", "text")

    def scores(
        self, table: pa.Table, vectors: np.ndarray, usable: np.ndarray, embedder: ClipEmbedder
    ) -> list[float | None]:
        captions = table.column("text").to_pylist()
        rows = [i for i, caption in enumerate(captions) if usable[i] and caption and caption.strip()]
        result: list[float | None] = [None] * table.num_rows
        if not rows:
            return result
        texts = embedder.embed_texts([str(captions[i]) for i in rows])
        cosines = np.einsum("nd,nd->n", vectors[rows].astype(np.float64), texts.astype(np.float64))
        for row, value in zip(rows, cosines.tolist(), strict=True):
            result[row] = float(value)
        return result

    def verdict(self, score: float | None) -> Reject:
        if score is None:
            return (
                ("no_caption", "the item has no caption")
                if self.settings.without_caption == "reject"
                else None
            )
        if score < self.settings.min_score:
            return "misaligned", f"CLIP score {score:.3f} < {self.settings.min_score}"
        return None


@dataclass(frozen=True)
class Head:
    """A linear or MLP head on CLIP image embeddings: layers `(weight (out, in), bias (out,))` applied in
    order with `activation` between them; the last layer has one output."""

    layers: tuple[tuple[np.ndarray, np.ndarray], ...]
    activation: str

    @property
    def input_dim(self) -> int:
        return int(self.layers[0][0].shape[1])

    def __call__(self, vectors: np.ndarray) -> np.ndarray:
        """The head's output for each row of `vectors` (n, input_dim), as float64 (n,)."""
        hidden = vectors.astype(np.float64)
        for index, (weight, bias) in enumerate(self.layers):
            hidden = hidden @ weight.T + bias
            if index < len(self.layers) - 1:
                hidden = _activate(hidden, self.activation)
        return hidden[:, 0]


def _activate(values: np.ndarray, activation: str) -> np.ndarray:
    if activation == "relu":
        return np.maximum(values, 0.0)
    if activation == "gelu":
        from scipy.special import erf

        gelu: np.ndarray = 0.5 * values * (1.0 + erf(values / math.sqrt(2.0)))
        return gelu
    return values


def _natural(key: str) -> list[Any]:
    return [(0, int(part), "") if part.isdigit() else (1, 0, part) for part in re.split(r"(\d+)", key)]


def load_head(path: str, setting: str, activation: str = "relu") -> Head:
    """A head from a local state dict: `weight`/`bias` (linear) or `<layer>.weight`/`<layer>.bias` pairs
    (MLP) applied in natural key order (`2.` before `10.`); a clear error when the shapes do not chain."""
    file = require_local_path(path, setting, kind=".safetensors or .pt head state dict")
    if file.suffix not in HEAD_SUFFIXES:
        raise ModelNotConfigured(f"{setting} is {path!r}; use a .safetensors or .pt state dict")
    tensors = _read_state_dict(file, setting)
    layers: dict[str, dict[str, np.ndarray]] = {}
    for key, value in tensors.items():
        prefix, _, part = key.rpartition(".") if "." in key else ("", "", key)
        if part not in ("weight", "bias"):
            raise ModelNotConfigured(
                f"{setting}: unexpected tensor {key!r}; a head holds only weights and biases"
            )
        layers.setdefault(prefix, {})[part] = np.asarray(value, dtype=np.float64)
    if not layers:
        raise ModelNotConfigured(f"{setting}: {path!r} holds no tensors")
    chain: list[tuple[np.ndarray, np.ndarray]] = []
    for prefix in sorted(layers, key=_natural):
        parts = layers[prefix]
        weight = parts.get("weight")
        label = f"{prefix}.weight" if prefix else "weight"
        if weight is None or weight.ndim != 2:
            raise ModelNotConfigured(f"{setting}: layer {prefix or '(top)'!r} needs a 2-D {label}")
        bias = parts.get("bias", np.zeros(weight.shape[0]))
        if bias.shape != (weight.shape[0],):
            raise ModelNotConfigured(f"{setting}: {label} is {weight.shape} but its bias is {bias.shape}")
        if chain and chain[-1][0].shape[0] != weight.shape[1]:
            raise ModelNotConfigured(
                f"{setting}: {label} takes {weight.shape[1]} inputs but the layer before gives "
                f"{chain[-1][0].shape[0]}"
            )
        chain.append((weight, bias))
    if chain[-1][0].shape[0] != 1:
        raise ModelNotConfigured(
            f"{setting}: the last layer must have one output, not {chain[-1][0].shape[0]}"
        )
    return Head(tuple(chain), activation)


def _read_state_dict(file: Any, setting: str) -> dict[str, np.ndarray]:
    """Tensors by name from a .safetensors file (numpy, no torch), or a .pt state dict loaded without
    running pickled code (`weights_only=True`)."""
    if file.suffix == ".safetensors":
        from safetensors.numpy import load_file

        try:
            return dict(load_file(str(file)))
        except (OSError, ValueError) as error:
            raise ModelNotConfigured(
                f"{setting}: {file} is not a readable .safetensors file: {error}"
            ) from None
    import torch

    try:
        loaded = torch.load(file, map_location="cpu", weights_only=True)
    except (OSError, RuntimeError, ValueError, EOFError) as error:
        raise ModelNotConfigured(
            f"{setting}: {file} is not a readable state dict: {str(error)[:200]}"
        ) from None
    if isinstance(loaded, dict) and isinstance(loaded.get("state_dict"), dict):
        loaded = loaded["state_dict"]
    if not isinstance(loaded, dict) or not all(isinstance(v, torch.Tensor) for v in loaded.values()):
        raise ModelNotConfigured(f"{setting}: {file} is not a state dict of tensors")
    return {str(key): value.detach().float().numpy() for key, value in loaded.items()}


class HeadFilter(ClipFilter):
    """A head from `settings.weights` scores each image vector; loaded once per filter, checked against
    the CLIP model's embedding dimension."""

    settings: AestheticSettings | NsfwSettings
    _head: Head | None = None

    def head(self) -> Head:
        if self._head is None:
            self._head = load_head(self.settings.weights, f"{self.name}.weights", self.settings.activation)
        return self._head

    def transform(self, outputs: np.ndarray) -> np.ndarray:
        """The score from the head's raw output."""
        return outputs

    def scores(
        self, table: pa.Table, vectors: np.ndarray, usable: np.ndarray, embedder: ClipEmbedder
    ) -> list[float | None]:
        head = self.head()
        if vectors.shape[1] != head.input_dim:
            raise ModelNotConfigured(
                f"{self.name}.weights takes {head.input_dim}-dimensional embeddings but the CLIP model "
                f"({self.runtime.clip_arch if self.runtime else '?'}) gives {vectors.shape[1]}"
            )
        result: list[float | None] = [None] * table.num_rows
        rows = np.flatnonzero(usable)
        if rows.size:
            for row, value in zip(rows.tolist(), self.transform(head(vectors[rows])).tolist(), strict=True):
                result[row] = float(value)
        return result


class Aesthetic(HeadFilter):
    """An aesthetic score (the head's raw output, LAION-Aesthetics' 0-10 scale) below `min_score` rejects."""

    name = "aesthetic"
    settings: AestheticSettings
    score_fields: ClassVar = [pa.field("aesthetic_score", pa.float64())]

    def __init__(
        self,
        settings: AestheticSettings,
        runtime: ModelRuntime | None = None,
        context: FilterContext | None = None,
    ) -> None:
        super().__init__(runtime, context)
        self.settings = settings

    def verdict(self, score: float | None) -> Reject:
        if score is not None and score < self.settings.min_score:
            return "below_threshold", f"aesthetic score {score:.2f} < {self.settings.min_score}"
        return None


class Nsfw(HeadFilter):
    """An NSFW probability (sigmoid of the head's output) above `max_score` rejects."""

    name = "nsfw"
    settings: NsfwSettings
    score_fields: ClassVar = [pa.field("nsfw_score", pa.float64())]

    def __init__(
        self,
        settings: NsfwSettings,
        runtime: ModelRuntime | None = None,
        context: FilterContext | None = None,
    ) -> None:
        super().__init__(runtime, context)
        self.settings = settings

    def transform(self, outputs: np.ndarray) -> np.ndarray:
        result: np.ndarray = 1.0 / (1.0 + np.exp(-np.clip(outputs, -500, 500)))
        return result

    def verdict(self, score: float | None) -> Reject:
        if score is not None and score > self.settings.max_score:
            return "above_threshold", f"NSFW probability {score:.3f} > {self.settings.max_score}"
        return None
