"""Tests of curation_dagster/io/landing.py: shard naming, discovery, fingerprints, and what `read_shard`
does for a shard of any kind (links, shards that cannot be opened or read)."""

from __future__ import annotations

import errno
import gzip
import io
import lzma
import os
import re
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from curation_dagster.errors import ShardNameError
from curation_dagster.io import landing as landing_module
from curation_dagster.io.lake import check_segment
from curation_dagster.io.landing import (
    LandingShard,
    _shard_kind,
    describe_unsupported,
    discover_partitions,
    discover_shards,
    scan_landing,
    shard_fingerprint,
    shard_key,
    unsupported_files,
)
from curation_dagster.io.validate import RejectCode
from tests.landing_fixtures import codes, read, write_lines
from tests.media_fixtures import png_bytes

KEY_PATTERN = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9._-]*")


def refuse_opening(monkeypatch: pytest.MonkeyPatch, path: Path) -> None:
    """Make every way the readers open `path` raise PermissionError, as a file without read access does
    (these tests may run as root, which reads anything)."""
    denied = PermissionError(errno.EACCES, "Permission denied", str(path))
    path_open = Path.open

    def open_path(self: Path, *args: Any, **kwargs: Any) -> Any:
        if self == path:
            raise denied
        return path_open(self, *args, **kwargs)

    monkeypatch.setattr(Path, "open", open_path)


# shard_key -------------------------------------------------------------------------------------------


def test_shard_key_keeps_a_clean_name_with_its_extension() -> None:
    assert shard_key("news.jsonl") == "news.jsonl"
    assert shard_key("news.parquet") == "news.parquet"


def test_shard_key_replaces_unsafe_characters_and_appends_a_hash() -> None:
    key = shard_key("my news (v2).jsonl")
    assert re.fullmatch(r"my_news__v2_\.jsonl-[0-9a-f]{6}", key)


def test_shard_key_of_names_that_sanitise_alike_differ() -> None:
    names = ["a b.jsonl", "a?b.jsonl", "a_b.jsonl", "a\tb.jsonl", "a\u00e9b.jsonl"]
    assert len({shard_key(name) for name in names}) == len(names)


def test_shard_key_strips_leading_dots() -> None:
    key = shard_key("..hidden.tar")
    assert key.startswith("hidden.tar-")
    assert KEY_PATTERN.fullmatch(key)


@pytest.mark.parametrize("name", ["", ".", "..", "../../etc", "a/b.jsonl", "/etc"])
def test_shard_key_refuses_names_that_could_escape_the_lake(name: str) -> None:
    with pytest.raises(ShardNameError):
        shard_key(name)


@pytest.mark.parametrize(
    "name",
    ["a..b.jsonl", "-dash.jsonl", "we ird ..\u00fc name.jsonl", "..\\..\\etc", "...", "-", "caf\udce9.tar"],
)
def test_shard_key_of_a_name_the_lake_would_refuse_is_a_safe_segment_with_a_hash(name: str) -> None:
    key = shard_key(name)
    assert check_segment(key) == key
    assert re.search(r"-[0-9a-f]{6}$", key)


# Every name a Linux folder can hold: any bytes but "/" and NUL, at most 255 of them, not "." or "..";
# Python lists them decoded with surrogateescape.
FILE_NAMES = (
    st.binary(min_size=1, max_size=255)
    .filter(lambda name: b"/" not in name and b"\0" not in name and name not in (b".", b".."))
    .map(os.fsdecode)
)


@settings(database=None)
@given(FILE_NAMES)
def test_every_file_name_a_folder_can_hold_becomes_a_safe_lake_segment(name: str) -> None:
    assert check_segment(shard_key(name))


def test_shard_key_truncates_long_names_keeping_them_distinct() -> None:
    first, second = "x" * 200 + "1.jsonl", "x" * 200 + "2.jsonl"
    assert len(shard_key(first)) == 120
    assert shard_key(first) != shard_key(second)


# discover_shards and shard_fingerprint ---------------------------------------------------------------


def test_discover_shards_finds_supported_files_and_folders_sorted_by_key(tmp_path: Path) -> None:
    for name in ["web.jsonl", "b.jsonl.gz", "a.parquet", "c.tar"]:
        (tmp_path / name).write_bytes(b"")
    (tmp_path / "photos").mkdir()
    assert list(discover_shards(tmp_path)) == ["a.parquet", "b.jsonl.gz", "c.tar", "photos", "web.jsonl"]


