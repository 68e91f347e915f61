"""Tests of curation_dagster/release/build.py (with features.py and manifest.py): the final training set as
one Parquet config per modality that `datasets` loads with decoded media, a card, a manifest, byte for byte
the same from the same lake."""

from __future__ import annotations

import hashlib
import io
import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import soundfile
from PIL import Image

import curation_dagster.release.build as build_module
from curation_dagster.errors import ReleaseError, StageInputMissing
from curation_dagster.io.lake import Lake
from curation_dagster.pipeline import run_stage
from curation_dagster.release import Release, build_release, read_manifest, verify_release
from curation_dagster.release.build import file_rows
from curation_dagster.spec import ReleaseSettings, parse_spec
from curation_dagster.stages import STAGES
from tests.engine.release.release_fixtures import (
    CONFIGS,
    SHARDS,
    SMALL_FILES,
    SPEC,
    curated_lake,
    final_rows,
    release_files,
    tar_items,
)
from tests.media_fixtures import MULTIMODAL_SPEC


def load(datasets: Any, release: Release, config: str | None, cache: Path) -> Any:
    return datasets.load_dataset(release.path, config, split="train", cache_dir=str(cache))


def load_config(
    released: tuple[Lake, Release], datasets: Any, config: str, cache: Path
) -> tuple[Any, dict[str, dict[str, Any]]]:
    """A config of the release as `datasets` loads it, and the lake's final rows by id."""
    lake, release = released
    return load(datasets, release, config, cache), final_rows(lake)


def test_each_modality_is_a_config_that_datasets_loads_with_the_final_rows(
    released: tuple[Lake, Release], offline_datasets: Any, tmp_path: Path
) -> None:
    lake, release = released
    expected = final_rows(lake)

    for config in CONFIGS:
        loaded = load(offline_datasets, release, config, tmp_path / "hf_cache")
        ids = sorted(key for key, row in expected.items() if row["modality"] == config)
        assert loaded["id"] == ids, config
        for row in loaded:
            assert row["modality"] == config
            assert row["text"] == expected[row["id"]]["text"]
            assert row["parent_ids"] == expected[row["id"]]["parent_ids"]
            assert row["uri"] == expected[row["id"]]["uri"]
    assert len(expected) == release.items == 12


def test_images_decode_to_pictures_of_their_size(
    released: tuple[Lake, Release], offline_datasets: Any, tmp_path: Path
) -> None:
    images, expected = load_config(released, offline_datasets, "image", tmp_path / "hf_cache")

    assert isinstance(images.features["image"], offline_datasets.Image)
    for row in images:
        picture = row["image"]
        assert isinstance(picture, Image.Image)
        assert picture.size == (expected[row["id"]]["width"], expected[row["id"]]["height"])
        assert picture.tobytes() == Image.open(io.BytesIO(expected[row["id"]]["media"])).tobytes()
    assert {row["image"].size for row in images} == {(32, 32), (28, 28)}


def test_audio_decodes_to_samples_at_its_rate(
    released: tuple[Lake, Release], offline_datasets: Any, tmp_path: Path
) -> None:
    sounds, expected = load_config(released, offline_datasets, "audio", tmp_path / "hf_cache")

    assert isinstance(sounds.features["audio"], offline_datasets.Audio)
    assert sounds.num_rows == 2
    for row in sounds:
        samples, rate = soundfile.read(io.BytesIO(expected[row["id"]]["media"]), dtype="float32")
        assert row["audio"]["sampling_rate"] == rate == 8000
        assert row["audio"]["array"].shape == samples.shape == (4000,)
        assert abs(row["audio"]["array"] - samples).max() < 1e-4


def test_video_decodes_to_its_frames(
    released: tuple[Lake, Release], offline_datasets: Any, tmp_path: Path
) -> None:
    clips, expected = load_config(released, offline_datasets, "video", tmp_path / "hf_cache")

    assert isinstance(clips.features["video"], offline_datasets.Video)
    for row in clips:
        item = expected[row["id"]]
        decoder = row["video"]
        assert decoder.metadata.num_frames == item["frame_count"]
        assert tuple(decoder[0].shape) == (3, item["height"], item["width"])
    assert sorted(row["video"].metadata.num_frames for row in clips) == [4, 8]


