"""The Parquet lake: `<root>/<version>/<stage>/<shard>.parquet`, rejected rows under `_rejected/`.

Writes are atomic (a hidden temporary name, then a rename), so a reader never sees half a file and a
killed run leaves no partial output under a real name.
"""

from __future__ import annotations

import contextlib
import errno
import glob as glob_module
import hashlib
import os
import re
import socket
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import fsspec
import pyarrow as pa
import pyarrow.parquet as pq

from curation_dagster.errors import LakeIOError, LakeLockUnavailable, ShardNameError
from curation_dagster.io.locks import ClaimLock, FileClaimLock, PostgresClaimLock
from curation_dagster.io.read_cache import cached_open

_SAFE_SEGMENT = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._-]{0,200}$")
REJECTED_DIR = "_rejected"
#: A temporary file this old has no live writer, whoever wrote it (no write of the lake takes a day).
ORPHAN_AGE_S = 24 * 3600
#: A write into a folder of a local lake looks for other writers' leftovers there at most this often.
ORPHAN_SWEEP_S = 3600
#: The hidden folder of a local lake whose markers record when each folder was last looked through.
SWEEPS_DIR = ".orphan_sweeps"
_HOST = re.sub(r"[^A-Za-z0-9-]", "-", socket.gethostname())[:63] or "host"
#: This process in temporary file names: `<host>~<pid>`.
_WRITER = f"{_HOST}~{os.getpid()}"
_TEMPORARY_WRITER = re.compile(r"\.([A-Za-z0-9-]+)~(\d+)\.[0-9a-f]{32}\.tmp$")


def _writer_of(name: str) -> tuple[str, int] | None:
    """(host, pid) of the process that wrote a temporary file, from its name; None for older names."""
    match = _TEMPORARY_WRITER.search(name)
    return (match.group(1), int(match.group(2))) if match else None


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # another user's live process
    return True


class _PinnedFile:
    """A remote file opened for reading, whose reads say `FileNotFoundError` when the version opened is gone:
    s3fs pins the object's ETag and raises its `FileExpired` (an OSError with errno EBUSY) instead."""

    def __init__(self, handle: Any) -> None:
        self._handle = handle

    def __getattr__(self, name: str) -> Any:
        return getattr(self._handle, name)

    def read(self, size: int = -1) -> bytes:
        with self._expired_as_missing():
            return bytes(self._handle.read(size))

    def readinto(self, buffer: Any) -> int:
        with self._expired_as_missing():
            return int(self._handle.readinto(buffer))

    @contextlib.contextmanager
    def _expired_as_missing(self) -> Iterator[None]:
        try:
            yield
        except OSError as error:
            if error.errno != errno.EBUSY or isinstance(error, FileNotFoundError):
                raise
            raise FileNotFoundError(f"{self._handle.path} was replaced while it was read: {error}") from error


def check_segment(name: str, what: str = "shard key") -> str:
    """`name` if it is safe as one path segment of the lake, else `ShardNameError`."""
    if not _SAFE_SEGMENT.match(name) or name in {".", ".."} or ".." in name:
        raise ShardNameError(f"{what} {name!r} is not a safe lake path segment ([A-Za-z0-9._-], no '..')")
    return name


def _listing_first(fs: Any) -> Any:
    """`fs.glob` that first lists the folder of the pattern (once), so the listings cache of `fs` answers
    the glob and every later question about the folder's files (s3fs serves `info` from a cached listing
    of the parent folder)."""
    listed: set[str] = set()
    glob = fs.glob

    def listing_glob(path: str, **kwargs: Any) -> Any:
        folder = fs._parent(fs._strip_protocol(path))
        if folder not in listed and not glob_module.has_magic(folder):
            listed.add(folder)
            with contextlib.suppress(FileNotFoundError):
                fs.ls(folder, detail=True)
        return glob(path, **kwargs)

    return listing_glob


