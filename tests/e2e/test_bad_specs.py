"""A spec with a mistake costs only its own version: the others load, run and show in the UI, and the
commands print the spec's error in one line instead of a traceback."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.e2e.small_project import curation, new_project, write_landing

pytestmark = pytest.mark.slow

GOOD = """\
name: good
modalities: [text]
filters:
  text:
    - {kind: text_length, min_chars: 10, max_chars: 10000, min_words: 2}
"""
#: A typo: a fraction of 2 is not a fraction.
BROKEN = "name: broken\nmodalities: [text]\nselect: {fraction: 2}\n"
TEXTS = {"a.jsonl": ["The harbour was busy with fishing boats unloading the morning catch for the market."]}


@pytest.fixture
def project(tmp_path: Path) -> Path:
    landing = write_landing(tmp_path / "landing", TEXTS)
    return new_project(tmp_path / "project", landing, {"good": GOOD, "broken": BROKEN})


def test_curation_run_skips_the_broken_version_and_runs_the_others(project: Path) -> None:
    result = curation(project, "run", "--no-demo-data", expect=1)

    (line,) = [line for line in result.stdout.splitlines() if "broken" in line]
    assert line.startswith("skipping version broken: ") and line.endswith("less than or equal to 1")
    assert "select.fraction" in line
    assert "Traceback" not in result.stdout + result.stderr
    assert "good: raw 1" in result.stdout
    assert (project / ".curation" / "lake" / "good" / "synthesized" / "a.jsonl.parquet").exists()


def test_curation_validate_names_the_file_and_field_and_fails(project: Path) -> None:
    result = curation(project, "validate", expect=1)

    assert "ok       good" in result.stdout
    assert "broken.yaml: select.fraction" in result.stdout


def test_a_missing_versions_folder_is_one_line_not_a_traceback(project: Path) -> None:
    for spec in (project / "versions").iterdir():
        spec.unlink()
    (project / "versions").rmdir()

    result = curation(project, "run", "--no-demo-data", expect=2)

    assert "versions folder does not exist" in result.stderr
    assert "Traceback" not in result.stderr
