"""CLIP image and text embeddings on the runtime's device: batches of `runtime.batch_size`, inference mode,
autocast in the runtime's precision on CUDA only, L2-normalised float32 vectors. An image that cannot be
decoded is reported for that item; the rest of the batch is embedded."""

from __future__ import annotations

import hashlib
import io
import os
import re
import threading
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from curation_dagster.errors import ModelNotConfigured
from curation_dagster.models.device import autocast
from curation_dagster.models.runtime import CLIP_NOT_CONFIGURED, ModelRuntime

#: What decoding or preprocessing an image can raise; Pillow's decompression-bomb guard is an Exception.
IMAGE_ERRORS: tuple[type[Exception], ...] = (OSError, ValueError, RuntimeError, SyntaxError)

#: Threads that decode and preprocess images for the model.
DECODE_THREADS = min(8, os.cpu_count() or 1)

_DIGESTS: dict[tuple[str, int, int], str] = {}
_DIGEST_LOCK = threading.Lock()


def file_digest(path: Path) -> str:
    """A content hash of a weight or config file, computed once per process while size and mtime hold."""
    resolved = path.expanduser().resolve()
    stat = resolved.stat()
    key = (str(resolved), stat.st_size, stat.st_mtime_ns)
    with _DIGEST_LOCK:
        if key not in _DIGESTS:
            with resolved.open("rb") as handle:
                _DIGESTS[key] = hashlib.file_digest(
                    handle, lambda: hashlib.blake2b(digest_size=12)
                ).hexdigest()
        return _DIGESTS[key]


def clip_model_key(architecture: str, weights: str) -> str:
    """What identifies the vectors a CLIP model produces: the architecture (a name, or a config file's
    name and content hash) and the weight file's content hash. Stored vectors with another key are stale."""
    if not weights:
        raise ModelNotConfigured(CLIP_NOT_CONFIGURED)
    arch = architecture
    if architecture.endswith(".json"):
        config = Path(architecture)
        arch = f"{config.stem}#{file_digest(config)}" if config.is_file() else architecture
    return f"{arch}@{file_digest(Path(weights))}"


@dataclass(frozen=True)
class ImageVectors:
    """Embeddings of a list of images, aligned with it."""

    vectors: np.ndarray
    """(n, d) float32 unit vectors; rows with an error are zeros."""
    errors: list[str | None]
    """Why an image could not be embedded (decode or preprocessing), else None."""


class ClipEmbedder:
    """Embeds images and texts with the runtime's CLIP model, loaded on first use."""

    def __init__(self, runtime: ModelRuntime) -> None:
        self.runtime = runtime

    @property
    def key(self) -> str:
        return clip_model_key(self.runtime.clip_arch, self.runtime.clip_weights)

    def _model(self) -> tuple[Any, Any, Any]:
        return self.runtime.clip()

    def prepare(self, data: bytes, preprocess: Any, size: int) -> Any:
        """One image's tensor: decoded at reduced size where the format allows (JPEG), then the model's
        preprocessing (resize, centre crop, normalise)."""
        from PIL import Image

        with Image.open(io.BytesIO(data)) as image:
            image.draft("RGB", (size, size))
            return preprocess(image.convert("RGB"))

    def _prepared(self, data: bytes, preprocess: Any, size: int) -> tuple[Any, str | None]:
        """`prepare`, with a decoding error returned as its description instead of raised."""
        from PIL import Image

        caught: tuple[type[Exception], ...] = (*IMAGE_ERRORS, Image.DecompressionBombError)
        try:
            return self.prepare(data, preprocess, size), None
        except caught as error:
            return None, describe_error(error)

    def dimension(self) -> int:
        """The dimension of the joint embedding space, from one blank image through the image tower."""
        import torch

        model, _, _ = self._model()
        size = input_size(model)
        blank = torch.zeros((1, 3, size, size), device=self.runtime.device)
        with torch.inference_mode(), autocast(self.runtime.device, self.runtime.dtype):
            return int(model.encode_image(blank).shape[-1])

    def embed_images(self, images: Sequence[bytes]) -> ImageVectors:
        """One unit vector per encoded image; undecodable images get a zero row and their error.

        Images are decoded and preprocessed on `DECODE_THREADS` threads (Pillow and torch release the
        GIL), the next batch while the model runs on the current one.
        """
        import torch

        model, preprocess, _ = self._model()
        size = input_size(model)
        errors: list[str | None] = [None] * len(images)
        out: np.ndarray | None = None
        step = self.runtime.batch_size
        with ThreadPoolExecutor(DECODE_THREADS, thread_name_prefix="clip-decode") as pool:

            def submit(start: int) -> list[Future[tuple[Any, str | None]]]:
                return [
                    pool.submit(self._prepared, data, preprocess, size)
                    for data in images[start : start + step]
                ]

            upcoming = submit(0)
            for start in range(0, len(images), step):
                current, upcoming = upcoming, submit(start + step)
                positions: list[int] = []
                tensors: list[Any] = []
                for position, done in enumerate(current, start):
                    tensor, errors[position] = done.result()
                    if tensor is not None:
                        tensors.append(tensor)
                        positions.append(position)
                if not tensors:
                    continue
                batch = torch.stack(tensors).to(self.runtime.device)
                with torch.inference_mode(), autocast(self.runtime.device, self.runtime.dtype):
                    features = model.encode_image(batch)
                vectors = torch.nn.functional.normalize(features.float(), dim=-1).cpu().numpy()
                if out is None:
                    out = np.zeros((len(images), vectors.shape[1]), dtype=np.float32)
                out[positions] = vectors
        if out is None:
            out = np.zeros((len(images), self.dimension()), dtype=np.float32)
        return ImageVectors(out, errors)

    def embed_texts(self, texts: Sequence[str]) -> np.ndarray:
        """One unit vector per text, (n, d) float32; the tokenizer truncates to the model's context."""
        import torch

        model, _, tokenizer = self._model()
        parts: list[np.ndarray] = []
        for start in range(0, len(texts), self.runtime.batch_size):
            tokens = tokenizer(list(texts[start : start + self.runtime.batch_size])).to(self.runtime.device)
            with torch.inference_mode(), autocast(self.runtime.device, self.runtime.dtype):
                features = model.encode_text(tokens)
            parts.append(torch.nn.functional.normalize(features.float(), dim=-1).cpu().numpy())
        if not parts:
            return np.zeros((0, self.dimension()), dtype=np.float32)
        return np.concatenate(parts).astype(np.float32, copy=False)


def describe_error(error: BaseException) -> str:
    """A short, reproducible description of an error: object addresses (`<... at 0x7f...>`) removed."""
    message = re.sub(r"\s*<[^<>]* at 0x[0-9a-fA-F]+>", "", str(error)).strip()
    return f"{type(error).__name__}: {message}"[:200]


def input_size(model: Any) -> int:
    """The model's square input side in pixels."""
    size = getattr(model.visual, "image_size", 224)
    return int(max(size) if isinstance(size, tuple | list) else size)
