"""Tests of curation_dagster/io/landing.py: shard naming, discovery, fingerprints and the four readers."""

from __future__ import annotations

import errno
import gzip
import io
import os
import re
import tarfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from curation_dagster.errors import ShardNameError
from curation_dagster.io.lake import check_segment
from curation_dagster.io.landing import (
    MAX_JSON_DEPTH,
    ReaderSettings,
    _bounded_lines,
    discover_shards,
    read_shard,
    shard_fingerprint,
    shard_key,
)
from curation_dagster.io.records import RawRecord
from curation_dagster.io.validate import DEFAULT_MEDIA_LIMITS, RejectCode
from curation_dagster.spec import RawSpec
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


def write_gzip_lines(path: Path, *lines: bytes) -> Path:
    path.write_bytes(gzip.compress(b"".join(line + b"\n" for line in lines)))
    return path


#: JSON Lines shards, plain and gzipped: (file name, writer).
JSON_LINES_KINDS = pytest.mark.parametrize(
    ("name", "write"), [("a.jsonl", write_lines), ("a.jsonl.gz", write_gzip_lines)], ids=["plain", "gzip"]
)


def read(path: Path, settings: ReaderSettings | None = None) -> list[RawRecord]:
    return list(read_shard(path, "shard", settings or ReaderSettings()))


def codes(records: list[RawRecord]) -> list[tuple[str, str | None]]:
    return [(record.position, record.reject_code) for record in records]


def refuse_opening(monkeypatch: pytest.MonkeyPatch, path: Path) -> None:
    """Make every way the readers open `path` raise PermissionError, as a file without read access does
    (these tests may run as root, which reads anything)."""
    denied = PermissionError(errno.EACCES, "Permission denied", str(path))
    path_open, gzip_open = Path.open, gzip.open

    def open_path(self: Path, *args: Any, **kwargs: Any) -> Any:
        if self == path:
            raise denied
        return path_open(self, *args, **kwargs)

    def open_gzip(filename: Any, *args: Any, **kwargs: Any) -> Any:
        if Path(filename) == path:
            raise denied
        return gzip_open(filename, *args, **kwargs)

    monkeypatch.setattr(Path, "open", open_path)
    monkeypatch.setattr(gzip, "open", open_gzip)


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


def test_reader_defaults_are_the_spec_defaults() -> None:
    spec, reader = RawSpec(), ReaderSettings()
    assert (reader.max_inline_bytes, reader.max_line_bytes, reader.max_item_bytes) == (
        spec.max_inline_bytes,
        spec.max_line_bytes,
        spec.max_item_bytes,
    )
    assert DEFAULT_MEDIA_LIMITS.max_image_pixels == spec.max_image_pixels


# Links and unreadable shards -------------------------------------------------------------------------


@pytest.fixture
def landing(tmp_path: Path) -> Path:
    root = tmp_path / "landing"
    root.mkdir()
    return root


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    """A folder beside the landing zone holding a secret the readers must never read."""
    root = tmp_path / "outside"
    root.mkdir()
    write_lines(root / "secret.jsonl", b'{"text": "the secret"}')
    (root / "secret.png").write_bytes(png_bytes())
    return root


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


@JSON_LINES_KINDS
def test_jsonl_deeply_nested_line_is_rejected_bad_json(
    tmp_path: Path, name: str, write: Callable[..., Path]
) -> None:
    shard = write(tmp_path / name, b'{"text": "one"}', b"[" * 100_000, b'{"text": "three"}')
    records = read(shard)
    assert codes(records) == [("L1", None), ("L2", RejectCode.BAD_JSON), ("L3", None)]
    assert "nested too deeply" in (records[1].reject_detail or "")


def test_jsonl_meta_nested_deeper_than_the_limit_is_rejected_bad_json(tmp_path: Path) -> None:
    deep = b"[" * (MAX_JSON_DEPTH) + b"]" * (MAX_JSON_DEPTH)
    deeper = b"[" * (MAX_JSON_DEPTH + 1) + b"]" * (MAX_JSON_DEPTH + 1)
    shard = write_lines(
        tmp_path / "a.jsonl",
        b'{"text": "x", "m": ' + deep[1:-1] + b"}",
        b'{"text": "x", "m": ' + deeper[1:-1] + b"}",
    )
    assert [r.reject_code for r in read(shard)] == [None, RejectCode.BAD_JSON]


@JSON_LINES_KINDS
def test_jsonl_infinite_number_in_meta_is_kept_as_a_string(
    tmp_path: Path, name: str, write: Callable[..., Path]
) -> None:
    shard = write(tmp_path / name, b'{"text": "x", "score": 1e999, "low": [-1e999]}')
    record = read(shard)[0]
    assert (record.reject_code, record.meta) == (None, {"score": "inf", "low": ["-inf"]})


def test_jsonl_infinite_number_as_text_is_rejected_missing_text(tmp_path: Path) -> None:
    shard = write_lines(tmp_path / "a.jsonl", b'{"text": 1e999}')
    assert read(shard)[0].reject_code == RejectCode.MISSING_TEXT


