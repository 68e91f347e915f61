"""Landing shards: naming, discovery, change fingerprints and streaming readers.

A landing shard is a JSON Lines file (optionally gzipped), a Parquet file, a WebDataset tar or a folder
of media files. Every reader streams and yields one `RawRecord` per item; an item it cannot parse
becomes a record with a reject code, so that nothing in a shard is lost silently.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import lzma
import math
import os
import re
import stat
import tarfile
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, Final

import pyarrow as pa
import pyarrow.parquet as pq

from curation_dagster.errors import ShardNameError
from curation_dagster.io.records import RawRecord
from curation_dagster.io.validate import RejectCode, describe_error
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

#: JSON nested deeper than this is rejected (`raw.bad_json`): deeper values would reach Python's recursion
#: limit when they are converted and written, and no real metadata needs it.
MAX_JSON_DEPTH: Final = 100
#: Bytes read at a time while skipping the rest of a line longer than `max_line_bytes`.
_SKIP_CHUNK_BYTES: Final = 2**20

_UNSAFE_KEY_CHARACTERS: Final = re.compile(r"[^A-Za-z0-9._-]")
_DOT_RUNS: Final = re.compile(r"\.{2,}")
_HASH_SUFFIX_LENGTH: Final = 7  # "-" plus six hex characters


# --------------------------------------------------------------------------------------------- naming


def shard_key(name: str) -> str:
    """The partition key of a landing file or folder name, safe as a file name in the lake.

    Clean names are kept whole (extension included); a name that had to be changed (characters outside
    `[A-Za-z0-9._-]`, `..`, a leading `.` or `-`, too long) gets a short hash of the original appended so
    that distinct names do not collide. Every key passes `io.lake.check_segment`.
    """
    if name in ("", ".", "..") or "/" in name:
        raise ShardNameError(
            f"landing name {name!r} cannot be a shard: rename it to a plain file or folder name "
            "without path separators"
        )
    safe = _DOT_RUNS.sub(".", _UNSAFE_KEY_CHARACTERS.sub("_", name))
    key = safe.lstrip(".-") or "_"
    if key == name and len(key) <= MAX_KEY_LENGTH:
        return key
    suffix = "-" + hashlib.blake2b(name.encode("utf-8", "surrogatepass")).hexdigest()[:6]
    return key[: MAX_KEY_LENGTH - _HASH_SUFFIX_LENGTH] + suffix


def _is_in_progress(name: str) -> bool:
    return name.lower().endswith(IN_PROGRESS_SUFFIXES)


def _shard_kind(path: Path) -> str | None:
    """`jsonl`, `jsonl.gz`, `parquet`, `tar`, `folder`, or None for anything that is not a shard.

    A dangling link counts by its name, so that it is discovered and its raw run rejects it visibly.
    """
    if path.is_dir():
        return "folder"
    if not (path.is_file() or _is_dangling_link(path)):
        return None
    lower = path.name.lower()
    for suffix in sorted(SUPPORTED_SUFFIXES, key=len, reverse=True):
        if lower.endswith(suffix):
            return suffix[1:]
    return None


def _is_dangling_link(path: Path) -> bool:
    return path.is_symlink() and not path.exists()


def _link_problem(path: Path, landing: Path) -> tuple[str, str] | None:
    """The reject code and detail of a symbolic link that must not be read, else None.

    A link may be followed only to an existing target inside the landing zone; the detail names the link,
    never what it points to.
    """
    if not path.is_symlink():
        return None
    target = os.path.realpath(path)
    if not os.path.exists(target):
        return RejectCode.DANGLING_SYMLINK, f"{path.name} is a symbolic link to nothing (or a loop)"
    zone = os.path.realpath(landing)
    if os.path.commonpath([zone, target]) != zone:
        return (
            RejectCode.SYMLINK_OUTSIDE_LANDING,
            f"{path.name} is a symbolic link that leads outside the landing zone: copy the data in instead",
        )
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


def _folder_files(root: Path) -> tuple[list[Path], list[OSError]]:
    """Every file under a media folder in sorted order, and the errors of folders that cannot be listed.

    Links to folders are listed as files: they are never followed, so that a link cannot lead the walk
    out of the landing zone or round in a loop. Hidden and in-progress names are skipped.
    """
    files: list[Path] = []
    unlisted: list[OSError] = []
    for directory, subdirectories, names in os.walk(root, onerror=unlisted.append):
        linked = [name for name in subdirectories if os.path.islink(os.path.join(directory, name))]
        subdirectories[:] = sorted(d for d in subdirectories if not d.startswith(".") and d not in linked)
        files.extend(
            Path(directory, name)
            for name in sorted([*names, *linked])
            if not name.startswith(".") and not _is_in_progress(name)
        )
    return sorted(files, key=lambda file: file.relative_to(root).as_posix()), unlisted


def shard_fingerprint(path: Path) -> str:
    """A digest of the names, sizes and modification times of a shard's files, cheap to recompute.

    A sensor compares it with the last one it saw to notice a shard that changed in place. A link that the
    raw stage refuses is fingerprinted as itself, never walked.
    """
    digest = hashlib.blake2b(digest_size=16)
    walk = path.is_dir() and _link_problem(path, path.parent) is None
    files, unlisted = _folder_files(path) if walk else ([path], [])
    for file in files:
        try:
            status = file.stat()
        except OSError:  # a dangling link or a loop: the link itself is what can change
            status = file.lstat()
        relative = file.name if file == path else file.relative_to(path).as_posix()
        digest.update(
            f"{relative}\0{status.st_size}\0{status.st_mtime_ns}\n".encode("utf-8", "surrogatepass")
        )
    for error in unlisted:
        digest.update(f"{error.filename}\0unlisted\0{error.errno}\n".encode("utf-8", "surrogatepass"))
    return digest.hexdigest()


# -------------------------------------------------------------------------------------------- readers


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


DEFAULT_READER_SETTINGS: Final = ReaderSettings()


def read_shard(
    path: Path, shard: str, settings: ReaderSettings = DEFAULT_READER_SETTINGS
) -> Iterator[RawRecord]:
    """Stream the records of one landing shard, whatever its kind.

    `path.parent` is the landing zone: a link that leads out of it, or to nothing, is one rejected record
    and is never read. A shard that cannot be opened or read ends with an `raw.unreadable_shard` record.
    `shard` is the shard's key; readers do not need it today but take it so that every reader has the
    same signature as the stage that calls them.
    """
    kind = _shard_kind(path)
    if kind is None:
        raise ShardNameError(
            f"{path} is not a landing shard: expected a folder or a file ending in "
            + ", ".join(SUPPORTED_SUFFIXES)
        )
    problem = _link_problem(path, path.parent)
    if problem is not None:
        yield _whole_shard_record(path, *problem)
        return
    items = 0
    try:
        for record in _READERS[kind](path, settings):
            yield record
            items += 1
    except OSError as error:  # opening or reading the shard itself: a missing permission, a vanished file
        yield _whole_shard_record(
            path, RejectCode.UNREADABLE_SHARD, f"after {items} items: {describe_error(error)}"
        )


def _whole_shard_record(path: Path, code: str, detail: str) -> RawRecord:
    """The record of a shard that cannot be read (further) as a whole."""
    return RawRecord(position="file", uri=f"{path}#file", reject_code=code, reject_detail=detail)


def _truncated_record(path: Path, error: Exception, modality: str | None = None) -> RawRecord:
    return RawRecord(
        position="truncated",
        uri=f"{path}#truncated",
        modality=modality,
        reject_code=RejectCode.TRUNCATED_SHARD,
        reject_detail=describe_error(error),
    )


def _reject_constant(value: str) -> float:
    raise ValueError(f"{value} is not valid JSON")


def _parse_json_object(data: str) -> dict[str, Any]:
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


# JSON Lines ------------------------------------------------------------------------------------------


def _read_plain_json_lines(path: Path, settings: ReaderSettings) -> Iterator[RawRecord]:
    with path.open("rb") as lines:
        yield from _read_json_lines(lines, path, settings)


def _read_gzip_json_lines(path: Path, settings: ReaderSettings) -> Iterator[RawRecord]:
    with gzip.open(path, "rb") as lines:
        try:
            yield from _read_json_lines(lines, path, settings)
        except (EOFError, gzip.BadGzipFile, zlib.error) as error:
            yield _truncated_record(path, error, "text")


def _read_json_lines(lines: io.BufferedIOBase, path: Path, settings: ReaderSettings) -> Iterator[RawRecord]:
    for number, (line, length) in enumerate(_bounded_lines(lines, settings.max_line_bytes), start=1):
        if line is None:
            yield RawRecord(
                position=f"L{number}",
                uri=f"{path}#L{number}",
                modality="text",
                reject_code=RejectCode.LINE_TOO_LONG,
                reject_detail=f"the line has {length} bytes, more than raw.max_line_bytes "
                f"({settings.max_line_bytes})",
            )
        elif line.strip():
            yield _json_line_record(line, number, path, settings)


def _bounded_lines(lines: io.BufferedIOBase, max_line_bytes: int) -> Iterator[tuple[bytes | None, int]]:
    """(line, length in bytes without its newline) for each line; a line longer than `max_line_bytes`
    comes as (None, length), read to its end in chunks so that memory stays bounded."""
    while line := lines.readline(max_line_bytes + 1):
        if not line.endswith(b"\n") and len(line) > max_line_bytes:
            length = len(line)
            while chunk := lines.readline(_SKIP_CHUNK_BYTES):
                length += len(chunk)
                if chunk.endswith(b"\n"):
                    length -= 1
                    break
            yield None, length
        else:
            yield line, len(line.rstrip(b"\n"))


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
    record.meta = _json_safe(fields)
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

#: What converting Arrow values to Python raises for a bad value: invalid UTF-8 in a string column
#: (UnicodeDecodeError, a ValueError), a timestamp or date out of Python's range (OverflowError).
_CONVERSION_ERRORS: Final = (pa.ArrowException, ValueError, OverflowError)


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
                batch = next(batches)
            except StopIteration:
                return
            except (pa.ArrowException, OSError, ValueError) as error:
                yield _whole_shard_record(
                    path, RejectCode.UNREADABLE_SHARD, f"after {row} rows: {describe_error(error)}"
                )
                return
            yield from _parquet_batch_records(batch, row, path, settings)
            row += batch.num_rows


def _parquet_batches(file: BinaryIO) -> Iterator[pa.RecordBatch]:
    yield from pq.ParquetFile(file).iter_batches(batch_size=PARQUET_BATCH_ROWS)


def _parquet_batch_records(
    batch: pa.RecordBatch, first_row: int, path: Path, settings: ReaderSettings
) -> Iterator[RawRecord]:
    """The records of one batch, converted at once; a batch holding a value that does not convert to
    Python is converted row by row instead, so that only its bad rows are rejected."""
    try:
        rows = batch.to_pylist()
    except _CONVERSION_ERRORS:
        rows = None
    if rows is not None:
        for offset, fields in enumerate(rows):
            yield _parquet_row_record(fields, first_row + offset, path, settings)
        return
    for offset in range(batch.num_rows):
        row = first_row + offset
        values: dict[str, Any] = {}
        for name, column in zip(batch.schema.names, batch.columns, strict=True):
            try:
                values[name] = column[offset].as_py()
            except _CONVERSION_ERRORS as error:
                bad_text = isinstance(error, UnicodeDecodeError)
                code = RejectCode.NOT_UTF8 if bad_text else RejectCode.UNREADABLE_ROW
                record = RawRecord(position=f"row={row}", uri=f"{path}#row={row}")
                yield _rejected(record, code, f"column {name!r}: {describe_error(error)}")
                break
        else:
            yield _parquet_row_record(values, row, path, settings)


def _parquet_row_record(fields: dict[str, Any], row: int, path: Path, settings: ReaderSettings) -> RawRecord:
    text = fields.pop(settings.text_field, None)
    modality = fields.pop(settings.modality_field, None)
    media = fields.pop("media", None)
    stated_format = fields.pop("media_format", None)
    media_format = _normalise_format(stated_format) if isinstance(stated_format, str) else None
    record = RawRecord(position=f"row={row}", uri=f"{path}#row={row}", media_format=media_format)
    record.meta = _json_safe(fields)
    if media is not None and not isinstance(media, bytes):
        return _rejected(record, RejectCode.MISSING_MEDIA, f"column 'media' holds a {type(media).__name__}")
    record.media = media
    if isinstance(text, str):
        record.text = text
    if stated_format is not None and not isinstance(stated_format, str):
        return _rejected(
            record, RejectCode.UNKNOWN_FORMAT, f"column 'media_format' holds a {type(stated_format).__name__}"
        )
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
    """One file of a sample: a tar member or a file of a media folder, its bytes read unless it is large
    media left on disk or a member refused unread (then `reject_code` says why)."""

    name: str
    extension: str
    data: bytes | None = None
    reject_code: str | None = None
    reject_detail: str | None = None


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
    for member in members:
        if member.reject_code is not None:
            return _rejected(record, member.reject_code, member.reject_detail or member.name)
    if metas:
        try:
            record.meta = _json_safe(_parse_json_object((metas[0].data or b"").decode("utf-8-sig")))
        except ValueError as error:  # UnicodeDecodeError is a ValueError too
            return _rejected(record, RejectCode.BAD_JSON, f"{metas[0].name}: {error}")
    if captions:
        try:
            record.text = (captions[0].data or b"").decode("utf-8")
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


def _read_webdataset(path: Path, settings: ReaderSettings) -> Iterator[RawRecord]:
    occurrences: dict[str, int] = {}
    positions: set[str] = set()
    key: str | None = None
    members: list[_Member] = []

    def sample_record() -> RawRecord:
        assert key is not None
        occurrence = occurrences.get(key, 0) + 1
        occurrences[key] = occurrence
        position = _unused(key if occurrence == 1 else f"{key}#{occurrence}", positions)
        record = _sample_record(members, position, lambda main: f"{path}#{main.name}")
        if occurrence == 1:
            return record
        return _rejected(
            record,
            RejectCode.AMBIGUOUS_SAMPLE,
            f"sample key {key!r} appears again after other samples; a WebDataset keeps a sample's members "
            "together",
        )

    with path.open("rb") as file:
        try:
            # Stream mode: members are read in order and nothing is ever extracted to disk, so member
            # names such as `../x` or `/etc/x` are only labels.
            with tarfile.open(fileobj=file, mode="r|*") as archive:
                for info in archive:
                    if info.isdir():
                        continue
                    member_key, extension = _tar_member_key(info.name)
                    if key is not None and member_key != key:
                        yield sample_record()
                        members = []
                    key = member_key
                    members.append(_tar_member(archive, info, extension, settings.max_item_bytes))
        except (tarfile.TarError, EOFError, OSError, ValueError, zlib.error, lzma.LZMAError) as error:
            if members:
                yield sample_record()
            truncated = _truncated_record(path, error)
            truncated.position = _unused(truncated.position, positions)
            yield truncated
            return
    if members:
        yield sample_record()


def _unused(position: str, used: set[str]) -> str:
    """`position`, or `position#2`, `#3`, ... when a member name already took it: ids stay unique."""
    candidate, count = position, 1
    while candidate in used:
        count += 1
        candidate = f"{position}#{count}"
    used.add(candidate)
    return candidate


_MEMBER_KINDS: Final = {
    tarfile.SYMTYPE: "symbolic link",
    tarfile.LNKTYPE: "hard link",
    tarfile.CHRTYPE: "character device",
    tarfile.BLKTYPE: "block device",
    tarfile.FIFOTYPE: "FIFO",
}


def _tar_member(
    archive: tarfile.TarFile, info: tarfile.TarInfo, extension: str, max_item_bytes: int
) -> _Member:
    """A tar member with its bytes, or refused unread: larger than `max_item_bytes`, or not a file."""
    member = _Member(name=info.name, extension=extension)
    if not info.isfile():
        # A link or a device has no bytes of its own, and a stream cannot go back for a hard link's target.
        member.reject_code = RejectCode.UNSUPPORTED_MEMBER
        member.reject_detail = (
            f"{info.name} is a {_MEMBER_KINDS.get(info.type, 'special')} member, not a file"
        )
        return member
    if info.size > max_item_bytes:
        # Left unread, the stream skips the member's data in bounded chunks when it moves on.
        member.reject_code = RejectCode.ITEM_TOO_LARGE
        member.reject_detail = (
            f"{info.name} has {info.size} bytes, more than raw.max_item_bytes ({max_item_bytes})"
        )
        return member
    content = archive.extractfile(info)
    member.data = content.read() if content is not None else b""
    return member


def _read_media_folder(root: Path, settings: ReaderSettings) -> Iterator[RawRecord]:
    files, unlisted = _folder_files(root)
    for error in unlisted:
        folder = Path(error.filename) if error.filename else root
        yield RawRecord(
            position=folder.relative_to(root).as_posix(),
            uri=str(folder.absolute()),
            reject_code=RejectCode.UNREADABLE_FILE,
            reject_detail=f"the folder cannot be listed: {describe_error(error)}",
        )
    groups: dict[str, list[Path]] = {}
    for file in files:
        groups.setdefault(file.relative_to(root).with_suffix("").as_posix(), []).append(file)
    for stem in sorted(groups):
        known: list[_Member] = []
        for file in groups[stem]:
            member = _folder_member(file, root, settings)
            if isinstance(member, RawRecord):
                yield member
            else:
                known.append(member)
        if known:
            yield _sample_record(known, None, lambda main: str((root / main.name).absolute()))


def _folder_member(file: Path, root: Path, settings: ReaderSettings) -> _Member | RawRecord:
    """A media-folder file as a sample member, its bytes read unless it is large media; or the rejected
    record of a file that cannot be one (a refused link, an unknown kind, unreadable, too large)."""
    relative = file.relative_to(root).as_posix()
    record = RawRecord(position=relative, uri=str(file.absolute()))
    problem = _link_problem(file, root.parent)
    if problem is not None:
        return _rejected(record, *problem)
    if file.is_dir():
        return _rejected(
            record,
            RejectCode.LINKED_FOLDER,
            f"{relative} is a symbolic link to a folder; links to folders inside a media folder are not "
            "followed: move the files in instead",
        )
    extension = file.suffix[1:].lower()
    if extension not in MEDIA_EXTENSIONS and extension not in ("txt", META_EXTENSION):
        return _rejected(record, RejectCode.UNKNOWN_FORMAT, f"unknown extension {file.suffix!r}")
    member = _Member(name=relative, extension=extension)
    try:
        status = file.stat()
        if not stat.S_ISREG(status.st_mode):
            # Reading a FIFO or a device could block or never end.
            return _rejected(record, RejectCode.UNREADABLE_FILE, f"{relative} is not a regular file")
        if extension in MEDIA_EXTENSIONS:
            # Large media stays a file, named by the record's uri and probed from disk.
            if status.st_size <= settings.max_inline_bytes:
                member.data = file.read_bytes()
        elif status.st_size > settings.max_item_bytes:
            return _rejected(
                record,
                RejectCode.ITEM_TOO_LARGE,
                f"{relative} has {status.st_size} bytes, more than raw.max_item_bytes "
                f"({settings.max_item_bytes})",
            )
        else:
            member.data = file.read_bytes()
    except OSError as error:
        return _rejected(record, RejectCode.UNREADABLE_FILE, describe_error(error))
    return member


_READERS: Final[dict[str, Callable[[Path, ReaderSettings], Iterator[RawRecord]]]] = {
    "jsonl": _read_plain_json_lines,
    "jsonl.gz": _read_gzip_json_lines,
    "parquet": _read_parquet,
    "tar": _read_webdataset,
    "folder": _read_media_folder,
}
