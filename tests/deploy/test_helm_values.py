"""deploy/helm/values.yaml for Dagster's Helm chart: every key is one the chart knows, the instance the chart
renders from it is one Dagster accepts, and it describes the cluster profile (external PostgreSQL with its
password in a Secret, the K8sRunLauncher, queued runs with a limited `gpu` pool, run monitoring, our image and
the settings its pods need)."""

import inspect
import re
from pathlib import Path
from typing import Any

import pytest
import s3fs
import yaml
from dagster import AssetsDefinition, DagsterInvalidConfigError
from dagster._core.instance.config import dagster_instance_config
from fsspec.config import set_conf_env

from assets.executor import EXECUTORS
from assets.factory import GPU_POOL
from curation_dagster.definitions import build_definitions
from curation_dagster.spec import load_version_specs, parse_spec

REPO = Path(__file__).resolve().parents[2]
VALUES = REPO / "deploy" / "helm" / "values.yaml"
CHART_KEYS = Path(__file__).with_name("dagster_chart_keys.yaml")
SETTINGS = REPO / "curation_dagster" / "settings.py"
PYPROJECT = REPO / "pyproject.toml"
SHARED_INSTANCE = REPO / "deploy" / "dagster.yaml"
"""The instance file of a shared deployment without Helm: the same limits, written by hand."""


def load_values() -> dict[str, Any]:
    return yaml.safe_load(VALUES.read_text())


def code_location(values: dict[str, Any]) -> dict[str, Any]:
    (deployment,) = values["dagster-user-deployments"]["deployments"]
    return deployment


