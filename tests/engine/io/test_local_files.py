"""Tests of curation_dagster/io/local_files.py: evaluation sets and other local files a spec names, plain or
compressed in each codec the raw stage reads."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from curation_dagster.errors import SpecError
from curation_dagster.io.local_files import read_text_items
from tests.engine.io.compression_fixtures import CODEC_NAMES, compress

SUFFIX = {"gzip": ".gz", "bzip2": ".bz2", "xz": ".xz", "zstandard": ".zst"}
RECORDS = [{"text": "first item", "label": 1}, {"question": "no text"}, {"text": "third \u00e9t\u00e9 item"}]


def jsonl(records: list[dict[str, object]]) -> bytes:
    return "".join(json.dumps(record) + "\n" for record in records).encode()


def items(path: Path, fields: tuple[str, ...] = ("text", "question")) -> list[tuple[int, str]]:
    return list(read_text_items(path, fields, "decontamination.eval_files"))


@pytest.mark.parametrize("codec", CODEC_NAMES)
@pytest.mark.parametrize("name", ["eval.jsonl", "eval.json"])
def test_compressed_json_lines_read_as_the_plain_file(tmp_path: Path, codec: str, name: str) -> None:
    plain = tmp_path / "eval.jsonl"
    plain.write_bytes(jsonl(RECORDS) + b"\n")
    packed = tmp_path / (name + SUFFIX[codec])
    packed.write_bytes(compress(codec, plain.read_bytes(), 6))

    assert items(packed) == items(plain) == [(1, "first item"), (2, "no text"), (3, "third été item")]


@pytest.mark.parametrize("codec", CODEC_NAMES)
def test_compressed_plain_text_holds_one_item_per_line_whatever_its_name_says(
    tmp_path: Path, codec: str
) -> None:
    text = b"\nunrelated line\n  an item  \n"
    named = tmp_path / f"eval.txt{SUFFIX[codec]}"
    named.write_bytes(compress(codec, text, 3))
    misnamed = (
        tmp_path / "eval.txt"
    )  # compressed, but named as plain text: its first bytes say how to read it
    misnamed.write_bytes(compress(codec, text, 3))

    assert items(named) == items(misnamed) == [(2, "unrelated line"), (3, "an item")]


def test_plain_text_that_starts_like_a_bzip2_stream_is_read_as_text(tmp_path: Path) -> None:
    path = tmp_path / "eval.txt"
    path.write_text("BZh9 is how a bzip2 stream starts\nsecond item\n", encoding="utf-8")

    assert items(path) == [(1, "BZh9 is how a bzip2 stream starts"), (2, "second item")]


@pytest.mark.parametrize("codec", CODEC_NAMES)
def test_a_compressed_file_cut_short_is_an_error_that_names_the_setting_and_file(
    tmp_path: Path, codec: str
) -> None:
    whole = compress(codec, jsonl(RECORDS * 2000), 6)
    path = tmp_path / f"eval.jsonl{SUFFIX[codec]}"
    path.write_bytes(whole[: len(whole) // 2])

    with pytest.raises(
        SpecError,
        match=r"decontamination.eval_files: .*eval.jsonl.* could not be read( after line \d+)?: Compressed file ended",
    ):
        items(path)


def test_a_file_that_is_not_utf8_is_an_error_not_a_crash(tmp_path: Path) -> None:
    path = tmp_path / "eval.txt"
    path.write_bytes(b"an item\n\xff\xfe not text\n")

    with pytest.raises(SpecError, match=r"eval\.txt could not be read: .utf-8. codec can.t decode"):
        items(path)


def test_a_plain_json_file_is_refused_with_what_to_give(tmp_path: Path) -> None:
    path = tmp_path / "eval.json"
    path.write_text(json.dumps(RECORDS), encoding="utf-8")

    with pytest.raises(SpecError, match=r"is a \.json file; give JSON Lines"):
        items(path)


def test_a_line_without_a_text_field_names_its_line(tmp_path: Path) -> None:
    path = tmp_path / "eval.jsonl.zst"
    path.write_bytes(compress("zstandard", jsonl(RECORDS), 3))

    with pytest.raises(SpecError, match="line 2 has no text field text"):
        items(path, ("text",))
