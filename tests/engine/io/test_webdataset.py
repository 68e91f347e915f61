"""Tests of curation_dagster/io/webdataset.py: the WebDataset tar reader."""

from __future__ import annotations

import gzip
import io
import tarfile
import tempfile
from pathlib import Path
from typing import Any
from unittest import mock

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from curation_dagster.io import compressed_stream
from curation_dagster.io.landing import discover_partitions, read_shard
from curation_dagster.io.reader_base import ReaderSettings
from curation_dagster.io.validate import RejectCode
from tests.engine.io.compression_fixtures import CODEC_NAMES, compress
from tests.landing_fixtures import codes, read, read_parts
from tests.media_fixtures import png_bytes


def write_tar(path: Path, members: list[tuple[str, bytes]]) -> Path:
    with tarfile.open(path, "w") as archive:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return path


def test_webdataset_sample_joins_image_caption_and_json(tmp_path: Path) -> None:
    image = png_bytes()
    shard = write_tar(
        tmp_path / "a.tar",
        [("s/0001.jpeg", image), ("s/0001.txt", b"a red square"), ("s/0001.json", b'{"license": "cc0"}')],
    )
    [record] = read(shard)
    assert (record.position, record.uri, record.modality, record.media_format) == (
        "s/0001",
        f"{shard}#s/0001.jpeg",
        "image",
        "jpg",
    )
    assert (record.media, record.text, record.meta, record.reject_code) == (
        image,
        "a red square",
        {"license": "cc0"},
        None,
    )


def test_webdataset_media_kind_follows_the_extension(tmp_path: Path) -> None:
    shard = write_tar(tmp_path / "a.tar", [("a.FLAC", b"x"), ("b.mkv", b"y"), ("c.webp", b"z")])
    assert [(r.position, r.modality, r.media_format) for r in read(shard)] == [
        ("a", "audio", "flac"),
        ("b", "video", "mkv"),
        ("c", "image", "webp"),
    ]


def test_webdataset_caption_only_sample_is_a_text_item(tmp_path: Path) -> None:
    shard = write_tar(tmp_path / "a.tar", [("0001.caption", b"just words")])
    [record] = read(shard)
    assert (record.modality, record.text, record.uri) == ("text", "just words", f"{shard}#0001.caption")


def test_webdataset_sample_with_two_media_is_rejected_ambiguous(tmp_path: Path) -> None:
    shard = write_tar(tmp_path / "a.tar", [("0001.png", b"x"), ("0001.jpg", b"y")])
    assert [r.reject_code for r in read(shard)] == [RejectCode.AMBIGUOUS_SAMPLE]


def test_webdataset_sample_without_known_members_is_rejected_unknown_format(tmp_path: Path) -> None:
    shard = write_tar(tmp_path / "a.tar", [("0001.npy", b"x"), ("0002.txt", b"fine")])
    assert [(r.position, r.reject_code) for r in read(shard)] == [
        ("0001", RejectCode.UNKNOWN_FORMAT),
        ("0002", None),
    ]


def test_webdataset_invalid_json_is_rejected_bad_json(tmp_path: Path) -> None:
    shard = write_tar(tmp_path / "a.tar", [("0001.png", b"x"), ("0001.json", b"{not json")])
    assert read(shard)[0].reject_code == RejectCode.BAD_JSON


def test_webdataset_caption_that_is_not_utf8_is_rejected_not_utf8(tmp_path: Path) -> None:
    shard = write_tar(tmp_path / "a.tar", [("0001.png", b"x"), ("0001.txt", b"caf\xe9")])
    assert read(shard)[0].reject_code == RejectCode.NOT_UTF8


def test_webdataset_key_seen_again_later_gets_its_own_rejected_position(tmp_path: Path) -> None:
    shard = write_tar(tmp_path / "a.tar", [("a.txt", b"one"), ("b.txt", b"two"), ("a.png", b"x")])
    assert [(r.position, r.reject_code) for r in read(shard)] == [
        ("a", None),
        ("b", None),
        ("a#2", RejectCode.AMBIGUOUS_SAMPLE),
    ]