def test_loading_the_folder_without_a_config_name_gives_the_default_config(
    released: tuple[Lake, Release], offline_datasets: Any, tmp_path: Path
) -> None:
    _, release = released

    loaded = load(offline_datasets, release, None, tmp_path / "hf_cache")

    assert release.manifest["default_config"] == "text"
    assert set(loaded["modality"]) == {"text"}


def test_the_card_features_are_the_features_datasets_loads(
    released: tuple[Lake, Release], offline_datasets: Any, tmp_path: Path
) -> None:
    from huggingface_hub import DatasetCard

    _, release = released
    card = DatasetCard.load(Path(release.path, "README.md"))
    info = {entry["config_name"]: entry for entry in card.data.dataset_info}

    for config in CONFIGS:
        loaded = load(offline_datasets, release, config, tmp_path / "hf_cache")
        assert offline_datasets.Features._from_yaml_list(info[config]["features"]) == loaded.features
        assert info[config]["splits"][0]["num_examples"] == loaded.num_rows


def test_parquet_files_of_a_config_share_one_schema_with_the_media_as_a_datasets_feature(
    released: tuple[Lake, Release],
) -> None:
    _, release = released

    for config in CONFIGS:
        paths = sorted(Path(release.path, "data", config).glob("*.parquet"))
        schemas = [pq.read_schema(path) for path in paths]
        assert all(schema.equals(schemas[0], check_metadata=True) for schema in schemas)
        schema = schemas[0]
        assert schema.names[:3] == ["id", "modality", "text"]
        assert "media" not in schema.names
        features = json.loads(schema.metadata[b"huggingface"])["info"]["features"]
        assert list(features) == schema.names
        if config != "text":
            assert schema.field(config).type == pa.struct([("bytes", pa.binary()), ("path", pa.string())])
            assert features[config] == {"_type": config.capitalize()}
        for field in schema:
            assert not pa.types.is_dictionary(field.type)
            assert not pa.types.is_large_string(field.type) and not pa.types.is_large_binary(field.type)
    files = {
        config: sorted(path.name for path in Path(release.path, "data", config).iterdir())
        for config in CONFIGS
    }
    assert files["image"] == ["train-00000-of-00002.parquet", "train-00001-of-00002.parquet"]
    assert files["audio"] == ["train-00000-of-00001.parquet"]


def test_a_config_leaves_out_the_columns_no_item_of_its_modality_has(released: tuple[Lake, Release]) -> None:
    _, release = released

    text = pq.read_schema(next(Path(release.path, "data", "text").glob("*.parquet"))).names
    image = pq.read_schema(next(Path(release.path, "data", "image").glob("*.parquet"))).names

    assert {"text_words", "synthetic", "parent_ids", "generator"} <= set(text)
    assert not {"width", "grey_std", "silence_ratio", "media_format"} & set(text)
    assert {"width", "height", "grey_std", "media_format"} <= set(image)
    assert not {"text_words", "silence_ratio", "frame_count"} & set(image)


def test_a_media_item_names_its_file_by_id_and_format(released: tuple[Lake, Release]) -> None:
    lake, release = released
    expected = final_rows(lake)

    table = pq.read_table(Path(release.path, "data", "audio"))

    for row in table.to_pylist():
        assert row["audio"]["bytes"] == expected[row["id"]]["media"]
        assert row["audio"]["path"] == f"{row['id']}.wav"


