"""Tests of curation_dagster/report/plots.py: the data card's plots are inline PNGs, drawn only on demand."""

from __future__ import annotations

import io
import subprocess
import sys

from PIL import Image

from curation_dagster.io.lake import Lake
from tests.engine.report.card_fixtures import PNG_SIGNATURE, Page, png_of


def test_every_plot_is_a_non_empty_png_data_uri(built: tuple[Lake, str]) -> None:
    plots = [image for image in Page(built[1]).images if image["class"] == "plot"]

    assert {image["section"] for image in plots} == {
        "funnel",
        "scores",
        "duplicates",
        "selection",
        "synthetic",
    }
    for image in plots:
        data = png_of(image["src"])
        assert data.startswith(PNG_SIGNATURE)
        with Image.open(io.BytesIO(data)) as picture:
            assert picture.width > 100 and picture.height > 100


def test_loading_the_definitions_does_not_import_matplotlib() -> None:
    probe = "import sys, curation_dagster.definitions; print('matplotlib' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False"
