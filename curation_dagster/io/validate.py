"""Validation of raw records: decode every item once and turn it into a row of the item contract.

The probes (`probe_image`, `probe_audio`, `probe_video`) are public because later stages re-validate
generated media with them. Decoders are imported inside the functions that use them.
"""

from __future__ import annotations

import io
import json
import re
import warnings
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any, Final, TypeAlias

from curation_dagster.errors import CurationError
from curation_dagster.io.records import RawRecord
from curation_dagster.schema import MODALITIES, RAW_SCHEMA, item_id


class RejectCode:
    """Every reason the raw stage rejects an item, as `raw.<rule>` codes."""

    # Reading a landing shard.
    NOT_UTF8: Final = "raw.not_utf8"
    BAD_JSON: Final = "raw.bad_json"
    MISSING_TEXT: Final = "raw.missing_text"
    BAD_MODALITY: Final = "raw.bad_modality"
    MISSING_MEDIA: Final = "raw.missing_media"
    TRUNCATED_SHARD: Final = "raw.truncated_shard"
    UNREADABLE_SHARD: Final = "raw.unreadable_shard"
    AMBIGUOUS_SAMPLE: Final = "raw.ambiguous_sample"
    UNKNOWN_FORMAT: Final = "raw.unknown_format"
    LINE_TOO_LONG: Final = "raw.line_too_long"
    UNREADABLE_ROW: Final = "raw.unreadable_row"
    UNREADABLE_FILE: Final = "raw.unreadable_file"
    ITEM_TOO_LARGE: Final = "raw.item_too_large"
    UNSUPPORTED_MEMBER: Final = "raw.unsupported_member"
    SYMLINK_OUTSIDE_LANDING: Final = "raw.symlink_outside_landing"
    DANGLING_SYMLINK: Final = "raw.dangling_symlink"
    LINKED_FOLDER: Final = "raw.linked_folder"
    # Validating an item.
    INVALID_UNICODE: Final = "raw.invalid_unicode"
    EMPTY_TEXT: Final = "raw.empty_text"
    IMAGE_DECODE: Final = "raw.image_decode"
    IMAGE_SIZE: Final = "raw.image_size"
    AUDIO_DECODE: Final = "raw.audio_decode"
    AUDIO_EMPTY: Final = "raw.audio_empty"
    VIDEO_DECODE: Final = "raw.video_decode"
    VIDEO_EMPTY: Final = "raw.video_empty"
    VIDEO_SIZE: Final = "raw.video_size"
    # Last resorts: a reader or a validation raised where it should have rejected (a bug to report).
    READER_ERROR: Final = "raw.reader_error"
    VALIDATION_ERROR: Final = "raw.validation_error"


#: Largest image side Pillow and most codecs handle.
MAX_IMAGE_SIDE: Final = 65535
#: Twice Pillow's default `MAX_IMAGE_PIXELS`: the point where Pillow itself raises DecompressionBombError.
MAX_IMAGE_PIXELS: Final = 178_956_970
#: The default pixel limit of images and video frames (`raw.max_image_pixels`): 8000 x 8000, about 256 MB
#: decoded as RGBA.
DEFAULT_MAX_IMAGE_PIXELS: Final = 64_000_000
#: Audio frames decoded at a time while checking that a whole file decodes.
AUDIO_BLOCK_FRAMES: Final = 65536

#: A probe reads encoded bytes, or the path of a file too large to hold in memory.
MediaSource: TypeAlias = bytes | Path


class MediaDecodeError(CurationError):
    """Media that cannot be decoded or is out of bounds; `code` is the reject code to record."""

    def __init__(self, code: str, detail: str) -> None:
        super().__init__(f"{code}: {detail}")
        self.code = code
        self.detail = detail


@dataclass(frozen=True)
class MediaLimits:
    """Per-item bounds checked from a file's header, before decoding allocates memory for it."""

    max_image_pixels: int = DEFAULT_MAX_IMAGE_PIXELS
    """Images and video frames with more pixels are rejected (at most `MAX_IMAGE_PIXELS`, Pillow's own)."""


DEFAULT_MEDIA_LIMITS: Final = MediaLimits()

