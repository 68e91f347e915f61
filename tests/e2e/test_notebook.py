"""The prototype-to-production notebook, run as a reader runs it: cell by cell in a `python3` kernel started
beside it, on a fresh folder (CURATION_NOTEBOOK_HOME) that gets the demo landing zone and lake."""

import os
from pathlib import Path

import nbformat
import pyarrow.parquet as pq
import pytest
from nbclient import NotebookClient

from curation_dagster.spec import load_spec

REPO = Path(__file__).resolve().parents[2]
NOTEBOOK = REPO / "notebooks" / "prototype_to_production.ipynb"
#: The longest a cell may take; the whole notebook takes seconds on the demo's text shards.
CELL_TIMEOUT_S = 120

pytestmark = pytest.mark.slow


def notebook_env(tmp_path: Path) -> dict[str, str]:
    """The test's environment without the caller's lake or instance, the notebook pointed at `home`, and
    IPython's and Jupyter's own files in the temporary folder rather than the user's."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DAGSTER_", "CURATION_"))}
    env["CURATION_VERSIONS"] = str(REPO / "versions")
    env["CURATION_NOTEBOOK_HOME"] = str(tmp_path / "home")
    env["IPYTHONDIR"] = str(tmp_path / "ipython")
    env["JUPYTER_RUNTIME_DIR"] = str(tmp_path / "jupyter_runtime")
    return env


def rows(path: Path) -> int:
    return pq.ParquetFile(path).metadata.num_rows


def test_notebook_is_stored_without_outputs() -> None:
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    nbformat.validate(notebook)
    code = [cell for cell in notebook.cells if cell.cell_type == "code"]
    assert code
    assert [cell.outputs for cell in code] == [[] for _ in code]
    assert [cell.execution_count for cell in code] == [None for _ in code]


def test_notebook_runs_from_the_demo_data_to_a_spec_change_that_keeps_the_predicted_rows(
    tmp_path: Path,
) -> None:
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    client = NotebookClient(
        notebook,
        timeout=CELL_TIMEOUT_S,
        kernel_name="python3",
        resources={"metadata": {"path": str(NOTEBOOK.parent)}},
    )
    # A cell that raises, the notebook's own assertions included, raises CellExecutionError here.
    client.execute(env=notebook_env(tmp_path))

    home = tmp_path / "home"
    kept_before = rows(home / "lake" / "text_formal" / "filtered" / "news_en.jsonl.parquet")
    kept_after = rows(home / "notebook" / "trial_lake" / "text_formal" / "filtered" / "news_en.jsonl.parquet")
    assert kept_after > kept_before
    # The spec the notebook wrote is the shipped one with C4's sentence rule at 4, and nothing else changed.
    expected = load_spec(REPO / "versions" / "text_formal.yaml").model_dump()
    for entry in expected["filters"]["text"]:
        if entry["kind"] == "c4_quality":
            entry["min_num_sentences"] = 4
    assert load_spec(home / "notebook" / "specs" / "text_formal.yaml").model_dump() == expected
