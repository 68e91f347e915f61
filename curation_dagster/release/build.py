"""Building a release: the synthesized stage's kept rows of every shard, read in id order with DuckDB and
written as one Parquet config per modality, WebDataset tars, the dataset card and the manifest, into a
temporary folder renamed into place."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from curation_dagster.dedup.indexes import SYNTH_INDEX
from curation_dagster.errors import ReleaseError, StageInputMissing
from curation_dagster.io.claims import ClaimJournal
from curation_dagster.io.lake import Lake
from curation_dagster.release.card import CARD, card_text
from curation_dagster.release.features import (
    DEFAULT_EXTENSIONS,
    ReleaseConfig,
    media_file_size,
    release_config,
    release_schema,
    with_file_media,
    with_media_column,
)
from curation_dagster.release.manifest import (
    MANIFEST,
    RELEASE_DIR,
    file_entry,
    manifest_bytes,
    provenance,
    release_dir,
    release_manifest,
)
from curation_dagster.release.webdataset import write_tars
from curation_dagster.schema import MODALITIES
from curation_dagster.spec import ReleaseSettings, VersionSpec


@dataclass(frozen=True)
class Release:
    """A written release: its folder and its manifest."""

    path: str
    manifest: dict[str, Any]

    @property
    def items(self) -> int:
        return int(self.manifest["items"])


def build_release(spec: VersionSpec, lake: Lake, settings: ReleaseSettings | None = None) -> Release:
    """Write `<version>/release/` from the synthesized stage of every shard, replacing any earlier one;
    `settings` default to the spec's `release` section.

    On a local lake it holds the synthesized stage's lock, so no shard's output changes while it reads.
    """
    with lake.lock(spec.name, SYNTH_INDEX):
        ClaimJournal(lake, spec.name, "synthesized").require_none_pending()
        return _build_release(spec, lake, settings or spec.release)


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
    configs = _configs(connection, source, files, schema)

    final = release_dir(lake, version)
    parent = final.rsplit("/", 1)[0]
    _remove_leftovers(lake, parent)
    temporary = f"{parent}/.{RELEASE_DIR}.{uuid.uuid4().hex}.tmp"
    lake.fs.makedirs(temporary, exist_ok=True)
    try:
        written: list[dict[str, Any]] = []
        arrow_bytes: dict[str, int] = {}
        for config in configs:
            columns = ", ".join(_quote(name) for name in config.source.names)
            rows = connection.sql(
                f"SELECT {columns} FROM {source} WHERE modality = ? ORDER BY id",
                params=[files, config.modality],
            )
            sizes = _row_bytes(connection, source, files, config)
            parquet, arrow_bytes[config.modality] = _write_parquet(
                lake,
                temporary,
                config,
                rows.to_arrow_reader(settings.row_group_rows),
                settings,
                file_rows(sizes, settings.rows_per_parquet_file, settings.parquet_max_bytes),
            )
            written += parquet
        for modality, extension in DEFAULT_EXTENSIONS.items():
            rows = connection.sql(
                f"SELECT * FROM {source} WHERE modality = ? ORDER BY id", params=[files, modality]
            )
            reader = rows.to_arrow_reader(64)
            written += write_tars(lake, temporary, modality, extension, reader, settings.webdataset_max_bytes)
        manifest = release_manifest(spec, settings, shards, counts, configs, arrow_bytes, written)
        manifest.update(provenance(lake, connection, version, source, files, shards, schema.names))
        with lake.fs.open(f"{temporary}/{CARD}", "wb") as handle:
            handle.write(card_text(spec, settings, manifest).encode("utf-8"))
        manifest["files"].append(file_entry(lake, temporary, CARD, "card", {}))
        with lake.fs.open(f"{temporary}/{MANIFEST}", "wb") as handle:
            handle.write(manifest_bytes(manifest))
        lake.replace_folder(temporary, final)
    except BaseException:
        if lake.fs.exists(temporary):
            lake.fs.rm(temporary, recursive=True)
        raise
    return Release(path=lake.url(final), manifest=manifest)


def _configs(connection: Any, source: str, files: list[str], schema: pa.Schema) -> list[ReleaseConfig]:
    """One config per modality with items, in schema order, with the columns that hold a value in it."""
    counted = ", ".join(f"count({_quote(name)})" for name in schema.names)
    rows = connection.sql(
        f"SELECT modality, count(*), {counted} FROM {source} GROUP BY modality", params=[files]
    ).fetchall()
    by_modality = {str(row[0]): row[1:] for row in rows}
    configs = []
    for modality in MODALITIES:
        if modality in by_modality:
            items, *filled = by_modality[modality]
            configs.append(
                release_config(modality, int(items), schema, dict(zip(schema.names, filled, strict=True)))
            )
    return configs


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _row_bytes(connection: Any, source: str, files: list[str], config: ReleaseConfig) -> np.ndarray:
    """Per row of a config, in id order, the bytes of its text (UTF-8) and media (inline, or the size of
    the file it stayed as)."""
    parts = [
        f"coalesce({measure}({_quote(name)}), 0)"
        for name, measure in (("text", "strlen"), ("media", "octet_length"))
        if name in config.source.names
    ]
    rows = connection.sql(
        f"SELECT {' + '.join(parts) or '0'} FROM {source} WHERE modality = ? ORDER BY id",
        params=[files, config.modality],
    ).fetchnumpy()
    sizes = np.asarray(next(iter(rows.values())), dtype=np.int64)
    if "media" in config.source.names:
        stayed_files = connection.sql(
            f"SELECT position, id, uri FROM (SELECT row_number() OVER (ORDER BY id) - 1 AS position, id, uri, "
            f"media IS NULL AS is_file FROM {source} WHERE modality = ?) WHERE is_file ORDER BY position",
            params=[files, config.modality],
        ).fetchall()
        for position, key, uri in stayed_files:
            sizes[position] += media_file_size(key, uri)
    return sizes


def file_rows(sizes: np.ndarray, max_rows: int, max_bytes: int) -> list[int]:
    """The rows of each file, in order: a file is closed before a row would take it past `max_bytes` or
    `max_rows` (a row larger than `max_bytes` gets a file of its own); at least one file, maybe empty."""
    counts: list[int] = []
    rows = held = 0
    for size in sizes.tolist():
        if rows and (rows == max_rows or held + size > max_bytes):
            counts.append(rows)
            rows = held = 0
        rows += 1
        held += size
    counts.append(rows)
    return counts


def _write_parquet(
    lake: Lake,
    folder: str,
    config: ReleaseConfig,
    reader: pa.RecordBatchReader,
    settings: ReleaseSettings,
    counts: list[int],
) -> tuple[list[dict[str, Any]], int]:
    """Files of `counts` rows and fixed-size row groups, so the bytes depend on the rows only, not on
    how they arrived; the files' manifest entries, and the rows' size in Arrow (what `datasets` calls a
    split's bytes)."""
    file_count = len(counts)
    stream = _RowStream(reader, config.source)
    written = []
    arrow_bytes = 0
    for index, rows in enumerate(counts):
        relative = f"data/{config.modality}/train-{index:05d}-of-{file_count:05d}.parquet"
        path = f"{folder}/{relative}"
        lake.fs.makedirs(path.rsplit("/", 1)[0], exist_ok=True)
        remaining = rows
        with (
            lake.fs.open(path, "wb") as handle,
            pq.ParquetWriter(handle, config.schema, compression="zstd") as writer,
        ):
            while remaining > 0:
                group = stream.take(min(settings.row_group_rows, remaining))
                if group.num_rows == 0:
                    raise ReleaseError(
                        "the synthesized stage changed while the release was written: run it again"
                    )
                table = with_media_column(with_file_media(group), config)
                writer.write_table(table, row_group_size=settings.row_group_rows)
                arrow_bytes += table.nbytes
                remaining -= group.num_rows
        written.append(file_entry(lake, folder, relative, "parquet", {config.modality: rows}))
    return written, arrow_bytes


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


def _remove_leftovers(lake: Lake, parent: str) -> None:
    """Temporary folders of releases that were killed half way."""
    for pattern in (f"{parent}/.{RELEASE_DIR}.*.tmp", f"{parent}/.{RELEASE_DIR}.*.old"):
        for leftover in lake.fs.glob(pattern):
            lake.fs.rm(leftover, recursive=True)
