"""Tests of curation_dagster/spec.py: defaults, loading, error messages and code versions."""

from __future__ import annotations

from pathlib import Path

import pytest

from curation_dagster.errors import SpecError
from curation_dagster.io.validate import MAX_IMAGE_PIXELS
from curation_dagster.spec import (
    ENGINE_VERSIONS,
    BlocklistSettings,
    TextLengthSettings,
    VersionSpec,
    load_spec,
    load_specs,
    parse_spec,
)
from curation_dagster.stages import STAGES

VERSIONS = Path(__file__).resolve().parents[2] / "versions"


def write_spec(folder: Path, name: str, body: str) -> Path:
    path = folder / f"{name}.yaml"
    path.write_text(body, encoding="utf-8")
    return path


def spec_error(data: object, source: str = "versions/v.yaml") -> str:
    with pytest.raises(SpecError) as caught:
        parse_spec(data, source)
    return str(caught.value)


# Defaults and loading --------------------------------------------------------------------------------


def test_defaults_form_a_valid_spec() -> None:
    spec = VersionSpec(name="v")

    assert VersionSpec.model_validate(spec.model_dump()) == spec
    assert spec.modalities == ("text", "image", "audio", "video")
    assert spec.filters.text == (TextLengthSettings(),)


def test_load_spec_reads_a_yaml_file(tmp_path: Path) -> None:
    path = write_spec(
        tmp_path,
        "small",
        "name: small\n"
        "modalities: [text]\n"
        "filters:\n"
        "  text:\n"
        "    - {kind: text_length, min_chars: 5}\n"
        "    - {kind: blocklist, words: [spam]}\n"
        "select: {seed: 4, budget: 10}\n",
    )

    spec = load_spec(path)

    assert spec.name == "small"
    assert spec.modalities == ("text",)
    assert spec.filters.text == (TextLengthSettings(min_chars=5), BlocklistSettings(words=("spam",)))
    assert (spec.select.seed, spec.select.budget) == (4, 10)


@pytest.mark.parametrize("path", sorted(VERSIONS.glob("*.yaml")), ids=lambda path: path.name)
def test_shipped_spec_loads(path: Path) -> None:
    assert load_spec(path).name == path.stem


def test_load_specs_returns_every_shipped_spec_sorted_by_name() -> None:
    names = [spec.name for spec in load_specs(VERSIONS)]

    assert names == sorted(path.stem for path in VERSIONS.glob("*.yaml"))
    assert names


def test_load_specs_of_a_missing_folder_names_the_folder(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match="nowhere"):
        load_specs(tmp_path / "nowhere")


# Errors name the file and the field -----------------------------------------------------------------


def test_wrong_type_names_the_file_and_the_field_path() -> None:
    message = spec_error({"name": "v", "filters": {"text": [{"kind": "text_length", "min_chars": "many"}]}})

    assert message.startswith("versions/v.yaml: filters.text.0.min_chars: ")
    assert "integer" in message


def test_a_minimum_above_its_maximum_is_refused_naming_both() -> None:
    message = spec_error(
        {"name": "v", "filters": {"text": [{"kind": "text_length", "min_chars": 100, "max_chars": 10}]}}
    )

    assert message.startswith("versions/v.yaml: filters.text.0: ")
    assert "min_chars (100) is above max_chars (10)" in message


@pytest.mark.parametrize(
    "section",
    [
        {"filters": {"audio": [{"kind": "duration", "min_s": 5.0, "max_s": 1.0}]}},
        {"filters": {"text": [{"kind": "register", "min_formality": 0.8, "max_formality": 0.2}]}},
        {"filters": {"video": [{"kind": "video_quality", "min_fps": 30.0, "max_fps": 10.0}]}},
    ],
)
def test_every_min_and_max_pair_is_checked(section: dict[str, object]) -> None:
    assert "is above" in spec_error({"name": "v", **section})


def test_equal_bounds_are_allowed() -> None:
    parse_spec(
        {"name": "v", "filters": {"text": [{"kind": "text_length", "min_chars": 10, "max_chars": 10}]}}
    )


def test_missing_field_of_the_second_filter_names_its_position() -> None:
    message = spec_error({"name": "v", "filters": {"text": [{"kind": "text_length"}, {"kind": "blocklist"}]}})

    assert message.startswith("versions/v.yaml: filters.text.1.words: ")


def test_unknown_key_is_rejected_with_its_name() -> None:
    message = spec_error({"name": "v", "select": {"seed": 1, "budgett": 5}})

    assert message.startswith("versions/v.yaml: select.budgett: ")
    assert "Extra inputs are not permitted" in message


def test_unknown_top_level_key_is_rejected() -> None:
    message = spec_error({"name": "v", "filter": {}})

    assert message.startswith("versions/v.yaml: filter: ")


def test_unknown_filter_kind_names_the_filter_and_the_kind() -> None:
    message = spec_error({"name": "v", "filters": {"image": [{"kind": "sharpness"}]}})

    assert message.startswith("versions/v.yaml: filters.image.0: ")
    assert "'sharpness'" in message


def test_filter_of_another_modality_is_rejected() -> None:
    message = spec_error({"name": "v", "filters": {"text": [{"kind": "image_size"}]}})

    assert message.startswith("versions/v.yaml: filters.text.0: ")


