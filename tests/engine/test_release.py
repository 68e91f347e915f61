"""Tests of curation_dagster/release.py: the final training set as Parquet, WebDataset tars and a manifest."""

from __future__ import annotations

import hashlib
import json
import tarfile
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import curation_dagster.release as release_module
from curation_dagster.errors import StageInputMissing
from curation_dagster.io.lake import Lake
from curation_dagster.pipeline import run_stage
from curation_dagster.release import ReleaseSettings, build_release, read_manifest, verify_release
from curation_dagster.spec import parse_spec
from curation_dagster.stages import STAGES
from tests.media_fixtures import MULTIMODAL_SPEC, write_multimodal_landing

SPEC = parse_spec(MULTIMODAL_SPEC)
SMALL_FILES = ReleaseSettings(rows_per_parquet_file=5, row_group_rows=2, items_per_tar=2)
SHARDS = ("text.jsonl", "media")


@pytest.fixture(scope="module")
def landing(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_multimodal_landing(tmp_path_factory.mktemp("multimodal") / "landing")


@pytest.fixture
def lake(tmp_path: Path, landing: Path) -> Lake:
    store = Lake(tmp_path / "lake")
    for shard in SHARDS:
        for stage in STAGES:
            run_stage(SPEC, store, stage, shard, landing / shard)
    return store


def final_rows(lake: Lake) -> dict[str, dict[str, object]]:
    rows = [
        row for shard in SHARDS for row in lake.read_table(lake.path("mm", "synthesized", shard)).to_pylist()
    ]
    return {str(row["id"]): row for row in rows}


def release_files(folder: Path) -> dict[str, bytes]:
    return {
        str(path.relative_to(folder)): path.read_bytes()
        for path in sorted(folder.rglob("*"))
        if path.is_file()
    }


def test_parquet_loads_with_datasets_and_holds_the_final_training_set(
    lake: Lake, tmp_path: Path, no_network: None
) -> None:
    datasets = pytest.importorskip("datasets")
    release = build_release(SPEC, lake, SMALL_FILES)

    loaded = datasets.load_dataset(
        "parquet",
        data_files=f"{release.path}/data/*.parquet",
        split="train",
        cache_dir=str(tmp_path / "hf_cache"),
    )

    expected = final_rows(lake)
    assert loaded.num_rows == len(expected) == release.items
    assert loaded["id"] == sorted(expected)
    for row in loaded:
        assert row["media"] == expected[row["id"]]["media"]
        assert row["text"] == expected[row["id"]]["text"]
        assert row["parent_ids"] == expected[row["id"]]["parent_ids"]
    assert {"image", "audio", "video", "text"} == set(loaded["modality"])
    assert {"uri", "shard", "synthetic", "generator", "text_words", "grey_std"} <= set(loaded.column_names)


def test_parquet_files_share_one_schema_of_plain_arrow_types(lake: Lake) -> None:
    release = build_release(SPEC, lake, SMALL_FILES)

    schemas = [pq.read_schema(path) for path in sorted(Path(release.path, "data").glob("*.parquet"))]

    assert len(schemas) == 3
    assert all(schema.equals(schemas[0]) for schema in schemas)
    assert schemas[0].names[:6] == ["id", "modality", "text", "media", "uri", "shard"]
    assert schemas[0].field("media").type == pa.binary()
    assert schemas[0].field("text").type == pa.string()
    for field in schemas[0]:
        assert not pa.types.is_dictionary(field.type)
        assert not pa.types.is_large_string(field.type) and not pa.types.is_large_binary(field.type)


def test_tars_hold_each_media_item_with_its_metadata_sorted_by_key(lake: Lake) -> None:
    release = build_release(SPEC, lake, SMALL_FILES)
    expected = final_rows(lake)

    members: dict[str, bytes] = {}
    for path in sorted(Path(release.path, "webdataset").glob("*.tar")):
        with tarfile.open(path) as archive:
            names = archive.getnames()
            assert len({name.split(".")[0] for name in names}) <= SMALL_FILES.items_per_tar
            for info in archive.getmembers():
                assert (info.mtime, info.uid, info.gid, info.uname) == (0, 0, 0, "")
                handle = archive.extractfile(info)
                assert handle is not None
                members[info.name] = handle.read()

    media_ids = sorted(key for key, row in expected.items() if row["modality"] != "text")
    for modality in ("image", "audio", "video"):
        keys = [
            name.split(".")[0] for name in members if expected[name.split(".")[0]]["modality"] == modality
        ]
        assert keys == sorted(keys)
    assert sorted({name.split(".")[0] for name in members}) == media_ids
    for key in media_ids:
        row = expected[key]
        assert members[f"{key}.{row['media_format']}"] == row["media"]
        sidecar = json.loads(members[f"{key}.json"])
        assert (sidecar["id"], sidecar["uri"], sidecar["modality"]) == (key, row["uri"], row["modality"])
        assert sidecar["caption"] == row["text"]
        if row["text"]:
            assert members[f"{key}.txt"].decode() == row["text"]
    tone = next(key for key in media_ids if expected[key]["text"] == "A 440 Hz tone.")
    assert f"{tone}.txt" in members


def test_manifest_counts_items_and_records_checksums_spec_and_code_versions(lake: Lake) -> None:
    release = build_release(SPEC, lake, SMALL_FILES)
    manifest = read_manifest(lake, "mm")
    folder = Path(release.path)

    assert manifest == release.manifest
    assert manifest["items"] == 12
    assert manifest["items_by_modality"] == {"audio": 2, "image": 4, "text": 4, "video": 2}
    assert manifest["items_by_source_shard"]["text.jsonl"] == {"text": 4}
    assert manifest["source_shards"] == sorted(SHARDS)
    assert manifest["synthetic_items"] == sum(bool(row["synthetic"]) for row in final_rows(lake).values())
    assert manifest["code_versions"] == {stage: SPEC.code_version(stage) for stage in STAGES}
    assert manifest["spec"]["name"] == "mm"
    assert manifest["engine"]["package"]
    assert sum(entry["items"] for entry in manifest["files"] if entry["format"] == "parquet") == 12
    assert sum(entry["items"] for entry in manifest["files"] if entry["format"] == "webdataset") == 8
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
    (folder / "extra.txt").write_text("not released")

    assert verify_release(lake, "mm") == [
        "extra.txt: not in the manifest",
        "webdataset/image-00000.tar: sha256 differs from the manifest",
    ]


def test_the_same_lake_gives_byte_identical_files(lake: Lake, tmp_path: Path, landing: Path) -> None:
    first = release_files(Path(build_release(SPEC, lake, SMALL_FILES).path))
    second = release_files(Path(build_release(SPEC, lake, SMALL_FILES).path))
    other = Lake(tmp_path / "other_lake")
    for shard in reversed(SHARDS):
        for stage in STAGES:
            run_stage(SPEC, other, stage, shard, landing / shard)
    elsewhere = release_files(Path(build_release(SPEC, other, SMALL_FILES).path))

    assert first == second
    assert first == elsewhere


def test_a_release_replaces_the_previous_one_and_leaves_no_temporary_folder(lake: Lake) -> None:
    build_release(SPEC, lake, SMALL_FILES)
    release = build_release(SPEC, lake, ReleaseSettings())

    folder = Path(release.path)
    assert sorted(path.name for path in (folder / "data").iterdir()) == ["train-00000-of-00001.parquet"]
    assert [path.name for path in folder.parent.iterdir() if path.name.startswith(".release")] == []
    assert verify_release(lake, "mm") == []


def test_a_failed_release_keeps_the_previous_one(lake: Lake, monkeypatch: pytest.MonkeyPatch) -> None:
    release = build_release(SPEC, lake, SMALL_FILES)
    before = release_files(Path(release.path))

    def broken(*args: object, **kwargs: object) -> list[dict[str, object]]:
        raise OSError("disk full")

    monkeypatch.setattr(release_module, "_write_tars", broken)
    with pytest.raises(OSError, match="disk full"):
        build_release(SPEC, lake, ReleaseSettings())

    assert release_files(Path(release.path)) == before
    assert [
        path.name for path in Path(release.path).parent.iterdir() if path.name.startswith(".release")
    ] == []


def test_a_version_without_the_synthesized_stage_cannot_be_released(tmp_path: Path) -> None:
    with pytest.raises(StageInputMissing, match="mm/synthesized first"):
        build_release(SPEC, Lake(tmp_path / "lake"))


def test_text_items_are_in_the_parquet_files_only(lake: Lake) -> None:
    release = build_release(SPEC, lake, SMALL_FILES)

    tars = sorted(path.name for path in Path(release.path, "webdataset").glob("*.tar"))

    assert tars == ["audio-00000.tar", "image-00000.tar", "image-00001.tar", "video-00000.tar"]
