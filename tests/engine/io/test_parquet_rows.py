"""Tests of curation_dagster/io/parquet_rows.py: the Parquet reader."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
from hypothesis import given, settings
from hypothesis import strategies as st

from curation_dagster.io.landing import discover_partitions, read_shard
from curation_dagster.io.reader_base import ReaderSettings
from curation_dagster.io.validate import RejectCode
from tests.landing_fixtures import codes, read, read_parts
from tests.media_fixtures import png_bytes


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


# Parts of a large file -------------------------------------------------------------------------------

PART_TEXTS = st.none() | st.binary(max_size=40)  # None is a missing text, some bytes are not UTF-8
PART_MODALITIES = st.none() | st.sampled_from(["text", "image", "hologram"])


@settings(max_examples=60, deadline=None, database=None)
@given(
    st.lists(st.tuples(PART_TEXTS, PART_MODALITIES), max_size=40),
    st.integers(min_value=1, max_value=5),
    st.booleans(),
    st.integers(min_value=0),
)
def test_parquet_read_in_parts_gives_the_rows_of_the_whole_file(
    rows: list[tuple[bytes | None, str | None]], group_rows: int, dictionary: bool, bound_seed: int
) -> None:
    table = pa.table(
        {
            "text": invalid_utf8_strings([text for text, _ in rows]),
            "modality": pa.array([modality for _, modality in rows], pa.string()),
        }
    )
    with tempfile.TemporaryDirectory() as folder:
        shard = Path(folder) / "a.parquet"
        pq.write_table(table, shard, row_group_size=group_rows, use_dictionary=dictionary)
        bound = 1 + bound_seed % (shard.stat().st_size - 1)
        assert read_parts(shard, bound) == read(shard)


def test_parquet_parts_hold_whole_row_groups_numbered_in_the_file(tmp_path: Path) -> None:
    shard = tmp_path / "a.parquet"
    pq.write_table(pa.table({"text": [f"document {index}" for index in range(12)]}), shard, row_group_size=4)
    metadata = pq.ParquetFile(shard).metadata
    second_group = metadata.row_group(1).column(0)
    bound = second_group.dictionary_page_offset or second_group.data_page_offset
    per_part = [
        [record.position for record in read_shard(shard, "a", ReaderSettings(), found.part)]
        for found in discover_partitions(tmp_path, bound).values()
    ]
    assert per_part[0] == ["row=0", "row=1", "row=2", "row=3"]
    assert [row for rows in per_part for row in rows] == [f"row={index}" for index in range(12)]
    assert all(len(rows) % 4 == 0 for rows in per_part)