def test_discover_shards_skips_hidden_private_partial_and_unsupported_names(tmp_path: Path) -> None:
    for name in [".hidden.jsonl", "_SUCCESS", "_x.jsonl", "a.jsonl.tmp", "b.parquet.part", "notes.csv"]:
        (tmp_path / name).write_bytes(b"")
    (tmp_path / ".cache").mkdir()
    assert discover_shards(tmp_path) == {}


def test_discover_shards_keys_a_sanitised_name(tmp_path: Path) -> None:
    (tmp_path / "my news.jsonl").write_bytes(b"")
    shards = discover_shards(tmp_path)
    assert shards == {shard_key("my news.jsonl"): tmp_path / "my news.jsonl"}


def test_discover_shards_of_a_missing_landing_folder_is_empty(tmp_path: Path) -> None:
    assert discover_shards(tmp_path / "absent") == {}


def test_shard_fingerprint_is_stable_until_a_file_changes(tmp_path: Path) -> None:
    shard = write_lines(tmp_path / "a.jsonl", b'{"text": "one"}')
    before = shard_fingerprint(shard)
    assert shard_fingerprint(shard) == before
    write_lines(shard, b'{"text": "one"}', b'{"text": "two"}')
    assert shard_fingerprint(shard) != before


def test_shard_fingerprint_of_a_folder_changes_when_a_file_is_added(tmp_path: Path) -> None:
    folder = tmp_path / "photos"
    folder.mkdir()
    (folder / "a.png").write_bytes(png_bytes())
    before = shard_fingerprint(folder)
    (folder / "sub").mkdir()
    (folder / "sub" / "b.png").write_bytes(png_bytes())
    assert shard_fingerprint(folder) != before


def test_discover_shards_lists_links_out_of_the_landing_zone_and_dangling_links(tmp_path: Path) -> None:
    landing, outside = tmp_path / "landing", tmp_path / "outside"
    landing.mkdir()
    outside.mkdir()
    write_lines(outside / "secret.jsonl", b'{"text": "secret"}')
    (landing / "linked.jsonl").symlink_to(outside / "secret.jsonl")
    (landing / "linked_folder").symlink_to(outside)
    (landing / "dangling.jsonl").symlink_to(tmp_path / "gone.jsonl")
    assert list(discover_shards(landing)) == ["dangling.jsonl", "linked.jsonl", "linked_folder"]


def test_shard_fingerprint_of_a_dangling_link_changes_once_its_target_exists(tmp_path: Path) -> None:
    link = tmp_path / "dangling.jsonl"
    link.symlink_to(tmp_path / "target.jsonl")
    before = shard_fingerprint(link)
    write_lines(tmp_path / "target.jsonl", b'{"text": "now here"}')
    assert shard_fingerprint(link) != before


def test_shard_fingerprint_of_a_folder_changes_when_a_dangling_link_is_added(tmp_path: Path) -> None:
    folder = tmp_path / "photos"
    folder.mkdir()
    (folder / "a.png").write_bytes(png_bytes())
    before = shard_fingerprint(folder)
    (folder / "b.png").symlink_to(tmp_path / "gone.png")
    assert shard_fingerprint(folder) != before


# Registration of files over the bound ------------------------------------------------------------


def test_a_file_over_the_bound_is_one_shard_per_part_covering_it(tmp_path: Path) -> None:
    (tmp_path / "big.jsonl").write_bytes(b"x" * 1000)
    found = discover_partitions(tmp_path, 300)
    assert list(found) == [f"big.jsonl.part-0000{index}" for index in range(4)]
    assert {shard.path for shard in found.values()} == {tmp_path / "big.jsonl"}
    assert [(shard.part.start, shard.part.end) for shard in found.values() if shard.part] == [
        (0, 300),
        (300, 600),
        (600, 900),
        (900, None),
    ]


def test_discover_shards_lists_a_file_over_the_bound_whole_and_partitions_split_it(tmp_path: Path) -> None:
    (tmp_path / "big.jsonl").write_bytes(b"x" * 1000)
    assert discover_shards(tmp_path) == {"big.jsonl": tmp_path / "big.jsonl"}
    assert len(discover_partitions(tmp_path, 999)) == 2


def test_parts_are_the_same_on_every_registration(tmp_path: Path) -> None:
    (tmp_path / "big.parquet").write_bytes(b"x" * 1000)
    (tmp_path / "small.jsonl").write_bytes(b"x" * 300)
    first = discover_partitions(tmp_path, 300)
    assert discover_partitions(tmp_path, 300) == first
    assert list(first) == [*(f"big.parquet.part-0000{index}" for index in range(4)), "small.jsonl"]


