"""The cross-shard index of near-duplicate text: band keys in a sorted key store, signatures per shard.

`<version>/near_keys/` holds every shard's indexed band keys (see `keystore.py`), each pointing at a row
of `<version>/near_signatures/<shard>.arrow`, which holds that item's id, its cluster's root and where
the root lives, its verification signature, at a fixed width, and its word sketch (a list). A new shard
binary-searches its band keys, then reads the signature rows of the items it matched: nothing is
scanned, no text is read.
"""

from __future__ import annotations

from collections import defaultdict

import numpy as np
import pyarrow as pa

from curation_dagster.dedup.arrow_files import (
    ArrowFile,
    read_arrow,
    rows_per_batch,
    with_rows_per_batch,
    write_batches,
)
from curation_dagster.dedup.key_matches import Found, Matches
from curation_dagster.dedup.keystore import KeyStore
from curation_dagster.dedup.near import (
    INDEXED_PER_BUCKET,
    EarlierItems,
    EarlierLookup,
    ShardBands,
    ShardOutcome,
    decode_signatures,
    settings_fingerprint,
    signature_batches,
    signatures_schema,
    sketchless_fingerprint,
    verify_width,
)
from curation_dagster.dedup.sketch_spill import SketchSpill
from curation_dagster.dedup.word_sketch import WordSketches
from curation_dagster.errors import SpecError
from curation_dagster.io.lake import Lake, check_segment
from curation_dagster.spec import NearDedupSettings

NEAR_KEYS = "near_keys"
NEAR_SIGNATURES = "near_signatures"
#: Band keys looked up at once: a look-up holds several 8-byte words a probe while it searches.
LOOKUP_PROBES = 4_000_000

Location = tuple[str, int]
#: What the index holds of an item: id, cluster root, the root's location, signature, word sketch,
#: number of distinct words, word-pair sketch and number of distinct word pairs.
Entry = tuple[str, str, Location, np.ndarray, np.ndarray, int, np.ndarray, int]


