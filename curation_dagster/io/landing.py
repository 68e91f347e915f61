"""Landing shards: naming, discovery, change fingerprints and streaming readers.

A landing shard is a JSON Lines file (optionally gzipped), a Parquet file, a WebDataset tar or a folder
of media files. Every reader streams and yields one `RawRecord` per item; an item it cannot parse
becomes a record with a reject code, so that nothing in a shard is lost silently.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import math
import os
import re
import tarfile
import zlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, Final

import pyarrow as pa
import pyarrow.parquet as pq

from curation_dagster.errors import ShardNameError
from curation_dagster.io.records import RawRecord
from curation_dagster.io.validate import RejectCode
from curation_dagster.schema import MODALITIES

SUPPORTED_SUFFIXES: Final = (".jsonl", ".jsonl.gz", ".parquet", ".tar")

#: Names of files still being written; neither discovered nor read.
IN_PROGRESS_SUFFIXES: Final = (".tmp", ".part")

MAX_KEY_LENGTH: Final = 120

#: Media file extensions by modality, shared by the WebDataset and media-folder readers.
MEDIA_EXTENSIONS: Final[dict[str, str]] = {
    **dict.fromkeys(("jpg", "jpeg", "png", "webp", "bmp", "gif", "tif", "tiff"), "image"),
    **dict.fromkeys(("wav", "flac", "ogg", "mp3"), "audio"),
    **dict.fromkeys(("mp4", "webm", "mkv", "avi", "mov"), "video"),
}
CAPTION_EXTENSIONS: Final = ("txt", "caption", "text")
META_EXTENSION: Final = "json"

PARQUET_BATCH_ROWS: Final = 1024

_UNSAFE_KEY_CHARACTERS: Final = re.compile(r"[^A-Za-z0-9._-]")
_HASH_SUFFIX_LENGTH: Final = 7  # "-" plus six hex characters


# --------------------------------------------------------------------------------------------- naming


def shard_key(name: str) -> str:
    """The partition key of a landing file or folder name, safe as a file name in the lake.

    Clean names are kept whole (extension included); a name that had to be changed gets a short hash of
    the original appended so that distinct names do not collide.
    """
    if name in ("", ".", "..") or "/" in name or "\\" in name:
        raise ShardNameError(
            f"landing name {name!r} cannot be a shard: rename it to a plain file or folder name "
            "without path separators"
        )
    key = _UNSAFE_KEY_CHARACTERS.sub("_", name).lstrip(".")
    if not key:
        raise ShardNameError(f"landing name {name!r} has no usable characters: rename it")
    if key == name and len(key) <= MAX_KEY_LENGTH:
        return key
    suffix = "-" + hashlib.blake2b(name.encode("utf-8", "surrogatepass")).hexdigest()[:6]
    return key[: MAX_KEY_LENGTH - _HASH_SUFFIX_LENGTH] + suffix


def _is_in_progress(name: str) -> bool:
    return name.lower().endswith(IN_PROGRESS_SUFFIXES)


def _shard_kind(path: Path) -> str | None:
    """`jsonl`, `jsonl.gz`, `parquet`, `tar`, `folder`, or None for anything that is not a shard."""
    if path.is_dir():
        return "folder"
    if not path.is_file():
        return None
    lower = path.name.lower()
    for suffix in sorted(SUPPORTED_SUFFIXES, key=len, reverse=True):
        if lower.endswith(suffix):
            return suffix[1:]
    return None


def discover_shards(landing: Path) -> dict[str, Path]:
    """The shards directly inside `landing`, keyed by `shard_key` and sorted by key.

    Hidden names, names starting with `_` and files still being written (`.tmp`, `.part`) are skipped, as
    are files of unsupported kinds. A missing landing folder has no shards.
    """
    if not landing.is_dir():
        return {}
    found: dict[str, Path] = {}
    for path in landing.iterdir():
        name = path.name
        if name.startswith((".", "_")) or _is_in_progress(name) or _shard_kind(path) is None:
            continue
        key = shard_key(name)
        if key in found:
            raise ShardNameError(
                f"landing names {found[key].name!r} and {name!r} map to the same shard key {key!r}: "
                "rename one of them"
            )
        found[key] = path
    return dict(sorted(found.items()))


def _folder_files(root: Path) -> list[Path]:
    """Every file under a media folder in sorted order, skipping hidden and in-progress names."""
    files: list[Path] = []
    for directory, subdirectories, names in os.walk(root):
        subdirectories[:] = sorted(d for d in subdirectories if not d.startswith("."))
        files.extend(
            Path(directory, name)
            for name in sorted(names)
            if not name.startswith(".") and not _is_in_progress(name)
        )
    return sorted(files, key=lambda file: file.relative_to(root).as_posix())


def shard_fingerprint(path: Path) -> str:
    """A digest of the names, sizes and modification times of a shard's files, cheap to recompute.

    A sensor compares it with the last one it saw to notice a shard that changed in place.
    """
    digest = hashlib.blake2b(digest_size=16)
    files = _folder_files(path) if path.is_dir() else [path]
    for file in files:
        stat = file.stat()
        relative = file.name if file == path else file.relative_to(path).as_posix()
        digest.update(f"{relative}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode("utf-8", "surrogatepass"))
    return digest.hexdigest()


# -------------------------------------------------------------------------------------------- readers


@dataclass(frozen=True)
class ReaderSettings:
    """How landing readers find an item's fields."""

    text_field: str = "text"
    """JSON Lines key and Parquet column holding the document or caption."""
    modality_field: str = "modality"
    """JSON Lines key and Parquet column naming the item's modality; absent means text."""
    max_inline_bytes: int = 256 * 2**20
    """Media-folder files above this size stay files: the record has no media bytes, its uri is the path."""


