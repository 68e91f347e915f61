"""What the landing readers share: their settings, the records of rejected items, strict JSON, and the
record of a sample made of several files.

Each reader module (`jsonl`, `parquet_rows`, `webdataset`, `media_folder`) builds on these pieces;
`landing` dispatches to the readers, and nothing here imports either.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from curation_dagster.io.records import RawRecord
from curation_dagster.io.validate import RejectCode, describe_error

#: Media file extensions by modality, shared by the WebDataset and media-folder readers.
MEDIA_EXTENSIONS: Final[dict[str, str]] = {
    **dict.fromkeys(("jpg", "jpeg", "png", "webp", "bmp", "gif", "tif", "tiff"), "image"),
    **dict.fromkeys(("wav", "flac", "ogg", "mp3"), "audio"),
    **dict.fromkeys(("mp4", "webm", "mkv", "avi", "mov"), "video"),
}
CAPTION_EXTENSIONS: Final = ("txt", "caption", "text")
META_EXTENSION: Final = "json"

#: JSON nested deeper than this is rejected (`raw.bad_json`): deeper values would reach Python's recursion
#: limit when they are converted and written, and no real metadata needs it.
MAX_JSON_DEPTH: Final = 100


@dataclass(frozen=True)
class ReaderSettings:
    """How landing readers find an item's fields, and how much of a shard they hold in memory at once."""

    text_field: str = "text"
    """JSON Lines key and Parquet column holding the document or caption."""
    modality_field: str = "modality"
    """JSON Lines key and Parquet column naming the item's modality; absent means text."""
    max_inline_bytes: int = 256 * 2**20
    """Media-folder files above this size stay files: the record has no media bytes, its uri is the path."""
    max_line_bytes: int = 64 * 2**20
    """A JSON Lines line above this size is rejected and skipped without being held in memory."""
    max_item_bytes: int = 512 * 2**20
    """A WebDataset member, media-folder caption or JSON file above this size is rejected unread."""


# ------------------------------------------------------------------------------- rejected records


def whole_shard_record(path: Path, code: str, detail: str) -> RawRecord:
    """The record of a shard that cannot be read (further) as a whole."""
    return RawRecord(position="file", uri=f"{path}#file", reject_code=code, reject_detail=detail)


def truncated_record(path: Path, error: Exception, modality: str | None = None) -> RawRecord:
    """The record that ends a shard whose data stops early or is corrupt; `error` is what reading raised."""
    return RawRecord(
        position="truncated",
        uri=f"{path}#truncated",
        modality=modality,
        reject_code=RejectCode.TRUNCATED_SHARD,
        reject_detail=describe_error(error),
    )


def rejected(record: RawRecord, code: str, detail: str) -> RawRecord:
    """`record` itself, rejected with `code` and `detail`."""
    record.reject_code = code
    record.reject_detail = detail
    return record


# ------------------------------------------------------------------------------------- strict JSON


def _reject_constant(value: str) -> float:
    raise ValueError(f"{value} is not valid JSON")


def parse_json_object(data: str) -> dict[str, Any]:
    """A JSON object, strictly (no NaN or Infinity) and at most MAX_JSON_DEPTH deep; ValueError otherwise."""
    too_deep = f"nested too deeply (more than {MAX_JSON_DEPTH} levels)"
    try:
        value = json.loads(data, parse_constant=_reject_constant)
    except RecursionError:
        raise ValueError(too_deep) from None
    if not isinstance(value, dict):
        raise ValueError(f"expected a JSON object, got {type(value).__name__}")
    if _deeper_than(value, MAX_JSON_DEPTH):
        raise ValueError(too_deep)
    return value


def _deeper_than(value: Any, limit: int) -> bool:
    """Whether JSON containers nest more than `limit` levels; a loop, not recursion, so any depth is fine."""
    pending: list[tuple[Any, int]] = [(value, 1)]
    while pending:
        container, depth = pending.pop()
        if depth > limit:
            return True
        children = container.values() if isinstance(container, dict) else container
        pending.extend((child, depth + 1) for child in children if isinstance(child, dict | list))
    return False


def json_safe(value: Any) -> Any:
    """`value` as something `json.dumps` writes as strict JSON; anything else becomes its `str`."""
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, dict):
        return {str(key): json_safe(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(item) for item in value]
    return str(value)


# ----------------------------------------------------------------------------------------- samples


def normalise_format(media_format: str | None) -> str | None:
    """A media format as a lower-case extension without its dot (`jpeg` becomes `jpg`); None if empty."""
    if not media_format:
        return None
    lowered = media_format.lower().lstrip(".")
    return "jpg" if lowered == "jpeg" else lowered


@dataclass
class SampleMember:
    """One file of a sample: a tar member or a file of a media folder, its bytes read unless it is large
    media left on disk or a member refused unread (then `reject_code` says why)."""

    name: str
    extension: str
    data: bytes | None = None
    reject_code: str | None = None
    reject_detail: str | None = None


def sample_record(
    members: list[SampleMember], position: str | None, uri_of: Callable[[SampleMember], str]
) -> RawRecord:
    """The item a WebDataset sample or a same-stem group of media-folder files describes.

    `position` None means the name of the sample's main member (its media, else its caption).
    """
    media = [m for m in members if m.extension in MEDIA_EXTENSIONS]
    captions = [m for m in members if m.extension in CAPTION_EXTENSIONS]
    metas = [m for m in members if m.extension == META_EXTENSION]
    main = (media or captions or members)[0]
    record = RawRecord(position=main.name if position is None else position, uri=uri_of(main))
    names = ", ".join(m.name for m in members)
    if len(media) > 1 or len(captions) > 1 or len(metas) > 1:
        return rejected(record, RejectCode.AMBIGUOUS_SAMPLE, f"more than one media, caption or meta: {names}")
    if media:
        record.modality = MEDIA_EXTENSIONS[media[0].extension]
        record.media_format = normalise_format(media[0].extension)
        record.media = media[0].data
    elif captions:
        record.modality = "text"
    else:
        return rejected(record, RejectCode.UNKNOWN_FORMAT, f"no media or caption among: {names}")
    for member in members:
        if member.reject_code is not None:
            return rejected(record, member.reject_code, member.reject_detail or member.name)
    if metas:
        try:
            record.meta = json_safe(parse_json_object((metas[0].data or b"").decode("utf-8-sig")))
        except ValueError as error:  # UnicodeDecodeError is a ValueError too
            return rejected(record, RejectCode.BAD_JSON, f"{metas[0].name}: {error}")
    if captions:
        try:
            record.text = (captions[0].data or b"").decode("utf-8")
        except UnicodeDecodeError as error:
            return rejected(record, RejectCode.NOT_UTF8, f"{captions[0].name}: {error}")
    return record
