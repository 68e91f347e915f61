"""The `accelerator` resource: the device, dtype and batch size for model inference."""

from __future__ import annotations

from typing import Any

from dagster import ConfigurableResource
from pydantic import field_validator

from curation_dagster.models.device import DTYPES, resolve_device, resolve_dtype, validate_device


class AcceleratorResource(ConfigurableResource):
    """Chooses the device at run time, never at import: `auto` picks CUDA when present, then MPS, then CPU."""

    device: str = "auto"
    """auto, cpu, mps, cuda or cuda:N."""
    dtype: str = "float16"
    """Inference precision on accelerators (float32, float16, bfloat16); the CPU always uses float32."""
    batch_size: int = 64
    """Items per model forward pass."""

    @field_validator("device")
    @classmethod
    def _known_device(cls, value: str) -> str:
        return validate_device(value)

    @field_validator("dtype")
    @classmethod
    def _known_dtype(cls, value: str) -> str:
        if value not in DTYPES:
            raise ValueError(f"use one of {', '.join(DTYPES)}")
        return value

    def resolved_device(self) -> str:
        return resolve_device(self.device)

    def torch_dtype(self) -> Any:
        return resolve_dtype(self.dtype, self.resolved_device())
