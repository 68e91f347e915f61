"""The shared deployment's Dagster instance on a real PostgreSQL server: `deploy/dagster.yaml` loads with
every setting it names; the landing sensor and declarative automation work on it; and two `dagster asset
materialize` processes on two shards of one version, started together, both succeed with consistent
dedup claims under the PostgreSQL claim lock (CURATION_LOCK_DSN). One throwaway server for the module,
one database per test."""

from __future__ import annotations

import itertools
import shutil
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pytest
import yaml
from dagster import (
    AddDynamicPartitionsRequest,
    DagsterInstance,
    DagsterInvalidConfigError,
    Definitions,
    QueuedRunCoordinator,
    SensorResult,
    build_sensor_context,
    evaluate_automation_conditions,
    materialize,
)
from dagster._core.instance.ref import InstanceRef
from dagster_postgres import PostgresEventLogStorage, PostgresRunStorage, PostgresScheduleStorage

from assets.factory import stage_key
from assets.partitions import SHARDS
from assets.sensors import SENSOR_NAME
from curation_dagster.dedup.exact_index import ExactIndex
from curation_dagster.dedup.indexes import DEDUP_INDEX
from curation_dagster.definitions import build_definitions
from curation_dagster.io.lake import Lake
from curation_dagster.io.locks import PostgresClaimLock, advisory_key
from curation_dagster.spec import parse_spec
from curation_dagster.stages import STAGES
from tests.e2e.small_project import materialize as materialize_command
from tests.e2e.small_project import new_project, run, write_landing
from tests.servers import PostgresServer, postgres_server, wait_for

pytestmark = pytest.mark.slow

DEPLOYED_INSTANCE = Path(__file__).resolve().parents[2] / "deploy" / "dagster.yaml"
VERSION = "scaled"
SPEC = f"name: {VERSION}\nmodalities: [text]\n"
RIVER = "The river bank was quiet in the early morning light and the boats were still tied up at the pier."
BAKERY = "A new bakery opened on the corner of the square, selling rye bread and cinnamon rolls every day."
BRIDGE = "The council voted to repair the old stone bridge before the spring floods arrive in the valley."
WHEAT = "Researchers measured the growth of wheat under three watering schedules over two dry summers."
OAKS = "Volunteers planted four hundred oak saplings along the motorway verge during the last winter."
CHOIR = "The village choir rehearsed twice a week in the school hall ahead of its first concert abroad."
#: Two shards with exact duplicates across them (RIVER, BRIDGE, BAKERY; case does not matter) and one
#: inside a shard (OAKS); whichever shard claims first keeps its copies.
DUPLICATED_SHARDS = {
    "a.jsonl": [RIVER, BRIDGE, WHEAT, OAKS, OAKS.upper(), BAKERY],
    "b.jsonl": [RIVER.upper(), BAKERY, CHOIR, BRIDGE],
}
#: Two shards for the sensor and automation tests.
SHARDS_FOR_SENSORS = {"a.jsonl": [RIVER, WHEAT], "b.jsonl": [BAKERY, CHOIR]}


@pytest.fixture(scope="module")
def server() -> Iterator[PostgresServer]:
    with postgres_server() as running:
        yield running


_databases = itertools.count()


@pytest.fixture
def database(server: PostgresServer) -> str:
    """A new database on the module's server, so no test sees another's runs or partitions."""
    name = f"test_{next(_databases)}"
    server.create_database(name)
    return name


def deployed_home(folder: Path) -> Path:
    """A DAGSTER_HOME holding the deployment's instance file as shipped."""
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(DEPLOYED_INSTANCE, folder / "dagster.yaml")
    return folder