def test_manifest_counts_items_and_records_checksums_spec_and_code_versions(
    released: tuple[Lake, Release],
) -> None:
    lake, release = released
    manifest = read_manifest(lake, "mm")
    folder = Path(release.path)

    assert manifest == release.manifest
    assert manifest["items"] == 12
    assert manifest["items_by_modality"] == {"audio": 2, "image": 4, "text": 4, "video": 2}
    assert manifest["items_by_source_shard"]["text.jsonl"] == {"text": 4}
    assert manifest["source_shards"] == sorted(SHARDS)
    assert manifest["synthetic_items"] == sum(bool(row["synthetic"]) for row in final_rows(lake).values())
    assert manifest["synthetic_items_by_recipe"] == {
        "flip_crop": 2,
        "frame_step_crop": 1,
        "gain_shift": 1,
        "word_edits": 2,
    }
    assert {name: config["items"] for name, config in manifest["configs"].items()} == {
        "text": 4,
        "image": 4,
        "audio": 2,
        "video": 2,
    }
    assert manifest["configs"]["image"]["data_files"] == "data/image/train-*.parquet"
    assert manifest["rejected_by_stage"]["filtered"]["filter.image_blank.blank"] == 1
    assert manifest["rejected_by_stage"]["deduped"] == {"dedup.exact": 2}
    assert manifest["code_versions"] == {stage: SPEC.code_version(stage) for stage in STAGES}
    assert manifest["spec"]["name"] == "mm"
    assert manifest["spec"]["release"]["license"] == "unknown"
    assert manifest["engine"]["package"]
    assert sum(entry["items"] for entry in manifest["files"] if entry["format"] == "parquet") == 12
    assert sum(entry["items"] for entry in manifest["files"] if entry["format"] == "webdataset") == 8
    assert [entry["path"] for entry in manifest["files"] if entry["format"] == "card"] == ["README.md"]
    for entry in manifest["files"]:
        data = (folder / entry["path"]).read_bytes()
        assert hashlib.sha256(data).hexdigest() == entry["sha256"]
        assert len(data) == entry["bytes"]
    assert verify_release(lake, "mm") == []


def test_verification_finds_a_changed_file_and_a_stray_one(lake: Lake) -> None:
    release = build_release(SPEC, lake, SMALL_FILES)
    folder = Path(release.path)
    tar = folder / "webdataset" / "image-00000.tar"
    tar.write_bytes(tar.read_bytes() + b"\0" * 512)
    (folder / "README.md").write_text("---\nlicense: mit\n---\n")
    (folder / "extra.txt").write_text("not released")

    assert verify_release(lake, "mm") == [
        "README.md: sha256 differs from the manifest",
        "extra.txt: not in the manifest",
        "webdataset/image-00000.tar: sha256 differs from the manifest",
    ]


def test_the_same_lake_gives_byte_identical_files(lake: Lake, tmp_path: Path, landing: Path) -> None:
    first = release_files(Path(build_release(SPEC, lake, SMALL_FILES).path))
    second = release_files(Path(build_release(SPEC, lake, SMALL_FILES).path))
    other = curated_lake(tmp_path / "other_lake", landing, tuple(reversed(SHARDS)))
    elsewhere = release_files(Path(build_release(SPEC, other, SMALL_FILES).path))

    assert "README.md" in first and "data/image/train-00001-of-00002.parquet" in first
    assert first == second
    assert first == elsewhere


def test_a_release_replaces_the_previous_one_and_leaves_no_temporary_folder(lake: Lake) -> None:
    build_release(SPEC, lake, SMALL_FILES)
    release = build_release(SPEC, lake)

    folder = Path(release.path)
    assert sorted(str(path.relative_to(folder)) for path in (folder / "data").rglob("*.parquet")) == [
        f"data/{config}/train-00000-of-00001.parquet" for config in sorted(CONFIGS)
    ]
    assert [path.name for path in folder.parent.iterdir() if path.name.startswith(".release")] == []
    assert verify_release(lake, "mm") == []


def test_the_spec_release_settings_cut_the_files(lake: Lake) -> None:
    spec = parse_spec({**MULTIMODAL_SPEC, "release": {"rows_per_parquet_file": 1}})

    release = build_release(spec, lake)

    assert len(list(Path(release.path, "data", "image").glob("*.parquet"))) == 4


def test_parquet_files_are_cut_by_the_bytes_of_their_rows(
    lake: Lake, offline_datasets: Any, tmp_path: Path
) -> None:
    media = [len(row["media"] or b"") for row in final_rows(lake).values() if row["modality"] == "audio"]
    bound = max(media) + min(media) // 2  # two sounds never fit one file, one always does
    release = build_release(SPEC, lake, ReleaseSettings(parquet_max_bytes=bound))

    files = sorted(Path(release.path, "data", "audio").glob("*.parquet"))
    assert len(files) == len(media) >= 2
    assert [pq.ParquetFile(path).metadata.num_rows for path in files] == [1] * len(files)
    assert len(load(offline_datasets, release, "audio", tmp_path / "hf_cache")) == len(media)


