"""The columns of each release config and their `datasets` features: one config per modality, the media as
the `Image`, `Audio` or `Video` feature `datasets` decodes, every other column in a plain Arrow type."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import fsspec
import pyarrow as pa
import pyarrow.compute as pc

from curation_dagster.errors import ReleaseError
from curation_dagster.media import media_bytes

CONTRACT_COLUMNS = ("id", "modality", "text", "media", "uri", "shard", "meta")
#: Columns every config keeps even when they are empty in it; any other column is left out of a config
#: whose rows all lack it (a text config has no `width`, an image config no `text_words`).
KEPT_COLUMNS = ("id", "modality", "text", "uri", "shard", "meta", "synthetic", "parent_ids", "generator")
#: The `datasets` feature of each media modality's column, which is named after the modality.
MEDIA_FEATURES = {"image": "Image", "audio": "Audio", "video": "Video"}
#: The file extension of an item whose row names no `media_format`.
DEFAULT_EXTENSIONS = {"image": "png", "audio": "wav", "video": "mp4"}
#: What `datasets` stores an `Image`, `Audio` or `Video` value as.
MEDIA_TYPE = pa.struct([pa.field("bytes", pa.binary()), pa.field("path", pa.string())])


@dataclass(frozen=True)
class ReleaseConfig:
    """One config of the release: the items of one modality, as read from the lake and as written."""

    modality: str
    items: int
    source: pa.Schema
    """The columns read from the lake, in plain types (the media as binary)."""
    schema: pa.Schema
    """The columns written: the media as a `datasets` media struct, the features in the metadata."""

    @property
    def data_files(self) -> str:
        return f"data/{self.modality}/train-*.parquet"

    @property
    def features(self) -> dict[str, Any]:
        """The config's `datasets` features, as `Features.to_dict()` writes them."""
        return dict(json.loads(self.schema.metadata[b"huggingface"])["info"]["features"])


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


def release_config(modality: str, items: int, schema: pa.Schema, filled: dict[str, int]) -> ReleaseConfig:
    """The config of `modality`: `schema`'s columns in `KEPT_COLUMNS` or with a value in `filled` (non-null
    counts), the media as binary when read and as the modality's `datasets` struct when written."""
    media = modality in MEDIA_FEATURES
    source = pa.schema(
        [
            field
            for field in schema
            if field.name in KEPT_COLUMNS or (field.name == "media" and media) or filled.get(field.name)
        ]
    )
    if media and modality in source.names:
        raise ReleaseError(
            f"the lake has a column named {modality!r}, the name of the release's media column"
        )
    written = pa.schema(
        [pa.field(modality, MEDIA_TYPE) if field.name == "media" else field for field in source]
    )
    features = {field.name: _feature(field.name, field.type, modality) for field in written}
    metadata = {"huggingface": json.dumps({"info": {"features": features}})}
    return ReleaseConfig(modality, items, source, written.with_metadata(metadata))


def _feature(name: str, kind: pa.DataType, modality: str) -> dict[str, Any]:
    """The `datasets` feature of a column, as `Features.to_dict()` writes it."""
    if name == modality and modality in MEDIA_FEATURES:
        return {"_type": MEDIA_FEATURES[modality]}
    if pa.types.is_list(kind):
        return {"feature": _feature("", kind.value_type, modality), "_type": "List"}
    if pa.types.is_struct(kind):
        return {field.name: _feature(field.name, field.type, modality) for field in kind}
    return {"dtype": value_dtype(kind), "_type": "Value"}


def value_dtype(kind: pa.DataType) -> str:
    """The `datasets` `Value` dtype of an Arrow type (`float64` for Arrow's `double`)."""
    names = {pa.float16(): "float16", pa.float32(): "float32", pa.float64(): "float64", pa.bool_(): "bool"}
    return names.get(kind, str(kind))


def with_media_column(table: pa.Table, config: ReleaseConfig) -> pa.Table:
    """`table` (in the config's source schema) in its written schema: the `media` bytes become the
    `datasets` media struct, whose `path` is `<id>.<ext>` (`table` holds every item's bytes: see
    `with_file_media`)."""
    if "media" not in table.column_names:
        return table.cast(config.schema)
    data = table.column("media").combine_chunks()
    default = DEFAULT_EXTENSIONS[config.modality]
    extension: Any = pa.scalar(default)
    if "media_format" in table.column_names:
        extension = pc.fill_null(table.column("media_format"), default)
    names = pc.binary_join_element_wise(table.column("id"), extension, ".")
    media = pa.StructArray.from_arrays([data, names.combine_chunks()], fields=list(MEDIA_TYPE))
    index = table.column_names.index("media")
    return table.set_column(index, config.modality, media).cast(config.schema)


def with_file_media(table: pa.Table) -> pa.Table:
    """`table` with the bytes of media that stayed a file (too large to store inline in the lake) read from
    its `uri` into the `media` column, so the release holds every item itself and outlives the landing
    zone; `ReleaseError` names an item whose file cannot be read."""
    if "media" not in table.column_names or table.column("media").null_count == 0:
        return table
    data = table.column("media").combine_chunks()
    missing = data.is_null()
    files = table.filter(missing)  # only these items are read; the inline bytes are not copied
    read = [
        item_media(key, {"media": None, "uri": uri})
        for key, uri in zip(files.column("id").to_pylist(), files.column("uri").to_pylist(), strict=True)
    ]
    column = pc.replace_with_mask(data, missing, pa.array(read, type=data.type))
    return table.set_column(table.column_names.index("media"), "media", column)


def item_media(key: str, row: Mapping[str, Any]) -> bytes:
    """An item's encoded media, inline or from its file; `ReleaseError` when it cannot be read."""
    try:
        return media_bytes(row)
    except (OSError, ValueError) as error:
        raise ReleaseError(f"item {key} ({row['uri']}): its media cannot be read: {error}") from error


def media_file_size(key: str, uri: str | None) -> int:
    """The bytes of the file an item's media stayed as; `ReleaseError` when it cannot be read."""
    try:
        if not uri or "#" in uri:
            raise ValueError(f"its uri {uri!r} is not a file")
        filesystem, path = fsspec.core.url_to_fs(uri)
        return int(filesystem.size(path))
    except (OSError, ValueError) as error:
        raise ReleaseError(f"item {key} ({uri}): its media cannot be read: {error}") from error
