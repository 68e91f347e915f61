"""Which torch device and dtype to run models on; torch is imported only when asked."""

from __future__ import annotations

import re
from typing import Any

from curation_dagster.errors import CurationError

_DEVICE = re.compile(r"^(auto|cpu|mps|cuda|cuda:\d+)$")
DTYPES = ("float32", "float16", "bfloat16")


class DeviceUnavailable(CurationError):
    """The configured device does not exist on this machine; a retry on the same machine cannot help."""


def validate_device(requested: str) -> str:
    """`requested` if it names a device kind we support, else `ValueError`."""
    if not _DEVICE.match(requested):
        raise ValueError(f"device {requested!r}: use auto, cpu, mps, cuda or cuda:N")
    return requested


def resolve_device(requested: str = "auto") -> str:
    """The concrete device for `requested`: `auto` picks CUDA, then MPS, then the CPU."""
    import torch

    validate_device(requested)
    if requested == "auto":
        if torch.cuda.is_available():
            return "cuda:0"
        mps = getattr(torch.backends, "mps", None)
        return "mps" if mps is not None and mps.is_available() else "cpu"
    if requested.startswith("cuda"):
        if not torch.cuda.is_available():
            raise DeviceUnavailable(
                f"accelerator.device is {requested!r} but CUDA is not available here; set it to 'auto' or 'cpu'"
            )
        index = int(requested.split(":")[1]) if ":" in requested else 0
        if index >= torch.cuda.device_count():
            raise DeviceUnavailable(
                f"accelerator.device is {requested!r} but only {torch.cuda.device_count()} CUDA devices exist"
            )
        return f"cuda:{index}"
    if requested == "mps":
        mps = getattr(torch.backends, "mps", None)
        if mps is None or not mps.is_available():
            raise DeviceUnavailable(
                "accelerator.device is 'mps' but MPS is not available; set it to 'auto' or 'cpu'"
            )
    return requested


def resolve_dtype(name: str, device: str) -> Any:
    """The torch dtype for `name`; half precision falls back to float32 on the CPU, where it is slow."""
    import torch

    if name not in DTYPES:
        raise ValueError(f"dtype {name!r}: use one of {', '.join(DTYPES)}")
    if device == "cpu" and name == "float16":
        return torch.float32
    return getattr(torch, name)


def autocast(device: str, dtype: str) -> Any:
    """A context that autocasts to `dtype` (float16, bfloat16) on CUDA, and does nothing elsewhere."""
    import contextlib

    import torch

    if device.startswith("cuda") and dtype != "float32":
        return torch.autocast("cuda", dtype=getattr(torch, dtype))
    return contextlib.nullcontext()
