"""Where things live on the embedded default: environment variables with defaults inside the project."""

from __future__ import annotations

import os
from pathlib import Path

PROJECT_STATE = ".curation"


def project_root() -> Path:
    """The folder the project's commands run from (the repository root in the README)."""
    return Path.cwd()


def curation_home() -> str:
    """The lake root: $CURATION_HOME, else `.curation/lake` in the project (git-ignored)."""
    return os.environ.get("CURATION_HOME") or str(project_root() / PROJECT_STATE / "lake")


def landing_root() -> str:
    """The landing zone: $CURATION_LANDING, else `.curation/landing` in the project."""
    return os.environ.get("CURATION_LANDING") or str(project_root() / PROJECT_STATE / "landing")


def dagster_home() -> str:
    """The Dagster instance folder: $DAGSTER_HOME, else `.curation/dagster_home` in the project."""
    return os.environ.get("DAGSTER_HOME") or str(project_root() / PROJECT_STATE / "dagster_home")


def versions_folder() -> Path:
    """The dataset-version specs: $CURATION_VERSIONS, else `versions/` beside the package or in the project."""
    configured = os.environ.get("CURATION_VERSIONS")
    if configured:
        return Path(configured)
    beside_package = Path(__file__).resolve().parents[1] / "versions"
    return beside_package if beside_package.is_dir() else project_root() / "versions"


def model_path(name: str) -> str:
    """A local model location from `$CURATION_<NAME>` (e.g. CURATION_TEXT_CLASSIFIER), or empty."""
    return os.environ.get(f"CURATION_{name.upper()}", "")


def claim_lock_dsn() -> str:
    """A PostgreSQL database for the claim locks: $CURATION_LOCK_DSN, or empty (file locks on a local lake)."""
    return os.environ.get("CURATION_LOCK_DSN", "")


def executor() -> str:
    """How a run executes its steps: $CURATION_EXECUTOR (`k8s`: each step its own Kubernetes job), else
    `multiprocess` (Dagster's default: one process per step beside the run)."""
    return os.environ.get("CURATION_EXECUTOR", "").strip().lower() or "multiprocess"
