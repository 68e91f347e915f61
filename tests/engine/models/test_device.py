"""Tests for `curation_dagster/models/device.py`: device names, device resolution and dtype choice."""

from __future__ import annotations

import pytest
import torch

from curation_dagster.models.device import DeviceUnavailable, resolve_device, resolve_dtype, validate_device

CUDA = torch.cuda.is_available()
_mps_backend = getattr(torch.backends, "mps", None)
MPS = _mps_backend is not None and _mps_backend.is_available()


@pytest.mark.parametrize("name", ["auto", "cpu", "mps", "cuda", "cuda:0", "cuda:3", "cuda:12"])
def test_validate_device_returns_supported_names_unchanged(name: str) -> None:
    assert validate_device(name) == name


@pytest.mark.parametrize(
    "name", ["", "gpu", "CPU", "cuda:", "cuda:x", "cuda:-1", "cuda0", " cpu", "cpu ", "tpu"]
)
def test_validate_device_rejects_unknown_names(name: str) -> None:
    with pytest.raises(ValueError, match="use auto, cpu, mps, cuda or cuda:N"):
        validate_device(name)


@pytest.mark.skipif(CUDA or MPS, reason="auto picks an accelerator on this machine")
def test_resolve_auto_is_cpu_without_accelerator() -> None:
    assert resolve_device("auto") == "cpu"


def test_resolve_cpu_is_cpu() -> None:
    assert resolve_device("cpu") == "cpu"


def test_resolve_rejects_unknown_name_before_probing() -> None:
    with pytest.raises(ValueError, match="use auto, cpu, mps, cuda or cuda:N"):
        resolve_device("gpu")


@pytest.mark.skipif(CUDA, reason="CUDA is available on this machine")
def test_resolve_cuda_without_cuda_names_the_setting() -> None:
    with pytest.raises(
        DeviceUnavailable, match=r"accelerator\.device is 'cuda:0'.*set it to 'auto' or 'cpu'"
    ):
        resolve_device("cuda:0")


def test_device_unavailable_is_not_retryable() -> None:
    assert DeviceUnavailable.retryable is False


@pytest.mark.gpu
@pytest.mark.skipif(not CUDA, reason="needs a CUDA device")
def test_resolve_cuda_with_cuda_gives_indexed_device() -> None:
    assert resolve_device("cuda") == "cuda:0"
    assert resolve_device("cuda:0") == "cuda:0"
    assert resolve_device("auto") == "cuda:0"


@pytest.mark.gpu
@pytest.mark.skipif(not CUDA, reason="needs a CUDA device")
def test_resolve_cuda_index_past_device_count_names_the_setting() -> None:
    missing = f"cuda:{torch.cuda.device_count()}"
    with pytest.raises(DeviceUnavailable, match=r"accelerator\.device is .* CUDA devices exist"):
        resolve_device(missing)


def test_half_precision_on_cpu_falls_back_to_float32() -> None:
    assert resolve_dtype("float16", "cpu") is torch.float32


@pytest.mark.parametrize(("name", "expected"), [("float32", torch.float32), ("bfloat16", torch.bfloat16)])
def test_other_dtypes_on_cpu_are_kept(name: str, expected: torch.dtype) -> None:
    assert resolve_dtype(name, "cpu") is expected


def test_half_precision_on_cuda_is_kept() -> None:
    assert resolve_dtype("float16", "cuda:0") is torch.float16


def test_resolve_dtype_rejects_unknown_name() -> None:
    with pytest.raises(ValueError, match="use one of float32, float16, bfloat16"):
        resolve_dtype("int8", "cpu")
