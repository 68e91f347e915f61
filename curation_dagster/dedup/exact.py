"""Exact duplicates on normalised content, across shards through a persistent hash index."""

from __future__ import annotations

import hashlib
import unicodedata
from collections.abc import Callable, Iterable, MutableMapping

import pyarrow as pa
import pyarrow.compute as pc

from curation_dagster.schema import DEDUP_FIELDS, mark_rejected, with_fields
from curation_dagster.spec import ExactDedupSettings, NormalizeSettings

REJECT_EXACT = "dedup.exact"
#: The `dup_measure` of an exact duplicate (`dup_similarity` 1.0).
EXACT_MEASURE = "exact_content"
INDEX_SCHEMA = pa.schema(
    [
        pa.field("content_hash", pa.string(), nullable=False),
        pa.field("id", pa.string(), nullable=False),
        pa.field("shard", pa.string(), nullable=False),
        pa.field("modality", pa.string(), nullable=False),
    ]
)


def normalize_text(text: str, settings: NormalizeSettings) -> str:
    """The form of `text` that exact dedup compares."""
    if settings.unicode_nfkc:
        text = unicodedata.normalize("NFKC", text)
    if settings.casefold:
        text = text.casefold()
    if settings.collapse_whitespace:
        text = " ".join(text.split())
    return text


def content_hash(modality: str, text: str | None, media: bytes | None, settings: NormalizeSettings) -> str:
    """The exact-dedup key: media items hash their bytes (captions aside), text items their normal form."""
    digest = hashlib.blake2b(digest_size=16)
    digest.update(modality.encode())
    digest.update(b"\x00")
    if modality != "text" and media is not None:
        digest.update(media)
    else:
        digest.update(normalize_text(text or "", settings).encode("utf-8"))
    return digest.hexdigest()


IndexLookup = Callable[[list[str]], dict[str, str]]


class ExactDedup:
    """Keeps the first item of each content hash; later ones are rejected with `dup_of` set.

    `known` maps hashes already claimed (by earlier shards through the index, or by earlier batches of
    this shard) to the id that claimed them; `lookup` fetches claims from the index for a batch.
    """

    def __init__(self, settings: ExactDedupSettings | None = None) -> None:
        self.settings = settings or ExactDedupSettings()

    def hashes(self, table: pa.Table) -> list[str]:
        modality = table.column("modality").to_pylist()
        text = table.column("text").to_pylist()
        media = table.column("media").to_pylist()
        return [
            content_hash(m, t, b, self.settings.normalize)
            for m, t, b in zip(modality, text, media, strict=True)
        ]

    def run(
        self,
        table: pa.Table,
        known: MutableMapping[str, str],
        lookup: IndexLookup | None = None,
    ) -> tuple[pa.Table, pa.Table]:
        """Split `table` into (kept, rejected); kept items are added to `known`."""
        schema = with_fields(table.schema, DEDUP_FIELDS)
        if not self.settings.enabled:
            hashes = self.hashes(table)
            kept = _with_dedup_columns(table, hashes, [None] * table.num_rows).cast(schema)
            return kept, mark_rejected(kept.slice(0, 0), "deduped", [], [])
        hashes = self.hashes(table)
        claimed = dict(lookup([h for h in set(hashes) if h not in known])) if lookup else {}
        ids = table.column("id").to_pylist()
        dup_of: list[str | None] = []
        for item, key in zip(ids, hashes, strict=True):
            owner = known.get(key) or claimed.get(key)
            dup_of.append(owner)
            if owner is None:
                known[key] = item
        annotated = _with_dedup_columns(table, hashes, dup_of).cast(schema)
        is_dup = pa.array([owner is not None for owner in dup_of], pa.bool_())
        kept = annotated.filter(pc.invert(is_dup))
        duplicates = annotated.filter(is_dup)
        rejected = mark_rejected(
            duplicates,
            "deduped",
            [REJECT_EXACT] * duplicates.num_rows,
            [f"same normalised content as {owner}" for owner in duplicates.column("dup_of").to_pylist()],
        )
        return kept, rejected


def _with_dedup_columns(table: pa.Table, hashes: Iterable[str], dup_of: Iterable[str | None]) -> pa.Table:
    owners = list(dup_of)
    similarity = [None if owner is None else 1.0 for owner in owners]
    measure = [None if owner is None else EXACT_MEASURE for owner in owners]
    out = table
    for field, values in zip(DEDUP_FIELDS, (list(hashes), owners, similarity, measure), strict=True):
        array = pa.array(values, field.type)
        index = out.schema.get_field_index(field.name)
        out = out.set_column(index, field, array) if index >= 0 else out.append_column(field, array)
    return out