DEFAULT_READER_SETTINGS: Final = ReaderSettings()


def read_shard(
    path: Path, shard: str, settings: ReaderSettings = DEFAULT_READER_SETTINGS
) -> Iterator[RawRecord]:
    """Stream the records of one landing shard, whatever its kind.

    `shard` is the shard's key; readers do not need it today but take it so that every reader has the
    same signature as the stage that calls them.
    """
    kind = _shard_kind(path)
    if kind == "jsonl":
        with path.open("rb") as lines:
            yield from _read_json_lines(lines, path, settings)
    elif kind == "jsonl.gz":
        yield from _read_gzip_json_lines(path, settings)
    elif kind == "parquet":
        yield from _read_parquet(path, settings)
    elif kind == "tar":
        yield from _read_webdataset(path)
    elif kind == "folder":
        yield from _read_media_folder(path, settings)
    else:
        raise ShardNameError(
            f"{path} is not a landing shard: expected a folder or a file ending in "
            + ", ".join(SUPPORTED_SUFFIXES)
        )


def _decode_error_detail(error: Exception) -> str:
    return f"{type(error).__name__}: {error}"


def _truncated_record(path: Path, error: Exception, modality: str | None = None) -> RawRecord:
    return RawRecord(
        position="truncated",
        uri=f"{path}#truncated",
        modality=modality,
        reject_code=RejectCode.TRUNCATED_SHARD,
        reject_detail=_decode_error_detail(error),
    )


def _reject_constant(value: str) -> float:
    raise ValueError(f"{value} is not valid JSON")


def _parse_json_object(data: str) -> dict[str, Any]:
    """A JSON object, strictly (no NaN or Infinity); ValueError for anything else."""
    value = json.loads(data, parse_constant=_reject_constant)
    if not isinstance(value, dict):
        raise ValueError(f"expected a JSON object, got {type(value).__name__}")
    return value


# JSON Lines ------------------------------------------------------------------------------------------


def _read_gzip_json_lines(path: Path, settings: ReaderSettings) -> Iterator[RawRecord]:
    with gzip.open(path, "rb") as lines:
        try:
            yield from _read_json_lines(lines, path, settings)
        except (EOFError, gzip.BadGzipFile, zlib.error) as error:
            yield _truncated_record(path, error, "text")


def _read_json_lines(lines: Iterable[bytes], path: Path, settings: ReaderSettings) -> Iterator[RawRecord]:
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        yield _json_line_record(line, number, path, settings)


