"""CLIP through the `models` resource (`resources/models.py`): loaded lazily and once, and the filtered
stage of an image version materialized with the CLIP filters on the accelerator's device."""

from __future__ import annotations

from pathlib import Path

import pytest
from dagster import AssetKey, DagsterInstance, materialize

from assets.factory import build_stage_assets, stage_key
from assets.partitions import SHARDS
from curation_dagster.errors import ModelNotConfigured
from curation_dagster.io.lake import Lake
from curation_dagster.spec import VersionSpec, parse_spec
from curation_dagster.vectors.image import IMAGE_EMBEDDINGS
from resources import AcceleratorResource, LakeResource, ModelsResource
from tests.media_fixtures import noisy_png

pytestmark = pytest.mark.usefixtures("no_network", "torch_single_thread")

TinyClip = tuple[Path, Path, Path]
SHARD = "pics"


def models(tiny_clip: TinyClip) -> ModelsResource:
    return ModelsResource(clip_arch=str(tiny_clip[0]), clip_weights=str(tiny_clip[1]))


def test_runtime_loads_clip_from_the_resource_once(tiny_clip: TinyClip) -> None:
    resource = models(tiny_clip)
    runtime = resource.runtime(AcceleratorResource(device="cpu", batch_size=3))

    model, preprocess, tokenizer = runtime.clip()

    assert resource.clip("cpu")[0] is model
    assert runtime.clip()[0] is model
    assert (runtime.clip_arch, runtime.clip_weights, runtime.batch_size) == (
        str(tiny_clip[0]),
        str(tiny_clip[1]),
        3,
    )
    assert not model.training
    assert tokenizer(["a cat"]).shape == (1, 16)
    assert preprocess is not None


def test_runtime_without_clip_weights_names_the_setting() -> None:
    runtime = ModelsResource().runtime(AcceleratorResource(device="cpu"))
    with pytest.raises(ModelNotConfigured, match=r"set models\.clip_weights \(CURATION_CLIP_WEIGHTS\)"):
        runtime.clip()


def test_definitions_take_the_clip_settings_from_the_environment(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from curation_dagster.definitions import build_definitions

    monkeypatch.setenv("CURATION_CLIP_ARCH", str(tmp_path / "arch.json"))
    monkeypatch.setenv("CURATION_CLIP_WEIGHTS", str(tmp_path / "clip.safetensors"))
    configured = build_definitions(specs=[image_spec()]).resources["models"]
    monkeypatch.delenv("CURATION_CLIP_ARCH")
    default = build_definitions(specs=[image_spec()]).resources["models"]

    assert (configured.clip_arch, configured.clip_weights) == (
        str(tmp_path / "arch.json"),
        str(tmp_path / "clip.safetensors"),
    )
    assert default.clip_arch == "ViT-B-32"


def image_spec(optional: bool = False) -> VersionSpec:
    return parse_spec(
        {
            "name": "pics",
            "modalities": ["image"],
            "filters": {
                "image": [
                    {"kind": "image_size", "min_width": 8, "min_height": 8},
                    {"kind": "clip_score", "min_score": -1.0, "optional": optional},
                ]
            },
            "select": {"seed": 1, "fraction": 1.0},
            "synthesize": {"seed": 1, "fraction": 0.0, "image": None, "audio": None, "video": None},
        }
    )


def image_landing(root: Path) -> Path:
    """One media-folder shard: three captioned noise images and one without a caption."""
    folder = root / SHARD
    folder.mkdir(parents=True)
    for index, caption in enumerate(["the cat sat on the mat .", "a dog ran", "the dog", None]):
        (folder / f"img{index}.png").write_bytes(noisy_png(seed=index))
        if caption is not None:
            (folder / f"img{index}.txt").write_text(caption, encoding="utf-8")
    return root


def materialize_filtered(spec: VersionSpec, tmp_path: Path, resource: ModelsResource) -> dict[str, object]:
    """Materialize raw, deduped and filtered of the one shard; the filtered step's metadata."""
    landing = image_landing(tmp_path / "landing")
    stages = [a for a in build_stage_assets(spec) if a.key.path[-1] in ("raw", "deduped", "filtered")]
    instance = DagsterInstance.ephemeral()
    instance.add_dynamic_partitions(SHARDS, [SHARD])
    result = materialize(
        stages,
        partition_key=SHARD,
        instance=instance,
        resources={
            "lake": LakeResource(root=str(tmp_path / "lake"), landing=str(landing)),
            "accelerator": AcceleratorResource(device="cpu", batch_size=2),
            "models": resource,
        },
    )
    assert result.success
    events = result.asset_materializations_for_node(stage_key(spec.name, "filtered").to_python_identifier())
    return {key: value.value for key, value in events[0].metadata.items()}


def test_an_image_version_with_a_clip_filter_runs_the_filtered_stage_in_the_gpu_pool() -> None:
    filtered = {a.key: a for a in build_stage_assets(image_spec())}[AssetKey(["pics", "filtered"])]
    assert filtered.node_def.pool == "gpu"
    assert "nvidia.com/gpu" in str(filtered.node_def.tags["dagster-k8s/config"])


def test_materializing_the_filtered_stage_scores_and_stores_image_embeddings(
    tiny_clip: TinyClip, tmp_path: Path
) -> None:
    metadata = materialize_filtered(image_spec(), tmp_path, models(tiny_clip))

    assert metadata["rows_kept"] == 4
    embeddings = metadata["image_embeddings"]
    assert isinstance(embeddings, dict)
    assert (embeddings["computed"], embeddings["reused"], embeddings["failed"]) == (4, 0, 0)
    lake = Lake(tmp_path / "lake")
    kept = lake.read_table(lake.path("pics", "filtered", SHARD)).sort_by("uri")
    scores = kept.column("clip_score").to_pylist()
    assert [score is None for score in scores] == [False, False, False, True]
    assert all(-1.0 <= score <= 1.0 for score in scores[:3])
    assert lake.num_rows(lake.path("pics", IMAGE_EMBEDDINGS, SHARD)) == 4
    used = metadata["models"]
    assert isinstance(used, dict) and used["clip_weights"] == str(tiny_clip[1])


def test_an_optional_clip_filter_without_weights_is_skipped_and_recorded(tmp_path: Path) -> None:
    metadata = materialize_filtered(image_spec(optional=True), tmp_path, ModelsResource())

    assert metadata["rows_kept"] == 4
    assert metadata["skipped_filters"] == {"clip_score": "no CLIP model: models.clip_weights is not set"}
