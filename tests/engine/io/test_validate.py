"""Tests of curation_dagster/io/validate.py: rows of the item contract and the media probes."""

from __future__ import annotations

import io
import json
import struct
import tarfile
import zlib
from pathlib import Path
from typing import Any

import av
import numpy as np
import pytest
import soundfile

from curation_dagster.io import validate
from curation_dagster.io.landing import read_shard
from curation_dagster.io.records import RawRecord
from curation_dagster.io.validate import (
    MediaDecodeError,
    MediaLimits,
    RejectCode,
    probe_audio,
    probe_image,
    probe_video,
    validate_record,
    validated_rows,
)
from curation_dagster.schema import RAW_SCHEMA, item_id, rows_to_table
from tests.media_fixtures import png_bytes


def png_header_only(width: int, height: int) -> bytes:
    """A PNG that declares its size but holds no pixels: enough for Pillow's size checks."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IEND", b"")


def wav_bytes(frames: int = 800, channels: int = 2, sample_rate: int = 8000) -> bytes:
    buffer = io.BytesIO()
    soundfile.write(buffer, np.zeros((frames, channels), np.float32), sample_rate, format="WAV")
    return buffer.getvalue()


def mp4_bytes(frames: int = 5, fps: int = 10, size: int = 32) -> bytes:
    buffer = io.BytesIO()
    with av.open(buffer, mode="w", format="mp4") as container:
        stream = container.add_stream("mpeg4", rate=fps)
        stream.width, stream.height, stream.pix_fmt = size, size, "yuv420p"
        for index in range(frames):
            pixels = np.full((size, size, 3), index * 40, np.uint8)
            container.mux(stream.encode(av.VideoFrame.from_ndarray(pixels, format="rgb24")))
        container.mux(stream.encode())
    return buffer.getvalue()


def media_row(
    modality: str, data: bytes | None, uri: str = "land/x#1", limits: MediaLimits | None = None
) -> dict[str, Any]:
    record = RawRecord(position="1", uri=uri, modality=modality, media=data)
    return validate_record(record, "shard", limits or MediaLimits())


# Rows ------------------------------------------------------------------------------------------------


def test_valid_text_row_has_every_contract_column_and_no_reject() -> None:
    record = RawRecord(position="L1", uri="land/a.jsonl#L1", modality="text", text="hello", meta={"b": 1})
    row = validate_record(record, "a.jsonl")
    assert set(row) == {*RAW_SCHEMA.names, "reject_reason", "reject_detail"}
    assert (row["id"], row["shard"], row["uri"], row["modality"], row["text"]) == (
        item_id("a.jsonl", "L1"),
        "a.jsonl",
        "land/a.jsonl#L1",
        "text",
        "hello",
    )
    assert (row["reject_reason"], row["reject_detail"]) == (None, None)


def test_meta_is_sorted_json_that_keeps_non_ascii() -> None:
    record = RawRecord(position="L1", uri="u", modality="text", text="x", meta={"z": "é", "a": [1]})
    assert validate_record(record, "s")["meta"] == '{"a": [1], "z": "é"}'


def test_whitespace_text_is_rejected_empty_text() -> None:
    row = validate_record(RawRecord(position="L1", uri="u", modality="text", text=" \n\t"), "s")
    assert row["reject_reason"] == RejectCode.EMPTY_TEXT


def test_record_rejected_by_the_reader_keeps_its_reason_and_fields() -> None:
    record = RawRecord(
        position="L2",
        uri="u",
        modality="text",
        meta={"k": 1},
        reject_code=RejectCode.BAD_JSON,
        reject_detail="d",
    )
    row = validate_record(record, "s")
    assert (row["reject_reason"], row["reject_detail"], row["meta"]) == (RejectCode.BAD_JSON, "d", '{"k": 1}')


def test_rejected_record_without_a_modality_gets_modality_unknown() -> None:
    record = RawRecord(position="truncated", uri="u", reject_code=RejectCode.TRUNCATED_SHARD)
    assert validate_record(record, "s")["modality"] == "unknown"


def test_unrejected_record_with_an_unknown_modality_is_rejected_bad_modality() -> None:
    row = validate_record(RawRecord(position="1", uri="u", modality="smell", media=b"x"), "s")
    assert row["reject_reason"] == RejectCode.BAD_MODALITY


def test_ids_are_stable_across_two_reads_of_a_shard(tmp_path: Path) -> None:
    shard = tmp_path / "a.jsonl"
    shard.write_bytes(b'{"text": "one"}\n{"text": "two"}\n')
    first = [validate_record(r, "a.jsonl")["id"] for r in read_shard(shard, "a.jsonl")]
    second = [validate_record(r, "a.jsonl")["id"] for r in read_shard(shard, "a.jsonl")]
    assert first == second
    assert len(set(first)) == 2


def test_lone_surrogate_in_text_is_rejected_invalid_unicode_and_stored_repaired() -> None:
    record = RawRecord(position="L3", uri="u", modality="text", text="bad \ud800 here")
    row = validate_record(record, "s")
    assert (row["reject_reason"], row["text"]) == (RejectCode.INVALID_UNICODE, "bad \ufffd here")
    assert (row["reject_detail"] or "").startswith("L3: text holds a lone surrogate")
    assert rows_to_table([row], RAW_SCHEMA).num_rows == 1


def test_lone_surrogate_in_a_meta_value_names_the_field() -> None:
    record = RawRecord(position="L1", uri="u", modality="text", text="fine", meta={"id": "s\udfff", "n": 1})
    row = validate_record(record, "s")
    assert row["reject_reason"] == RejectCode.INVALID_UNICODE
    assert (row["reject_detail"] or "").startswith("L1: meta field 'id' holds a lone surrogate")
    assert json.loads(row["meta"]) == {"id": "s\ufffd", "n": 1}


def test_record_rejected_by_its_reader_keeps_its_code_and_gets_surrogates_repaired() -> None:
    record = RawRecord(
        position="L1", uri="u", modality="text", meta={"\udc80": 1}, reject_code=RejectCode.MISSING_TEXT
    )
    row = validate_record(record, "s")
    assert (row["reject_reason"], row["meta"]) == (RejectCode.MISSING_TEXT, '{"\ufffd": 1}')


def test_name_that_is_not_utf8_gives_an_id_and_a_writable_uri() -> None:
    record = RawRecord(position="caf\udce9.txt", uri="/land/docs/caf\udce9.txt", modality="text", text="x")
    row = validate_record(record, "docs")
    assert (
        row["id"]
        != validate_record(RawRecord(position="caf\udce8.txt", uri="u", modality="text"), "docs")["id"]
    )
    assert (row["reject_reason"], row["uri"]) == (None, "/land/docs/caf\\udce9.txt")
    assert rows_to_table([row], RAW_SCHEMA).column("uri").to_pylist() == ["/land/docs/caf\\udce9.txt"]


def test_large_media_left_on_disk_under_a_name_that_is_not_utf8_is_rejected_missing_media() -> None:
    row = media_row("image", None, uri="/land/photos/caf\udce9.png")
    assert row["reject_reason"] == RejectCode.MISSING_MEDIA
    assert "rename the file" in (row["reject_detail"] or "")


def test_validated_rows_turn_a_reader_that_raises_into_one_reader_error_row() -> None:
    def reader() -> Any:
        yield RawRecord(position="L1", uri="u", modality="text", text="one")
        yield RawRecord(position="L2", uri="u", modality="text", text="two")
        raise RuntimeError("reader bug")

    rows = list(validated_rows(reader(), "s", "/land/a.jsonl"))
    assert [(row["uri"], row["reject_reason"]) for row in rows] == [
        ("u", None),
        ("u", None),
        ("/land/a.jsonl#reader_error", RejectCode.READER_ERROR),
    ]
    assert rows[-1]["reject_detail"] == "reading stopped after 2 items: RuntimeError: reader bug"


def test_validated_rows_reject_only_the_record_whose_validation_raises() -> None:
    records = [
        RawRecord(position="L1", uri="u", modality="text", text="one"),
        RawRecord(position="L2", uri="u", modality="text", text="two", meta={"bad": {1, 2}}),
        RawRecord(position="L3", uri="u", modality="text", text="three"),
    ]
    rows = list(validated_rows(records, "s", "/land/a.jsonl"))
    assert [(row["id"], row["reject_reason"]) for row in rows] == [
        (item_id("s", "L1"), None),
        (item_id("s", "L2"), RejectCode.VALIDATION_ERROR),
        (item_id("s", "L3"), None),
    ]
    assert (rows[1]["reject_detail"] or "").startswith("validation raised TypeError")


# Images ----------------------------------------------------------------------------------------------


def test_valid_image_row_records_width_and_height() -> None:
    row = media_row("image", png_bytes((7, 5)))
    assert (row["reject_reason"], row["width"], row["height"]) == (None, 7, 5)


def test_corrupt_image_is_rejected_image_decode() -> None:
    row = media_row("image", b"\x89PNG\r\n\x1a\nnot really")
    assert row["reject_reason"] == RejectCode.IMAGE_DECODE
    assert row["reject_detail"]


def test_truncated_image_is_rejected_image_decode() -> None:
    data = png_bytes((64, 64))
    assert media_row("image", data[: len(data) // 2])["reject_reason"] == RejectCode.IMAGE_DECODE


def test_image_wider_than_65535_is_rejected_image_size() -> None:
    assert media_row("image", png_header_only(65536, 1))["reject_reason"] == RejectCode.IMAGE_SIZE


def test_decompression_bomb_is_rejected_image_size() -> None:
    assert media_row("image", png_header_only(20000, 10000))["reject_reason"] == RejectCode.IMAGE_SIZE


def test_probe_image_raises_media_decode_error_with_the_code() -> None:
    with pytest.raises(MediaDecodeError) as caught:
        probe_image(b"nothing")
    assert caught.value.code == RejectCode.IMAGE_DECODE


def test_webdataset_corrupt_image_is_rejected_and_its_neighbour_kept(tmp_path: Path) -> None:
    shard = tmp_path / "a.tar"
    members = [
        ("0001.png", png_bytes()),
        ("0001.txt", b"good"),
        ("0001.json", b'{"n": 1}'),
        ("0002.png", b"broken"),
        ("0002.txt", b"bad"),
    ]
    with tarfile.open(shard, "w") as archive:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    rows = [validate_record(r, "a.tar") for r in read_shard(shard, "a.tar")]
    assert [(r["uri"], r["text"], r["reject_reason"]) for r in rows] == [
        (f"{shard}#0001.png", "good", None),
        (f"{shard}#0002.png", "bad", RejectCode.IMAGE_DECODE),
    ]


def test_media_folder_png_with_caption_validates(tmp_path: Path) -> None:
    folder = tmp_path / "photos"
    folder.mkdir()
    (folder / "a.png").write_bytes(png_bytes((3, 2)))
    (folder / "a.txt").write_text("red", encoding="utf-8")
    [row] = [validate_record(r, "photos") for r in read_shard(folder, "photos")]
    assert (row["reject_reason"], row["text"], row["width"], row["height"]) == (None, "red", 3, 2)


def test_media_left_as_a_file_is_probed_from_its_uri(tmp_path: Path) -> None:
    path = tmp_path / "big.png"
    path.write_bytes(png_bytes((9, 4)))
    row = media_row("image", None, uri=str(path))
    assert (row["reject_reason"], row["media"], row["width"], row["height"]) == (None, None, 9, 4)


def test_media_without_bytes_or_file_is_rejected_missing_media(tmp_path: Path) -> None:
    row = media_row("image", None, uri=str(tmp_path / "gone.png"))
    assert row["reject_reason"] == RejectCode.MISSING_MEDIA


def test_unexpected_probe_exception_becomes_the_stage_decode_code(monkeypatch: pytest.MonkeyPatch) -> None:
    def explode(source: object, limits: MediaLimits) -> dict[str, Any]:
        raise RuntimeError("probe bug")

    monkeypatch.setitem(validate._PROBES, "audio", explode)
    row = media_row("audio", b"x")
    assert (row["reject_reason"], row["reject_detail"]) == (
        RejectCode.AUDIO_DECODE,
        "RuntimeError: probe bug",
    )


def test_image_over_max_image_pixels_is_rejected_from_its_header() -> None:
    # 13000 x 13000 is under Pillow's own bomb limit, and would take about 500 MB to decode.
    row = media_row("image", png_header_only(13000, 13000))
    assert (row["reject_reason"], row["reject_detail"]) == (
        RejectCode.IMAGE_SIZE,
        "13000x13000 is more than 64000000 pixels (raw.max_image_pixels)",
    )


def test_max_image_pixels_comes_from_the_limits() -> None:
    assert media_row("image", png_bytes((10, 10)), limits=MediaLimits(max_image_pixels=100))["width"] == 10
    row = media_row("image", png_bytes((10, 10)), limits=MediaLimits(max_image_pixels=99))
    assert row["reject_reason"] == RejectCode.IMAGE_SIZE


# Audio -----------------------------------------------------------------------------------------------


def test_valid_wav_row_records_duration_rate_and_channels() -> None:
    row = media_row("audio", wav_bytes(frames=800, channels=2, sample_rate=8000))
    assert (row["reject_reason"], row["duration_s"], row["sample_rate"], row["channels"]) == (
        None,
        0.1,
        8000,
        2,
    )


def test_corrupt_audio_is_rejected_audio_decode() -> None:
    assert media_row("audio", wav_bytes()[:30])["reject_reason"] == RejectCode.AUDIO_DECODE


def test_audio_without_frames_is_rejected_audio_empty() -> None:
    assert media_row("audio", wav_bytes(frames=0))["reject_reason"] == RejectCode.AUDIO_EMPTY


def test_probe_audio_returns_the_properties() -> None:
    assert probe_audio(wav_bytes(frames=4000, channels=1, sample_rate=16000)) == {
        "duration_s": 0.25,
        "sample_rate": 16000,
        "channels": 1,
    }


# Video -----------------------------------------------------------------------------------------------


def test_valid_mp4_row_records_size_rate_frames_and_duration() -> None:
    row = media_row("video", mp4_bytes(frames=5, fps=10, size=32))
    assert row["reject_reason"] is None
    assert (row["width"], row["height"], row["fps"], row["frame_count"]) == (32, 32, 10.0, 5)
    assert row["duration_s"] == pytest.approx(0.5)


def test_corrupt_mp4_is_rejected_video_decode() -> None:
    data = mp4_bytes()
    assert (
        media_row("video", b"\x00\x00\x00\x18ftypmp42" + data[-200:])["reject_reason"]
        == RejectCode.VIDEO_DECODE
    )


def test_media_without_a_video_stream_is_rejected_video_empty() -> None:
    assert media_row("video", wav_bytes())["reject_reason"] == RejectCode.VIDEO_EMPTY


def test_probe_video_raises_media_decode_error_on_garbage() -> None:
    with pytest.raises(MediaDecodeError) as caught:
        probe_video(b"garbage" * 10)
    assert caught.value.code == RejectCode.VIDEO_DECODE


def test_undecodable_bytes_get_the_decode_code_of_their_modality() -> None:
    rows = [media_row("image", b"x"), media_row("audio", b"x"), media_row("video", b"x")]
    assert [r["reject_reason"] for r in rows] == [
        RejectCode.IMAGE_DECODE,
        RejectCode.AUDIO_DECODE,
        RejectCode.VIDEO_DECODE,
    ]


def test_video_frames_over_max_image_pixels_are_rejected_video_size() -> None:
    row = media_row("video", mp4_bytes(size=32), limits=MediaLimits(max_image_pixels=32 * 32 - 1))
    assert (row["reject_reason"], row["reject_detail"]) == (
        RejectCode.VIDEO_SIZE,
        "32x32 frames are more than 1023 pixels (raw.max_image_pixels)",
    )


def test_rows_of_every_modality_fit_the_raw_schema() -> None:
    rows = [
        validate_record(RawRecord(position="1", uri="u", modality="text", text="hi"), "s"),
        media_row("image", png_bytes()),
        media_row("audio", wav_bytes()),
        media_row("video", mp4_bytes()),
        media_row("video", b"broken"),
    ]
    table = rows_to_table(rows, RAW_SCHEMA)
    assert table.num_rows == 5
    assert table.column("frame_count").to_pylist() == [None, None, None, 5, None]


def test_reject_details_carry_no_memory_addresses() -> None:
    from curation_dagster.io.validate import describe_error

    error = ValueError(f"cannot identify image file {io.BytesIO()!r}")

    assert describe_error(error) == "ValueError: cannot identify image file <_io.BytesIO>"


def test_an_undecodable_image_gives_the_same_detail_every_time() -> None:
    details = {
        validate_record(RawRecord("1", "u", "image", media=b"not an image"), "s")["reject_detail"]
        for _ in range(3)
    }
    assert len(details) == 1 and "0x" not in details.pop()