_OBJECT_ADDRESS: Final = re.compile(r"<([\w.]+) object at 0x[0-9a-fA-F]+>")

#: A UTF-16 surrogate code point: Python strings hold them (JSON `\ud800` escapes, file names that are
#: not UTF-8), UTF-8 and therefore Arrow cannot.
_SURROGATE: Final = re.compile("[\ud800-\udfff]")


def describe_error(error: BaseException) -> str:
    """`Type: message` for a reject detail, with the memory addresses some libraries print in object
    reprs (`<_io.BytesIO object at 0x7f…>`) taken out, so the same input gives the same detail."""
    return _OBJECT_ADDRESS.sub(r"<\1>", f"{type(error).__name__}: {error}")


def _open_source(source: MediaSource) -> io.BytesIO | str:
    return io.BytesIO(source) if isinstance(source, bytes) else str(source)


def probe_image(data: bytes, limits: MediaLimits = DEFAULT_MEDIA_LIMITS) -> tuple[int, int]:
    """Width and height of an image that Pillow opens and fully decodes; MediaDecodeError otherwise."""
    return _probe_image(data, limits)


def _probe_image(source: MediaSource, limits: MediaLimits) -> tuple[int, int]:
    from PIL import Image

    try:
        with warnings.catch_warnings():
            # The explicit pixel limit below decides, not Pillow's warning at half its own bomb limit.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(_open_source(source)) as image:
                width, height = image.size
                # Checked from the header: `load` would allocate the whole decoded image first.
                _check_image_size(width, height, limits)
                image.load()
    except MediaDecodeError:
        raise
    except Image.DecompressionBombError as error:
        raise MediaDecodeError(RejectCode.IMAGE_SIZE, str(error)) from error
    except Exception as error:  # Pillow reports corrupt data with many exception classes
        raise MediaDecodeError(RejectCode.IMAGE_DECODE, describe_error(error)) from error
    return width, height


def _check_image_size(width: int, height: int, limits: MediaLimits) -> None:
    if not (1 <= width <= MAX_IMAGE_SIDE and 1 <= height <= MAX_IMAGE_SIDE):
        raise MediaDecodeError(
            RejectCode.IMAGE_SIZE, f"{width}x{height}: each side must be 1 to {MAX_IMAGE_SIDE} pixels"
        )
    if width * height > limits.max_image_pixels:
        raise MediaDecodeError(
            RejectCode.IMAGE_SIZE,
            f"{width}x{height} is more than {limits.max_image_pixels} pixels (raw.max_image_pixels)",
        )


def probe_audio(data: bytes) -> dict[str, Any]:
    """`duration_s`, `sample_rate` and `channels` of audio that soundfile decodes to the end."""
    return _probe_audio(data)


def _probe_audio(source: MediaSource, limits: MediaLimits = DEFAULT_MEDIA_LIMITS) -> dict[str, Any]:
    import soundfile

    try:
        with soundfile.SoundFile(_open_source(source)) as audio:
            sample_rate, channels = audio.samplerate, audio.channels
            # Headers can lie (or be absent, as in MP3), so count what actually decodes.
            frames = sum(len(block) for block in audio.blocks(blocksize=AUDIO_BLOCK_FRAMES))
    except Exception as error:  # libsndfile errors and unrecognised formats come as several classes
        raise MediaDecodeError(RejectCode.AUDIO_DECODE, describe_error(error)) from error
    if frames == 0:
        raise MediaDecodeError(RejectCode.AUDIO_EMPTY, "no audio frames")
    return {"duration_s": frames / sample_rate, "sample_rate": sample_rate, "channels": channels}


def probe_video(data: bytes, limits: MediaLimits = DEFAULT_MEDIA_LIMITS) -> dict[str, Any]:
    """`width`, `height`, `fps`, `frame_count` and `duration_s` of video with a decodable first frame."""
    return _probe_video(data, limits)


