"""The `active_learning` asset: one round per materialization, with the history in the metadata; built
only for versions that select with the proxy probe."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from dagster import AssetKey, AssetsDefinition, DagsterInstance, instance_for_test, materialize

from assets.factory import build_stage_assets, build_summary_assets, build_version_assets, stage_key
from curation_dagster.io.lake import Lake
from curation_dagster.spec import VersionSpec, parse_spec
from resources import AcceleratorResource, LakeResource, ModelsResource
from tests.engine.select.test_selected_stage import write_filtered

pytestmark = pytest.mark.usefixtures("no_network", "torch_single_thread")

FORMAL = [
    "The committee will convene on Monday to review the annual budget.",
    "Please find enclosed the signed contract for your records.",
    "The board approved the proposed amendments to the regulations.",
    "We regret to inform you that the application was unsuccessful.",
]
CASUAL = [
    "lol that party was sooo fun, see ya tmrw",
    "omg my cat just knocked my coffee over haha",
    "gonna grab some pizza, u want some?",
    "ugh mondays am i right",
]
SEEDS = [
    {"text": "We hereby acknowledge receipt of your formal application.", "label": "formal"},
    {"text": "The minister delivered a statement to parliament this afternoon.", "label": "formal"},
    {"text": "haha dude that was awesome lol", "label": "casual"},
    {"text": "yo whats up, wanna hang out later?", "label": "casual"},
]
KEY = AssetKey(["unit", "active_learning"])


def proxy_spec(seeds: Path) -> VersionSpec:
    strategy = {
        "kind": "proxy",
        "wanted_label": "formal",
        "seed_files": [str(seeds)],
        "active_learning": {"batch_size": 2, "by": "entropy"},
    }
    return parse_spec({"name": "unit", "modalities": ["text"], "select": {"budget": 4, "strategy": strategy}})


@pytest.fixture
def seeds(tmp_path: Path) -> Path:
    path = tmp_path / "seeds.jsonl"
    path.write_text("".join(json.dumps(row) + "\n" for row in SEEDS), encoding="utf-8")
    return path


def active_learning_asset(spec: VersionSpec) -> AssetsDefinition:
    (found,) = [a for a in build_summary_assets(spec) if a.key == KEY]
    return found


def materialize_round(spec: VersionSpec, instance: DagsterInstance, tmp_path: Path) -> dict[str, Any]:
    result = materialize(
        [active_learning_asset(spec)],
        instance=instance,
        resources={
            "lake": LakeResource(root=str(tmp_path / "lake"), landing=str(tmp_path)),
            "accelerator": AcceleratorResource(device="cpu"),
            "models": ModelsResource(),
        },
    )
    assert result.success
    (event,) = result.get_asset_materialization_events()
    return {name: value.value for name, value in event.materialization.metadata.items()}


def fill_in_labels(export: Path, labels: Path) -> None:
    """A person labels the exported batch and saves it beside it."""
    rows = [json.loads(line) for line in export.read_text(encoding="utf-8").splitlines()]
    for row in rows:
        row["label"] = "formal" if row["text"] in FORMAL else "casual"
    labels.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")


def test_the_asset_exists_only_for_a_probe_and_runs_by_hand_on_the_gpu_pool(seeds: Path) -> None:
    spec = proxy_spec(seeds)
    assets = {a.key: a for a in build_version_assets(spec)}
    plain = parse_spec({"name": "unit", "modalities": ["text"]})

    definition = assets[KEY]
    assert definition.asset_deps[KEY] == {stage_key("unit", "filtered")}
    assert definition.partitions_def is None
    assert definition.automation_conditions_by_key == {}
    assert definition.op.pool == "gpu"
    assert KEY not in {a.key for a in build_version_assets(plain)}
    selected = {a.key: a for a in build_stage_assets(spec)}[stage_key("unit", "selected")]
    assert selected.op.pool == "gpu"  # the probe ranks embeddings on the accelerator
    strategy = {"kind": "proxy", "wanted_label": "toxic", "model_path": "/models/toxicity"}
    user_model = parse_spec({"name": "unit", "select": {"strategy": strategy}})
    assert KEY not in {a.key for a in build_version_assets(user_model)}
    selected = {a.key: a for a in build_stage_assets(user_model)}[stage_key("unit", "selected")]
    assert selected.op.pool == "gpu"  # the user's classifier runs on the accelerator


def test_two_rounds_with_labels_between_them_show_the_history(seeds: Path, tmp_path: Path) -> None:
    spec = proxy_spec(seeds)
    write_filtered(Lake(tmp_path / "lake"), "unit", "s1", [(text, "en", 0.5) for text in FORMAL + CASUAL])
    folder = tmp_path / "lake" / "unit" / "active_learning"

    with instance_for_test() as instance:
        zero = materialize_round(spec, instance, tmp_path)
        fill_in_labels(Path(zero["export_path"]), Path(zero["waiting_for"]))
        one = materialize_round(spec, instance, tmp_path)
        again = materialize_round(spec, instance, tmp_path)
        history = instance.fetch_materializations(KEY, limit=10, ascending=True).records

    assert (zero["round"], zero["labelled"], zero["pool"], zero["exported"]) == (0, 4, 8, 2)
    assert zero["export_path"] == str(folder / "round_1.to_label.jsonl")
    assert zero["waiting_for"] == str(folder / "round_1.labels.jsonl")
    assert (one["round"], one["advanced"], one["labelled"], one["pool"]) == (1, True, 6, 6)
    assert one["batch_by"] == "entropy"
    assert "| 0 | 4 | 0 |" in one["rounds"] and "| 1 | 6 | 2 |" in one["rounds"]
    assert (again["round"], again["advanced"], again["labelled"]) == (1, False, 6)
    assert again["waiting_for"] == str(folder / "round_2.labels.jsonl")
    assert again["rounds"] == one["rounds"]
    accuracies = [record.asset_materialization.metadata["accuracy"] for record in history]
    assert [type(value).__name__ for value in accuracies] == ["FloatMetadataValue"] * 3
    assert accuracies[2].value == accuracies[1].value
    assert one["accuracy_source"] == "cross-validated on the labels"
    assert (folder / "probe_round_1.json").is_file()
