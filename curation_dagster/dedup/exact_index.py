"""The cross-shard index of exact duplicates: content hashes in a sorted key store.

`<version>/exact_keys/` maps the first 64 bits of every kept item's content hash to its row in
`<version>/exact_claims/<shard>.arrow` (full hash and id); a lookup binary-searches the prefixes and
confirms the full hash on the few rows it lands on. The Parquet `dedup_index` beside it stays the
readable record of claims (SQL, synthesis); this store is what makes the deduped stage's lookup
independent of how many shards came before.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable

import numpy as np
import pyarrow as pa

from curation_dagster.dedup.arrow_files import ArrowFile, write_arrow
from curation_dagster.dedup.key_matches import Found
from curation_dagster.dedup.keystore import KeyStore
from curation_dagster.io.lake import Lake, check_segment

EXACT_KEYS = "exact_keys"
EXACT_CLAIMS = "exact_claims"
#: The content-hash format the keys are cut from (blake2b-128, hex); a change must not mix with old keys.
FINGERPRINT = "blake2b-128-hex/prefix64"


def hash_prefixes(hashes: list[str]) -> np.ndarray:
    """The first 64 bits of hexadecimal content hashes, as uint64 keys."""
    return np.array([int(value[:16], 16) for value in hashes], dtype=np.uint64)


class ExactIndex:
    """Which earlier shard's item claimed a content hash, for every shard of a version."""

    def __init__(self, lake: Lake, version: str, prefix: str = "") -> None:
        """`prefix` names a second index of the version (`synth_` for admitted synthetic items)."""
        self.lake, self.version = lake, version
        self.claims_folder = prefix + EXACT_CLAIMS
        self.keys = KeyStore(lake, version, prefix + EXACT_KEYS, FINGERPRINT, settings="content-hash format")

    def write(self, shard: str, hashes: list[str], ids: list[str], merge: bool = True) -> None:
        """Record the shard's claims (its kept items' hashes), replacing any it had (`merge`: as
        `KeyStore.put`'s)."""
        claims = pa.table({"content_hash": pa.array(hashes, pa.string()), "id": pa.array(ids, pa.string())})
        write_arrow(self.lake, self._claims_path(shard), claims)
        self.keys.put(shard, hash_prefixes(hashes), np.arange(len(hashes)), merge=merge)

    def remove(self, shard: str) -> None:
        self.keys.remove(shard)
        self.lake.remove(self._claims_path(shard))

    def prefetch(self, shard: str, hashes: list[str]) -> Found:
        """The key-store entries of every other shard for these hashes, searched now (with no lock held) so
        that `lookup(shard, prefetched)` under the claim lock searches only the shards that claimed since."""
        return self.keys.prefetch(hash_prefixes(hashes), exclude=shard)

    def lookup(
        self, shard: str | None, prefetched: Found | None = None
    ) -> Callable[[list[str]], dict[str, str]]:
        """For a batch of hashes, the smallest id that claimed each in another shard (in any shard, when
        `shard` is None); `prefetched`: `prefetch` of a superset of the hashes asked, for the same shard."""

        def claimed(hashes: list[str]) -> dict[str, str]:
            if not hashes:
                return {}
            matches = self.keys.lookup(hash_prefixes(hashes), exclude=shard, prefetched=prefetched)
            rows: dict[str, list[tuple[int, str]]] = defaultdict(list)
            for probe, other, row in zip(
                matches.probes.tolist(), matches.shards, matches.rows.tolist(), strict=True
            ):
                rows[other].append((row, hashes[probe]))
            owners: dict[str, str] = {}
            for other, wanted in sorted(rows.items()):
                with ArrowFile(self.lake, self._claims_path(other)) as claims:
                    picked = claims.take([row for row, _ in wanted])
                found = zip(
                    picked.column("content_hash").to_pylist(), picked.column("id").to_pylist(), strict=True
                )
                for (_, probe_hash), (stored_hash, owner) in zip(wanted, found, strict=True):
                    if stored_hash == probe_hash and (probe_hash not in owners or owner < owners[probe_hash]):
                        owners[probe_hash] = owner
            return owners

        return claimed

    def _claims_path(self, shard: str) -> str:
        return f"{self.lake.stage_dir(self.version, self.claims_folder)}/{check_segment(shard)}.arrow"
