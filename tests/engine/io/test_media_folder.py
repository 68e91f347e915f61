"""Tests of curation_dagster/io/media_folder.py: the media-folder reader."""

from __future__ import annotations

import errno
import os
import tempfile
from pathlib import Path
from typing import Any

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from curation_dagster.io.landing import discover_partitions, read_shard
from curation_dagster.io.reader_base import ReaderSettings
from curation_dagster.io.validate import RejectCode
from tests.landing_fixtures import codes, read, read_parts
from tests.media_fixtures import png_bytes


def test_media_folder_joins_image_with_same_stem_caption_and_json(tmp_path: Path) -> None:
    folder = tmp_path / "photos"
    (folder / "cats").mkdir(parents=True)
    image = png_bytes()
    (folder / "cats" / "tom.png").write_bytes(image)
    (folder / "cats" / "tom.txt").write_text("a cat called Tom", encoding="utf-8")
    (folder / "cats" / "tom.json").write_text('{"photographer": "ann"}', encoding="utf-8")
    [record] = read(folder)
    assert (record.position, record.uri, record.modality, record.media_format) == (
        "cats/tom.png",
        str((folder / "cats" / "tom.png").absolute()),
        "image",
        "png",
    )
    assert (record.media, record.text, record.meta) == (image, "a cat called Tom", {"photographer": "ann"})


def test_media_folder_lone_text_file_is_a_text_item(tmp_path: Path) -> None:
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "readme.txt").write_text("plain words", encoding="utf-8")
    [record] = read(folder)
    assert (record.position, record.modality, record.text) == ("readme.txt", "text", "plain words")


def test_media_folder_unknown_extension_is_rejected_unknown_format(tmp_path: Path) -> None:
    folder = tmp_path / "mixed"
    folder.mkdir()
    (folder / "a.png").write_bytes(png_bytes())
    (folder / "a.psd").write_bytes(b"x")
    assert [(r.position, r.reject_code) for r in read(folder)] == [
        ("a.psd", RejectCode.UNKNOWN_FORMAT),
        ("a.png", None),
    ]


def test_media_folder_skips_hidden_and_partial_files(tmp_path: Path) -> None:
    folder = tmp_path / "photos"
    folder.mkdir()
    (folder / ".DS_Store").write_bytes(b"x")
    (folder / "b.png.part").write_bytes(b"x")
    (folder / "a.wav").write_bytes(b"x")
    assert [r.position for r in read(folder)] == ["a.wav"]


def test_media_folder_large_media_stays_a_file(tmp_path: Path) -> None:
    folder = tmp_path / "clips"
    folder.mkdir()
    (folder / "big.mp4").write_bytes(b"x" * 100)
    [record] = read(folder, ReaderSettings(max_inline_bytes=99))
    assert (record.media, record.uri, record.modality) == (
        None,
        str((folder / "big.mp4").absolute()),
        "video",
    )
    assert os.path.isabs(record.uri)


def test_media_folder_links_out_of_the_landing_zone_are_rejected_and_neighbours_kept(
    landing: Path, outside: Path
) -> None:
    folder = landing / "photos"
    folder.mkdir()
    (folder / "a.png").write_bytes(png_bytes())
    (folder / "b.png").symlink_to(outside / "secret.png")
    (folder / "c.txt").symlink_to(outside / "secret.jsonl")
    records = read(folder)
    assert codes(records) == [
        ("a.png", None),
        ("b.png", RejectCode.SYMLINK_OUTSIDE_LANDING),
        ("c.txt", RejectCode.SYMLINK_OUTSIDE_LANDING),
    ]
    assert records[1].media is None and records[2].text is None


def test_media_folder_linked_folder_is_rejected_not_followed(landing: Path, outside: Path) -> None:
    folder = landing / "photos"
    (folder / "inner").mkdir(parents=True)
    (folder / "inner" / "a.png").write_bytes(png_bytes())
    (folder / "again").symlink_to(folder / "inner")
    (folder / "away").symlink_to(outside)
    assert codes(read(folder)) == [
        ("again", RejectCode.LINKED_FOLDER),
        ("away", RejectCode.SYMLINK_OUTSIDE_LANDING),
        ("inner/a.png", None),
    ]


def test_media_folder_dangling_link_is_rejected(landing: Path) -> None:
    folder = landing / "photos"
    folder.mkdir()
    (folder / "a.png").symlink_to(folder / "missing.png")
    assert codes(read(folder)) == [("a.png", RejectCode.DANGLING_SYMLINK)]


def test_media_folder_link_inside_the_landing_zone_is_followed(landing: Path) -> None:
    (landing / "_store").mkdir()
    (landing / "_store" / "a.png").write_bytes(png_bytes())
    folder = landing / "photos"
    folder.mkdir()
    (folder / "a.png").symlink_to(landing / "_store" / "a.png")
    [record] = read(folder)
    assert (record.reject_code, record.media) == (None, png_bytes())


