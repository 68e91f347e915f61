"""Landing shards: naming, discovery, change fingerprints, and `read_shard`, which streams any shard.

A landing shard is a JSON Lines file (plain or compressed by gzip, bzip2, xz or zstandard), a Parquet
file, a WebDataset tar (plain or compressed) or a folder
of media files, whole or, when it is larger than the shard bound, one bounded part of it (`shard_parts`).
Every reader streams and yields one `RawRecord` per item; an item it cannot parse
becomes a record with a reject code, so that nothing in a shard is lost silently. The readers live in
`jsonl`, `parquet_rows`, `webdataset` and `media_folder`; this module picks one by the shard's kind.
"""

from __future__ import annotations

import functools
import hashlib
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from curation_dagster.errors import ShardNameError
from curation_dagster.io.compressed_stream import BZIP2, GZIP, XZ, ZSTD, Codec
from curation_dagster.io.jsonl import read_compressed_json_lines, read_plain_json_lines
from curation_dagster.io.landing_files import folder_files, is_dangling_link, is_in_progress, link_problem
from curation_dagster.io.media_folder import read_media_folder
from curation_dagster.io.parquet_rows import read_parquet
from curation_dagster.io.reader_base import ReaderSettings, whole_shard_record
from curation_dagster.io.records import RawRecord
from curation_dagster.io.shard_parts import ShardPart, part_key, shard_parts
from curation_dagster.io.validate import RejectCode, describe_error
from curation_dagster.io.webdataset import read_webdataset
from curation_dagster.settings import DEFAULT_MAX_SHARD_BYTES

#: Landing file names by the kind of shard they are (`jsonl.zst`: JSON Lines compressed by zstandard).
#: Compressed `.json` files are JSON Lines too, as C4, Dolma and RedPajama name theirs (a plain `.json` is
#: more often one document, such as a dataset's description, and is not a shard). A tar's compression is
#: read from its first bytes, whatever its name says.
KIND_SUFFIXES: Final = {
    "jsonl": (".jsonl",),
    "jsonl.gz": (".jsonl.gz", ".json.gz"),
    "jsonl.bz2": (".jsonl.bz2", ".json.bz2"),
    "jsonl.xz": (".jsonl.xz", ".json.xz"),
    "jsonl.zst": (".jsonl.zst", ".json.zst"),
    "parquet": (".parquet",),
    "tar": (".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tar.xz", ".tar.zst"),
}
SUPPORTED_SUFFIXES: Final = tuple(suffix for suffixes in KIND_SUFFIXES.values() for suffix in suffixes)

MAX_KEY_LENGTH: Final = 120

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


def _shard_kind(path: Path) -> str | None:
    """A kind of `KIND_SUFFIXES`, `folder`, or None for anything that is not a shard.

    A dangling link counts by its name, so that it is discovered and its raw run rejects it visibly.
    """
    if path.is_dir():
        return "folder"
    if not (path.is_file() or is_dangling_link(path)):
        return None
    lower = path.name.lower()
    found = [
        (len(suffix), kind)
        for kind, suffixes in KIND_SUFFIXES.items()
        for suffix in suffixes
        if lower.endswith(suffix)
    ]
    return max(found)[1] if found else None


def discover_shards(landing: Path, entries: list[tuple[Path, str | None]] | None = None) -> dict[str, Path]:
    """The shards directly inside `landing`, keyed by `shard_key` and sorted by key: each file or folder
    whole, whatever its size (`discover_partitions` splits large ones into the partitions that run).

    Hidden names, names starting with `_` and files still being written (`.tmp`, `.part`) are skipped, as
    are files of unsupported kinds (`unsupported_files` names them). A missing landing folder has no shards.
    `entries`: the folder's listing (`_landing_entries`), when the caller has it already.
    """
    return {key: path for key, (path, _) in _shards_and_kinds(landing, entries).items()}


def _shards_and_kinds(
    landing: Path, entries: list[tuple[Path, str | None]] | None
) -> dict[str, tuple[Path, str]]:
    """`discover_shards` with each shard's kind, as the listing found it."""
    found: dict[str, tuple[Path, str]] = {}
    for path, kind in _landing_entries(landing) if entries is None else entries:
        if kind is None:
            continue
        name = path.name
        key = shard_key(name)
        if key in found:
            raise ShardNameError(
                f"landing names {found[key][0].name!r} and {name!r} map to the same shard key {key!r}: "
                "rename one of them"
            )
        found[key] = (path, kind)
    return dict(sorted(found.items()))


def unsupported_files(landing: Path) -> list[str]:
    """The names of the landing zone's files that are of no supported kind (`KIND_SUFFIXES`), which no
    stage reads: said by the landing sensor and `curation run`, so that no file is left out unseen."""
    return sorted(path.name for path, kind in _landing_entries(landing) if kind is None)


