"""Where things live on the embedded default: environment variables with defaults inside the project."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Final

from curation_dagster.errors import SettingError

PROJECT_STATE = ".curation"

#: The largest landing file or media folder registered as one shard; a larger one is registered as
#: several bounded parts (README "Landing formats").
DEFAULT_MAX_SHARD_BYTES: Final = 256 * 2**20
#: What a DuckDB connection to a lake on object storage keeps of what it read, unless set.
DEFAULT_READ_CACHE_BYTES: Final = 256 * 2**20
#: Seconds between two ticks of the landing sensor and of automation, unless set.
DEFAULT_SENSOR_INTERVAL_S: Final = 30

_BYTE_UNITS: Final = {"": 1, "kib": 2**10, "mib": 2**20, "gib": 2**30}
_BYTES: Final = re.compile(r"^\s*(\d+)\s*([kmg]ib)?\s*$", re.IGNORECASE)


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
    """How a run executes its steps: $CURATION_EXECUTOR (`k8s`: each step its own Kubernetes job;
    `in_process`: every step in the run's process), else `multiprocess` (Dagster's default: one process per
    step beside the run)."""
    return os.environ.get("CURATION_EXECUTOR", "").strip().lower() or "multiprocess"


def max_shard_bytes() -> int:
    """The size above which a landing file or folder is registered as several bounded shards:
    $CURATION_MAX_SHARD_BYTES (bytes, or a whole number of KiB, MiB or GiB), else 256 MiB. Every process
    that registers or runs shards (the sensor, `curation register`, run workers) must see the same value."""
    return _size_setting("CURATION_MAX_SHARD_BYTES", DEFAULT_MAX_SHARD_BYTES, least=1)


def read_cache_bytes() -> int:
    """The most bytes a DuckDB connection to a lake on object storage keeps of what it read (`Lake.connect`,
    `io/read_cache.py`): $CURATION_READ_CACHE_BYTES (bytes, or a whole number of KiB, MiB or GiB; 0 keeps
    nothing), else 256 MiB. Raise it where a data card's columns of every shard are larger, so its queries
    do not read them again; lower it where several connections share a small machine."""
    return _size_setting("CURATION_READ_CACHE_BYTES", DEFAULT_READ_CACHE_BYTES, least=0)


def _size_setting(name: str, default: int, least: int) -> int:
    """The size in the environment variable `name` (bytes, or with KiB, MiB or GiB), at least `least`
    bytes; `default` when unset."""
    configured = os.environ.get(name, "").strip()
    if not configured:
        return default
    match = _BYTES.match(configured)
    size = int(match.group(1)) * _BYTE_UNITS[(match.group(2) or "").lower()] if match else -1
    if size < least:
        raise SettingError(
            f"{name}={configured!r} is not a size: give a {'positive' if least else 'whole'} number of "
            "bytes, optionally with KiB, MiB or GiB (e.g. 268435456 or 256MiB)"
        )
    return size


def sensor_interval_s() -> int:
    """The least seconds between two ticks of the landing sensor and of automation:
    $CURATION_SENSOR_INTERVAL_S (a positive whole number), else 30 (Dagster's default). Shorter makes a
    dropped file start sooner; longer spares a large landing zone's listing. Read by the process that
    loads the definitions (the daemon's code location)."""
    configured = os.environ.get("CURATION_SENSOR_INTERVAL_S", "").strip()
    if not configured:
        return DEFAULT_SENSOR_INTERVAL_S
    if not configured.isdecimal() or int(configured) == 0:
        raise SettingError(
            f"CURATION_SENSOR_INTERVAL_S={configured!r} is not a number of seconds: give a positive whole "
            f"number (default {DEFAULT_SENSOR_INTERVAL_S})"
        )
    return int(configured)


def filter_workers() -> int | None:
    """How many processes the filtered stage runs its chain in for one shard: $CURATION_WORKERS (a
    positive number), or None when unset or `auto` (every core this process may use, for a shard large
    enough to be worth starting them; see `filters/workers.py`). Set 1 to keep the chain in the stage's
    own process, or fewer than the cores when several runs share a machine."""
    configured = os.environ.get("CURATION_WORKERS", "").strip()
    if configured.lower() in ("", "auto"):
        return None
    if not configured.isdecimal() or int(configured) == 0:
        raise SettingError(
            f"CURATION_WORKERS={configured!r} is not a number of processes: give a positive whole number "
            "(1 keeps the filter chain in the stage's process) or `auto`"
        )
    return int(configured)
