"""The release: a version's final training set (the synthesized stage's kept rows of every shard) as files
that training code loads directly, with a manifest that says what is in them and how they were made.

```
<CURATION_HOME>/<version>/release/
  manifest.json                          counts, checksums, the spec, code versions, source shards
  data/train-00000-of-0000N.parquet      every item: id, modality, text, media (binary), uri, scores, provenance
  webdataset/<modality>-00000.tar        image, audio and video items: <id>.<ext>, <id>.json, <id>.txt
```

The Parquet files load with `datasets.load_dataset("parquet", data_files="release/data/*.parquet")`:
plain Arrow types (string, binary, list, no dictionary or large types) and one schema in every file.
Rows are ordered by id, so the same lake gives byte-identical files; tar members carry no time, owner
or mode of their own. The release is written to a temporary folder and renamed into place.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import math
import tarfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from importlib import metadata
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from curation_dagster.dedup.indexes import SYNTH_INDEX
from curation_dagster.errors import ReleaseError, StageInputMissing
from curation_dagster.io.claims import ClaimJournal
from curation_dagster.io.lake import Lake
from curation_dagster.media import media_bytes
from curation_dagster.spec import ENGINE_VERSIONS, VersionSpec
from curation_dagster.stages import STAGES

RELEASE_DIR = "release"
MANIFEST = "manifest.json"
RELEASE_FORMAT = "curation_dagster.release/1"
#: Modalities whose items also go into WebDataset tars, and the extension used when a row has no format.
TAR_MODALITIES = {"image": "png", "audio": "wav", "video": "mp4"}
CONTRACT_COLUMNS = ("id", "modality", "text", "media", "uri", "shard", "meta")


@dataclass(frozen=True)
class ReleaseSettings:
    """How the release is cut into files."""

    rows_per_parquet_file: int = 100_000
    """Rows per Parquet file; media is inline, so lower it for large images or video."""
    row_group_rows: int = 1_000
    """Rows per Parquet row group (the unit a reader loads at once)."""
    items_per_tar: int = 1_000
    """Items per WebDataset tar shard."""


@dataclass(frozen=True)
class Release:
    """A written release: its folder and its manifest."""

    path: str
    manifest: dict[str, Any]

    @property
    def items(self) -> int:
        return int(self.manifest["items"])


def release_dir(lake: Lake, version: str) -> str:
    return lake.stage_dir(version, RELEASE_DIR)


def engine_version() -> str:
    """The installed curation_dagster package version."""
    try:
        return metadata.version("curation_dagster")
    except metadata.PackageNotFoundError:
        return "not installed"


def release_schema(schemas: list[pa.Schema]) -> pa.Schema:
    """One schema for every file: the union of the shards' columns, contract columns first, plain types."""
    unified = pa.unify_schemas(schemas, promote_options="permissive")
    order = [name for name in CONTRACT_COLUMNS if name in unified.names]
    order += [name for name in unified.names if name not in CONTRACT_COLUMNS]
    return pa.schema([pa.field(name, _plain_type(unified.field(name).type)) for name in order])


def _plain_type(kind: pa.DataType) -> pa.DataType:
    """The type a reader gets without surprises: no large, view or dictionary types; lists of `item`."""
    if pa.types.is_dictionary(kind):
        return _plain_type(kind.value_type)
    if pa.types.is_large_string(kind) or pa.types.is_string_view(kind):
        return pa.string()
    if pa.types.is_large_binary(kind) or pa.types.is_binary_view(kind):
        return pa.binary()
    if pa.types.is_list(kind) or pa.types.is_large_list(kind):
        return pa.list_(_plain_type(kind.value_type))
    return kind


def build_release(spec: VersionSpec, lake: Lake, settings: ReleaseSettings | None = None) -> Release:
    """Write `<version>/release/` from the synthesized stage of every shard, replacing any earlier one.

    On a local lake it holds the synthesized stage's lock, so no shard's output changes while it reads.
    """
    with lake.lock(spec.name, SYNTH_INDEX):
        ClaimJournal(lake, spec.name, "synthesized").require_none_pending()
        return _build_release(spec, lake, settings or ReleaseSettings())


