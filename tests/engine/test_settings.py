"""Tests of curation_dagster/settings.py: deployment settings read from the environment."""

from __future__ import annotations

import pytest

from curation_dagster import settings
from curation_dagster.errors import SettingError


def test_the_shard_bound_defaults_to_256_mib(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CURATION_MAX_SHARD_BYTES", raising=False)
    assert settings.max_shard_bytes() == 256 * 2**20 == settings.DEFAULT_MAX_SHARD_BYTES


@pytest.mark.parametrize(
    ("value", "expected"), [("4096", 4096), ("64KiB", 65536), ("512 mib", 512 * 2**20), ("2GiB", 2 * 2**30)]
)
def test_the_shard_bound_is_bytes_or_binary_units(
    monkeypatch: pytest.MonkeyPatch, value: str, expected: int
) -> None:
    monkeypatch.setenv("CURATION_MAX_SHARD_BYTES", value)
    assert settings.max_shard_bytes() == expected


@pytest.mark.parametrize("value", ["0", "-5", "1.5GiB", "256MB", "lots"])
def test_a_shard_bound_that_is_not_a_positive_size_names_the_setting(
    monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    monkeypatch.setenv("CURATION_MAX_SHARD_BYTES", value)
    with pytest.raises(SettingError, match=r"CURATION_MAX_SHARD_BYTES=.* is not a size"):
        settings.max_shard_bytes()


@pytest.mark.parametrize("value", ["", "auto", " AUTO "])
def test_filter_workers_unset_or_auto_leaves_the_choice_to_the_stage(
    monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    monkeypatch.setenv("CURATION_WORKERS", value)
    assert settings.filter_workers() is None


def test_filter_workers_is_a_number_of_processes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CURATION_WORKERS", " 6 ")
    assert settings.filter_workers() == 6


@pytest.mark.parametrize("value", ["0", "-2", "1.5", "all"])
def test_filter_workers_that_are_not_a_positive_number_name_the_setting(
    monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    monkeypatch.setenv("CURATION_WORKERS", value)
    with pytest.raises(SettingError, match=r"CURATION_WORKERS=.* is not a number of processes"):
        settings.filter_workers()


@pytest.mark.parametrize("value", ["0", "-5", "2.5", "soon"])
def test_a_sensor_interval_that_is_not_a_positive_number_names_the_setting(
    monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    monkeypatch.setenv("CURATION_SENSOR_INTERVAL_S", value)
    with pytest.raises(SettingError, match=r"CURATION_SENSOR_INTERVAL_S=.* is not a number of seconds"):
        settings.sensor_interval_s()


def test_the_read_cache_is_a_size_and_may_be_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    assert settings.read_cache_bytes() == 256 * 2**20
    monkeypatch.setenv("CURATION_READ_CACHE_BYTES", "1GiB")
    assert settings.read_cache_bytes() == 2**30
    monkeypatch.setenv("CURATION_READ_CACHE_BYTES", "0")
    assert settings.read_cache_bytes() == 0


@pytest.mark.parametrize("value", ["-1", "lots", "2.5MiB"])
def test_a_read_cache_that_is_not_a_size_names_the_setting(
    monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    monkeypatch.setenv("CURATION_READ_CACHE_BYTES", value)
    with pytest.raises(
        SettingError, match=r"CURATION_READ_CACHE_BYTES=.* is not a size: give a whole number"
    ):
        settings.read_cache_bytes()
