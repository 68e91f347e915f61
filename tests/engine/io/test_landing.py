"""Tests of curation_dagster/io/landing.py: shard naming, discovery, fingerprints and the four readers."""

from __future__ import annotations

import gzip
import io
import os
import re
import tarfile
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from curation_dagster.errors import ShardNameError
from curation_dagster.io.landing import (
    ReaderSettings,
    discover_shards,
    read_shard,
    shard_fingerprint,
    shard_key,
)
from curation_dagster.io.records import RawRecord
from curation_dagster.io.validate import RejectCode
from tests.media_fixtures import png_bytes

KEY_PATTERN = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9._-]*")


def write_lines(path: Path, *lines: bytes) -> Path:
    path.write_bytes(b"".join(line + b"\n" for line in lines))
    return path


def write_tar(path: Path, members: list[tuple[str, bytes]]) -> Path:
    with tarfile.open(path, "w") as archive:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return path


def read(path: Path, settings: ReaderSettings | None = None) -> list[RawRecord]:
    return list(read_shard(path, "shard", settings or ReaderSettings()))


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


@pytest.mark.parametrize("name", ["", ".", "..", "../../etc", "a/b.jsonl", "..\\..\\etc", "/etc"])
def test_shard_key_refuses_names_that_could_escape_the_lake(name: str) -> None:
    with pytest.raises(ShardNameError):
        shard_key(name)


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


# JSON Lines ------------------------------------------------------------------------------------------


def test_jsonl_yields_text_with_line_positions_and_uris(tmp_path: Path) -> None:
    shard = write_lines(tmp_path / "a.jsonl", b'{"text": "hello"}', b'{"text": "world"}')
    records = read(shard)
    assert [(r.position, r.uri, r.text, r.modality) for r in records] == [
        ("L1", f"{shard}#L1", "hello", "text"),
        ("L2", f"{shard}#L2", "world", "text"),
    ]
    assert all(r.reject_code is None for r in records)


def test_jsonl_malformed_line_keeps_its_neighbours(tmp_path: Path) -> None:
    shard = write_lines(tmp_path / "a.jsonl", b'{"text": "one"}', b'{"text": "tw', b'{"text": "three"}')
    records = read(shard)
    assert [(r.position, r.text, r.reject_code) for r in records] == [
        ("L1", "one", None),
        ("L2", None, RejectCode.BAD_JSON),
        ("L3", "three", None),
    ]


def test_jsonl_blank_lines_are_skipped_but_counted(tmp_path: Path) -> None:
    shard = write_lines(tmp_path / "a.jsonl", b'{"text": "one"}', b"   \t", b"", b'{"text": "four"}')
    assert [r.position for r in read(shard)] == ["L1", "L4"]


def test_jsonl_other_fields_go_to_meta_untouched(tmp_path: Path) -> None:
    shard = write_lines(tmp_path / "a.jsonl", b'{"id": "src-7", "text": "x", "tags": ["a"], "n": 1.5}')
    assert read(shard)[0].meta == {"id": "src-7", "tags": ["a"], "n": 1.5}


def test_jsonl_invalid_utf8_is_rejected_not_utf8(tmp_path: Path) -> None:
    shard = write_lines(tmp_path / "a.jsonl", b'{"text": "caf\xe9"}')
    assert read(shard)[0].reject_code == RejectCode.NOT_UTF8


def test_jsonl_value_that_is_not_an_object_is_rejected_bad_json(tmp_path: Path) -> None:
    shard = write_lines(tmp_path / "a.jsonl", b'["text", "x"]')
    assert read(shard)[0].reject_code == RejectCode.BAD_JSON


def test_jsonl_nan_is_rejected_bad_json(tmp_path: Path) -> None:
    shard = write_lines(tmp_path / "a.jsonl", b'{"text": "x", "score": NaN}')
    assert read(shard)[0].reject_code == RejectCode.BAD_JSON


def test_jsonl_missing_text_field_is_rejected_missing_text(tmp_path: Path) -> None:
    shard = write_lines(tmp_path / "a.jsonl", b'{"body": "x"}')
    record = read(shard)[0]
    assert (record.reject_code, record.meta) == (RejectCode.MISSING_TEXT, {"body": "x"})


def test_jsonl_text_that_is_not_a_string_is_rejected_missing_text(tmp_path: Path) -> None:
    shard = write_lines(tmp_path / "a.jsonl", b'{"text": 42}')
    assert read(shard)[0].reject_code == RejectCode.MISSING_TEXT


def test_jsonl_text_field_name_comes_from_settings(tmp_path: Path) -> None:
    shard = write_lines(tmp_path / "a.jsonl", b'{"content": "hello", "text": "kept in meta"}')
    record = read(shard, ReaderSettings(text_field="content"))[0]
    assert (record.text, record.meta) == ("hello", {"text": "kept in meta"})


