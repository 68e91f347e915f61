"""The cluster profile without a cluster: with CURATION_EXECUTOR=k8s every step runs as its own Kubernetes job,
and the job that dagster-k8s builds for a model stage's step requests a GPU while a CPU stage's does not.

The jobs are built the way `k8s_job_executor` builds them (`K8sStepHandler.launch_step`), with dagster_k8s's
own functions and no API server: the code location's container context as Dagster's Helm chart writes it for
deploy/helm/values.yaml, merged with the step's `dagster-k8s/config` tag, then `construct_dagster_k8s_job`.
"""

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import kubernetes.client
import pytest
import yaml
from dagster import AssetKey, Definitions, multi_or_in_process_executor
from dagster._core.execution.api import create_execution_plan
from dagster_k8s import k8s_job_executor
from dagster_k8s.container_context import K8sContainerContext
from dagster_k8s.job import (
    DagsterK8sJobConfig,
    construct_dagster_k8s_job,
    get_k8s_job_name,
    get_user_defined_k8s_config,
)

from curation_dagster.definitions import build_definitions
from curation_dagster.errors import SettingError
from curation_dagster.spec import VersionSpec, parse_spec

REPO = Path(__file__).resolve().parents[2]
VALUES = REPO / "deploy" / "helm" / "values.yaml"
RELEASE = "curation"
"""The Helm release name of the README's `helm upgrade --install`."""
FULLNAME = f"{RELEASE}-dagster"
"""The chart's `dagster.fullname` for that release (its instance ConfigMap is `<FULLNAME>-instance`)."""
USER_DEPLOYMENTS_FULLNAME = f"{RELEASE}-dagster-user-deployments"
"""The same name in the dagster-user-deployments subchart, which names the code location's resources."""
NAMESPACE = "curation"
IMAGE = "registry.example.com/curation-dagster:0.1.0"
RUN_ID = "0f4b7d0e-5c1a-4b8e-9d6f-3a2c1b0e9f87"


def model_filter_spec() -> VersionSpec:
    """A version whose text filters run a classifier: its filtered and synthesized stages join the gpu pool."""
    return parse_spec(
        {
            "name": "unit",
            "modalities": ["text"],
            "filters": {
                "text": [
                    {"kind": "text_length", "min_chars": 20, "min_words": 4},
                    {"kind": "text_classifier"},
                ]
            },
        }
    )


