"""Access to an item's media bytes, inline or, for large media, from the file its `uri` names."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import fsspec


def media_bytes(row: Mapping[str, Any]) -> bytes:
    """The encoded media of a row: the `media` column, else the file at `uri` (large media stays a file)."""
    data = row.get("media")
    if data is not None:
        return bytes(data)
    uri = row.get("uri")
    if not uri or "#" in str(uri):
        raise ValueError(f"item has no inline media and its uri {uri!r} is not a file")
    with fsspec.open(str(uri), "rb") as handle:
        return bytes(handle.read())