def _json_line_record(line: bytes, number: int, path: Path, settings: ReaderSettings) -> RawRecord:
    record = RawRecord(position=f"L{number}", uri=f"{path}#L{number}", modality="text")
    try:
        decoded = line.decode("utf-8-sig" if number == 1 else "utf-8")
    except UnicodeDecodeError as error:
        return _rejected(record, RejectCode.NOT_UTF8, str(error))
    try:
        fields = _parse_json_object(decoded)
    except ValueError as error:
        return _rejected(record, RejectCode.BAD_JSON, str(error))
    text = fields.pop(settings.text_field, None)
    modality = fields.pop(settings.modality_field, "text")
    record.meta = fields
    if isinstance(text, str):
        record.text = text
    if modality != "text":
        return _rejected(
            record, RejectCode.BAD_MODALITY, f"JSON Lines carry text only, got modality {modality!r}"
        )
    if not isinstance(text, str):
        found = "missing" if text is None else f"a {type(text).__name__}"
        return _rejected(record, RejectCode.MISSING_TEXT, f"field {settings.text_field!r} is {found}")
    return record


def _rejected(record: RawRecord, code: str, detail: str) -> RawRecord:
    record.reject_code = code
    record.reject_detail = detail
    return record


# Parquet ---------------------------------------------------------------------------------------------