def _probe_video(source: MediaSource, limits: MediaLimits) -> dict[str, Any]:
    import av

    try:
        with av.open(_open_source(source), mode="r") as container:
            if not container.streams.video:
                raise MediaDecodeError(RejectCode.VIDEO_EMPTY, "no video stream")
            stream = container.streams.video[0]
            # The codec context knows the frame size from the container header (0 when it does not);
            # decoding a frame first would allocate it, however large.
            _check_frame_size(stream.codec_context.width, stream.codec_context.height, limits)
            frames = container.decode(stream)
            first = next(frames, None)
            if first is None:
                raise MediaDecodeError(RejectCode.VIDEO_EMPTY, "the video stream has no decodable frame")
            _check_frame_size(first.width, first.height, limits)
            frame_count = stream.frames or (1 + sum(1 for _ in frames))
            rate = stream.average_rate or stream.guessed_rate
            fps = float(rate) if rate else None
            duration_s = _video_duration(container.duration, stream.duration, stream.time_base)
    except MediaDecodeError:
        raise
    except Exception as error:  # FFmpeg errors map to many exception classes
        raise MediaDecodeError(RejectCode.VIDEO_DECODE, describe_error(error)) from error
    if duration_s is None and fps:
        duration_s = frame_count / fps
    return {
        "width": first.width,
        "height": first.height,
        "fps": fps,
        "frame_count": frame_count,
        "duration_s": duration_s,
    }


def _check_frame_size(width: int, height: int, limits: MediaLimits) -> None:
    if width * height > limits.max_image_pixels:
        raise MediaDecodeError(
            RejectCode.VIDEO_SIZE,
            f"{width}x{height} frames are more than {limits.max_image_pixels} pixels (raw.max_image_pixels)",
        )


def _video_duration(
    container_duration: int | None, stream_duration: int | None, time_base: Fraction | None
) -> float | None:
    if stream_duration and time_base:
        return float(stream_duration * time_base)
    if container_duration:
        return container_duration / 1_000_000  # FFmpeg's AV_TIME_BASE
    return None


_PROBE_CODES: Final[dict[str, str]] = {
    "image": RejectCode.IMAGE_DECODE,
    "audio": RejectCode.AUDIO_DECODE,
    "video": RejectCode.VIDEO_DECODE,
}


def _image_properties(source: MediaSource, limits: MediaLimits) -> dict[str, Any]:
    width, height = _probe_image(source, limits)
    return {"width": width, "height": height}


_PROBES: Final[dict[str, Callable[[MediaSource, MediaLimits], dict[str, Any]]]] = {
    "image": _image_properties,
    "audio": _probe_audio,
    "video": _probe_video,
}

_ROW_COLUMNS: Final = (*RAW_SCHEMA.names, "reject_reason", "reject_detail")


def validate_record(
    record: RawRecord, shard: str, limits: MediaLimits = DEFAULT_MEDIA_LIMITS
) -> dict[str, Any]:
    """One row of the raw stage: every RAW_SCHEMA column plus `reject_reason` and `reject_detail`.

    Both reject columns are None for a valid item. Bad data never raises: it becomes a rejected row.
    A record without a known modality (possible only for rejected ones) gets modality `unknown`.
    """
    meta = json.dumps(record.meta, sort_keys=True, ensure_ascii=False)
    reject_code, reject_detail = record.reject_code, record.reject_detail
    surrogate_field = _surrogate_field(record, meta)
    if surrogate_field is not None and reject_code is None:
        reject_code = RejectCode.INVALID_UNICODE
        reject_detail = (
            f"{record.position}: {surrogate_field} holds a lone surrogate (an unpaired \\ud800-\\udfff "
            "escape), which UTF-8 cannot encode; stored with U+FFFD in its place"
        )
    row: dict[str, Any] = dict.fromkeys(_ROW_COLUMNS)
    row.update(
        id=item_id(shard, record.position),
        modality=_escape_surrogates(record.modality or "unknown"),
        text=_replace_surrogates(record.text) if surrogate_field else record.text,
        media=record.media,
        uri=_escape_surrogates(record.uri),
        shard=shard,
        meta=_replace_surrogates(meta) if surrogate_field else meta,
        media_format=_escape_surrogates(record.media_format),
        reject_reason=reject_code,
        reject_detail=_escape_surrogates(reject_detail),
    )
    if reject_code is None:
        try:
            row.update(_check(record, limits))
        except MediaDecodeError as error:
            row.update(reject_reason=error.code, reject_detail=_escape_surrogates(error.detail))
    return row


