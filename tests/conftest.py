"""Shared fixtures: a tiny landing zone and spec-building helpers."""

import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.generator_fixtures import build_tiny_causal_lm, one_torch_thread
from tests.media_fixtures import write_jsonl
from tests.servers import S3Server


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Fail any test that tries to reach the network, and tell Hugging Face libraries to stay offline."""

    def refuse(*args: Any, **kwargs: Any) -> None:
        raise AssertionError(f"tried to open a network connection: {args!r}")

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")
    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    yield


@pytest.fixture
def tiny_landing(tmp_path: Path) -> Path:
    """Two small text shards sharing one document, plus one bad line."""
    landing = tmp_path / "landing"
    landing.mkdir()
    shared = "The river bank was quiet in the early morning light and the boats were still tied up."
    write_jsonl(
        landing / "a.jsonl",
        [
            shared,
            "Researchers measured the growth of wheat under three watering schedules over two summers.",
            "too short",
        ],
    )
    (landing / "a.jsonl").open("a", encoding="utf-8").write("{not json\n")
    write_jsonl(
        landing / "b.jsonl",
        [
            shared.upper(),
            "The new library opened its doors on Monday with a reading for children and a small concert.",
        ],
    )
    return landing


@pytest.fixture(scope="session")
def tiny_lm_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny randomly initialised causal language model and its tokenizer, saved once per session."""
    return build_tiny_causal_lm(tmp_path_factory.mktemp("lm") / "model")


@pytest.fixture(scope="session")
def tiny_vits_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny randomly initialised VITS text-to-speech model and its tokenizer, saved once per session."""
    from tests.generator_fixtures import build_tiny_vits

    return build_tiny_vits(tmp_path_factory.mktemp("vits") / "model")


@pytest.fixture(scope="module")
def torch_single_thread() -> Iterator[None]:
    """Torch on one thread for a module: on a shared two-core machine two threads make tiny models slow."""
    with one_torch_thread():
        yield


@pytest.fixture(scope="session")
def tiny_clip(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    """A tiny randomly initialised open_clip model: (config .json, .safetensors, .pt), saved once per session."""
    from tests.model_fixtures import build_tiny_clip

    return build_tiny_clip(tmp_path_factory.mktemp("clip") / "model")


@pytest.fixture(scope="module")
def s3() -> Iterator[S3Server]:
    """A local S3-compatible server (moto) with an empty bucket `curation`, and fsspec in this process
    pointed at it: the endpoint through fsspec's config, the test credentials in the environment, as
    `S3Server.environment()` gives them to a new process."""
    import fsspec.config

    from tests.servers import s3_server

    with s3_server() as server, pytest.MonkeyPatch.context() as patch:
        server.create_bucket("curation")
        for name, value in server.environment().items():
            patch.setenv(name, value)
        patch.setitem(fsspec.config.conf, "s3", {"endpoint_url": server.endpoint})
        yield server
