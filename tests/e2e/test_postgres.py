"""The shared deployment's Dagster instance on a real PostgreSQL server: `deploy/dagster.yaml` loads with
every setting it names; the landing sensor and declarative automation work on it; and two `dagster asset
materialize` processes on two shards of one version with planted cross-shard duplicates, started together,
dedup them (the lake in a folder, or in a bucket of a local S3-compatible server) or synthesize from them
(the lake in a folder) with consistent claims under the PostgreSQL claim lock (CURATION_LOCK_DSN), their
compute phases overlapping in time. One throwaway server for the module, one database per test."""

from __future__ import annotations

import itertools
import random
from collections.abc import Iterator
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
from curation_dagster.dedup.exact import REJECT_EXACT
from curation_dagster.dedup.exact_index import ExactIndex
from curation_dagster.dedup.indexes import DEDUP_INDEX, SYNTH_INDEX, SYNTH_PREFIX
from curation_dagster.dedup.near import REJECT_NEAR
from curation_dagster.definitions import build_definitions
from curation_dagster.io.lake import Lake
from curation_dagster.spec import parse_spec
from curation_dagster.stages import STAGES
from curation_dagster.synth.stage import SYNTH_CANDIDATES
from tests.e2e.concurrent_runs import (
    DEPLOYED_INSTANCE,
    assert_computed_at_once,
    deployed_home,
    materialize_at_once,
    recorded_phases,
    run_upstream,
    shared_deployment,
)
from tests.e2e.small_project import write_landing
from tests.generator_fixtures import CORPUS
from tests.servers import PostgresServer, postgres_server

pytestmark = pytest.mark.slow

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
#: Semantic dedup makes each run's compute phase load a text embedder and embed its shard (seconds, as in
#: a deployment), so the two compute phases last long enough to be seen overlapping.
DEDUP_SPEC = f"{SPEC}dedup:\n  semantic: {{}}\n"
#: Synthesis by the tiny language model: a parent's variant depends on its first eight words alone (the
#: recipe cuts the parent to them, and a top_p so small that only the likeliest token is ever drawn makes
#: sampling greedy), so parents that share their first eight words plant duplicate candidates.
SYNTH_SPEC = f"""{SPEC}select: {{fraction: 1.0}}
synthesize:
  fraction: 1.0
  text:
    - {{kind: llm, prompt: "{{text}}", max_input_tokens: 8, top_p: 0.01, max_new_tokens: 48}}
"""
PLANTED_GROUPS = 6
#: Parents per shard besides the planted ones: enough that generating takes a second or so.
OTHER_PARENTS = 150
DUPLICATE_REASONS = (REJECT_EXACT, REJECT_NEAR)
#: Two shards for the sensor and automation tests.
SHARDS_FOR_SENSORS = {"a.jsonl": [RIVER, WHEAT], "b.jsonl": [BAKERY, CHOIR]}
BUCKET = "curation"  # the `s3` fixture's (tests/conftest.py)


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


