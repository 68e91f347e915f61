"""A user-supplied image model behind one interface: prompts and seeds in, one image per prompt out.

`models.image_generator` names either a Python entry point, `path/to/file.py:function`, called as
`function(prompts: list[str], seeds: list[int], device: str)`, or a TorchScript file whose module is
called as `module(prompts: List[str], seeds: List[int])`. Either returns one image per prompt: a PIL
image, an H x W (x 1, 3 or 4) array or tensor (C x H x W is read as channels first), uint8 or floats in
[0, 1], or encoded image bytes; a 4-D batch tensor is a list of images. Nothing is downloaded: the file is
the user's own code, read from a local path.
"""

from __future__ import annotations

import hashlib
import importlib.util
import io
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from curation_dagster.errors import ModelNotConfigured
from curation_dagster.models.device import autocast
from curation_dagster.models.loading import require_local_path

IMAGE_GENERATOR_SETTING = "models.image_generator"
_KIND = "`path/to/file.py:function` entry point or TorchScript file"


@dataclass(frozen=True)
class ImageGenerator:
    """A loaded image model: `call(prompts, seeds)` returns its raw output for one batch."""

    location: str
    call: Callable[[list[str], list[int]], Any]


def load_image_generator(
    location: str, device: str, setting: str = IMAGE_GENERATOR_SETTING
) -> ImageGenerator:
    """The image model `location` names, loaded onto `device`; `ModelNotConfigured` naming `setting` when
    it is empty, missing, or not an entry point or TorchScript file."""
    if not location:
        raise ModelNotConfigured(f"set {setting} to a local {_KIND}; nothing is downloaded at run time")
    file_part, separator, function = location.rpartition(":")
    if separator and file_part.endswith(".py"):
        generate = _entry_point(require_local_path(file_part, setting, kind=_KIND), function, setting)
        return ImageGenerator(location, lambda prompts, seeds: generate(prompts, seeds, device))
    if location.endswith(".py"):
        raise ModelNotConfigured(
            f"{setting} is {location!r}: name the function as well, as path/to/file.py:function"
        )
    path = require_local_path(location, setting, kind=_KIND)
    import torch

    try:
        module = torch.jit.load(str(path), map_location=device)
    except (RuntimeError, ValueError) as error:
        raise ModelNotConfigured(
            f"{setting} is {location!r}, which torch.jit.load cannot read ({str(error).splitlines()[0]}); "
            f"set it to a {_KIND}"
        ) from None
    module.eval()
    return ImageGenerator(location, lambda prompts, seeds: module(prompts, seeds))


def _entry_point(path: Path, function: str, setting: str) -> Callable[..., Any]:
    """The function `function` of the Python file at `path`, imported under a name of its own."""
    name = "curation_image_generator_" + hashlib.sha256(str(path.resolve()).encode()).hexdigest()[:12]
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ModelNotConfigured(f"{setting}: {path} cannot be imported as a Python module")
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    except Exception as error:  # the user's module: say which setting led to it, keep the cause
        raise ModelNotConfigured(f"{setting}: importing {path} failed: {error!r}") from error
    generate = getattr(module, function, None)
    if not callable(generate):
        raise ModelNotConfigured(f"{setting}: {path} has no function {function!r}")
    return generate


def image_png(image: Any) -> bytes:
    """One generated image as PNG bytes; `ValueError` saying why when it is not an image."""
    from PIL import Image

    if isinstance(image, bytes | bytearray):
        try:
            with Image.open(io.BytesIO(bytes(image))) as opened:
                image = opened.convert("RGBA" if opened.mode in ("RGBA", "LA", "P") else "RGB")
        except OSError as error:
            raise ValueError(f"the generator returned bytes that are not an image: {error}") from None
    if not isinstance(image, Image.Image):
        image = Image.fromarray(_pixels(image))
    if image.mode not in ("RGB", "RGBA", "L"):
        image = image.convert("RGB")
    if image.width == 0 or image.height == 0:
        raise ValueError(f"the generator returned an empty image of size {image.size}")
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", optimize=False)
    return buffer.getvalue()


def _pixels(value: Any) -> Any:
    """An array or tensor as H x W or H x W x (3 or 4) uint8 pixels."""
    import numpy as np

    if hasattr(value, "detach"):
        value = value.detach().cpu()
        value = value.float().numpy() if value.is_floating_point() else value.numpy()
    if not isinstance(value, np.ndarray):
        raise ValueError(f"the generator returned a {type(value).__name__}, not an image, array or tensor")
    if value.ndim == 3 and value.shape[0] in (1, 3, 4) and value.shape[-1] not in (1, 3, 4):
        value = value.transpose(1, 2, 0)
    if value.ndim == 3 and value.shape[-1] == 1:
        value = value[..., 0]
    if value.ndim not in (2, 3) or (value.ndim == 3 and value.shape[-1] not in (3, 4)):
        raise ValueError(f"the generator returned an array of shape {value.shape}, not an image")
    if np.issubdtype(value.dtype, np.floating):
        if not np.isfinite(value).all():
            raise ValueError("the generator returned an image with NaN or infinite values")
        return np.round(np.clip(value, 0.0, 1.0) * 255).astype(np.uint8)
    if value.dtype != np.uint8:
        if value.size and (value.min() < 0 or value.max() > 255):
            raise ValueError(f"the generator returned {value.dtype} pixels outside 0-255")
        value = value.astype(np.uint8)
    return value


def _as_images(output: Any) -> list[Any] | None:
    """A batch's output as a list of images: a sequence, or a 4-D array or tensor; None otherwise."""
    if isinstance(output, str | bytes | bytearray):
        return None
    if hasattr(output, "ndim"):
        return list(output) if output.ndim == 4 else None
    return list(output) if isinstance(output, Sequence) else None


def generate_images(
    generator: ImageGenerator,
    prompts: Sequence[str],
    seeds: Sequence[int],
    *,
    device: str = "cpu",
    batch_size: int = 8,
    dtype: str = "float32",
) -> list[bytes | str]:
    """Per prompt, the generated image as PNG bytes, or why the generator's output for it is not one;
    prompts go to the generator `batch_size` at a time, in order."""
    import torch

    results: list[bytes | str] = []
    step = max(1, batch_size)
    for start in range(0, len(prompts), step):
        batch_prompts = list(prompts[start : start + step])
        batch_seeds = [int(seed) for seed in seeds[start : start + step]]
        with torch.inference_mode(), autocast(device, dtype):
            output = generator.call(batch_prompts, batch_seeds)
        images = _as_images(output)
        if images is None or len(images) != len(batch_prompts):
            count = "no list" if images is None else f"{len(images)} images"
            results.extend(
                [f"the generator returned {count} for {len(batch_prompts)} prompts"] * len(batch_prompts)
            )
            continue
        for image in images:
            try:
                results.append(image_png(image))
            except ValueError as error:
                results.append(str(error))
    return results