@JSON_LINES_KINDS
def test_jsonl_line_over_max_line_bytes_is_rejected_and_the_next_line_read(
    tmp_path: Path, name: str, write: Callable[..., Path]
) -> None:
    at_limit = b'{"text": "' + b"a" * 30 + b'"}'  # 42 bytes
    shard = write(tmp_path / name, at_limit, b'{"text": "' + b"b" * 100 + b'"}', b'{"text": "after"}')
    records = read(shard, ReaderSettings(max_line_bytes=len(at_limit)))
    assert codes(records) == [("L1", None), ("L2", RejectCode.LINE_TOO_LONG), ("L3", None)]
    assert records[1].reject_detail == "the line has 112 bytes, more than raw.max_line_bytes (42)"
    assert records[2].text == "after"


def test_jsonl_last_line_over_the_limit_without_a_newline_is_rejected(tmp_path: Path) -> None:
    shard = tmp_path / "a.jsonl"
    shard.write_bytes(b'{"text": "ok"}\n' + b"x" * 50)
    assert codes(read(shard, ReaderSettings(max_line_bytes=20))) == [
        ("L1", None),
        ("L2", RejectCode.LINE_TOO_LONG),
    ]


class _RecordingReader(io.BytesIO):
    """Remembers the longest piece `readline` returned: what a reader held of one line at once."""

    longest = 0

    def readline(self, size: int | None = -1) -> bytes:
        line = super().readline(size)
        self.longest = max(self.longest, len(line))
        return line


def test_long_line_is_skipped_in_bounded_chunks() -> None:
    lines = _RecordingReader(b"x" * (5 * 2**20) + b"\nok\n")
    assert list(_bounded_lines(lines, 100)) == [(None, 5 * 2**20), (b"ok\n", 2)]
    assert lines.longest <= 2**20


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


def invalid_utf8_strings(values: list[bytes]) -> pa.Array:
    """A string array holding bytes as they are, valid UTF-8 or not (as a careless writer leaves them)."""
    return pa.array(values, pa.binary()).view(pa.string())


def test_parquet_invalid_utf8_rejects_only_its_row_even_in_a_later_batch(tmp_path: Path) -> None:
    shard = tmp_path / "a.parquet"
    texts = [f"row {index}".encode() for index in range(1030)]
    texts[1027] = b"caf\xe9"
    pq.write_table(pa.table({"text": invalid_utf8_strings(texts)}), shard)
    records = read(shard)
    assert len(records) == 1030
    assert [(r.position, r.reject_code) for r in records if r.reject_code] == [
        ("row=1027", RejectCode.NOT_UTF8)
    ]
    assert (records[1027].reject_detail or "").startswith("column 'text': UnicodeDecodeError")
    assert (records[1026].text, records[1028].text) == ("row 1026", "row 1028")


def test_parquet_timestamp_out_of_range_rejects_only_its_row(tmp_path: Path) -> None:
    shard = tmp_path / "a.parquet"
    when = pa.array([0, 10**18, 5], pa.int64()).cast(pa.timestamp("us"))
    pq.write_table(pa.table({"text": ["a", "b", "c"], "when": when}), shard)
    records = read(shard)
    assert codes(records) == [("row=0", None), ("row=1", RejectCode.UNREADABLE_ROW), ("row=2", None)]
    assert (records[1].reject_detail or "").startswith("column 'when': OverflowError")


def test_parquet_media_format_that_is_not_a_string_is_rejected_unknown_format(tmp_path: Path) -> None:
    shard = tmp_path / "a.parquet"
    pq.write_table(pa.table({"media": pa.array([b"x"], pa.binary()), "media_format": [7]}), shard)
    assert read(shard)[0].reject_code == RejectCode.UNKNOWN_FORMAT


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


def test_webdataset_member_over_max_item_bytes_is_rejected_unread(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    shard = write_tar(
        tmp_path / "a.tar",
        [("0001.mp4", b"v" * 4096), ("0001.txt", b"big"), ("0002.png", b"x"), ("0002.txt", b"small")],
    )
    extracted: list[str] = []
    extractfile = tarfile.TarFile.extractfile

    def recording(self: tarfile.TarFile, member: Any) -> Any:
        extracted.append(member.name)
        return extractfile(self, member)

    monkeypatch.setattr(tarfile.TarFile, "extractfile", recording)
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


def test_media_folder_that_cannot_be_listed_is_rejected(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "photos"
    (folder / "locked").mkdir(parents=True)
    (folder / "locked" / "a.png").write_bytes(png_bytes())
    (folder / "b.png").write_bytes(png_bytes())
    scandir = os.scandir

    def refusing(path: Any = ".") -> Any:
        if Path(path).name == "locked":
            raise PermissionError(errno.EACCES, "Permission denied", os.fspath(path))
        return scandir(path)

    monkeypatch.setattr(os, "scandir", refusing)
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