def environment(deployment: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {variable["name"]: variable for variable in deployment["env"]}


def unknown_keys(values: Any, allowed: Any, path: str = "") -> list[str]:
    """The dotted paths of keys in `values` that the chart's key tree `allowed` does not have (a None leaf
    of the tree takes any value; its "[]" entry describes each item of a list)."""
    if allowed is None:
        return []
    if isinstance(values, list):
        return [found for item in values for found in unknown_keys(item, allowed.get("[]"), f"{path}[]")]
    if not isinstance(values, dict):
        return []
    found: list[str] = []
    for key, value in values.items():
        where = f"{path}.{key}" if path else key
        found += unknown_keys(value, allowed[key], where) if key in allowed else [where]
    return found


def snake_case(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def rendered_instance(values: dict[str, Any]) -> dict[str, Any]:
    """The sections of dagster.yaml that the chart's templates/configmap-instance.yaml renders from these
    values (run coordinator, run monitoring, concurrency, telemetry): the chart's keys in snake case, unset
    ones left out."""
    daemon = values["dagsterDaemon"]
    queued = daemon["runCoordinator"].get("config", {}).get("queuedRunCoordinator", {})
    coordinator: dict[str, Any] = {"module": "dagster.core.run_coordinator", "class": "QueuedRunCoordinator"}
    if queued:
        coordinator["config"] = {snake_case(key): value for key, value in queued.items() if value is not None}
    concurrency = values["concurrency"]
    return {
        "run_coordinator": coordinator,
        "run_monitoring": {snake_case(key): value for key, value in daemon["runMonitoring"].items()},
        "concurrency": {
            section: {snake_case(key): value for key, value in concurrency[section].items()}
            for section in ("pools", "runs")
            if section in concurrency
        },
        "telemetry": values["telemetry"],
    }


def validate_instance(instance: dict[str, Any], folder: Path) -> dict[str, Any]:
    """Dagster's own validation of an instance's dagster.yaml, as the daemon does at start."""
    (folder / "dagster.yaml").write_text(yaml.safe_dump(instance))
    config, _ = dagster_instance_config(str(folder))
    return dict(config)


def test_every_key_is_one_the_dagster_chart_knows() -> None:
    assert unknown_keys(load_values(), yaml.safe_load(CHART_KEYS.read_text())) == []


def test_the_key_check_finds_misspelt_keys() -> None:
    misspelt = {
        "runLaucher": {"type": "K8sRunLauncher"},
        "dagsterDaemon": {"runMonitoring": {"freeSlotsAfterRunEndSecond": 300}},
        "dagster-user-deployments": {"deployments": [{"name": "curation", "envSecret": []}]},
    }
    assert unknown_keys(misspelt, yaml.safe_load(CHART_KEYS.read_text())) == [
        "runLaucher",
        "dagsterDaemon.runMonitoring.freeSlotsAfterRunEndSecond",
        "dagster-user-deployments.deployments[].envSecret",
    ]


def test_the_instance_the_chart_renders_is_one_dagster_accepts(tmp_path: Path) -> None:
    config = validate_instance(rendered_instance(load_values()), tmp_path)
    assert config["run_monitoring"]["free_slots_after_run_end_seconds"] > 0
    assert config["concurrency"]["pools"]["default_limit"] >= 1


def test_a_run_limit_in_the_run_coordinator_beside_the_concurrency_block_is_refused(tmp_path: Path) -> None:
    values = load_values()
    values["dagsterDaemon"]["runCoordinator"]["config"] = {"queuedRunCoordinator": {"maxConcurrentRuns": 4}}
    with pytest.raises(DagsterInvalidConfigError, match="max_concurrent_runs"):
        validate_instance(rendered_instance(values), tmp_path)


def test_its_limits_and_monitoring_are_those_of_the_shared_instance_file() -> None:
    shared = yaml.safe_load(SHARED_INSTANCE.read_text())
    rendered = rendered_instance(load_values())
    assert rendered["concurrency"] == shared["concurrency"]
    assert {key: rendered["run_monitoring"].get(key) for key in shared["run_monitoring"]} == shared[
        "run_monitoring"
    ]
    assert rendered["telemetry"] == shared["telemetry"]


def test_the_instance_is_on_an_external_postgres_with_its_password_in_a_secret() -> None:
    values = load_values()
    assert values["postgresql"]["enabled"] is False
    assert values["postgresql"]["postgresqlHost"]
    assert "postgresqlPassword" not in values["postgresql"]
    assert values["generatePostgresqlPasswordSecret"] is False
    assert values["global"]["postgresqlSecretName"]


def test_runs_launch_as_kubernetes_jobs_from_a_queue_with_run_monitoring() -> None:
    values = load_values()
    assert values["runLauncher"]["type"] == "K8sRunLauncher"
    coordinator = values["dagsterDaemon"]["runCoordinator"]
    assert (coordinator["enabled"], coordinator["type"]) == (True, "QueuedRunCoordinator")
    assert values["dagsterDaemon"]["runMonitoring"]["enabled"] is True


def test_the_default_pool_limit_is_set_and_gpu_is_the_only_pool_it_limits(tmp_path: Path) -> None:
    concurrency = load_values()["concurrency"]
    assert concurrency["enabled"] is True and concurrency["pools"]["defaultLimit"] >= 1
    shipped, _ = load_version_specs(REPO / "versions")
    model_filter = parse_spec({"name": "unit", "filters": {"text": [{"kind": "text_classifier"}]}})
    defs = build_definitions([*shipped, model_filter], lake_root=str(tmp_path / "lake"))
    pools = {
        definition.op.pool for definition in defs.assets or [] if isinstance(definition, AssetsDefinition)
    }
    assert pools == {None, GPU_POOL}


def test_the_code_location_serves_our_definitions_on_the_port_the_chart_probes() -> None:
    deployment = code_location(load_values())
    module = re.search(r'module_name = "([\w.]+)"', PYPROJECT.read_text())
    assert module is not None
    assert deployment["dagsterApiGrpcArgs"] == ["-m", module.group(1)]
    assert deployment["port"] == 4000
    assert deployment["image"]["repository"] and deployment["image"]["tag"] not in (None, "", "latest")
    assert deployment["includeConfigInLaunchedRuns"]["enabled"] is True


def test_every_curation_variable_of_the_code_location_is_a_setting_the_project_reads() -> None:
    read = set(re.findall(r'"(CURATION_[A-Z_]+)"', SETTINGS.read_text()))
    names = set(environment(code_location(load_values())))
    assert {name for name in names if name.startswith("CURATION_")} <= read
    assert {"CURATION_HOME", "CURATION_LOCK_DSN", "CURATION_EXECUTOR", "CURATION_LANDING"} <= names


def test_the_lake_is_on_object_storage_and_the_steps_run_as_kubernetes_jobs() -> None:
    env = environment(code_location(load_values()))
    assert env["CURATION_HOME"]["value"].startswith("s3://")
    assert env["CURATION_EXECUTOR"]["value"] == "k8s" and "k8s" in EXECUTORS


def test_the_s3_endpoint_variable_reaches_s3fs_through_fsspec() -> None:
    env = environment(code_location(load_values()))
    fsspec_variables = {
        name: variable["value"] for name, variable in env.items() if name.startswith("FSSPEC_")
    }
    configured: dict[str, dict[str, Any]] = {}
    set_conf_env(configured, fsspec_variables)
    assert set(configured) == {"s3"} and "endpoint_url" in configured["s3"]
    assert set(configured["s3"]) <= set(inspect.signature(s3fs.S3FileSystem.__init__).parameters)


def test_the_lock_dsn_and_the_bucket_credentials_come_from_secrets() -> None:
    deployment = code_location(load_values())
    lock = environment(deployment)["CURATION_LOCK_DSN"]
    assert "value" not in lock and lock["valueFrom"]["secretKeyRef"]["name"]
    assert [secret["name"] for secret in deployment["envSecrets"]]