def _build_release(spec: VersionSpec, lake: Lake, settings: ReleaseSettings) -> Release:
    version = spec.name
    shards = lake.list_shards(version, "synthesized")
    if not shards:
        raise StageInputMissing(
            f"{version}/release needs {version}/synthesized first: "
            f"{lake.url(lake.stage_dir(version, 'synthesized'))} has no shard"
        )
    files = [lake.url(lake.path(version, "synthesized", shard)) for shard in shards]
    schema = release_schema([lake.schema(lake.path(version, "synthesized", shard)) for shard in shards])
    connection = lake.connect()
    source = "read_parquet(?, union_by_name = true)"
    counts = connection.sql(
        f"SELECT shard, modality, count(*) FROM {source} GROUP BY ALL ORDER BY ALL", params=[files]
    ).fetchall()
    total = sum(int(count) for _, _, count in counts)
    ((synthetic,),) = connection.sql(
        f"SELECT count(*) FROM {source} WHERE synthetic", params=[files]
    ).fetchall()

    final = release_dir(lake, version)
    parent = final.rsplit("/", 1)[0]
    _remove_leftovers(lake, parent)
    temporary = f"{parent}/.{RELEASE_DIR}.{uuid.uuid4().hex}.tmp"
    lake.fs.makedirs(temporary, exist_ok=True)
    try:
        written: list[dict[str, Any]] = []
        ordered = connection.sql(f"SELECT * FROM {source} ORDER BY id", params=[files])
        written += _write_parquet(
            lake, temporary, ordered.to_arrow_reader(settings.row_group_rows), schema, total, settings
        )
        for modality, default_extension in TAR_MODALITIES.items():
            rows = connection.sql(
                f"SELECT * FROM {source} WHERE modality = ? ORDER BY id",
                params=[files, modality],
            )
            written += _write_tars(
                lake, temporary, modality, default_extension, rows.to_arrow_reader(64), settings
            )
        manifest = _manifest(spec, shards, counts, total, int(synthetic), schema, written)
        with lake.fs.open(f"{temporary}/{MANIFEST}", "wb") as handle:
            handle.write(_manifest_bytes(manifest))
        lake.replace_folder(temporary, final)
    except BaseException:
        if lake.fs.exists(temporary):
            lake.fs.rm(temporary, recursive=True)
        raise
    return Release(path=lake.url(final), manifest=manifest)


def _write_parquet(
    lake: Lake,
    folder: str,
    reader: pa.RecordBatchReader,
    schema: pa.Schema,
    total: int,
    settings: ReleaseSettings,
) -> list[dict[str, Any]]:
    """Fixed-size files and row groups, so the bytes depend on the rows only, not on how they arrived."""
    file_count = max(1, math.ceil(total / settings.rows_per_parquet_file))
    stream = _RowStream(reader, schema)
    written = []
    for index in range(file_count):
        relative = f"data/train-{index:05d}-of-{file_count:05d}.parquet"
        path = f"{folder}/{relative}"
        lake.fs.makedirs(path.rsplit("/", 1)[0], exist_ok=True)
        remaining = min(settings.rows_per_parquet_file, total - index * settings.rows_per_parquet_file)
        modalities: dict[str, int] = {}
        with (
            lake.fs.open(path, "wb") as handle,
            pq.ParquetWriter(handle, schema, compression="zstd") as writer,
        ):
            while remaining > 0:
                group = stream.take(min(settings.row_group_rows, remaining))
                if group.num_rows == 0:
                    raise ReleaseError(
                        "the synthesized stage changed while the release was written: run it again"
                    )
                writer.write_table(group, row_group_size=settings.row_group_rows)
                for modality in group.column("modality").to_pylist():
                    modalities[modality] = modalities.get(modality, 0) + 1
                remaining -= group.num_rows
            if total == 0:
                writer.write_table(schema.empty_table())
        written.append(_file_entry(lake, folder, relative, "parquet", modalities))
    return written


class _RowStream:
    """Rows from a reader, handed out in tables of exactly the size asked for (fewer only at the end)."""

    def __init__(self, reader: pa.RecordBatchReader, schema: pa.Schema) -> None:
        self._batches = iter(reader)
        self._schema = schema
        self._pending: list[pa.Table] = []
        self._rows = 0

    def take(self, count: int) -> pa.Table:
        while self._rows < count:
            batch = next(self._batches, None)
            if batch is None:
                break
            table = pa.Table.from_batches([batch]).select(self._schema.names).cast(self._schema)
            self._pending.append(table)
            self._rows += table.num_rows
        joined = pa.concat_tables([self._schema.empty_table(), *self._pending]).combine_chunks()
        taken, rest = joined.slice(0, count), joined.slice(count)
        self._pending, self._rows = [rest], rest.num_rows
        return taken


def _write_tars(
    lake: Lake,
    folder: str,
    modality: str,
    default_extension: str,
    reader: pa.RecordBatchReader,
    settings: ReleaseSettings,
) -> list[dict[str, Any]]:
    written: list[dict[str, Any]] = []
    chunk: list[dict[str, Any]] = []
    for row in _rows(reader):
        chunk.append(row)
        if len(chunk) == settings.items_per_tar:
            written.append(_write_tar(lake, folder, modality, len(written), default_extension, chunk))
            chunk = []
    if chunk:
        written.append(_write_tar(lake, folder, modality, len(written), default_extension, chunk))
    return written


def _rows(reader: pa.RecordBatchReader) -> Iterator[dict[str, Any]]:
    for batch in reader:
        yield from batch.to_pylist()


