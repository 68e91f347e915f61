"""Tests of the raw stage (`run_raw`) on hostile landing data: any bytes in, nothing lost.

Every bad line, row, member or file must become a rejected row with a `raw.` code, the rows on disk must
add up to the items read, and no id may repeat. The property tests throw arbitrary data at every reader.
"""

from __future__ import annotations

import gzip
import io
import json
import os
import tarfile
import tempfile
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from curation_dagster.checks import check_conservation, check_unique_ids
from curation_dagster.io import validate
from curation_dagster.io.lake import Lake
from curation_dagster.io.landing import discover_partitions, discover_shards
from curation_dagster.io.records import RawRecord
from curation_dagster.io.validate import RejectCode
from curation_dagster.pipeline import run_stage
from curation_dagster.shard_io import StageResult
from curation_dagster.spec import VersionSpec, parse_spec
from tests.media_fixtures import png_bytes

SPEC = parse_spec({"name": "hostile"})

#: Bounded so that the whole file runs in seconds; `deadline=None` because decoding media varies in time.
PROPERTY_SETTINGS = settings(
    max_examples=40,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


def run_raw(landing: Path, name: str, spec: VersionSpec = SPEC) -> tuple[StageResult, Lake]:
    """Run the raw stage on one landing entry, keyed as discovery keys it, into a lake beside it."""
    [(shard, source)] = [(key, path) for key, path in discover_shards(landing).items() if path.name == name]
    lake = Lake(landing.parent / "lake")
    return run_stage(spec, lake, "raw", shard, source), lake


def assert_nothing_lost(result: StageResult, lake: Lake) -> None:
    """Rows in = kept + rejected, in the counters and on disk; ids unique; every reject a `raw.` code."""
    assert result.conserved
    assert check_conservation(lake, SPEC.name, "raw", result.shard, result.rows_in).passed
    assert check_unique_ids(lake, SPEC.name, "raw", result.shard).passed
    assert all(reason.startswith("raw.") for reason in result.reasons), result.reasons


def rejected_rows(lake: Lake, result: StageResult) -> list[dict[str, Any]]:
    return lake.read_table(lake.path(SPEC.name, "raw", result.shard, rejected=True)).to_pylist()


@pytest.fixture
def landing(tmp_path: Path) -> Path:
    root = tmp_path / "landing"
    root.mkdir()
    return root


# Hostile input, one case each ------------------------------------------------------------------------

SURROGATE_LINES = (
    b'{"id": "ok", "text": "a fine line"}\n'
    b'{"id": "sur", "text": "bad \\ud800 here"}\n'
    b'{"id": "\\udfff", "text": "fine text, bad id"}\n'
)


@pytest.mark.parametrize(
    ("name", "data"),
    [("a.jsonl", SURROGATE_LINES), ("a.jsonl.gz", gzip.compress(SURROGATE_LINES))],
    ids=["plain", "gzip"],
)
def test_lines_with_lone_surrogates_are_written_as_repaired_rejected_rows(
    landing: Path, name: str, data: bytes
) -> None:
    (landing / name).write_bytes(data)
    result, lake = run_raw(landing, name)
    assert (result.rows_in, result.rows_kept, result.reasons) == (3, 1, {RejectCode.INVALID_UNICODE: 2})
    rejected = rejected_rows(lake, result)
    assert [(row["text"], json.loads(row["meta"])) for row in rejected] == [
        ("bad \ufffd here", {"id": "sur"}),
        ("fine text, bad id", {"id": "\ufffd"}),
    ]
    assert [row["reject_detail"].split(" holds")[0] for row in rejected] == [
        "L2: text",
        "L3: meta field 'id'",
    ]
    assert_nothing_lost(result, lake)


def test_a_line_of_100000_brackets_is_one_bad_json_row(landing: Path) -> None:
    (landing / "a.jsonl").write_bytes(b'{"text": "before"}\n' + b"[" * 100_000 + b'\n{"text": "after"}\n')
    result, lake = run_raw(landing, "a.jsonl")
    assert (result.rows_kept, result.reasons) == (2, {RejectCode.BAD_JSON: 1})
    assert_nothing_lost(result, lake)


def test_infinite_meta_values_are_stored_as_strict_json(landing: Path) -> None:
    (landing / "a.jsonl").write_bytes(b'{"text": "x", "score": 1e999}\n')
    result, lake = run_raw(landing, "a.jsonl")
    [row] = lake.read_table(lake.path(SPEC.name, "raw", result.shard)).to_pylist()
    assert json.loads(row["meta"], parse_constant=lambda constant: pytest.fail(constant)) == {"score": "inf"}


def test_a_reader_that_raises_midway_costs_one_reader_error_row(
    landing: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (landing / "a.jsonl").write_bytes(b"")

    def broken_reader(*args: Any) -> Iterator[RawRecord]:
        yield RawRecord(position="L1", uri="u#L1", modality="text", text="one")
        yield RawRecord(position="L2", uri="u#L2", modality="text", text="two")
        raise RuntimeError("reader bug")

    monkeypatch.setattr("curation_dagster.io.stage.read_shard", broken_reader)
    result, lake = run_raw(landing, "a.jsonl")
    assert (result.rows_in, result.rows_kept, result.reasons) == (3, 2, {RejectCode.READER_ERROR: 1})
    assert rejected_rows(lake, result)[0]["reject_detail"] == (
        "reading stopped after 2 items: RuntimeError: reader bug"
    )
    assert_nothing_lost(result, lake)


def test_a_validation_that_raises_rejects_only_its_record(
    landing: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (landing / "a.jsonl").write_bytes(b'{"text": "one"}\n{"text": "two"}\n{"text": "three"}\n')
    check = validate._check

    def failing_on_two(record: RawRecord, limits: validate.MediaLimits) -> dict[str, Any]:
        if record.text == "two":
            raise KeyError("validation bug")
        return check(record, limits)

    monkeypatch.setattr(validate, "_check", failing_on_two)
    result, lake = run_raw(landing, "a.jsonl")
    assert (result.rows_kept, result.reasons) == (2, {RejectCode.VALIDATION_ERROR: 1})
    assert rejected_rows(lake, result)[0]["reject_detail"] == "validation raised KeyError: 'validation bug'"
    assert_nothing_lost(result, lake)


def test_a_landing_link_to_a_file_outside_is_one_rejected_row(tmp_path: Path, landing: Path) -> None:
    secret = tmp_path / "secret.jsonl"
    secret.write_bytes(b'{"text": "never read"}\n')
    (landing / "passwd.jsonl").symlink_to(secret)
    result, lake = run_raw(landing, "passwd.jsonl")
    assert (result.rows_in, result.reasons) == (1, {RejectCode.SYMLINK_OUTSIDE_LANDING: 1})
    assert "never read" not in json.dumps(rejected_rows(lake, result))


def test_a_dangling_landing_link_is_one_rejected_row(landing: Path) -> None:
    (landing / "gone.jsonl").symlink_to(landing / "missing.jsonl")
    result, _ = run_raw(landing, "gone.jsonl")
    assert (result.rows_in, result.reasons) == (1, {RejectCode.DANGLING_SYMLINK: 1})


@pytest.mark.parametrize("name", ["a..b.jsonl", "-dash.jsonl", "we ird ..\u00fc name.jsonl"])
def test_awkward_landing_names_run_under_a_key_the_lake_accepts(landing: Path, name: str) -> None:
    (landing / name).write_bytes(b'{"text": "hello"}\n')
    result, lake = run_raw(landing, name)
    assert (result.rows_kept, result.shard != name) == (1, True)
    assert_nothing_lost(result, lake)


def test_names_that_are_not_utf8_become_valid_rows(landing: Path) -> None:
    folder = landing / "photos"
    folder.mkdir()
    (folder / os.fsdecode(b"caf\xe9.png")).write_bytes(png_bytes())
    tar = landing / "a.tar"
    with tarfile.open(
        tar, "w", format=tarfile.GNU_FORMAT, encoding="utf-8", errors="surrogateescape"
    ) as archive:
        for name in (os.fsdecode(b"caf\xe9.txt"), "../up.txt", "/abs.txt"):
            info = tarfile.TarInfo(name)
            info.size = 5
            archive.addfile(info, io.BytesIO(b"words"))
    folder_result, lake = run_raw(landing, "photos")
    tar_result, _ = run_raw(landing, "a.tar")
    assert (folder_result.rows_kept, tar_result.rows_kept) == (1, 3)
    [row] = lake.read_table(lake.path(SPEC.name, "raw", "photos")).to_pylist()
    assert row["uri"].endswith("photos/caf\\udce9.png")
    assert_nothing_lost(tar_result, lake)


def test_max_image_pixels_comes_from_the_spec(landing: Path) -> None:
    (landing / "photos").mkdir()
    (landing / "photos" / "a.png").write_bytes(png_bytes((10, 10)))
    spec = parse_spec({"name": "hostile", "raw": {"max_image_pixels": 99}})
    result, _ = run_raw(landing, "photos", spec)
    assert result.reasons == {RejectCode.IMAGE_SIZE: 1}


# Property tests: arbitrary data at every reader ------------------------------------------------------

#: Any character, lone surrogates included (JSON may escape them; Hypothesis leaves them out by default).
ANY_CHARACTER = st.one_of(st.characters(), st.integers(0xD800, 0xDFFF).map(chr))
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(ANY_CHARACTER, max_size=20),
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(st.text(ANY_CHARACTER, max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)
JSON_OBJECTS = st.dictionaries(
    st.sampled_from(["text", "modality", "id", "meta"]) | st.text(ANY_CHARACTER, max_size=8),
    JSON_VALUES,
    max_size=5,
)
JSON_LINE = st.one_of(
    JSON_OBJECTS.map(lambda value: json.dumps(value).encode()),  # strict JSON, surrogates as \ud800 escapes
    st.binary(max_size=80),
    st.sampled_from([b"[" * 5000, b'{"text": 1e999}', b'{"text": NaN}', b"\xef\xbb\xbf{}", b"\r", b"{"]),
).map(lambda line: line.replace(b"\n", b" "))


def in_landing(files: dict[str, bytes]) -> Iterator[Path]:
    """A fresh landing folder per example (pytest's tmp_path is one per test, not per example)."""
    with tempfile.TemporaryDirectory() as folder:
        landing = Path(folder) / "landing"
        landing.mkdir()
        for name, data in files.items():
            (landing / name).parent.mkdir(parents=True, exist_ok=True)
            (landing / name).write_bytes(data)
        yield landing


def non_blank_lines(data: bytes) -> int:
    return sum(1 for line in data.split(b"\n") if line.strip())


@PROPERTY_SETTINGS
@given(st.lists(JSON_LINE, max_size=12))
def test_any_json_lines_are_kept_or_rejected_one_row_per_line(lines: list[bytes]) -> None:
    data = b"\n".join(lines)
    for landing in in_landing({"a.jsonl": data}):
        result, lake = run_raw(landing, "a.jsonl")
        assert result.rows_in == non_blank_lines(data)
        assert_nothing_lost(result, lake)


@PROPERTY_SETTINGS
@given(st.lists(JSON_LINE, max_size=12), st.integers(min_value=0), st.booleans())
def test_any_gzipped_json_lines_even_cut_short_lose_nothing(
    lines: list[bytes], cut: int, whole: bool
) -> None:
    data = b"\n".join(lines)
    compressed = gzip.compress(data)
    if not whole:
        compressed = compressed[: cut % (len(compressed) + 1)]
    for landing in in_landing({"a.jsonl.gz": compressed}):
        result, lake = run_raw(landing, "a.jsonl.gz")
        if whole:
            assert result.rows_in == non_blank_lines(data)
        assert_nothing_lost(result, lake)


@PROPERTY_SETTINGS
@given(st.binary(max_size=400))
def test_any_bytes_as_a_jsonl_gz_file_lose_nothing(data: bytes) -> None:
    for landing in in_landing({"a.jsonl.gz": data}):
        assert_nothing_lost(*run_raw(landing, "a.jsonl.gz"))


@st.composite
def parquet_tables(draw: st.DrawFn) -> pa.Table:
    """Small tables with the columns the reader looks at, of right and wrong types, and bad values."""
    rows = draw(st.integers(min_value=0, max_value=6))
    columns: dict[str, pa.Array] = {}
    if draw(st.booleans()):
        texts = draw(st.lists(st.none() | st.binary(max_size=12), min_size=rows, max_size=rows))
        columns["text"] = pa.array(texts, pa.binary()).view(pa.string())  # possibly not UTF-8
    if draw(st.booleans()):
        kinds = st.none() | st.sampled_from(["text", "image", "audio", "video", "hologram", ""])
        columns["modality"] = pa.array(draw(st.lists(kinds, min_size=rows, max_size=rows)), pa.string())
    if draw(st.booleans()):
        media = st.none() | st.binary(max_size=40) | st.just(png_bytes())
        columns["media"] = pa.array(draw(st.lists(media, min_size=rows, max_size=rows)), pa.binary())
    if draw(st.booleans()):
        formats = st.none() | st.sampled_from(["png", "JPEG", ".wav", "mp4", "xyz"])
        columns["media_format"] = pa.array(draw(st.lists(formats, min_size=rows, max_size=rows)), pa.string())
    if draw(st.booleans()):
        stamps = st.none() | st.integers(min_value=-(2**62), max_value=2**62)
        values = pa.array(draw(st.lists(stamps, min_size=rows, max_size=rows)), pa.int64())
        columns["when"] = values.cast(pa.timestamp("us"))
    if draw(st.booleans()):
        numbers = st.none() | st.floats() | st.integers(min_value=-(2**63), max_value=2**63 - 1)
        columns["score"] = pa.array(
            [
                float(n) if isinstance(n, int) else n
                for n in draw(st.lists(numbers, min_size=rows, max_size=rows))
            ]
        )
    if not columns:
        columns["text"] = pa.array([None] * rows, pa.string())
    return pa.table(columns)


def parquet_bytes(table: pa.Table) -> bytes:
    buffer = io.BytesIO()
    pq.write_table(table, buffer, row_group_size=3)
    return buffer.getvalue()


@PROPERTY_SETTINGS
@given(parquet_tables())
def test_any_parquet_table_gives_one_row_per_table_row(table: pa.Table) -> None:
    for landing in in_landing({"a.parquet": parquet_bytes(table)}):
        result, lake = run_raw(landing, "a.parquet")
        assert result.rows_in == table.num_rows
        assert_nothing_lost(result, lake)


@PROPERTY_SETTINGS
@given(parquet_tables(), st.integers(min_value=0), st.binary(min_size=1, max_size=8))
def test_any_parquet_file_with_damaged_bytes_loses_nothing(
    table: pa.Table, where: int, damage: bytes
) -> None:
    data = bytearray(parquet_bytes(table))
    start = where % len(data)
    data[start : start + len(damage)] = damage
    for landing in in_landing({"a.parquet": bytes(data)}):
        assert_nothing_lost(*run_raw(landing, "a.parquet"))


#: Names a tar can hold: any character but NUL, and of the lone surrogates only those that stand for a
#: byte that is not UTF-8 (surrogateescape's \udc80-\udcff); a name is bytes, so no other can occur.
MEMBER_NAMES = st.text(
    st.characters(exclude_characters="\x00", exclude_categories=["Cs"])
    | st.characters(min_codepoint=0xDC80, max_codepoint=0xDCFF),
    min_size=1,
    max_size=30,
)
MEMBER_EXTENSIONS = st.sampled_from(["png", "txt", "json", "wav", "mp4", "bin", "PNG", "tar.gz", ""])
MEMBER_DATA = st.binary(max_size=60) | st.sampled_from([png_bytes(), b'{"a": 1}', b"caption", b"caf\xe9"])


def tar_bytes(members: list[tuple[str, str, bytes]]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as archive:
        for stem, extension, data in members:
            info = tarfile.TarInfo(f"{stem}.{extension}" if extension else stem)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


TAR_MEMBERS = st.lists(
    st.tuples(
        MEMBER_NAMES | st.sampled_from(["a", "s/0001", "truncated", "a#2"]), MEMBER_EXTENSIONS, MEMBER_DATA
    ),
    max_size=8,
)


@PROPERTY_SETTINGS
@given(TAR_MEMBERS, st.integers(min_value=0), st.booleans())
def test_any_tar_even_cut_short_loses_nothing(
    members: list[tuple[str, str, bytes]], cut: int, whole: bool
) -> None:
    data = tar_bytes(members)
    if not whole:
        data = data[: cut % (len(data) + 1)]
    for landing in in_landing({"a.tar": data}):
        assert_nothing_lost(*run_raw(landing, "a.tar"))


@PROPERTY_SETTINGS
@given(st.binary(max_size=2000))
def test_any_bytes_as_a_tar_or_parquet_file_lose_nothing(data: bytes) -> None:
    for landing in in_landing({"a.tar": data, "a.parquet": data}):
        assert_nothing_lost(*run_raw(landing, "a.tar"))
        assert_nothing_lost(*run_raw(landing, "a.parquet"))


#: File names a folder can hold, some not UTF-8, some in a subfolder.
FOLDER_FILE_NAMES = st.tuples(
    st.sampled_from(["", "sub/", "sub/deeper/"]),
    st.binary(min_size=1, max_size=12).filter(
        lambda name: b"/" not in name and b"\0" not in name and name not in (b".", b"..")
    ),
    st.sampled_from([".png", ".txt", ".json", ".wav", ".mp4", ".mkv", ".psd", "", ".part"]),
).map(lambda parts: parts[0] + os.fsdecode(parts[1]) + parts[2])


@PROPERTY_SETTINGS
@given(st.dictionaries(FOLDER_FILE_NAMES, MEMBER_DATA, max_size=8))
def test_any_media_folder_loses_nothing(files: dict[str, bytes]) -> None:
    for landing in in_landing({}):
        folder = landing / "media"
        folder.mkdir()
        for name, data in files.items():
            path = folder / name
            if any(parent.is_file() for parent in path.parents):
                continue  # a name that is a file here cannot also be a folder
            path.parent.mkdir(parents=True, exist_ok=True)
            if not path.is_dir():
                path.write_bytes(data)
        assert_nothing_lost(*run_raw(landing, "media"))


# Parts of a file over the bound ----------------------------------------------------------------------


def run_raw_parts(landing: Path, name: str, bound: int) -> tuple[list[StageResult], Lake]:
    """Run the raw stage on every part discovery splits one landing file into under `bound`."""
    lake = Lake(landing.parent / "lake")
    shards = {
        key: found for key, found in discover_partitions(landing, bound).items() if found.path.name == name
    }
    results = [
        run_stage(SPEC, lake, "raw", key, found.path, part=found.part) for key, found in shards.items()
    ]
    return results, lake


def all_ids(lake: Lake, results: list[StageResult]) -> list[str]:
    return [
        row_id
        for result in results
        for rejected in (False, True)
        for row_id in lake.read_table(lake.path(SPEC.name, "raw", result.shard, rejected=rejected))[
            "id"
        ].to_pylist()
    ]


@settings(max_examples=20, deadline=None, database=None)
@given(st.lists(JSON_LINE, min_size=2, max_size=12), st.integers(min_value=2, max_value=5))
def test_json_lines_run_in_parts_keep_or_reject_every_line_once(lines: list[bytes], count: int) -> None:
    data = b"\n".join(lines)
    assume(len(data) >= count)
    for landing in in_landing({"a.jsonl": data}):
        whole, _ = run_raw(landing, "a.jsonl")
        parts, lake = run_raw_parts(landing, "a.jsonl", -(-len(data) // count))
        assert len(parts) > 1 and all(result.shard.startswith("a.jsonl.part-") for result in parts)
        for result in parts:
            assert_nothing_lost(result, lake)
        assert sum(result.rows_in for result in parts) == whole.rows_in == non_blank_lines(data)
        assert sum(result.rows_kept for result in parts) == whole.rows_kept
        assert sum((Counter(result.reasons) for result in parts), Counter()) == Counter(whole.reasons)
        ids = all_ids(lake, parts)
        assert len(ids) == len(set(ids)) == whole.rows_in


def test_a_bad_line_across_a_part_boundary_is_rejected_once(landing: Path) -> None:
    (landing / "a.jsonl").write_bytes(
        b'{"text": "kept before"}\n{"text": "cut across' + b"\n" + b'{"text": "after"}\n'
    )
    parts, lake = run_raw_parts(landing, "a.jsonl", 30)  # the bad line runs from byte 24 to 45
    rejected = [
        row
        for result in parts
        for row in lake.read_table(lake.path(SPEC.name, "raw", result.shard, rejected=True)).to_pylist()
    ]
    assert [(row["shard"], row["uri"].rsplit("#", 1)[1], row["reject_reason"]) for row in rejected] == [
        ("a.jsonl.part-00000", "byte=24", RejectCode.BAD_JSON)
    ]
    assert [result.rows_kept for result in parts] == [1, 1, 0]  # the last part starts after the last line