@pytest.fixture(params=["folder", "bucket"])
def lake_root(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Where the runs' lake lives: a local folder, or a prefix of its own in the bucket of the local
    S3-compatible server."""
    if request.param == "folder":
        return str(tmp_path / "lake")
    request.getfixturevalue("s3")
    return f"s3://{BUCKET}/{tmp_path.name}"


def _deduped(lake: Lake, shard: str) -> tuple[pa.Table, pa.Table]:
    """A shard's kept and rejected rows of the deduped stage."""
    columns = ["id", "content_hash", "dup_of"]
    kept = lake.read_table(lake.path(VERSION, "deduped", shard), columns)
    rejected = lake.read_table(
        lake.path(VERSION, "deduped", shard, rejected=True), [*columns, "reject_stage"]
    )
    assert set(rejected.column("reject_stage").to_pylist()) <= {"deduped"}
    return kept, rejected.drop(["reject_stage"])


def _leftovers(lake: Lake) -> list[str]:
    """Lock files (a file lock was taken instead of the PostgreSQL lock), pending claims and staged
    candidates left in the lake."""
    return [
        str(path)
        for path in lake.fs.find(lake.root)
        if str(path).endswith((".lock", ".pending")) or f"/{SYNTH_CANDIDATES}/" in str(path)
    ]


def test_two_materialize_processes_dedup_one_version_at_once_under_the_postgresql_lock(
    server: PostgresServer, database: str, lake_root: str, tmp_path: Path
) -> None:
    landing = write_landing(tmp_path / "landing", DUPLICATED_SHARDS)
    deployment = shared_deployment(tmp_path / "project", landing, DEDUP_SPEC, server, database, lake_root)
    run_upstream(deployment, landing, "deduped")

    materialize_at_once(deployment, "deduped", DEDUP_INDEX)

    assert_computed_at_once(recorded_phases(deployment, "deduped"))
    lake = deployment.lake()
    outputs = {shard: _deduped(lake, shard) for shard in DUPLICATED_SHARDS}
    kept = pa.concat_tables([kept for kept, _ in outputs.values()])
    everything = pa.concat_tables([table for pair in outputs.values() for table in pair])
    kept_ids = set(kept.column("id").to_pylist())
    # One survivor per duplicate group, and every removed item names a survivor.
    assert kept.num_rows == len(set(everything.column("content_hash").to_pylist())) == 6
    assert len(set(kept.column("content_hash").to_pylist())) == kept.num_rows
    for _, rejected in outputs.values():
        assert set(rejected.column("dup_of").to_pylist()) <= kept_ids
    # Every shard is in the index, and the claims were taken one shard at a time: the first shard to claim
    # lost nothing to the other, the second lost every copy it shared with the first.
    claim_order = ExactIndex(lake, VERSION).keys.shards()
    assert sorted(claim_order) == sorted(DUPLICATED_SHARDS)
    assert all(lake.exists(lake.path(VERSION, DEDUP_INDEX, shard)) for shard in DUPLICATED_SHARDS)
    first, second = claim_order
    first_ids = set(outputs[first][0].column("id").to_pylist()) | set(
        outputs[first][1].column("id").to_pylist()
    )
    assert set(outputs[first][1].column("dup_of").to_pylist()) <= first_ids
    assert pc.sum(pc.is_in(outputs[second][1].column("dup_of"), pa.array(sorted(first_ids)))).as_py() == 3
    assert _leftovers(lake) == []


def synthesis_parents() -> dict[str, list[str]]:
    """Texts in the tiny model's words: per shard `OTHER_PARENTS` of their own, and `PLANTED_GROUPS` groups
    of three parents that share their first eight words, two in one shard and one in the other (in turn),
    so that each shard makes duplicates of its own candidates and of the other shard's."""
    rng = random.Random(15)
    vocabulary = sorted(set(" ".join(CORPUS).split()))

    def words(count: int) -> str:
        return " ".join(rng.choice(vocabulary) for _ in range(count))

    shards: dict[str, list[str]] = {"a.jsonl": [], "b.jsonl": []}
    for group in range(PLANTED_GROUPS):
        prefix = words(8)
        twice, once = ("a.jsonl", "b.jsonl") if group % 2 == 0 else ("b.jsonl", "a.jsonl")
        shards[twice] += [f"{prefix} {words(32)}.", f"{prefix} {words(32)}."]
        shards[once].append(f"{prefix} {words(32)}.")
    for texts in shards.values():
        texts += [f"{words(40)}." for _ in range(OTHER_PARENTS)]
    return shards


def _synthesized(lake: Lake, shard: str) -> list[dict[str, Any]]:
    """A shard's rows of the synthesized stage, kept then rejected, with `admitted` telling which."""
    kept = lake.read_table(lake.path(VERSION, "synthesized", shard)).to_pylist()
    rejected = lake.read_table(lake.path(VERSION, "synthesized", shard, rejected=True)).to_pylist()
    return [{**row, "admitted": True} for row in kept] + [{**row, "admitted": False} for row in rejected]


def test_two_materialize_processes_synthesize_one_version_at_once_under_the_postgresql_lock(
    server: PostgresServer, database: str, tmp_path: Path, tiny_lm_folder: Path
) -> None:
    parents = synthesis_parents()
    landing = write_landing(tmp_path / "landing", parents)
    deployment = shared_deployment(
        tmp_path / "project",
        landing,
        SYNTH_SPEC,
        server,
        database,
        str(tmp_path / "lake"),
        CURATION_TEXT_GENERATOR=str(tiny_lm_folder),
    )
    run_upstream(deployment, landing, "synthesized")

    materialize_at_once(deployment, "synthesized", SYNTH_INDEX)

    assert_computed_at_once(recorded_phases(deployment, "synthesized"))
    lake = deployment.lake()
    rows = {shard: _synthesized(lake, shard) for shard in parents}
    real = [row for shard_rows in rows.values() for row in shard_rows if not row["synthetic"]]
    assert len(real) == sum(len(texts) for texts in parents.values())
    assert all(row["admitted"] for row in real)
    candidates = {
        shard: [row for row in shard_rows if row["synthetic"]] for shard, shard_rows in rows.items()
    }
    admitted = [row for shard_rows in candidates.values() for row in shard_rows if row["admitted"]]
    admitted_ids = {row["id"] for row in admitted}
    # No duplicate admitted twice across the version, and every candidate turned down as a duplicate names
    # an admitted synthetic item.
    assert len({row["content_hash"] for row in admitted}) == len(admitted) > 0
    duplicates = {
        shard: [row for row in shard_rows if row.get("reject_reason") in DUPLICATE_REASONS]
        for shard, shard_rows in candidates.items()
    }
    for shard_duplicates in duplicates.values():
        assert {row["dup_of"] for row in shard_duplicates} <= admitted_ids
    # The plant: the three parents of each group got one and the same candidate, and at most one of the
    # three was admitted, the others turned down as its duplicates.
    opening = {row["id"]: " ".join(row["text"].split()[:8]) for row in real}
    groups: dict[str, list[dict[str, Any]]] = {}
    for row in (row for shard_rows in candidates.values() for row in shard_rows):
        groups.setdefault(opening[row["parent_ids"][0]], []).append(row)
    planted = [group for group in groups.values() if len(group) == 3]
    assert len(planted) == PLANTED_GROUPS
    for group in planted:
        assert len({row["content_hash"] for row in group}) == 1
        assert {row["shard"] for row in group} == set(parents)
        survivors = [row for row in group if row["admitted"]]
        assert len(survivors) <= 1
        if survivors:
            assert {row["dup_of"] for row in group if not row["admitted"]} == {survivors[0]["id"]}
    # The tiny model's variants soon repeat one word, so a group may lose all three to another parent's
    # identical variant admitted before them; the groups that keep one show the copies in the other shard
    # naming it.
    assert any(row["admitted"] for group in planted for row in group)
    # Every shard is in the synthesis index, and the claims were taken one shard at a time: the first shard
    # to claim turned down only duplicates of its own candidates, the second also those of the first's.
    claim_order = ExactIndex(lake, VERSION, prefix=SYNTH_PREFIX).keys.shards()
    assert sorted(claim_order) == sorted(parents)
    assert all(lake.exists(lake.path(VERSION, SYNTH_INDEX, shard)) for shard in parents)
    first, second = claim_order
    first_admitted = {row["id"] for row in candidates[first] if row["admitted"]}
    assert {row["dup_of"] for row in duplicates[first]} <= first_admitted
    assert any(row["dup_of"] in first_admitted for row in duplicates[second])
    assert _leftovers(lake) == []
