"""The executor that runs a run's steps, chosen by name ($CURATION_EXECUTOR): Dagster's default multiprocess
executor on one machine; `in_process`, every step in the run's own process (a CI job that materializes a
shard's stages in one `dagster asset materialize` starts Python and loads the code location once, not once
per step); or `k8s_job_executor` on a cluster, where each step is its own Kubernetes job and a model stage's
op tags (`GPU_OP_TAGS`) make its pod request a GPU."""

from collections.abc import Callable

from dagster import ExecutorDefinition, in_process_executor

from curation_dagster.errors import SettingError

K8S_EXTRA_INSTALL = 'pip install -c constraints.txt ".[k8s]"'


def _default_executor() -> None:
    """Dagster's default: multiprocess for launched runs, in-process under `materialize`."""
    return None


def _k8s_job_executor() -> ExecutorDefinition:
    """dagster-k8s's step-per-job executor, imported only when chosen so that the `k8s` extra stays optional.
    Importing it builds definitions only: the cluster is reached when a run launches its first step."""
    try:
        from dagster_k8s import k8s_job_executor
    except ImportError as error:
        raise SettingError(
            f"CURATION_EXECUTOR=k8s needs dagster-k8s, which is not installed: install the k8s extra "
            f"({K8S_EXTRA_INSTALL}) or unset CURATION_EXECUTOR"
        ) from error
    return k8s_job_executor


EXECUTORS: dict[str, Callable[[], ExecutorDefinition | None]] = {
    "multiprocess": _default_executor,
    "in_process": lambda: in_process_executor,
    "k8s": _k8s_job_executor,
}
"""The values $CURATION_EXECUTOR takes, and the executor each one builds."""


def build_executor(name: str) -> ExecutorDefinition | None:
    """The executor called `name`; None keeps Dagster's default."""
    if name not in EXECUTORS:
        raise SettingError(
            f"CURATION_EXECUTOR={name!r} is not an executor: set it to one of {', '.join(EXECUTORS)}"
        )
    return EXECUTORS[name]()