@pytest.fixture
def k8s_defs(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Definitions:
    monkeypatch.setenv("CURATION_EXECUTOR", "k8s")
    return build_definitions(
        [model_filter_spec()], lake_root=str(tmp_path / "lake"), landing=str(tmp_path / "landing")
    )


def step_tags(defs: Definitions, stage: str) -> dict[str, str]:
    """The tags of the stage's step in the execution plan: what the executor's step handler reads."""
    job = defs.resolve_implicit_global_asset_job_def()
    plan = create_execution_plan(job.get_subset(asset_selection={AssetKey(["unit", stage])}))
    (step,) = plan.get_all_steps_in_topo_order()
    return dict(step.tags)


def code_location_container_context() -> dict[str, Any]:
    """The container context Dagster's Helm chart gives runs of our user code deployment
    (`dagsterUserDeployments.k8sContainerContext` with includeConfigInLaunchedRuns): its image pull
    policy, environment, Secrets and volumes, which reach every run and step pod."""
    deployment = yaml.safe_load(VALUES.read_text())["dagster-user-deployments"]["deployments"][0]
    return {
        "k8s": {
            "image_pull_policy": deployment["image"]["pullPolicy"],
            "env_config_maps": [f"{USER_DEPLOYMENTS_FULLNAME}-{deployment['name']}-user-env"],
            "env_secrets": [secret["name"] for secret in deployment.get("envSecrets", [])],
            "volume_mounts": deployment.get("volumeMounts", []),
            "volumes": deployment.get("volumes", []),
            "namespace": NAMESPACE,
            "service_account_name": f"{USER_DEPLOYMENTS_FULLNAME}-user-deployments",
            "env": deployment.get("env", []),
            "run_k8s_config": {"pod_spec_config": {"automount_service_account_token": True}},
        }
    }


def step_job(defs: Definitions, stage: str) -> kubernetes.client.V1Job:
    """The Kubernetes job `k8s_job_executor` would create for the stage's step of one run."""
    step_key = f"unit__{stage}"
    context = K8sContainerContext.create_from_config(code_location_container_context()).merge(
        K8sContainerContext(run_k8s_config=get_user_defined_k8s_config(step_tags(defs, stage)))
    )
    # What the K8sRunLauncher of the chart contributes: its instance ConfigMap and PostgreSQL Secret.
    job_config = DagsterK8sJobConfig(
        job_image=IMAGE,
        dagster_home="/opt/dagster/dagster_home",
        instance_config_map=f"{FULLNAME}-instance",
        postgres_password_secret="curation-postgresql",
    )
    name = f"dagster-step-{get_k8s_job_name(RUN_ID, step_key)}"
    return construct_dagster_k8s_job(
        job_config=job_config,
        args=["dagster", "api", "execute_step"],
        job_name=name,
        pod_name=name,
        component="step_worker",
        user_defined_k8s_config=context.run_k8s_config,
        labels={"dagster/op": step_key, "dagster/run-id": RUN_ID},
    )


def container(job: kubernetes.client.V1Job) -> kubernetes.client.V1Container:
    (only,) = job.spec.template.spec.containers
    return only


def test_the_k8s_setting_runs_each_step_of_every_job_as_its_own_kubernetes_job(k8s_defs: Definitions) -> None:
    job = k8s_defs.resolve_implicit_global_asset_job_def()
    assert job.executor_def is k8s_job_executor


def test_without_the_setting_runs_keep_dagsters_default_multiprocess_executor(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("CURATION_EXECUTOR", raising=False)
    defs = build_definitions([model_filter_spec()], lake_root=str(tmp_path / "lake"))
    assert defs.resolve_implicit_global_asset_job_def().executor_def is multi_or_in_process_executor


def test_an_unknown_executor_setting_fails_naming_the_values_it_takes(tmp_path: Path) -> None:
    with pytest.raises(
        SettingError, match=r"CURATION_EXECUTOR='celery'.*one of multiprocess, in_process, k8s"
    ):
        build_definitions([model_filter_spec()], lake_root=str(tmp_path / "lake"), executor="celery")


def test_without_dagster_k8s_the_k8s_setting_says_which_extra_to_install(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setitem(sys.modules, "dagster_k8s", None)  # what `import dagster_k8s` finds uninstalled
    with pytest.raises(
        SettingError, match=r'install the k8s extra \(pip install -c constraints.txt "\.\[k8s\]"\)'
    ):
        build_definitions([model_filter_spec()], lake_root=str(tmp_path / "lake"), executor="k8s")


def test_a_model_stage_step_pod_requests_one_gpu(k8s_defs: Definitions) -> None:
    resources = container(step_job(k8s_defs, "filtered")).resources
    assert resources is not None and resources.limits == {"nvidia.com/gpu": "1"}


def test_a_cpu_stage_step_pod_requests_no_gpu(k8s_defs: Definitions) -> None:
    resources = container(step_job(k8s_defs, "raw")).resources
    requested = {**((resources and resources.limits) or {}), **((resources and resources.requests) or {})}
    assert "nvidia.com/gpu" not in requested


def test_the_runs_own_tags_ask_for_no_gpu_so_the_run_worker_pod_holds_none(k8s_defs: Definitions) -> None:
    # The K8sRunLauncher builds the run's pod from the run's tags, never from an op's.
    run_tags = k8s_defs.resolve_implicit_global_asset_job_def().tags
    assert "nvidia.com/gpu" not in json.dumps(get_user_defined_k8s_config(run_tags).to_dict())


def test_step_pods_get_the_lake_settings_and_secrets_of_the_code_location(k8s_defs: Definitions) -> None:
    pod = container(step_job(k8s_defs, "filtered"))
    env = {variable.name: variable for variable in pod.env}
    assert env["CURATION_HOME"].value.startswith("s3://")
    assert env["CURATION_EXECUTOR"].value == "k8s"
    lock = env["CURATION_LOCK_DSN"].value_from.secret_key_ref
    assert (lock.name, lock.key) == ("curation-lock", "dsn")
    assert "curation-s3" in {source.secret_ref.name for source in pod.env_from if source.secret_ref}
    assert "/landing" in {mount.mount_path for mount in pod.volume_mounts}


PROBE = """
import json, socket, sys

def refuse(*args, **kwargs):
    raise AssertionError(f"tried to open a network connection: {args!r}")

socket.socket.connect = refuse
socket.create_connection = refuse
import curation_dagster.definitions as module
heavy = sorted(name for name in sys.modules if name.split(".")[0] in {"torch", "transformers", "open_clip", "av", "pynvml", "cupy"})
print(json.dumps([module.defs.resolve_implicit_global_asset_job_def().executor_def.name, heavy]))
"""


def test_importing_definitions_with_the_k8s_executor_touches_no_cluster_and_no_gpu_library(
    tmp_path: Path,
) -> None:
    environment = {
        "PATH": "/usr/bin:/bin",
        "HOME": str(tmp_path),
        "CURATION_EXECUTOR": "k8s",
        "CURATION_HOME": str(tmp_path / "lake"),
        "CURATION_VERSIONS": str(REPO / "versions"),
        "KUBECONFIG": str(tmp_path / "no-kubeconfig"),
    }
    result = subprocess.run(
        [sys.executable, "-c", PROBE],
        cwd=REPO,
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout.strip().splitlines()[-1]) == ["k8s", []]
