"""Two `dagster asset materialize` processes on two shards of one version at the same time, as two workers of
a shared deployment run them: the deployed instance (deploy/dagster.yaml) and the claim lock in one database
of a throwaway PostgreSQL server, the lake in a folder or in a bucket. The runs start while the test holds
the stage's claim lock, so their claims meet at it; each run's phase timings (the `phases` metadata of its
materialization) are read back from the instance, to tell whether the two compute phases overlapped."""

from __future__ import annotations

import contextlib
import shutil
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml
from dagster import AssetRecordsFilter, DagsterInstance
from dagster._core.instance.ref import InstanceRef

from assets.factory import GPU_POOL, stage_key
from assets.partitions import SHARDS
from curation_dagster.io.lake import Lake
from curation_dagster.io.locks import advisory_key
from curation_dagster.pipeline import run_stage
from curation_dagster.spec import VersionSpec, parse_spec
from curation_dagster.stages import STAGES
from tests.e2e.small_project import materialize, new_project
from tests.servers import PostgresServer, wait_for

DEPLOYED_INSTANCE = Path(__file__).resolve().parents[2] / "deploy" / "dagster.yaml"
#: Steps that run a model may run two at a time: the test machine counts as two accelerators (the deployed
#: instance allows one, so two model steps of different runs would take turns).
ACCELERATORS = 2
#: A phase's start and end, in seconds since the epoch, by phase name (`progress.PhaseClock.table`).
Phases = dict[str, dict[str, float]]


def deployed_home(folder: Path) -> Path:
    """A DAGSTER_HOME holding the deployment's instance file as shipped."""
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(DEPLOYED_INSTANCE, folder / "dagster.yaml")
    return folder


@dataclass(frozen=True)
class SharedDeployment:
    """A project folder of one version (`spec`) whose commands run as workers of one deployment: the
    deployed instance and the claim lock in `database` of `server`, the lake at `lake_root`, and `extra`
    variables (model paths)."""

    project: Path
    spec: VersionSpec
    server: PostgresServer
    database: str
    lake_root: str
    extra: dict[str, str] = field(default_factory=dict)

    def environment(self) -> dict[str, str]:
        """What each command of the project runs with, beside the project's own variables. Torch takes one
        thread per process: two processes on a machine of two cores would otherwise fight over them."""
        return {
            **self.server.instance_environment(self.database),
            "CURATION_LOCK_DSN": self.server.database_dsn(self.database),
            "CURATION_HOME": self.lake_root,
            "OMP_NUM_THREADS": "1",
            **self.extra,
        }

    def lake(self) -> Lake:
        return Lake(self.lake_root, claim_lock_dsn=self.server.database_dsn(self.database))

    @contextlib.contextmanager
    def instance(self) -> Iterator[DagsterInstance]:
        """The deployment's instance, as a worker loads it (its file reads the server from the environment)."""
        with pytest.MonkeyPatch.context() as patch:
            for name, value in self.server.instance_environment(self.database).items():
                patch.setenv(name, value)
            home = self.project / ".curation" / "dagster_home"
            loaded = DagsterInstance.from_ref(InstanceRef.from_dir(str(home)))
        with loaded:
            yield loaded


def shared_deployment(
    folder: Path,
    landing: Path,
    spec_text: str,
    server: PostgresServer,
    database: str,
    lake_root: str,
    **extra: str,
) -> SharedDeployment:
    """A project for the version `spec_text` describes on `database`, its landing shards registered as
    partitions and `ACCELERATORS` slots in the instance's GPU pool."""
    spec = parse_spec(yaml.safe_load(spec_text))
    project = new_project(folder, landing, {spec.name: spec_text})
    deployed_home(project / ".curation" / "dagster_home")
    deployment = SharedDeployment(project, spec, server, database, lake_root, dict(extra))
    shards = sorted(path.name for path in landing.iterdir())
    with deployment.instance() as instance:
        instance.add_dynamic_partitions(SHARDS, shards)
        instance.event_log_storage.set_concurrency_slots(GPU_POOL, ACCELERATORS)
    return deployment


def run_upstream(deployment: SharedDeployment, landing: Path, stage: str) -> None:
    """Every stage before `stage` of every landing shard, in this process, into the deployment's lake."""
    lake = deployment.lake()
    for path in sorted(landing.iterdir()):
        for upstream in STAGES[: STAGES.index(stage)]:
            run_stage(deployment.spec, lake, upstream, path.name, path)


def materialize_at_once(deployment: SharedDeployment, stage: str, claim_index: str) -> None:
    """`dagster asset materialize` of `stage` for every registered shard, one process each, all started
    together while this process holds the version's claim lock `claim_index`, let go once every run waits
    for it; fails unless every run succeeds."""
    version = deployment.spec.name
    lake = deployment.lake()
    with deployment.instance() as instance:
        shards = instance.get_dynamic_partitions(SHARDS)
    key = advisory_key(lake.root, version, claim_index)

    def waiting() -> int:
        return deployment.server.advisory_locks().count((key, False))

    with ThreadPoolExecutor(max_workers=len(shards)) as pool:
        with lake.lock(version, claim_index):
            running = [
                pool.submit(
                    materialize,
                    deployment.project,
                    f"{version}/{stage}",
                    shard,
                    **deployment.environment(),
                )
                for shard in shards
            ]
            wait_for(
                lambda: waiting() == len(shards) or any(run.done() for run in running),
                f"every run to wait for the {claim_index} lock",
            )
            ended = [run.result().stderr[-3000:] for run in running if run.done()]
            assert waiting() == len(shards), f"a run ended before it waited for the lock:\n{ended}"
        runs = [future.result() for future in running]
    for shard, done in zip(shards, runs, strict=True):
        assert done.returncode == 0, f"{shard}:\n{done.stderr[-3000:]}"
        assert "RUN_SUCCESS" in done.stdout + done.stderr


def recorded_phases(deployment: SharedDeployment, stage: str) -> dict[str, Phases]:
    """The `phases` metadata of each shard's latest materialization of `stage`, by shard."""
    version = deployment.spec.name
    found: dict[str, Phases] = {}
    with deployment.instance() as instance:
        for shard in instance.get_dynamic_partitions(SHARDS):
            records = instance.fetch_materializations(
                AssetRecordsFilter(asset_key=stage_key(version, stage), asset_partitions=[shard]), limit=1
            ).records
            assert records, f"no materialization of {version}/{stage} for {shard}"
            materialization = records[0].asset_materialization
            assert materialization is not None
            phases = materialization.metadata["phases"].value
            assert isinstance(phases, dict)
            found[shard] = phases
    return found


def assert_computed_at_once(phases: dict[str, Phases]) -> None:
    """The runs' compute phases overlap in time, and every run had computed before the first one claimed:
    compute with no lock held, at the same time; claims one after the other."""
    starts = [shard["compute"]["start"] for shard in phases.values()]
    ends = [shard["compute"]["end"] for shard in phases.values()]
    assert max(starts) < min(ends), f"the compute phases did not overlap: {phases}"
    assert max(ends) <= min(shard["claim"]["start"] for shard in phases.values()), phases
