"""The Definitions object: every version's graph, both sensors running by default, resources from the environment."""

import re
from pathlib import Path

import pytest
from dagster import AssetKey, DefaultSensorStatus, materialize

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
    for name in ("landing_sensor", "curation_automation", "dead_run_monitor"):
        assert defs.resolve_sensor_def(name).default_status == DefaultSensorStatus.RUNNING


@pytest.mark.parametrize(("value", "expected"), [("", 30), ("5", 5), (" 300 ", 300)])
def test_the_landing_sensor_and_automation_tick_at_the_configured_interval(
    monkeypatch: pytest.MonkeyPatch, value: str, expected: int
) -> None:
    monkeypatch.setenv("CURATION_SENSOR_INTERVAL_S", value)
    defs = build_definitions(versions=REPO / "versions")
    for name in ("landing_sensor", "curation_automation"):
        assert defs.resolve_sensor_def(name).minimum_interval_seconds == expected
    assert defs.resolve_sensor_def("dead_run_monitor").minimum_interval_seconds == 60


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


def test_a_bad_spec_costs_only_its_own_version_and_shows_its_error(tmp_path: Path) -> None:
    (tmp_path / "broken.yaml").write_text("name: broken\nselect: {fraction: 2}\n")
    (tmp_path / "fine.yaml").write_text("name: fine\nmodalities: [text]\n")

    defs = build_definitions(versions=tmp_path)

    keys = set(defs.resolve_all_asset_keys())
    assert AssetKey(["fine", "raw"]) in keys and AssetKey(["fine", "synthesized"]) in keys
    assert not any(key.path[0] == "broken" and key.path[1] != "invalid_spec" for key in keys)
    problem = defs.resolve_assets_def(AssetKey(["broken", "invalid_spec"]))
    description = problem.descriptions_by_key[AssetKey(["broken", "invalid_spec"])]
    assert re.search(r"broken\.yaml: select\.fraction", description)


def test_materializing_an_invalid_spec_fails_with_its_error(tmp_path: Path) -> None:
    (tmp_path / "broken.yaml").write_text("name: broken\nselect: {fraction: 2}\n")
    defs = build_definitions(versions=tmp_path, lake_root=str(tmp_path / "lake"))

    result = materialize(
        [defs.resolve_assets_def(AssetKey(["broken", "invalid_spec"]))], raise_on_error=False
    )

    assert not result.success
    failure = result.get_step_failure_events()[0].step_failure_data.error
    assert failure is not None and "select.fraction" in failure.message


def test_with_every_spec_invalid_the_sensors_still_load(tmp_path: Path) -> None:
    (tmp_path / "broken.yaml").write_text("name: [not a name\n")
    defs = build_definitions(versions=tmp_path)
    assert defs.resolve_sensor_def("landing_sensor") is not None
    assert AssetKey(["broken", "invalid_spec"]) in set(defs.resolve_all_asset_keys())


def test_a_missing_versions_folder_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match="versions folder does not exist"):
        build_definitions(versions=tmp_path / "absent")
