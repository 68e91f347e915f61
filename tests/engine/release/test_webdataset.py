"""Tests of curation_dagster/release/webdataset.py: the release's media items in WebDataset tars, each
closed before an item would take it past `release.webdataset_max_bytes`."""

from __future__ import annotations

import itertools
import json
import tarfile
from pathlib import Path

import pyarrow.parquet as pq

from curation_dagster.io.lake import Lake
from curation_dagster.release import Release, build_release
from curation_dagster.spec import ReleaseSettings
from tests.engine.release.release_fixtures import SMALL_FILES, SPEC, final_rows, packed_tar_bytes, tar_items


def test_tars_hold_each_media_item_with_its_metadata_sorted_by_key(released: tuple[Lake, Release]) -> None:
    lake, release = released
    expected = final_rows(lake)

    members: dict[str, bytes] = {}
    for path in sorted(Path(release.path, "webdataset").glob("*.tar")):
        with tarfile.open(path) as archive:
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


def test_a_tar_takes_items_until_the_next_would_pass_the_bound(released: tuple[Lake, Release]) -> None:
    _, release = released
    bound = SMALL_FILES.webdataset_max_bytes

    for modality in ("image", "audio", "video"):
        paths = sorted(Path(release.path, "webdataset").glob(f"{modality}-*.tar"))
        tars = [list(tar_items(path).values()) for path in paths]
        for path, items in zip(paths, tars, strict=True):
            assert path.stat().st_size == packed_tar_bytes(items) <= bound
        for items, following in itertools.pairwise(tars):
            assert packed_tar_bytes([*items, following[0]]) > bound
    names = sorted(path.name for path in Path(release.path, "webdataset").glob("*.tar"))
    assert names == [
        "audio-00000.tar",
        "audio-00001.tar",
        "image-00000.tar",
        "image-00001.tar",
        "video-00000.tar",
    ]
    assert [len(tar_items(Path(release.path, "webdataset", name))) for name in names] == [1, 1, 3, 1, 2]


def test_an_item_larger_than_the_bound_gets_a_tar_of_its_own(lake: Lake) -> None:
    bound = 10 * 1024
    release = build_release(SPEC, lake, ReleaseSettings(webdataset_max_bytes=bound))

    for path in sorted(Path(release.path, "webdataset").glob("*.tar")):
        items = tar_items(path)
        assert path.stat().st_size <= bound or len(items) == 1, path.name
    sounds = sorted(Path(release.path, "webdataset").glob("audio-*.tar"))
    assert [len(tar_items(path)) for path in sounds] == [1, 1]
    assert all(path.stat().st_size > bound for path in sounds)


def test_with_the_default_bound_each_modality_has_one_tar(lake: Lake) -> None:
    release = build_release(SPEC, lake)

    names = sorted(path.name for path in Path(release.path, "webdataset").glob("*.tar"))

    assert names == ["audio-00000.tar", "image-00000.tar", "video-00000.tar"]
    assert SPEC.release.webdataset_max_bytes == 2**30


def test_text_items_are_in_the_parquet_files_only(released: tuple[Lake, Release]) -> None:
    lake, release = released
    text_ids = {key for key, row in final_rows(lake).items() if row["modality"] == "text"}

    in_tars = {key for path in Path(release.path, "webdataset").glob("*.tar") for key in tar_items(path)}

    assert len(text_ids) == 4
    assert not in_tars & text_ids
    assert set(pq.read_table(Path(release.path, "data", "text")).column("id").to_pylist()) == text_ids
