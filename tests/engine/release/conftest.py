"""The release tests' lakes: the multimodal version curated once per package for tests that only read
its release, and afresh for tests that write one."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from curation_dagster.io.lake import Lake
from curation_dagster.release import Release, build_release
from tests.engine.release.release_fixtures import SMALL_FILES, SPEC, curated_lake
from tests.media_fixtures import write_multimodal_landing


@pytest.fixture(scope="package")
def landing(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_multimodal_landing(tmp_path_factory.mktemp("multimodal") / "landing")


@pytest.fixture
def lake(tmp_path: Path, landing: Path) -> Lake:
    return curated_lake(tmp_path / "lake", landing)


@pytest.fixture(scope="package")
def released(tmp_path_factory: pytest.TempPathFactory, landing: Path) -> tuple[Lake, Release]:
    """A release of the multimodal lake in `SMALL_FILES`, for the tests that only read it."""
    store = curated_lake(tmp_path_factory.mktemp("released") / "lake", landing)
    return store, build_release(SPEC, store, SMALL_FILES)


@pytest.fixture
def offline_datasets(no_network: None, monkeypatch: pytest.MonkeyPatch) -> Any:
    """`datasets`, told to stay offline (the sockets refuse besides)."""
    import datasets

    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True)
    return datasets