def _json_safe(value: Any) -> Any:
    """`value` as something `json.dumps` writes as strict JSON; anything else becomes its `str`."""
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, dict):
        return {str(key): _json_safe(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(item) for item in value]
    return str(value)


def _normalise_format(media_format: str | None) -> str | None:
    if not media_format:
        return None
    lowered = media_format.lower().lstrip(".")
    return "jpg" if lowered == "jpeg" else lowered


def _read_parquet(path: Path, settings: ReaderSettings) -> Iterator[RawRecord]:
    row = 0
    with path.open("rb") as file:
        batches = _parquet_batches(file)
        while True:
            try:
                rows = next(batches)
            except StopIteration:
                return
            except (pa.ArrowException, OSError, ValueError) as error:
                yield RawRecord(
                    position="file",
                    uri=f"{path}#file",
                    reject_code=RejectCode.UNREADABLE_SHARD,
                    reject_detail=f"after {row} rows: {_decode_error_detail(error)}",
                )
                return
            for fields in rows:
                yield _parquet_row_record(fields, row, path, settings)
                row += 1


def _parquet_batches(file: BinaryIO) -> Iterator[list[dict[str, Any]]]:
    for batch in pq.ParquetFile(file).iter_batches(batch_size=PARQUET_BATCH_ROWS):
        yield batch.to_pylist()


def _parquet_row_record(fields: dict[str, Any], row: int, path: Path, settings: ReaderSettings) -> RawRecord:
    text = fields.pop(settings.text_field, None)
    modality = fields.pop(settings.modality_field, None)
    media = fields.pop("media", None)
    media_format = _normalise_format(fields.pop("media_format", None))
    record = RawRecord(position=f"row={row}", uri=f"{path}#row={row}", media_format=media_format)
    record.meta = _json_safe(fields)
    if media is not None and not isinstance(media, bytes):
        return _rejected(record, RejectCode.MISSING_MEDIA, f"column 'media' holds a {type(media).__name__}")
    record.media = media
    if isinstance(text, str):
        record.text = text
    if modality is None:
        modality = "text" if media is None else MEDIA_EXTENSIONS.get(media_format or "")
        if modality is None:
            return _rejected(
                record,
                RejectCode.UNKNOWN_FORMAT,
                f"row has media but no modality, and media_format {media_format!r} is not a known one",
            )
    record.modality = modality if isinstance(modality, str) else None
    if modality not in MODALITIES:
        return _rejected(record, RejectCode.BAD_MODALITY, f"modality {modality!r} is not one of {MODALITIES}")
    if text is not None and not isinstance(text, str):
        return _rejected(
            record, RejectCode.MISSING_TEXT, f"column {settings.text_field!r} holds a {type(text).__name__}"
        )
    if modality == "text" and text is None:
        return _rejected(record, RejectCode.MISSING_TEXT, f"column {settings.text_field!r} is null or absent")
    if modality != "text" and media is None:
        return _rejected(record, RejectCode.MISSING_MEDIA, f"{modality} row has no media bytes")
    return record


# WebDataset and media folders ------------------------------------------------------------------------


@dataclass
class _Member:
    """One file of a sample: a tar member or a file of a media folder (read lazily)."""

    name: str
    extension: str
    data: bytes | None = None
    path: Path | None = None

    def read(self) -> bytes:
        if self.data is None and self.path is not None:
            return self.path.read_bytes()
        return self.data or b""


def _sample_record(
    members: list[_Member], position: str | None, uri_of: Callable[[_Member], str]
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
        return _rejected(
            record, RejectCode.AMBIGUOUS_SAMPLE, f"more than one media, caption or meta: {names}"
        )
    if media:
        record.modality = MEDIA_EXTENSIONS[media[0].extension]
        record.media_format = _normalise_format(media[0].extension)
        record.media = media[0].data
    elif captions:
        record.modality = "text"
    else:
        return _rejected(record, RejectCode.UNKNOWN_FORMAT, f"no media or caption among: {names}")
    if metas:
        try:
            record.meta = _parse_json_object(metas[0].read().decode("utf-8-sig"))
        except ValueError as error:  # UnicodeDecodeError is a ValueError too
            return _rejected(record, RejectCode.BAD_JSON, f"{metas[0].name}: {error}")
    if captions:
        try:
            record.text = captions[0].read().decode("utf-8")
        except UnicodeDecodeError as error:
            return _rejected(record, RejectCode.NOT_UTF8, f"{captions[0].name}: {error}")
    return record


def _tar_member_key(name: str) -> tuple[str, str]:
    """WebDataset's split of a member name into sample key and extension, at the basename's first dot."""
    directory, _, basename = name.rpartition("/")
    stem, dot, extension = basename.partition(".")
    if not dot:
        return name, ""
    return (f"{directory}/{stem}" if directory else stem), extension.lower()


def _read_webdataset(path: Path) -> Iterator[RawRecord]:
    occurrences: dict[str, int] = {}
    key: str | None = None
    members: list[_Member] = []

    def sample_record() -> RawRecord:
        assert key is not None
        occurrence = occurrences.get(key, 0) + 1
        occurrences[key] = occurrence
        if occurrence == 1:
            return _sample_record(members, key, lambda main: f"{path}#{main.name}")
        record = _sample_record(members, f"{key}#{occurrence}", lambda main: f"{path}#{main.name}")
        return _rejected(
            record,
            RejectCode.AMBIGUOUS_SAMPLE,
            f"sample key {key!r} appears again after other samples; a WebDataset keeps a sample's members "
            "together",
        )

    with path.open("rb") as file:
        try:
            with tarfile.open(fileobj=file, mode="r|*") as archive:
                for info in archive:
                    if not info.isfile():
                        continue
                    member_key, extension = _tar_member_key(info.name)
                    if key is not None and member_key != key:
                        yield sample_record()
                        members = []
                    key = member_key
                    content = archive.extractfile(info)
                    data = content.read() if content is not None else b""
                    members.append(_Member(name=info.name, extension=extension, data=data))
        except (tarfile.TarError, EOFError, OSError, zlib.error) as error:
            if members:
                yield sample_record()
            yield _truncated_record(path, error)
            return
    if members:
        yield sample_record()


def _read_media_folder(root: Path, settings: ReaderSettings) -> Iterator[RawRecord]:
    groups: dict[str, list[Path]] = {}
    for file in _folder_files(root):
        groups.setdefault(file.relative_to(root).with_suffix("").as_posix(), []).append(file)
    for stem in sorted(groups):
        known: list[_Member] = []
        for file in groups[stem]:
            extension = file.suffix[1:].lower()
            relative = file.relative_to(root).as_posix()
            if extension in MEDIA_EXTENSIONS or extension in ("txt", META_EXTENSION):
                known.append(_Member(name=relative, extension=extension, path=file))
            else:
                yield RawRecord(
                    position=relative,
                    uri=str(file.absolute()),
                    reject_code=RejectCode.UNKNOWN_FORMAT,
                    reject_detail=f"unknown extension {file.suffix!r}",
                )
        if known:
            for member in known:
                if member.extension in MEDIA_EXTENSIONS and member.path is not None:
                    _inline_if_small(member, member.path, settings.max_inline_bytes)
            yield _sample_record(known, None, lambda main: str((root / main.name).absolute()))


def _inline_if_small(member: _Member, path: Path, max_inline_bytes: int) -> None:
    """Load a media file's bytes unless it is over the limit; large media stays a file named by its uri."""
    if path.stat().st_size <= max_inline_bytes:
        member.data = path.read_bytes()