def test_file_rows_close_a_file_before_a_row_would_take_it_past_either_bound() -> None:
    sizes = np.array([4, 4, 4, 10, 1, 1, 1, 1])
    assert file_rows(sizes, max_rows=100, max_bytes=8) == [2, 1, 1, 4]  # 10 alone, over the bound
    assert file_rows(sizes, max_rows=3, max_bytes=100) == [3, 3, 2]
    assert file_rows(np.zeros(0, np.int64), max_rows=3, max_bytes=8) == [0]


def test_a_failed_release_keeps_the_previous_one(lake: Lake, monkeypatch: pytest.MonkeyPatch) -> None:
    release = build_release(SPEC, lake, SMALL_FILES)
    before = release_files(Path(release.path))

    def broken(*args: object, **kwargs: object) -> list[dict[str, object]]:
        raise OSError("disk full")

    monkeypatch.setattr(build_module, "write_tars", broken)
    with pytest.raises(OSError, match="disk full"):
        build_release(SPEC, lake)

    assert release_files(Path(release.path)) == before
    assert [
        path.name for path in Path(release.path).parent.iterdir() if path.name.startswith(".release")
    ] == []


def test_a_version_without_the_synthesized_stage_cannot_be_released(tmp_path: Path) -> None:
    with pytest.raises(StageInputMissing, match="mm/synthesized first"):
        build_release(SPEC, Lake(tmp_path / "lake"))


def test_media_the_lake_kept_as_files_are_copied_in_and_the_release_outlives_the_landing_zone(
    tmp_path: Path, landing: Path, offline_datasets: Any
) -> None:
    spec = parse_spec({**MULTIMODAL_SPEC, "raw": {"max_inline_bytes": 200}})  # every picture stays a file
    copied = tmp_path / "landing"
    shutil.copytree(landing, copied)
    store = Lake(tmp_path / "lake")
    for stage in STAGES:
        run_stage(spec, store, stage, "media", copied / "media")
    kept = store.read_table(store.path("mm", "synthesized", "media")).to_pylist()
    images = {row["id"]: row for row in kept if row["modality"] == "image"}
    stayed = {key for key, row in images.items() if row["media"] is None}
    expected = {key: row["media"] or Path(row["uri"]).read_bytes() for key, row in images.items()}
    assert stayed and min(len(expected[key]) for key in stayed) > 200  # the landing pictures
    bound = min(len(data) for data in expected.values()) + 1  # each picture fills a Parquet file of its own

    release = build_release(spec, store, ReleaseSettings(parquet_max_bytes=bound))
    shutil.rmtree(copied)

    files = sorted(Path(release.path, "data", "image").glob("*.parquet"))
    assert [pq.ParquetFile(path).metadata.num_rows for path in files] == [1] * len(images)
    loaded = load(offline_datasets, release, "image", tmp_path / "hf_cache")
    assert sorted(loaded["id"]) == sorted(images)
    for row in loaded.cast_column("image", offline_datasets.Image(decode=False)):
        assert row["image"] == {"bytes": expected[row["id"]], "path": f"{row['id']}.png"}
    assert all(isinstance(row["image"], Image.Image) for row in loaded)
    tars = sorted(Path(release.path, "webdataset").glob("image-*.tar"))
    in_tars = {key: item["png"] for path in tars for key, item in tar_items(path).items()}
    assert in_tars == expected


def test_a_release_names_the_item_whose_kept_file_is_gone(tmp_path: Path, landing: Path) -> None:
    spec = parse_spec({**MULTIMODAL_SPEC, "raw": {"max_inline_bytes": 200}})
    copied = tmp_path / "landing"
    shutil.copytree(landing, copied)
    store = Lake(tmp_path / "lake")
    for stage in STAGES:
        run_stage(spec, store, stage, "media", copied / "media")
    shutil.rmtree(copied)

    with pytest.raises(ReleaseError, match=r"item \S+ \(\S+\.png\): its media cannot be read"):
        build_release(spec, store)