def _write_tar(
    lake: Lake, folder: str, modality: str, index: int, default_extension: str, rows: list[dict[str, Any]]
) -> dict[str, Any]:
    relative = f"webdataset/{modality}-{index:05d}.tar"
    path = f"{folder}/{relative}"
    lake.fs.makedirs(path.rsplit("/", 1)[0], exist_ok=True)
    with (
        lake.fs.open(path, "wb") as handle,
        tarfile.open(fileobj=handle, mode="w", format=tarfile.USTAR_FORMAT) as archive,
    ):
        for row in rows:
            key = row["id"]
            try:
                data = media_bytes(row)
            except (OSError, ValueError) as error:
                raise ReleaseError(f"item {key} ({row['uri']}): its media cannot be read: {error}") from error
            members = {
                f"{key}.{row.get('media_format') or default_extension}": data,
                f"{key}.json": _json_bytes(_sidecar(row)),
            }
            if row.get("text"):
                members[f"{key}.txt"] = str(row["text"]).encode("utf-8")
            for name in sorted(members):
                _add_member(archive, name, members[name])
    return _file_entry(lake, folder, relative, "webdataset", {modality: len(rows)})


def _add_member(archive: tarfile.TarFile, name: str, data: bytes) -> None:
    """A member with fixed owner, mode and time, so the tar's bytes depend on its contents only."""
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mtime = 0
    info.mode = 0o644
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    archive.addfile(info, io.BytesIO(data))


def _sidecar(row: dict[str, Any]) -> dict[str, Any]:
    """The `.json` member: the caption and every non-null column but the media bytes."""
    sidecar: dict[str, Any] = {"caption": row.get("text")}
    for name, value in row.items():
        if name in ("media", "text") or value is None or (isinstance(value, float) and math.isnan(value)):
            continue
        if name == "meta":
            with contextlib.suppress(json.JSONDecodeError):
                value = json.loads(value)
        sidecar[name] = value
    return sidecar


def _json_bytes(value: Any) -> bytes:
    return json.dumps(value, sort_keys=True, ensure_ascii=False, default=str).encode("utf-8")


def _file_entry(
    lake: Lake, folder: str, relative: str, kind: str, modalities: dict[str, int]
) -> dict[str, Any]:
    path = f"{folder}/{relative}"
    return {
        "path": relative,
        "format": kind,
        "items": sum(modalities.values()),
        "items_by_modality": dict(sorted(modalities.items())),
        "bytes": int(lake.fs.size(path)),
        "sha256": _sha256(lake, path),
    }


def _sha256(lake: Lake, path: str) -> str:
    digest = hashlib.sha256()
    with lake.fs.open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _manifest(
    spec: VersionSpec,
    shards: list[str],
    counts: list[tuple[str, str, int]],
    total: int,
    synthetic: int,
    schema: pa.Schema,
    written: list[dict[str, Any]],
) -> dict[str, Any]:
    by_modality: dict[str, int] = {}
    by_shard: dict[str, dict[str, int]] = {}
    for shard, modality, count in counts:
        by_modality[modality] = by_modality.get(modality, 0) + int(count)
        by_shard.setdefault(shard, {})[modality] = int(count)
    return {
        "format": RELEASE_FORMAT,
        "version": spec.name,
        "items": total,
        "items_by_modality": dict(sorted(by_modality.items())),
        "synthetic_items": synthetic,
        "items_by_source_shard": by_shard,
        "source_shards": shards,
        "files": written,
        "columns": [{"name": field.name, "type": str(field.type)} for field in schema],
        "load": {
            "parquet": 'datasets.load_dataset("parquet", data_files="data/*.parquet")',
            "webdataset": "webdataset/<modality>-NNNNN.tar: <id>.<ext>, <id>.json, <id>.txt",
        },
        "spec": spec.model_dump(mode="json"),
        "code_versions": {stage: spec.code_version(stage) for stage in STAGES},
        "engine": {"package": engine_version(), "stages": dict(ENGINE_VERSIONS)},
    }


def _manifest_bytes(manifest: dict[str, Any]) -> bytes:
    return (json.dumps(manifest, indent=2, sort_keys=True, ensure_ascii=False) + "\n").encode("utf-8")


def _remove_leftovers(lake: Lake, parent: str) -> None:
    """Temporary folders of releases that were killed half way."""
    for pattern in (f"{parent}/.{RELEASE_DIR}.*.tmp", f"{parent}/.{RELEASE_DIR}.*.old"):
        for leftover in lake.fs.glob(pattern):
            lake.fs.rm(leftover, recursive=True)


def read_manifest(lake: Lake, version: str) -> dict[str, Any]:
    """The manifest of the version's release; `FileNotFoundError` when there is none."""
    with lake.fs.open(f"{release_dir(lake, version)}/{MANIFEST}", "rb") as handle:
        return dict(json.loads(handle.read()))


def verify_release(lake: Lake, version: str) -> list[str]:
    """Problems with the release on disk: files missing, changed (sha256) or not in the manifest."""
    folder = release_dir(lake, version)
    manifest = read_manifest(lake, version)
    problems = []
    listed = set()
    for entry in manifest["files"]:
        path = f"{folder}/{entry['path']}"
        listed.add(entry["path"])
        if not lake.fs.exists(path):
            problems.append(f"{entry['path']}: missing")
        elif _sha256(lake, path) != entry["sha256"]:
            problems.append(f"{entry['path']}: sha256 differs from the manifest")
    for found in lake.fs.find(folder):
        relative = str(found)[len(folder) + 1 :]
        if relative != MANIFEST and relative not in listed:
            problems.append(f"{relative}: not in the manifest")
    return sorted(problems)