def validated_rows(
    records: Iterable[RawRecord], shard: str, source: str, limits: MediaLimits = DEFAULT_MEDIA_LIMITS
) -> Iterator[dict[str, Any]]:
    """`validate_record` of every record a reader yields; a reader or a validation that raises anyway
    becomes a rejected row, so a bug costs the items it touches and never the shard."""
    remaining = iter(records)
    items = 0
    while True:
        try:
            record = next(remaining)
        except StopIteration:
            return
        except Exception as error:  # readers reject bad data themselves: this is a reader bug
            stopped = RawRecord(
                position="reader_error",
                uri=f"{source}#reader_error",
                reject_code=RejectCode.READER_ERROR,
                reject_detail=f"reading stopped after {items} items: {describe_error(error)}",
            )
            yield validate_record(stopped, shard, limits)
            return
        items += 1
        try:
            row = validate_record(record, shard, limits)
        except Exception as error:  # validation rejects bad data itself: this is a validation bug
            failed = RawRecord(
                position=record.position,
                uri=record.uri,
                modality=record.modality,
                reject_code=RejectCode.VALIDATION_ERROR,
                reject_detail=f"validation raised {describe_error(error)}",
            )
            row = validate_record(failed, shard, limits)
        yield row


def _surrogate_field(record: RawRecord, meta: str) -> str | None:
    """`text` or `meta field 'key'` when that holds a surrogate, else None; `meta` is the record's
    meta as JSON, so the common case costs one scan of it."""
    if record.text is not None and _has_surrogate(record.text):
        return "text"
    if not _has_surrogate(meta):
        return None
    for key in sorted(record.meta, key=str):
        value = json.dumps(record.meta[key], ensure_ascii=False)
        if _has_surrogate(str(key)) or _has_surrogate(value):
            return f"meta field {key!r}"
    return "meta"


def _has_surrogate(text: str) -> bool:
    """Whether `text` holds a lone surrogate; ASCII text (a flag CPython keeps) is not searched."""
    return not text.isascii() and _SURROGATE.search(text) is not None


def _replace_surrogates(text: str | None) -> str | None:
    return None if text is None else _SURROGATE.sub("\ufffd", text)


def _escape_surrogates(text: str | None) -> str | None:
    """`text` with each surrogate written as `\\udcff`: names that are not UTF-8 stay recognisable."""
    if text is None or not _has_surrogate(text):
        return text
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def _check(record: RawRecord, limits: MediaLimits) -> dict[str, Any]:
    """The properties of a valid item; MediaDecodeError with the reject code otherwise."""
    if record.modality == "text":
        if not (record.text or "").strip():
            raise MediaDecodeError(RejectCode.EMPTY_TEXT, "the text is empty or only whitespace")
        return {}
    if record.modality not in _PROBES:
        raise MediaDecodeError(
            RejectCode.BAD_MODALITY, f"modality {record.modality!r} is not one of {MODALITIES}"
        )
    source = _media_source(record)
    try:
        return _PROBES[record.modality](source, limits)
    except MediaDecodeError:
        raise
    except Exception as error:  # a probe must never take the stage down on bad data
        raise MediaDecodeError(_PROBE_CODES[record.modality], describe_error(error)) from error


def _media_source(record: RawRecord) -> MediaSource:
    """The item's bytes, or the path of its file when the reader left large media on disk."""
    if record.media is not None:
        return record.media
    path = Path(record.uri)
    if _has_surrogate(record.uri):
        raise MediaDecodeError(
            RejectCode.MISSING_MEDIA,
            f"{_escape_surrogates(record.uri)} is too large to store inline and its path is not UTF-8, "
            "so no uri can name it for later stages: rename the file",
        )
    if path.is_file():
        return path
    raise MediaDecodeError(
        RejectCode.MISSING_MEDIA, f"no media bytes and the uri {record.uri!r} is not a readable file"
    )