def _landing_entries(landing: Path) -> Iterator[tuple[Path, str | None]]:
    """Each file or folder directly inside `landing` and its kind (`_shard_kind`), but hidden names,
    names starting with `_` and files still being written."""
    if not landing.is_dir():
        return
    for path in landing.iterdir():
        if not (path.name.startswith((".", "_")) or is_in_progress(path.name)):
            kind = _shard_kind(path)
            if kind is not None or path.is_file() or is_dangling_link(path):
                yield path, kind


def describe_unsupported(names: list[str]) -> str:
    """One line naming the landing files no stage reads, and what would be read."""
    shown = ", ".join(names[:10]) + (f" and {len(names) - 10} more" if len(names) > 10 else "")
    supported = ", ".join(f"*{suffix}" for suffix in SUPPORTED_SUFFIXES)
    return (
        f"{len(names)} landing file{'s' if len(names) != 1 else ''} of no supported kind, not read: {shown} "
        f"(shards are {supported} and folders of media files)"
    )


@dataclass(frozen=True)
class LandingShard:
    """What one `shards` partition reads: a landing file or folder, whole or one bounded part of it."""

    path: Path
    part: ShardPart | None = None


def discover_partitions(
    landing: Path,
    max_shard_bytes: int = DEFAULT_MAX_SHARD_BYTES,
    entries: list[tuple[Path, str | None]] | None = None,
) -> dict[str, LandingShard]:
    """The `shards` partitions of the landing zone, keyed by partition key and sorted: a shard of
    `discover_shards` as it is, or, when it is larger than `max_shard_bytes`, one partition per bounded
    part, keyed `<shard key>.part-00000` on (see `shard_parts`)."""
    found: dict[str, LandingShard] = {}
    for key, (path, kind) in _shards_and_kinds(landing, entries).items():  # the kind the listing found
        parts: list[ShardPart | None] = [*shard_parts(path, kind, max_shard_bytes)]
        for part in parts or [None]:
            partition = key if part is None else part_key(key, part.index)
            if partition in found:
                raise ShardNameError(
                    f"landing names {found[partition].path.name!r} and {path.name!r} map to the same "
                    f"partition key {partition!r}: rename one of them"
                )
            found[partition] = LandingShard(path, part)
    return dict(sorted(found.items()))


def scan_landing(
    landing: Path, max_shard_bytes: int = DEFAULT_MAX_SHARD_BYTES
) -> tuple[dict[str, LandingShard], list[str]]:
    """`discover_partitions` and `unsupported_files` of one listing of the landing folder (what the
    landing sensor asks on every tick)."""
    entries = list(_landing_entries(landing))
    unsupported = sorted(path.name for path, kind in entries if kind is None)
    return discover_partitions(landing, max_shard_bytes, entries), unsupported


def shard_fingerprint(path: Path) -> str:
    """A digest of the names, sizes and modification times of a shard's files, cheap to recompute.

    A sensor compares it with the last one it saw to notice a shard that changed in place. A link that the
    raw stage refuses is fingerprinted as itself, never walked.
    """
    digest = hashlib.blake2b(digest_size=16)
    walk = path.is_dir() and link_problem(path, path.parent) is None
    files, unlisted = folder_files(path) if walk else ([path], [])
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

DEFAULT_READER_SETTINGS: Final = ReaderSettings()

#: The codec each kind of compressed JSON Lines shard is read with.
JSONL_CODECS: Final = {"jsonl.gz": GZIP, "jsonl.bz2": BZIP2, "jsonl.xz": XZ, "jsonl.zst": ZSTD}

_READERS: Final[dict[str, Callable[[Path, ReaderSettings, ShardPart | None], Iterator[RawRecord]]]] = {
    "jsonl": read_plain_json_lines,
    **{kind: functools.partial(read_compressed_json_lines, codec) for kind, codec in JSONL_CODECS.items()},
    "parquet": read_parquet,
    "tar": read_webdataset,
    "folder": read_media_folder,
}


def jsonl_codec(path: Path) -> Codec | None:
    """The codec a landing file is read with when it is a compressed JSON Lines shard (`news.json.gz`
    too), else None."""
    return JSONL_CODECS.get(_shard_kind(path) or "")


def read_shard(
    path: Path,
    shard: str,
    settings: ReaderSettings = DEFAULT_READER_SETTINGS,
    part: ShardPart | None = None,
) -> Iterator[RawRecord]:
    """Stream the records of one landing shard, whatever its kind: the whole file or folder, or only the
    items that start in `part` of it.

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
    problem = link_problem(path, path.parent)
    if problem is not None:
        yield whole_shard_record(path, *problem)
        return
    items = 0
    try:
        for record in _READERS[kind](path, settings, part):
            yield record
            items += 1
    except OSError as error:  # opening or reading the shard itself: a missing permission, a vanished file
        yield whole_shard_record(
            path, RejectCode.UNREADABLE_SHARD, f"after {items} items: {describe_error(error)}"
        )