def test_truncated_tar_keeps_samples_read_and_adds_a_truncated_record(tmp_path: Path) -> None:
    whole = write_tar(tmp_path / "whole.tar", [("a.txt", b"one"), ("b.txt", b"two" * 400)])
    shard = tmp_path / "a.tar"
    # Cut inside the data of the second member: the first sample is complete.
    shard.write_bytes(whole.read_bytes()[: 512 * 3 + 100])
    records = read(shard)
    assert [(r.position, r.reject_code) for r in records] == [
        ("a", None),
        ("truncated", RejectCode.TRUNCATED_SHARD),
    ]


def record_extracted(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The names of the tar members read from now on, in order (a list the test may clear)."""
    extracted: list[str] = []
    extractfile = tarfile.TarFile.extractfile

    def recording(self: tarfile.TarFile, member: Any) -> Any:
        extracted.append(member.name)
        return extractfile(self, member)

    monkeypatch.setattr(tarfile.TarFile, "extractfile", recording)
    return extracted


def test_webdataset_member_over_max_item_bytes_is_rejected_unread(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    shard = write_tar(
        tmp_path / "a.tar",
        [("0001.mp4", b"v" * 4096), ("0001.txt", b"big"), ("0002.png", b"x"), ("0002.txt", b"small")],
    )
    extracted = record_extracted(monkeypatch)
    records = read(shard, ReaderSettings(max_item_bytes=1000))
    assert codes(records) == [("0001", RejectCode.ITEM_TOO_LARGE), ("0002", None)]
    assert records[0].reject_detail == "0001.mp4 has 4096 bytes, more than raw.max_item_bytes (1000)"
    assert "0001.mp4" not in extracted


def test_webdataset_links_and_devices_are_rejected_samples_never_silent_gaps(tmp_path: Path) -> None:
    shard = tmp_path / "a.tar"
    with tarfile.open(shard, "w") as archive:
        for name, kind in (
            ("0001.png", tarfile.SYMTYPE),
            ("0002.jpg", tarfile.LNKTYPE),
            ("0003.wav", tarfile.FIFOTYPE),
        ):
            info = tarfile.TarInfo(name)
            info.type, info.linkname = kind, "/etc/passwd"
            archive.addfile(info)
        caption = tarfile.TarInfo("0004.txt")
        caption.size = 5
        archive.addfile(caption, io.BytesIO(b"words"))
    records = read(shard)
    assert codes(records) == [
        ("0001", RejectCode.UNSUPPORTED_MEMBER),
        ("0002", RejectCode.UNSUPPORTED_MEMBER),
        ("0003", RejectCode.UNSUPPORTED_MEMBER),
        ("0004", None),
    ]
    assert [r.reject_detail for r in records[:3]] == [
        "0001.png is a symbolic link member, not a file",
        "0002.jpg is a hard link member, not a file",
        "0003.wav is a FIFO member, not a file",
    ]


def test_webdataset_hostile_member_names_are_only_labels(tmp_path: Path) -> None:
    names = ["../escape.txt", "/etc/absolute.txt", "caf\udce9.txt"]
    shard = write_tar(tmp_path / "a.tar", [(name, b"words") for name in names])
    records = read(shard)
    assert [(r.position, r.text) for r in records] == [
        ("../escape", "words"),
        ("/etc/absolute", "words"),
        ("caf\udce9", "words"),
    ]
    assert sorted(path.name for path in tmp_path.iterdir()) == ["a.tar"]


# Parts of a large tar --------------------------------------------------------------------------------

#: Few stems, so that samples have several members and keys come back; a long one needs an extra header.
PART_STEMS = st.sampled_from(["a", "b", "s/0001", "a#2", "truncated", "d" * 120, "caf\u00e9"])
PART_EXTENSIONS = st.sampled_from(["png", "txt", "json", "wav", "bin", ""])
PART_DATA = st.binary(max_size=700) | st.sampled_from([png_bytes(), b'{"a": 1}', b"caption", b"caf\xe9"])
#: (stem, extension, data, kind): most members are files; some a folder or a link, which read no data.
PART_MEMBERS = st.lists(
    st.tuples(
        PART_STEMS,
        PART_EXTENSIONS,
        PART_DATA,
        st.sampled_from([tarfile.REGTYPE] * 6 + [tarfile.DIRTYPE, tarfile.SYMTYPE]),
    ),
    min_size=1,
    max_size=10,
)


def tar_of(members: list[tuple[str, str, bytes, bytes]], tar_format: int) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tar_format) as archive:
        for stem, extension, data, kind in members:
            info = tarfile.TarInfo(f"{stem}.{extension}" if extension else stem)
            info.type = kind
            if kind == tarfile.REGTYPE:
                info.size = len(data)
                archive.addfile(info, io.BytesIO(data))
            else:
                info.linkname = "elsewhere" if kind == tarfile.SYMTYPE else ""
                archive.addfile(info)
    return buffer.getvalue()


@settings(max_examples=80, deadline=None, database=None)
@given(
    PART_MEMBERS,
    st.sampled_from([tarfile.GNU_FORMAT, tarfile.PAX_FORMAT]),
    st.integers(min_value=2, max_value=50),
    st.sampled_from([None, *CODEC_NAMES]),
    st.sampled_from([0, 6]),
    st.integers(min_value=1, max_value=64),
)
def test_webdataset_read_in_parts_gives_the_samples_of_the_whole_tar(
    members: list[tuple[str, str, bytes, bytes]],
    tar_format: int,
    count: int,
    codec: str | None,
    level: int,
    feed: int,
) -> None:
    """Plain, or compressed by each codec (cut by compressed bytes, the decompressor fed a few bytes at a
    time so that small tars make many feeds)."""
    data = tar_of(members, tar_format)
    if codec is not None:
        data = compress(codec, data, level)
    bound = -(-len(data) // count)  # tars are padded to 10240 bytes: parts from 5120 down to 205 bytes
    with tempfile.TemporaryDirectory() as folder, mock.patch.object(compressed_stream, "FEED_BYTES", feed):
        shard = Path(folder) / "a.tar"
        shard.write_bytes(data)
        assert read_parts(shard, bound) == read(shard)


def test_webdataset_part_reads_its_last_sample_past_its_end_and_the_next_part_skips_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Headers at 0 (a.png), 1024 (a.txt), 2048 (b.txt): parts of 1500 bytes split sample a's members.
    shard = write_tar(tmp_path / "a.tar", [("a.png", b"x" * 500), ("a.txt", b"one"), ("b.txt", b"two")])
    extracted = record_extracted(monkeypatch)
    per_part = []
    for found in discover_partitions(tmp_path, 1500).values():
        extracted.clear()
        records = read_shard(shard, "a", ReaderSettings(), found.part)
        per_part.append(([(r.position, r.text) for r in records], list(extracted)))
    assert per_part[:2] == [([("a", "one")], ["a.png", "a.txt"]), ([("b", "two")], ["b.txt"])]
    assert per_part[2:] == [([], [])] * 5  # the end-of-archive blocks, padded to 10240 bytes


@pytest.mark.parametrize("codec", [None, "gzip", "zstandard"])
def test_truncated_tar_read_in_parts_reports_the_truncation_once(tmp_path: Path, codec: str | None) -> None:
    whole = write_tar(tmp_path / "whole.tar", [("a.txt", b"one"), ("b.txt", b"two"), ("c.txt", b"3" * 4000)])
    shard = tmp_path / "landing" / "a.tar"
    shard.parent.mkdir()
    data = whole.read_bytes()[: 512 * 5 + 1000]  # inside the data of c.txt
    if codec == "gzip":
        data = gzip.compress(whole.read_bytes(), 0, mtime=0)[: 512 * 5 + 1000]  # stored: bytes stay put
    elif codec is not None:
        data = compress(codec, whole.read_bytes(), 1)[:-20]
    shard.write_bytes(data)
    with mock.patch.object(compressed_stream, "FEED_BYTES", 100):
        found = codes(read_parts(shard, 700 if codec != "zstandard" else 40))
        assert found == codes(read(shard))
    # zstandard gives a block's bytes when the whole block has come (up to 128 KiB): a frame cut inside
    # its only block gives none, and the truncation is all there is to report.
    before = [] if codec == "zstandard" else [("a", None), ("b", None)]
    assert found == [*before, ("truncated", RejectCode.TRUNCATED_SHARD)]
