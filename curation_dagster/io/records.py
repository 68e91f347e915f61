"""What a landing reader yields: one record per item, possibly already rejected."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class RawRecord:
    """One item as read from a landing shard, before validation.

    `position` identifies the item inside its shard (`L12` for line 12 of a JSON Lines file, `row=5` for
    a Parquet row, the member key of a WebDataset tar, the path of a file relative to a media folder) and
    with the shard key gives the item's stable id. A reader that cannot parse an item still yields a
    record, with `reject_code` set, so that nothing is lost silently.
    """

    position: str
    uri: str
    modality: str | None = None
    text: str | None = None
    media: bytes | None = None
    media_format: str | None = None
    meta: dict[str, Any] = field(default_factory=dict)
    reject_code: str | None = None
    reject_detail: str | None = None