class NearIndex:
    """The near-dedup index of one version: write a shard's part, look up a shard's band keys."""

    def __init__(self, lake: Lake, version: str, settings: NearDedupSettings, prefix: str = "") -> None:
        """`prefix` names a second index of the version (`synth_` for admitted synthetic items)."""
        self.lake, self.version, self.settings = lake, version, settings
        self.signatures_folder = prefix + NEAR_SIGNATURES
        self.keys = KeyStore(
            lake, version, prefix + NEAR_KEYS, settings_fingerprint(settings), settings="dedup.near settings"
        )

    def check(self, shard: str) -> None:
        """Refuse an index written before the key store existed (Parquet signatures, no band keys in the
        store), which a lookup would silently miss, or before word sketches, which grey-zone pairs need."""
        manifest = self.keys.manifest(any_settings=True)
        if manifest.get("fingerprint") == sketchless_fingerprint(self.settings):
            raise SpecError(
                f"the near-duplicate index {self.lake.url(self.keys.folder)} was written by an earlier release, "
                "without the word sketches that confirm pairs near dedup.near.min_similarity; delete it and "
                f"{self.lake.url(self.lake.stage_dir(self.version, self.signatures_folder))}, then materialize "
                "the deduped stage again for every shard of this version, in arrival order"
            )
        stray = [
            other for other in self.lake.list_shards(self.version, self.signatures_folder) if other != shard
        ]
        if stray:
            raise SpecError(
                f"near-dedup signatures of shards {', '.join(stray[:3])} are in the format of an earlier "
                f"release without band keys in {self.lake.url(self.keys.folder)}; delete "
                f"{self.lake.url(self.lake.stage_dir(self.version, self.signatures_folder))} and materialize the "
                "deduped stage again for every shard of this version, in arrival order"
            )

    def write(self, shard: str, outcome: ShardOutcome, merge: bool = True) -> None:
        """The shard's signature rows, then its band keys; each part of `outcome` is let go once written
        (signatures and sketches before the band keys are sorted: the shard's largest parts). `merge`: as
        `KeyStore.put`'s."""
        table, sketches = outcome.signatures, outcome.sketches
        per_batch = rows_per_batch(table.nbytes + sketches.nbytes, table.num_rows)
        schema = with_rows_per_batch(signatures_schema(self.settings), per_batch)
        batches = signature_batches(outcome, schema, per_batch)
        write_batches(self.lake, self._signatures_path(shard), schema, batches)
        outcome.signatures = table.schema.empty_table()
        outcome.sketches = WordSketches.empty(0, pairs=True)
        if isinstance(sketches, SketchSpill):
            sketches.close()
        del table, sketches
        keys, rows = outcome.bands.indexed()
        outcome.bands = ShardBands(np.zeros(0, np.int64), np.zeros((0, self.settings.bands), np.uint64))
        self.keys.put(shard, keys, rows, merge=merge)

    def remove(self, shard: str) -> None:
        self.keys.remove(shard)
        self.lake.remove(self._signatures_path(shard))

    def earlier(self, shard: str | None, prefetched: Found | None = None) -> EarlierLookup:
        """The lookup `NearDedup.decide` calls with this shard's band keys `(items, bands)`: every other
        shard's items (every shard's, when `shard` is None). `prefetched`: the store's entries for a
        superset of those keys, searched earlier (`KeyStore.prefetch`), so only shards that changed since
        are searched again."""
        width = verify_width(self.settings)

        def lookup(keys: np.ndarray) -> EarlierItems:
            # A few million probes at a time: a search's temporaries are several words a probe.
            probes = keys.reshape(-1)
            matches = Matches.joined(
                [
                    (
                        start,
                        self.keys.lookup(
                            probes[start : start + LOOKUP_PROBES], exclude=shard, prefetched=prefetched
                        ).first_per_probe(INDEXED_PER_BUCKET),
                    )
                    for start in range(0, len(probes), LOOKUP_PROBES)
                ]
            )
            if not len(matches):
                return _empty(width)
            # Distinct (item of this shard, earlier item) pairs; an earlier item is (shard, row). Packed
            # into one integer each (sources < 2**20 files' shards, rows < 2**32) for a fast unique.
            earlier_item = matches.sources.astype(np.int64) << 32 | matches.rows.astype(np.int64)
            wanted, positions = np.unique(earlier_item, return_inverse=True)
            own_item = matches.probes // keys.shape[1]
            pairs = np.unique(own_item * len(wanted) + positions)
            rows, positions = pairs // len(wanted), pairs % len(wanted)
            names = np.asarray(matches.names, dtype=object)[wanted >> 32].tolist()
            locations = list(zip(names, (wanted & 0xFFFFFFFF).tolist(), strict=True))
            found = self._read(locations, width)
            # Roots in this shard (run again) or in a shard since removed are not read: the pair's own
            # similarity then stands for the root's.
            present = set(self.keys.shards()) - {shard}
            roots = sorted({found[location][2] for location in locations} - set(found))
            roots = [location for location in roots if location[0] in present]
            if roots:
                found.update(self._read(roots, width))
            asked = set(locations)
            extra = [location for location in found if location not in asked]
            everything = locations + sorted(extra)
            entries = [found[location] for location in everything]
            return EarlierItems(
                rows=rows.astype(np.int64),
                positions=positions.astype(np.int64),
                ids=[entry[0] for entry in entries],
                roots=[entry[1] for entry in entries],
                sigs=np.stack([entry[3] for entry in entries]),
                root_locations=[entry[2] for entry in entries],
                sketches=WordSketches.of_lists(
                    [entry[4] for entry in entries],
                    [entry[5] for entry in entries],
                    [entry[6] for entry in entries],
                    [entry[7] for entry in entries],
                ),
                locations=everything,
            )

        return lookup

    def _read(self, locations: list[Location], width: int) -> dict[Location, Entry]:
        """What the index holds of each item, reading only the record batches that hold their rows."""
        by_shard: dict[str, list[int]] = defaultdict(list)
        for other, row in locations:
            by_shard[other].append(row)
        out: dict[Location, Entry] = {}
        for other, rows in sorted(by_shard.items()):
            with ArrowFile(self.lake, self._signatures_path(other)) as signatures:
                picked = signatures.take(rows)
            sigs = decode_signatures(picked.column("sig"), width)
            sketches = WordSketches.from_table(picked)
            pairs = sketches.pairs
            assert pairs is not None
            columns = [picked.column(name).to_pylist() for name in ("id", "root", "root_shard", "root_row")]
            for index, (row, item, root, root_shard, root_row) in enumerate(zip(rows, *columns, strict=True)):
                location = (root_shard, int(root_row))
                out[(other, row)] = (
                    item,
                    root,
                    location,
                    sigs[index],
                    sketches.sketch(index),
                    int(sketches.words[index]),
                    pairs.sketch(index),
                    int(pairs.words[index]),
                )
        return out

    def signatures(self, shard: str) -> pa.Table:
        """A shard's signatures (memory-mapped on a local lake)."""
        return read_arrow(self.lake, self._signatures_path(shard))

    def _signatures_path(self, shard: str) -> str:
        return f"{self.lake.stage_dir(self.version, self.signatures_folder)}/{check_segment(shard)}.arrow"


def _empty(width: int) -> EarlierItems:
    return EarlierItems(
        np.zeros(0, np.int64),
        np.zeros(0, np.int64),
        [],
        [],
        np.zeros((0, width), np.uint32),
        sketches=WordSketches.empty(0, pairs=True),
    )