@pytest.mark.parametrize("name", ["Demo", "1st", "with-dash", "", "a" * 42])
def test_bad_version_name_is_rejected(name: str) -> None:
    message = spec_error({"name": name})

    assert message.startswith("versions/v.yaml: name: ")


def test_empty_modalities_is_rejected() -> None:
    assert "modalities" in spec_error({"name": "v", "modalities": []})


def test_spec_that_is_not_a_mapping_is_rejected() -> None:
    assert spec_error(["name", "v"]) == "versions/v.yaml: the spec must be a mapping, got list"


def test_name_that_differs_from_the_file_name_is_rejected(tmp_path: Path) -> None:
    path = write_spec(tmp_path, "right", "name: wrong\n")

    with pytest.raises(SpecError) as caught:
        load_spec(path)

    assert str(caught.value) == f"{path}: name: 'wrong' must equal the file name 'right'"


def test_invalid_yaml_names_the_file(tmp_path: Path) -> None:
    path = write_spec(tmp_path, "broken", "name: broken\nfilters: [unclosed\n")

    with pytest.raises(SpecError) as caught:
        load_spec(path)

    assert str(caught.value).startswith(f"{path}: not valid YAML")


def test_yaml_loader_is_safe(tmp_path: Path) -> None:
    path = write_spec(tmp_path, "unsafe", "name: !!python/object/apply:os.getcwd []\n")

    with pytest.raises(SpecError, match="not valid YAML"):
        load_spec(path)


def test_field_errors_in_a_file_name_the_file(tmp_path: Path) -> None:
    path = write_spec(tmp_path, "v", "name: v\nselect: {fraction: 2}\n")

    with pytest.raises(SpecError) as caught:
        load_spec(path)

    assert str(caught.value).startswith(f"{path}: select.fraction: ")


# Code versions ---------------------------------------------------------------------------------------


def test_code_version_changes_when_the_stage_settings_change() -> None:
    base = parse_spec({"name": "v"})
    changed = parse_spec({"name": "v", "filters": {"text": [{"kind": "text_length", "min_chars": 99}]}})

    assert changed.code_version("filtered") != base.code_version("filtered")


def test_code_version_ignores_other_stages_settings() -> None:
    base = parse_spec({"name": "v"})
    changed = parse_spec({"name": "v", "select": {"seed": 9, "budget": 5}})

    assert [changed.code_version(stage) for stage in ("raw", "deduped", "filtered", "synthesized")] == [
        base.code_version(stage) for stage in ("raw", "deduped", "filtered", "synthesized")
    ]
    assert changed.code_version("selected") != base.code_version("selected")


def test_code_version_of_raw_changes_with_the_modalities() -> None:
    assert parse_spec({"name": "v", "modalities": ["text"]}).code_version("raw") != parse_spec(
        {"name": "v"}
    ).code_version("raw")


def test_code_version_of_raw_changes_with_a_raw_limit() -> None:
    limited = parse_spec({"name": "v", "raw": {"max_line_bytes": 1024}})
    assert limited.code_version("raw") != parse_spec({"name": "v"}).code_version("raw")


def test_max_image_pixels_above_pillows_own_limit_is_refused() -> None:
    assert parse_spec({"name": "v", "raw": {"max_image_pixels": MAX_IMAGE_PIXELS}}).raw.max_image_pixels
    with pytest.raises(SpecError, match=r"raw\.max_image_pixels"):
        parse_spec({"name": "v", "raw": {"max_image_pixels": MAX_IMAGE_PIXELS + 1}})


def test_code_version_ignores_name_and_description() -> None:
    one = parse_spec({"name": "one", "description": "first"})
    two = parse_spec({"name": "two", "description": "second"})

    assert one.code_version("deduped") == two.code_version("deduped")


def test_code_version_starts_with_the_engine_version() -> None:
    spec = parse_spec({"name": "v"})

    assert spec.code_version("synthesized").startswith(f"{ENGINE_VERSIONS['synthesized']}-")


def test_the_names_before_the_spec_package_still_import_for_one_release() -> None:
    from curation_dagster import spec

    assert spec.TextLengthFilter is spec.TextLengthSettings
    assert spec.SelectSpec is spec.SelectSettings
    assert spec.TextRecipe is spec.WordEditsSettings
    assert spec.MODEL_RECIPES is spec.RECIPE_MODEL_SETTINGS
    assert spec.TextLengthFilter(min_chars=5).min_chars == 5


@pytest.mark.parametrize(
    ("release", "message"),
    [
        ({"license": "other"}, "license: other needs license_name"),
        ({"license": "mit", "license_name": "mit"}, "go with license: other only"),
        ({"license": "Apache 2.0"}, "release.license: String should match pattern"),
    ],
)
def test_a_license_the_hub_would_refuse_is_a_spec_error(release: dict[str, str], message: str) -> None:
    with pytest.raises(SpecError, match=message):
        parse_spec({"name": "mixed", "release": release})


def test_the_release_code_version_follows_the_release_settings_only() -> None:
    base = parse_spec({"name": "v", "modalities": ["text"]})
    changed = parse_spec({"name": "v", "modalities": ["text"], "release": {"license": "cc-by-4.0"}})
    assert changed.release_code_version() != base.release_code_version()
    assert [changed.code_version(stage) for stage in STAGES] == [base.code_version(stage) for stage in STAGES]
    filtered = parse_spec({"name": "v", "modalities": ["text"], "filters": {"text": []}})
    assert filtered.release_code_version() == base.release_code_version()