def test_jsonl_modality_other_than_text_is_rejected_bad_modality(tmp_path: Path) -> None:
    shard = write_lines(
        tmp_path / "a.jsonl", b'{"text": "x", "modality": "image"}', b'{"text": "y", "modality": "text"}'
    )
    assert [r.reject_code for r in read(shard)] == [RejectCode.BAD_MODALITY, None]


def test_jsonl_first_line_byte_order_mark_is_ignored(tmp_path: Path) -> None:
    shard = write_lines(tmp_path / "a.jsonl", b'\xef\xbb\xbf{"text": "x"}')
    assert read(shard)[0].text == "x"


def test_gzip_jsonl_is_read_through_gzip(tmp_path: Path) -> None:
    shard = tmp_path / "a.jsonl.gz"
    shard.write_bytes(gzip.compress(b'{"text": "one"}\n{"text": "two"}\n'))
    assert [(r.position, r.text) for r in read(shard)] == [("L1", "one"), ("L2", "two")]


def test_truncated_gzip_keeps_lines_read_and_adds_a_truncated_record(tmp_path: Path) -> None:
    shard = tmp_path / "a.jsonl.gz"
    # Dropping the last four bytes (the length field of the trailer) leaves every line decodable.
    shard.write_bytes(gzip.compress(b'{"text": "one"}\n{"text": "two"}\n')[:-4])
    records = read(shard)
    assert [(r.position, r.reject_code) for r in records] == [
        ("L1", None),
        ("L2", None),
        ("truncated", RejectCode.TRUNCATED_SHARD),
    ]
    assert records[-1].reject_detail


def test_file_that_is_not_gzip_is_a_truncated_shard(tmp_path: Path) -> None:
    shard = tmp_path / "a.jsonl.gz"
    shard.write_bytes(b'{"text": "plain"}\n')
    assert [r.reject_code for r in read(shard)] == [RejectCode.TRUNCATED_SHARD]


# Parquet ---------------------------------------------------------------------------------------------


def test_parquet_text_rows_carry_row_positions_and_json_safe_meta(tmp_path: Path) -> None:
    shard = tmp_path / "a.parquet"
    table = pa.table({"text": ["a", "b"], "source": ["x", "y"], "score": [1.0, float("nan")]})
    pq.write_table(table, shard)
    records = read(shard)
    assert [(r.position, r.uri, r.text, r.modality) for r in records] == [
        ("row=0", f"{shard}#row=0", "a", "text"),
        ("row=1", f"{shard}#row=1", "b", "text"),
    ]
    assert records[1].meta == {"source": "y", "score": "nan"}


def test_parquet_with_media_yields_media_items(tmp_path: Path) -> None:
    shard = tmp_path / "a.parquet"
    image = png_bytes()
    pq.write_table(
        pa.table(
            {
                "modality": ["image", "text"],
                "text": ["a red square", "a document"],
                "media": pa.array([image, None], pa.binary()),
                "media_format": ["PNG", None],
            }
        ),
        shard,
    )
    records = read(shard)
    assert [(r.modality, r.media, r.media_format, r.text) for r in records] == [
        ("image", image, "png", "a red square"),
        ("text", None, None, "a document"),
    ]


def test_parquet_null_text_on_a_text_row_is_rejected_missing_text(tmp_path: Path) -> None:
    shard = tmp_path / "a.parquet"
    pq.write_table(pa.table({"text": ["a", None, "c"]}), shard)
    assert [r.reject_code for r in read(shard)] == [None, RejectCode.MISSING_TEXT, None]


def test_parquet_media_row_without_bytes_is_rejected_missing_media(tmp_path: Path) -> None:
    shard = tmp_path / "a.parquet"
    pq.write_table(pa.table({"modality": ["image"], "media": pa.array([None], pa.binary())}), shard)
    assert read(shard)[0].reject_code == RejectCode.MISSING_MEDIA


def test_parquet_unknown_modality_is_rejected_bad_modality(tmp_path: Path) -> None:
    shard = tmp_path / "a.parquet"
    pq.write_table(pa.table({"modality": ["hologram"], "text": ["x"]}), shard)
    assert read(shard)[0].reject_code == RejectCode.BAD_MODALITY


def test_unreadable_parquet_is_one_unreadable_shard_record(tmp_path: Path) -> None:
    shard = tmp_path / "a.parquet"
    shard.write_bytes(b"this is not parquet")
    records = read(shard)
    assert [(r.position, r.reject_code) for r in records] == [("file", RejectCode.UNREADABLE_SHARD)]


# WebDataset ------------------------------------------------------------------------------------------


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


# Media folders ---------------------------------------------------------------------------------------


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