class Lake:
    """A lake rooted at a local path or an fsspec URL (`s3://bucket/prefix`, `memory://x`)."""

    def __init__(self, root: str | Path, claim_lock_dsn: str = "") -> None:
        """`claim_lock_dsn`: a PostgreSQL database for the claim locks (any lake, required on object
        storage); without one a local lake locks with files."""
        self.root = str(root).rstrip("/")
        # Other processes write the lake all the time: a cached folder listing would hide their files.
        self.fs, self._root_path = fsspec.core.url_to_fs(self.root, use_listings_cache=False)
        protocols = self.fs.protocol if isinstance(self.fs.protocol, tuple) else (self.fs.protocol,)
        self.is_local = "file" in protocols
        # On s3fs uploads complete atomically (`_upload`; other stores write a temporary and rename it) and
        # a whole small file is one GET (`read_bytes`).
        self._s3 = "s3" in protocols
        self.claim_lock: ClaimLock | None = None
        if claim_lock_dsn:
            self.claim_lock = PostgresClaimLock(claim_lock_dsn, self.root)
        elif self.is_local:
            self.claim_lock = FileClaimLock(self._root_path)

    def stage_dir(self, version: str, stage: str, *, rejected: bool = False) -> str:
        """The folder holding a stage's kept (or rejected) shard files."""
        parts = [self._root_path, check_segment(version, "version"), check_segment(stage, "stage")]
        if rejected:
            parts.append(REJECTED_DIR)
        return "/".join(parts)

    def path(self, version: str, stage: str, shard: str, *, rejected: bool = False) -> str:
        """Where one shard of one stage lives."""
        return f"{self.stage_dir(version, stage, rejected=rejected)}/{check_segment(shard)}.parquet"

    def url(self, path: str) -> str:
        """A path of this lake as a string a person or DuckDB can use."""
        return path if self.is_local else self.fs.unstrip_protocol(path)

    def exists(self, path: str) -> bool:
        return bool(self.fs.exists(path))

    def read_bytes(self, path: str) -> bytes | None:
        """The whole file, or None when there is none: one GET on object storage, where `exists` then
        `open` asked two HEAD requests first (manifests and ledgers are read this way, many times a run)."""
        # s3fs asks the size (a HEAD) before a GET unless told to read in one request.
        options = {"max_concurrency": 1} if self._s3 else {}
        try:
            with self._reading(path):
                return bytes(self.fs.cat_file(path, **options))
        except FileNotFoundError:
            return None

    def num_rows(self, path: str) -> int:
        """Row count from the Parquet footer, without reading the data."""
        with self._reading(path), self.fs.open(path, "rb") as handle:
            return int(pq.ParquetFile(handle).metadata.num_rows)

    def read_table(self, path: str, columns: list[str] | None = None) -> pa.Table:
        with self._reading(path), self.fs.open(path, "rb") as handle:
            return pq.read_table(handle, columns=columns)

    def iter_batches(
        self, path: str, batch_size: int = 1024, columns: list[str] | None = None
    ) -> Iterator[pa.RecordBatch]:
        """A shard's rows in record batches, so memory stays bounded by the batch size."""
        with self._reading(path), self.fs.open(path, "rb") as handle:
            parquet = pq.ParquetFile(handle)
            yield from parquet.iter_batches(batch_size=batch_size, columns=columns)

    def open_random_access(self, path: str) -> pa.NativeFile:
        """A seekable handle for reading parts of a file: memory-mapped on a local lake (a read touches only
        its pages); on a remote one each read is one ranged request, pinned to the version of the file that
        was opened: once the file is replaced, reading on raises `FileNotFoundError`, as for one removed."""
        if self.is_local:
            return pa.memory_map(path)
        return pa.PythonFile(_PinnedFile(self.fs.open(path, "rb", cache_type="none")), mode="r")

    def schema(self, path: str) -> pa.Schema:
        with self._reading(path), self.fs.open(path, "rb") as handle:
            return pq.ParquetFile(handle).schema_arrow

    def list_shards(self, version: str, stage: str, *, rejected: bool = False) -> list[str]:
        """Shard keys that have a committed file for this stage, sorted."""
        folder = self.stage_dir(version, stage, rejected=rejected)
        # One listing, names compared as strings: a folder of an index holds a file per shard of the
        # version, and every shard's run lists some of them (fsspec's local listing asks each entry's type
        # and size, and a missing folder is one request more on object storage when asked first).
        try:
            if self.is_local:
                with os.scandir(folder) as entries:
                    names = [entry.name for entry in entries]
            else:
                names = [str(entry).rsplit("/", 1)[-1] for entry in self.fs.ls(folder, detail=False)]
        except (FileNotFoundError, NotADirectoryError):
            return []
        return sorted(name[: -len(".parquet")] for name in names if name.endswith(".parquet"))

    def remove(self, path: str) -> None:
        """Remove the file at `path` if there is one: another writer removing it at the same time (a key
        store's merged tier) is not an error."""
        if self.fs.exists(path):
            with contextlib.suppress(FileNotFoundError):
                self.fs.rm(path)

    def replace_folder(self, source: str, destination: str) -> None:
        """Put the finished folder `source` in place of `destination`, whose old content goes: a rename of
        each on a local lake; on object storage, which has no folders to rename, a copy of each object
        then its removal. The old content is first moved aside to `.<name>.<random>.old` beside it."""
        if self.fs.exists(destination):
            parent, name = destination.rsplit("/", 1)
            retired = f"{parent}/.{name}.{uuid.uuid4().hex}.old"
            self._move_folder(destination, retired)
            self._move_folder(source, destination)
            self.fs.rm(retired, recursive=True)
        else:
            self._move_folder(source, destination)

    def _move_folder(self, source: str, destination: str) -> None:
        if self.is_local:
            self.fs.mv(source, destination, recursive=True)
            return
        # fsspec's recursive `mv` also copies the folder markers it finds, which object stores lack.
        files = [str(path) for path in self.fs.find(source)]
        self.fs.copy(files, [destination + path[len(source) :] for path in files])
        self.fs.rm(files)

    @contextlib.contextmanager
    def _temporary(self, path: str) -> Iterator[Any]:
        """A binary handle on a hidden temporary file that becomes `path` only if the block succeeds.

        The temporary name carries the writer's host and process id, so the next write into the folder
        can tell a killed writer's leftovers (removed) from a live writer's file (left alone). On S3 the
        upload itself is the temporary (`_upload`)."""
        if self._s3:
            with self._upload(path) as handle:
                yield handle
            return
        folder, name = path.rsplit("/", 1)
        self.fs.makedirs(folder, exist_ok=True)
        self._remove_orphan_temporaries(folder, name)
        temporary = f"{folder}/.{name}.{_WRITER}.{uuid.uuid4().hex}.tmp"
        try:
            with self.fs.open(temporary, "wb") as handle:
                yield handle
            self.fs.mv(temporary, path)
        except BaseException:
            with contextlib.suppress(Exception):
                self.fs.rm(temporary)
            raise

    @contextlib.contextmanager
    def _upload(self, path: str) -> Iterator[Any]:
        """A handle on an S3 upload of `path` that completes only if the block succeeds, and is aborted
        otherwise. An object appears, or replaces the one before it, whole when its upload completes, so
        readers never see it half-written, as with a temporary file's rename; the rename itself (a copy,
        a delete, and the listings around them) is saved: 3 requests a small file instead of 8. A writer
        killed half-way leaves an incomplete upload, which no listing shows (a bucket lifecycle rule,
        AbortIncompleteMultipartUpload, reclaims its parts)."""
        handle = self.fs.open(path, "wb", autocommit=False)
        try:
            yield handle
            handle.close()
            handle.commit()
        except BaseException:
            with contextlib.suppress(Exception):
                handle.discard()
            raise

    @contextlib.contextmanager
    def atomic_file(self, path: str) -> Iterator[Any]:
        """A binary handle whose bytes become `path` only if the block succeeds (`_temporary`: a hidden
        temporary file renamed into place, or on S3 a multipart upload completed or aborted)."""
        with self._temporary(path) as handle:
            yield handle

    @contextlib.contextmanager
    def atomic_writer(self, path: str, schema: pa.Schema) -> Iterator[pq.ParquetWriter]:
        """A Parquet writer whose file becomes `path` only if the block succeeds (as `atomic_file`)."""
        with self._temporary(path) as handle:
            writer = pq.ParquetWriter(handle, schema, compression="zstd")
            try:
                yield writer
            finally:
                writer.close()

    def write_bytes(self, path: str, data: bytes) -> None:
        """Write `data` to `path` through a hidden temporary name and a rename, like the Parquet files."""
        with self._temporary(path) as handle:
            handle.write(data)

    def write_table(self, path: str, table: pa.Table, row_group_size: int | None = None) -> None:
        with self.atomic_writer(path, table.schema) as writer:
            writer.write_table(table, row_group_size=row_group_size)

    def lock(self, version: str, name: str) -> contextlib.AbstractContextManager[None]:
        """The claim lock of one version's index `name`, for a cross-shard look-up, decision and write. It
        is released by the system when its holder dies, so a killed run never keeps it. A lake on object
        storage without a PostgreSQL lock is refused: unlocked, concurrent runs could lose claims."""
        check_segment(version, "version")
        check_segment(name, "lock")
        if self.claim_lock is None:
            raise LakeLockUnavailable(
                f"the lake {self.root} is not on a file system this machine can lock, and cross-shard "
                "stages (deduped, selected, synthesized, release) need a lock every worker shares: set "
                "CURATION_LOCK_DSN (the lake resource's claim_lock_dsn) to a PostgreSQL database, e.g. the "
                "Dagster instance's, or use a lake on a local or shared POSIX file system"
            )
        return self.claim_lock.hold(version, name)

    def is_locked(self, version: str, name: str) -> bool:
        """Whether a live holder has the claim lock `name` of `version` now; False without a claim lock."""
        if self.claim_lock is None:
            return False
        return self.claim_lock.is_held(check_segment(version, "version"), check_segment(name, "lock"))

    def _remove_orphan_temporaries(self, folder: str, name: str) -> None:
        """Remove temporary files that writers which died left behind. On object storage, those of the file
        about to be written (a path has one writer at a time; a prefix listing finds them, where a folder
        listing costs a request per thousand files). On a local lake, every one in the folder that is the
        file's own, whose process on this host is gone, or that is older than `ORPHAN_AGE_S`, looked for
        at most once per `ORPHAN_SWEEP_S` a folder (a marker under the lake's `.orphan_sweeps/` records
        the last look): a folder of an index holds a file per shard, and listing it on every write made
        each shard's writes grow with the history."""
        if not self.is_local:
            for entry in self.fs.glob(f"{folder}/.{name}.*.tmp"):
                with contextlib.suppress(FileNotFoundError):
                    self.fs.rm(entry)
            return
        now = time.time()
        relative = folder.removeprefix(f"{self._root_path}/")  # the same marker in a copy of the lake
        marker = f"{self._root_path}/{SWEEPS_DIR}/{hashlib.sha256(relative.encode()).hexdigest()[:24]}"
        with contextlib.suppress(FileNotFoundError):
            if now - os.stat(marker).st_mtime < ORPHAN_SWEEP_S:
                return
        # One os.scandir of the folder, names compared as strings: fsspec's glob asks the size and type of
        # every file, and pathlib's matches each name against a pattern.
        own = f".{name}."
        with os.scandir(folder) as entries:
            temporaries = [entry for entry in entries if entry.name[:1] == "." and entry.name[-4:] == ".tmp"]
        for entry in temporaries:
            writer = _writer_of(entry.name)
            dead = writer is not None and writer[0] == _HOST and not _process_alive(writer[1])
            with contextlib.suppress(FileNotFoundError):
                if entry.name.startswith(own) or dead or now - entry.stat().st_mtime > ORPHAN_AGE_S:
                    os.unlink(entry.path)
        os.makedirs(os.path.dirname(marker), exist_ok=True)
        with open(marker, "a"):
            pass
        os.utime(marker, (now, now))

    @contextlib.contextmanager
    def _reading(self, path: str) -> Iterator[None]:
        try:
            yield
        except FileNotFoundError:
            raise
        except OSError as error:
            raise LakeIOError(f"reading {self.url(path)} failed: {error}") from error

    def connect(self) -> Any:
        """A fresh in-memory DuckDB connection that can read this lake's files by `url`. On a remote lake
        it reads through a file system of its own that keeps the folder listings it made for the
        connection's life, so each query does not list and stat every file again: open one per read.

        DuckDB globs each file it reads, then asks its size and time and opens it, for every query: a
        folder is listed the first time a path in it is globbed, and every one of those questions about
        its files is answered from that listing (on object storage each was a HEAD request: 270 per file
        for the demo's release, which asks a dozen queries). What the connection reads is kept in a
        bounded cache of blocks for its life (`read_cache.py`): the data card asks 80 queries of the same
        files."""
        import duckdb

        connection = duckdb.connect(":memory:")
        if not self.is_local:
            # On s3fs the snapshot shares the lake's botocore session: a session of its own would load
            # botocore's endpoint and service models again (about 0.2 s a connection).
            shared: dict[str, Any] = {}
            if self._s3:
                self.fs.connect()  # the lake's client and session, made once
                shared["session"] = self.fs.session
            snapshot, _ = fsspec.core.url_to_fs(self.root, skip_instance_cache=True, **shared)
            snapshot.glob = _listing_first(snapshot)
            snapshot.open = cached_open(snapshot)
            connection.register_filesystem(snapshot)
        return connection

    def duckdb(self, version: str) -> Any:
        """An in-memory DuckDB connection with one view per stage (`raw`, `deduped`, ...) of `version`
        and `<stage>_rejected` for rejected rows. It only reads the lake."""
        connection = self.connect()
        from curation_dagster.stages import STAGES

        for stage in STAGES:
            for rejected in (False, True):
                if not self.list_shards(version, stage, rejected=rejected):
                    continue
                pattern = self.url(f"{self.stage_dir(version, stage, rejected=rejected)}/*.parquet")
                view = f"{stage}_rejected" if rejected else stage
                connection.execute(
                    f"CREATE VIEW {view} AS SELECT * FROM read_parquet('{pattern}', union_by_name=true)"
                )
        return connection