def test_media_folder_unreadable_file_is_rejected_and_its_neighbours_kept(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "photos"
    folder.mkdir()
    (folder / "a.png").write_bytes(png_bytes())
    (folder / "b.json").write_bytes(b"{}")
    (folder / "b.png").write_bytes(png_bytes())
    read_bytes = Path.read_bytes

    def refusing(self: Path) -> bytes:
        if self.name == "b.json":
            raise PermissionError(errno.EACCES, "Permission denied", str(self))
        return read_bytes(self)

    monkeypatch.setattr(Path, "read_bytes", refusing)
    records = read(folder)
    assert codes(records) == [("a.png", None), ("b.json", RejectCode.UNREADABLE_FILE), ("b.png", None)]
    assert (records[1].reject_detail or "").startswith("PermissionError")


def refuse_listing(monkeypatch: pytest.MonkeyPatch, name: str) -> None:
    """Make listing any folder called `name` fail as a missing permission would."""
    scandir = os.scandir

    def refusing(path: Any = ".") -> Any:
        if Path(path).name == name:
            raise PermissionError(errno.EACCES, "Permission denied", os.fspath(path))
        return scandir(path)

    monkeypatch.setattr(os, "scandir", refusing)


def test_media_folder_that_cannot_be_listed_is_rejected(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "photos"
    (folder / "locked").mkdir(parents=True)
    (folder / "locked" / "a.png").write_bytes(png_bytes())
    (folder / "b.png").write_bytes(png_bytes())
    refuse_listing(monkeypatch, "locked")
    records = read(folder)
    assert codes(records) == [("locked", RejectCode.UNREADABLE_FILE), ("b.png", None)]


def test_media_folder_fifo_is_rejected_without_being_opened(tmp_path: Path) -> None:
    folder = tmp_path / "clips"
    folder.mkdir()
    os.mkfifo(folder / "a.wav")
    assert codes(read(folder)) == [("a.wav", RejectCode.UNREADABLE_FILE)]


def test_media_folder_caption_over_max_item_bytes_is_rejected(tmp_path: Path) -> None:
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "a.txt").write_text("x" * 100, encoding="utf-8")
    (folder / "b.txt").write_text("fine", encoding="utf-8")
    records = read(folder, ReaderSettings(max_item_bytes=50))
    assert codes(records) == [("a.txt", RejectCode.ITEM_TOO_LARGE), ("b.txt", None)]


# Parts of a large folder -----------------------------------------------------------------------------

PART_FILE_NAMES = st.tuples(
    st.sampled_from(["", "sub/", "sub/deeper/"]),
    st.sampled_from(["a", "b", "b-c", "b_c", "z"]),
    st.sampled_from([".png", ".txt", ".json", ".wav", ".psd", ""]),
).map("".join)
PART_FILE_DATA = st.binary(max_size=300) | st.sampled_from([png_bytes(), b'{"a": 1}', b"caption"])


@settings(max_examples=60, deadline=None, database=None)
@given(st.dictionaries(PART_FILE_NAMES, PART_FILE_DATA, min_size=1, max_size=10), st.integers(min_value=0))
def test_media_folder_read_in_parts_gives_the_samples_of_the_whole_folder(
    files: dict[str, bytes], bound_seed: int
) -> None:
    with tempfile.TemporaryDirectory() as landing:
        folder = Path(landing) / "media"
        for name, data in files.items():
            path = folder / name
            if any(parent.is_file() for parent in path.parents) or path.is_dir():
                continue  # a name that is a file here cannot also be a folder
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
        size = sum(path.stat().st_size for path in folder.rglob("*") if path.is_file())
        assume(size > 1)
        assert read_parts(folder, 1 + bound_seed % (size - 1)) == read(folder)


def test_media_folder_parts_keep_a_stem_s_files_together(tmp_path: Path) -> None:
    folder = tmp_path / "photos"
    folder.mkdir()
    image = png_bytes()
    for stem in ("a", "b", "c"):
        (folder / f"{stem}.png").write_bytes(image)
        (folder / f"{stem}.txt").write_text(f"caption {stem}", encoding="utf-8")
    per_part = [
        [(record.position, record.text) for record in read_shard(folder, "p", ReaderSettings(), found.part)]
        for found in discover_partitions(tmp_path, len(image) + 5).values()
    ]
    assert [rows for rows in per_part if rows] == [
        [("a.png", "caption a")],
        [("b.png", "caption b")],
        [("c.png", "caption c")],
    ]


def test_media_folder_that_cannot_be_listed_is_rejected_by_its_first_part_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "photos"
    (folder / "locked").mkdir(parents=True)
    (folder / "locked" / "a.png").write_bytes(png_bytes())
    for stem in ("b", "c", "d"):
        (folder / f"{stem}.png").write_bytes(png_bytes())
    refuse_listing(monkeypatch, "locked")
    assert codes(read_parts(folder, len(png_bytes()))) == [
        ("locked", RejectCode.UNREADABLE_FILE),
        ("b.png", None),
        ("c.png", None),
        ("d.png", None),
    ]