def test_a_file_at_the_bound_keeps_its_one_key(tmp_path: Path) -> None:
    (tmp_path / "a.jsonl").write_bytes(b"x" * 300)
    assert discover_partitions(tmp_path, 300) == {"a.jsonl": LandingShard(tmp_path / "a.jsonl")}


def test_part_keys_of_a_sanitised_name_are_safe_lake_segments(tmp_path: Path) -> None:
    name = "my news " + "n" * 200 + ".jsonl"
    (tmp_path / name).write_bytes(b"x" * 10)
    keys = list(discover_partitions(tmp_path, 4))
    assert keys == [f"{shard_key(name)}.part-0000{index}" for index in range(3)]
    assert all(check_segment(key) for key in keys)


def test_a_folder_over_the_bound_counts_the_files_in_it(tmp_path: Path) -> None:
    (tmp_path / "photos" / "sub").mkdir(parents=True)
    (tmp_path / "photos" / "a.png").write_bytes(b"x" * 200)
    (tmp_path / "photos" / "sub" / "b.png").write_bytes(b"x" * 200)
    assert list(discover_partitions(tmp_path, 150)) == [f"photos.part-0000{index}" for index in range(3)]


def test_a_tar_over_the_bound_is_split_whatever_its_compression(tmp_path: Path) -> None:
    (tmp_path / "plain.tar").write_bytes(b"x" * 1000)
    (tmp_path / "packed.tar.xz").write_bytes(lzma.compress(os.urandom(1000)))
    assert list(discover_partitions(tmp_path, 600)) == [
        "packed.tar.xz.part-00000",
        "packed.tar.xz.part-00001",
        "plain.tar.part-00000",
        "plain.tar.part-00001",
    ]


@pytest.mark.parametrize(
    ("name", "kind"),
    [
        ("a.jsonl.gz", "jsonl.gz"),
        ("a.jsonl.bz2", "jsonl.bz2"),
        ("a.JSONL.XZ", "jsonl.xz"),
        ("the-pile-00.jsonl.zst", "jsonl.zst"),
        ("a.tar.gz", "tar"),
        ("a.tgz", "tar"),
        ("a.tar.bz2", "tar"),
        ("a.tar.xz", "tar"),
        ("a.tar.zst", "tar"),
        ("c4-train.00000-of-01024.json.gz", "jsonl.gz"),
        ("dolma.json.zst", "jsonl.zst"),
        ("a.json", None),
        ("a.zst", None),
    ],
)
def test_compressed_landing_files_are_shards_of_their_kind(
    tmp_path: Path, name: str, kind: str | None
) -> None:
    (tmp_path / name).write_bytes(b"x")
    assert _shard_kind(tmp_path / name) == kind
    assert list(discover_shards(tmp_path)) == ([name] if kind else [])