@pytest.fixture
def instance(
    server: PostgresServer, database: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[DagsterInstance]:
    """The deployment's instance (deploy/dagster.yaml) on a fresh database of the server; the claim lock
    on the same database, as the README sets it up."""
    for name, value in server.instance_environment(database).items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("CURATION_LOCK_DSN", server.database_dsn(database))
    with DagsterInstance.from_ref(
        InstanceRef.from_dir(str(deployed_home(tmp_path / "dagster_home")))
    ) as loaded:
        yield loaded


def test_the_deployed_instance_loads_on_postgresql_with_every_setting_it_names(
    instance: DagsterInstance,
) -> None:
    shipped: dict[str, Any] = yaml.safe_load(DEPLOYED_INSTANCE.read_text())

    assert isinstance(instance.run_storage, PostgresRunStorage)
    assert isinstance(instance.event_log_storage, PostgresEventLogStorage)
    assert isinstance(instance.schedule_storage, PostgresScheduleStorage)
    assert isinstance(instance.run_coordinator, QueuedRunCoordinator)
    assert (
        instance.run_coordinator.get_run_queue_config().max_user_code_failure_retries
        == (shipped["run_coordinator"]["config"]["max_user_code_failure_retries"])
    )
    concurrency = instance.get_concurrency_config()
    assert concurrency.run_queue_config is not None
    assert (
        concurrency.run_queue_config.max_concurrent_runs
        == shipped["concurrency"]["runs"]["max_concurrent_runs"]
    )
    assert concurrency.pool_config.default_pool_limit == shipped["concurrency"]["pools"]["default_limit"]
    assert instance.run_monitoring_enabled
    assert instance.run_monitoring_settings == shipped["run_monitoring"]
    assert not instance.telemetry_enabled


def test_the_gpu_pool_gets_its_limit_in_the_postgresql_storage(instance: DagsterInstance) -> None:
    shipped: dict[str, Any] = yaml.safe_load(DEPLOYED_INSTANCE.read_text())
    storage = instance.event_log_storage
    assert storage.supports_global_concurrency_limits

    storage.initialize_concurrency_limit_to_default("gpu")

    assert storage.get_concurrency_info("gpu").slot_count == shipped["concurrency"]["pools"]["default_limit"]


def test_the_deployed_instance_names_a_missing_variable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in (
        "DAGSTER_PG_HOST",
        "DAGSTER_PG_PORT",
        "DAGSTER_PG_USER",
        "DAGSTER_PG_PASSWORD",
        "DAGSTER_PG_DB",
    ):
        monkeypatch.setenv(name, "1")
    monkeypatch.delenv("DAGSTER_PG_HOST")

    with pytest.raises(DagsterInvalidConfigError, match="DAGSTER_PG_HOST"):
        DagsterInstance.from_ref(InstanceRef.from_dir(str(deployed_home(tmp_path / "dagster_home"))))


def landing_tick(defs: Definitions, instance: DagsterInstance, cursor: str | None) -> SensorResult:
    """One evaluation of the definitions' landing sensor against `instance`."""
    context = build_sensor_context(
        instance=instance, definitions=defs, resources=dict(defs.resources or {}), cursor=cursor
    )
    result = defs.resolve_sensor_def(SENSOR_NAME)(context)
    assert isinstance(result, SensorResult)
    return result


def test_the_landing_sensor_registers_shards_and_requests_raw_runs_on_postgresql(
    instance: DagsterInstance, tmp_path: Path
) -> None:
    landing = write_landing(tmp_path / "landing", SHARDS_FOR_SENSORS)
    defs = build_definitions([parse_spec(yaml.safe_load(SPEC))], str(tmp_path / "lake"), str(landing))

    first = landing_tick(defs, instance, None)
    (registration,) = first.dynamic_partitions_requests or []
    assert isinstance(registration, AddDynamicPartitionsRequest)
    assert registration.partition_keys == ["a.jsonl", "b.jsonl"]
    run_requests = first.run_requests or []
    assert sorted(str(request.partition_key) for request in run_requests) == ["a.jsonl", "b.jsonl"]
    assert {key for request in run_requests for key in request.asset_selection or []} == {
        stage_key(VERSION, "raw")
    }
    # What the daemon does with the request, then a second tick with the cursor: nothing is new.
    instance.add_dynamic_partitions(SHARDS, list(registration.partition_keys))
    second = landing_tick(defs, instance, first.cursor)

    assert (second.run_requests, second.dynamic_partitions_requests) == ([], [])
    with DagsterInstance.from_ref(instance.get_ref()) as another_process_view:
        assert another_process_view.get_dynamic_partitions(SHARDS) == ["a.jsonl", "b.jsonl"]


def test_automation_requests_the_downstream_stages_of_a_new_shard_on_postgresql(
    instance: DagsterInstance, tmp_path: Path
) -> None:
    """The automation sensor's selection evaluated against the instance, as its daemon tick does: only
    the new shard's downstream stages are requested."""
    landing = write_landing(tmp_path / "landing", SHARDS_FOR_SENSORS)
    defs = build_definitions([parse_spec(yaml.safe_load(SPEC))], str(tmp_path / "lake"), str(landing))
    target = defs.resolve_sensor_def("curation_automation").asset_selection
    # Resolved from the definitions, so bound to their resources (the lake with the PostgreSQL lock).
    per_shard = [defs.resolve_assets_def(stage_key(VERSION, stage)) for stage in STAGES]
    instance.add_dynamic_partitions(SHARDS, ["a.jsonl"])
    assert materialize(per_shard, partition_key="a.jsonl", instance=instance).success
    baseline = evaluate_automation_conditions(defs=defs, instance=instance, asset_selection=target)
    instance.add_dynamic_partitions(SHARDS, ["b.jsonl"])
    assert materialize(per_shard[:1], partition_key="b.jsonl", instance=instance).success

    result = evaluate_automation_conditions(
        defs=defs, instance=instance, asset_selection=target, cursor=baseline.cursor
    )

    requested = {
        (key, partition)
        for key in (stage_key(VERSION, stage) for stage in STAGES)
        for partition in result.get_requested_partitions(key)
    }
    assert requested == {(stage_key(VERSION, stage), "b.jsonl") for stage in STAGES[1:]}
    assert result.total_requested == len(STAGES) - 1
    assert not list((tmp_path / "lake").rglob("*.lock"))  # the claims took the PostgreSQL lock


def _deduped(lake: Lake, shard: str) -> tuple[pa.Table, pa.Table]:
    """A shard's kept and rejected rows of the deduped stage."""
    columns = ["id", "content_hash", "dup_of"]
    kept = lake.read_table(lake.path(VERSION, "deduped", shard), columns)
    rejected = lake.read_table(
        lake.path(VERSION, "deduped", shard, rejected=True), [*columns, "reject_stage"]
    )
    assert set(rejected.column("reject_stage").to_pylist()) <= {"deduped"}
    return kept, rejected.drop(["reject_stage"])


def test_two_materialize_processes_claim_one_version_consistently_under_the_postgresql_lock(
    server: PostgresServer, database: str, tmp_path: Path
) -> None:
    landing = write_landing(tmp_path / "landing", DUPLICATED_SHARDS)
    project = new_project(tmp_path / "project", landing, {VERSION: SPEC})
    deployed_home(project / ".curation" / "dagster_home")
    shared = {**server.instance_environment(database), "CURATION_LOCK_DSN": server.database_dsn(database)}
    registered = run(
        [sys.executable, "-m", "curation_dagster.cli", "register", "--no-demo-data"], project, **shared
    )
    assert registered.returncode == 0, registered.stderr[-3000:]
    assert "registered 2 new shards" in registered.stdout

    lake_root = project / ".curation" / "lake"
    # The test holds the version's dedup lock while both runs start, and lets go once both wait for it, so
    # their claims meet at the lock however fast either run is.
    dedup_lock = advisory_key(str(lake_root), VERSION, DEDUP_INDEX)
    selection = f"{VERSION}/raw,{VERSION}/deduped"
    with ThreadPoolExecutor(max_workers=2) as both:
        with PostgresClaimLock(server.database_dsn(database), str(lake_root)).hold(VERSION, DEDUP_INDEX):
            running = [
                both.submit(materialize_command, project, selection, shard, **shared)
                for shard in DUPLICATED_SHARDS
            ]
            wait_for(
                lambda: (
                    server.advisory_locks().count((dedup_lock, False)) == 2 or any(r.done() for r in running)
                ),
                "both runs to wait for the dedup lock",
            )
            assert server.advisory_locks().count((dedup_lock, False)) == 2
        runs = [future.result() for future in running]

    for shard, done in zip(DUPLICATED_SHARDS, runs, strict=True):
        assert done.returncode == 0, f"{shard}:\n{done.stderr[-3000:]}"
        assert "RUN_SUCCESS" in done.stdout + done.stderr
    lake = Lake(lake_root)
    outputs = {shard: _deduped(lake, shard) for shard in DUPLICATED_SHARDS}
    kept = pa.concat_tables([kept for kept, _ in outputs.values()])
    everything = pa.concat_tables([table for pair in outputs.values() for table in pair])
    kept_ids = set(kept.column("id").to_pylist())
    # One survivor per duplicate group, and every removed item names a survivor.
    assert kept.num_rows == len(set(everything.column("content_hash").to_pylist())) == 6
    assert len(set(kept.column("content_hash").to_pylist())) == kept.num_rows
    for _, rejected in outputs.values():
        assert set(rejected.column("dup_of").to_pylist()) <= kept_ids
    # The claims were taken one shard at a time: the first shard to claim lost nothing to the other,
    # the second lost every copy it shared with the first.
    claim_order = ExactIndex(lake, VERSION).keys.shards()
    assert sorted(claim_order) == sorted(DUPLICATED_SHARDS)
    first, second = claim_order
    first_ids = set(outputs[first][0].column("id").to_pylist()) | set(
        outputs[first][1].column("id").to_pylist()
    )
    assert set(outputs[first][1].column("dup_of").to_pylist()) <= first_ids
    assert pc.sum(pc.is_in(outputs[second][1].column("dup_of"), pa.array(sorted(first_ids)))).as_py() == 3
    # The PostgreSQL lock served every claim: a file lock would have left its lock file in the lake.
    assert sorted(path.name for path in lake_root.rglob("*.lock")) == []
    assert not list(lake_root.rglob("*.pending"))
