"""The Definitions object: every version's graph, both sensors running by default, resources from the environment."""

from pathlib import Path

import pytest
from dagster import AssetKey, DefaultSensorStatus

from curation_dagster.definitions import build_definitions
from curation_dagster.errors import SpecError

REPO = Path(__file__).resolve().parents[2]


def test_definitions_hold_every_version_in_the_versions_folder() -> None:
    defs = build_definitions(versions=REPO / "versions")
    keys = set(defs.resolve_all_asset_keys())
    for version in ("demo", "text_formal"):
        for stage in ("raw", "deduped", "filtered", "selected", "synthesized"):
            assert AssetKey([version, stage]) in keys


def test_the_landing_sensor_and_automation_run_by_default() -> None:
    defs = build_definitions(versions=REPO / "versions")
    for name in ("landing_sensor", "curation_automation"):
        assert defs.resolve_sensor_def(name).default_status == DefaultSensorStatus.RUNNING


def test_resources_take_locations_from_the_environment(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("CURATION_HOME", str(tmp_path / "lake"))
    monkeypatch.setenv("CURATION_LANDING", str(tmp_path / "landing"))
    monkeypatch.setenv("CURATION_TEXT_CLASSIFIER", str(tmp_path / "model"))
    defs = build_definitions(versions=REPO / "versions")
    assert defs.resources["lake"].root == str(tmp_path / "lake")
    assert defs.resources["lake"].landing == str(tmp_path / "landing")
    assert defs.resources["models"].text_classifier == str(tmp_path / "model")


def test_without_environment_the_locations_default_inside_the_project(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    for name in ("CURATION_HOME", "CURATION_LANDING"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)
    defs = build_definitions(versions=REPO / "versions")
    assert defs.resources["lake"].root == str(tmp_path / ".curation" / "lake")
    assert defs.resources["lake"].landing == str(tmp_path / ".curation" / "landing")


def test_a_bad_spec_stops_loading_with_the_file_and_field_named(tmp_path: Path) -> None:
    (tmp_path / "broken.yaml").write_text("name: broken\nselect: {fraction: 2}\n")
    with pytest.raises(SpecError, match=r"broken\.yaml: select\.fraction"):
        build_definitions(versions=tmp_path)