def test_a_gzipped_json_lines_file_is_split_by_its_compressed_size(tmp_path: Path) -> None:
    (tmp_path / "a.jsonl.gz").write_bytes(gzip.compress(os.urandom(1000)))
    size = (tmp_path / "a.jsonl.gz").stat().st_size
    assert list(discover_partitions(tmp_path, 400)) == [
        f"a.jsonl.gz.part-0000{i}" for i in range(-(-size // 400))
    ]
    assert list(discover_partitions(tmp_path, size)) == ["a.jsonl.gz"]


def test_a_link_out_of_the_landing_zone_is_never_split(tmp_path: Path) -> None:
    landing, outside = tmp_path / "landing", tmp_path / "outside"
    landing.mkdir()
    outside.mkdir()
    (outside / "big.jsonl").write_bytes(b"x" * 1000)
    (landing / "big.jsonl").symlink_to(outside / "big.jsonl")
    assert list(discover_partitions(landing, 10)) == ["big.jsonl"]


def test_a_part_key_that_another_landing_name_takes_is_refused(tmp_path: Path) -> None:
    (tmp_path / "a.jsonl").write_bytes(b"x" * 100)
    (tmp_path / "a.jsonl.part-00001").mkdir()
    with pytest.raises(ShardNameError, match=r"map to the same partition key .a.jsonl.part-00001."):
        discover_partitions(tmp_path, 60)


# Links and unreadable shards -------------------------------------------------------------------------


def test_link_to_a_file_outside_the_landing_zone_is_one_rejected_record(landing: Path, outside: Path) -> None:
    link = landing / "passwd.jsonl"
    link.symlink_to(outside / "secret.jsonl")
    records = read(link)
    assert codes(records) == [("file", RejectCode.SYMLINK_OUTSIDE_LANDING)]
    assert "passwd.jsonl" in (records[0].reject_detail or "")
    assert "secret" not in f"{records[0].reject_detail} {records[0].text} {records[0].meta}"


def test_link_to_a_folder_outside_the_landing_zone_is_one_rejected_record(
    landing: Path, outside: Path
) -> None:
    (landing / "photos").symlink_to(outside)
    assert codes(read(landing / "photos")) == [("file", RejectCode.SYMLINK_OUTSIDE_LANDING)]


def test_dangling_link_is_one_rejected_record(landing: Path) -> None:
    (landing / "gone.jsonl").symlink_to(landing / "never-written.jsonl")
    assert codes(read(landing / "gone.jsonl")) == [("file", RejectCode.DANGLING_SYMLINK)]


def test_link_inside_the_landing_zone_is_followed(landing: Path) -> None:
    write_lines(landing / "_archive.jsonl", b'{"text": "kept"}')
    (landing / "alias.jsonl").symlink_to(landing / "_archive.jsonl")
    assert [(r.text, r.reject_code) for r in read(landing / "alias.jsonl")] == [("kept", None)]


@pytest.mark.parametrize("name", ["a.jsonl", "a.jsonl.gz", "a.parquet", "a.tar"])
def test_shard_that_cannot_be_opened_is_one_unreadable_shard_record(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str
) -> None:
    shard = tmp_path / name
    shard.write_bytes(b"")
    refuse_opening(monkeypatch, shard)
    records = read(shard)
    assert codes(records) == [("file", RejectCode.UNREADABLE_SHARD)]
    assert "PermissionError" in (records[0].reject_detail or "")


class _FailingAfter(io.RawIOBase):
    """A raw stream that yields `data` and then fails like a disk read error."""

    def __init__(self, data: bytes) -> None:
        self._data = io.BytesIO(data)

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        chunk = self._data.read(len(buffer))
        if not chunk:
            raise OSError(errno.EIO, "Input/output error")
        buffer[: len(chunk)] = chunk
        return len(chunk)


def test_read_error_midway_keeps_the_lines_read_and_ends_with_unreadable_shard(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    shard = write_lines(tmp_path / "a.jsonl", b'{"text": "one"}', b'{"text": "two"}')
    data = shard.read_bytes()
    monkeypatch.setattr(Path, "open", lambda self, *args, **kwargs: io.BufferedReader(_FailingAfter(data)))
    records = read(shard)
    assert codes(records) == [("L1", None), ("L2", None), ("file", RejectCode.UNREADABLE_SHARD)]
    assert (records[-1].reject_detail or "").startswith("after 2 items: OSError")


def test_files_of_no_supported_kind_are_named_and_the_rest_are_not(tmp_path: Path) -> None:
    for name in ("a.jsonl", "notes.txt", "meta.json", ".hidden.csv", "_skip.csv", "big.jsonl.tmp", "b.csv"):
        (tmp_path / name).write_bytes(b"x")
    (tmp_path / "pictures").mkdir()
    assert unsupported_files(tmp_path) == ["b.csv", "meta.json", "notes.txt"]
    assert unsupported_files(tmp_path / "missing") == []
    assert scan_landing(tmp_path, 1) == (discover_partitions(tmp_path, 1), unsupported_files(tmp_path))
    line = describe_unsupported(unsupported_files(tmp_path))
    assert line.startswith("3 landing files of no supported kind, not read: b.csv, meta.json, notes.txt (")
    assert "*.jsonl.zst" in line and "*.json.gz" in line and "*.tar.zst" in line
    many = describe_unsupported([f"f{index}.csv" for index in range(12)])
    assert "f9.csv and 2 more" in many


def test_a_scan_of_the_landing_zone_asks_each_entrys_kind_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The landing sensor scans on every tick: the kind its listing found is the kind the partitions use."""
    for name in ("a.jsonl", "b.jsonl.gz", "notes.txt"):
        (tmp_path / name).write_bytes(b"x")
    (tmp_path / "pictures").mkdir()
    asked: list[str] = []
    shard_kind = landing_module._shard_kind

    def counted(path: Path) -> str | None:
        asked.append(path.name)
        return shard_kind(path)

    monkeypatch.setattr(landing_module, "_shard_kind", counted)
    partitions, unsupported = scan_landing(tmp_path, 1)
    assert sorted(asked) == ["a.jsonl", "b.jsonl.gz", "notes.txt", "pictures"]
    assert list(partitions) == ["a.jsonl", "b.jsonl.gz", "pictures"] and unsupported == ["notes.txt"]
