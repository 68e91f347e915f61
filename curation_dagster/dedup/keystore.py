"""A sorted key store for cross-shard lookups: 64-bit keys to (shard, row), searched, never scanned.

Each shard writes one run: its keys sorted, each with the row it points at in that shard's own index
file. Runs are merged into tiers, size-tiered as in an LSM tree: once `fanout` runs are not yet in a
tier they become one level-1 tier, `fanout` level-L tiers become one level-(L+1) tier. A lookup binary
searches every tier and every run not yet merged, so it touches the pages its probes land on, about
`probes × log(keys)` comparisons per file and at most `fanout − 1` files per level: adding a shard costs
its own keys plus a logarithmic share of merging, not a scan of every earlier shard.

Files are uncompressed Arrow IPC (`arrow_files.py`) in record batches that are equal slices of the key
space, about `BATCH_KEYS` keys each: a lookup reads a file's footer and only the batches whose slice holds
a probe, memory-mapped on a local lake, one ranged request each on a remote one. `manifest.json` names
every shard's current run (its token is a hash of the run's content and its arrival number orders the
shards) and every tier with the tokens of the runs it merged; a tier's entries for a shard whose run
changed since are ignored, that shard is read from its run until the next merge. Callers serialise writers
(the deduped stage holds the index lock).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from typing import Any

import numpy as np
import pyarrow as pa

from curation_dagster.dedup.arrow_files import (
    KEY_SLICES,
    ArrowFile,
    slice_bounds,
    slice_starts,
    write_batches,
)
from curation_dagster.dedup.bloom import BloomProbes, bloom_writer, build, may_hold, words_per_slice
from curation_dagster.dedup.key_matches import (
    TABLE_PROBES,
    Found,
    Matches,
    ProbeGroups,
    ProbeTable,
    matches_in,
)
from curation_dagster.dedup.range_sort import sort_entries, sorted_unique
from curation_dagster.errors import SpecError
from curation_dagster.io.lake import Lake, check_segment

MANIFEST = "manifest.json"
FORMAT = 1
#: Runs (and tiers of one level) merged at once; a lookup reads at most `FANOUT - 1` per level.
FANOUT = 8
#: Tiers stop growing past this many keys (16 bytes each): beyond it a lookup reads one more file per
#: this many keys, and no merge rewrites more than this.
MAX_TIER_KEYS = 256_000_000
#: Entries merged in memory at once (about 16 bytes each, plus the sort's): a merge writes the key space
#: in ranges of about this many entries, so its memory does not grow with the tier.
MERGE_RANGE_KEYS = 4_000_000
#: Keys whose filter words a run builds at once (about 40 bytes of temporaries each).
BLOOM_RANGE_KEYS = 1_000_000
#: Keys per record batch of a run or tier (16 bytes each, so 1 MiB): what a lookup of one key reads.
BATCH_KEYS = 65_536
#: Times a lookup starts over when a merge removed (or a rerun replaced) a file it was about to read.
LOOKUP_ATTEMPTS = 5

_SCHEMA = pa.schema(
    [
        pa.field("key", pa.uint64(), nullable=False),
        pa.field("source", pa.uint32(), nullable=False),
        pa.field("row", pa.uint32(), nullable=False),
    ]
)
#: The schema metadata key naming a file's Bloom filter (`bloom.py`), a file beside it; files written
#: before filters existed have none and are searched without.
_BLOOM = b"bloom"
#: The optional fourth column: a 64-bit value stored with each entry (a media index keeps the whole hash
#: there, so a lookup checks a candidate's distance without reading the shard's index file).
_PAYLOAD = pa.field("payload", pa.uint64(), nullable=False)


class KeyStore:
    """The key store named `name` of one dataset version, in `<version>/<name>/` of the lake."""

    def __init__(
        self,
        lake: Lake,
        version: str,
        name: str,
        fingerprint: str,
        fanout: int | None = None,
        settings: str = "settings",
        payload: bool = False,
    ) -> None:
        """`payload`: every entry carries a 64-bit value (`put`'s `payloads`), returned by `lookup`."""
        fanout = FANOUT if fanout is None else fanout
        if fanout < 2:
            raise ValueError("fanout must be at least 2")
        self.lake, self.fanout, self.fingerprint = lake, fanout, fingerprint
        self.folder = lake.stage_dir(version, name)
        self.name, self.settings, self.payload = name, settings, payload

    # ------------------------------------------------------------------------------------- manifest

    def manifest(self, any_settings: bool = False) -> dict[str, Any]:
        """The manifest, or an empty one; a store built with other settings is an error unless
        `any_settings` (forgetting a shard needs no settings)."""
        data = self.lake.read_bytes(f"{self.folder}/{MANIFEST}")
        if data is None:
            return {
                "format": FORMAT,
                "fingerprint": self.fingerprint,
                "next_arrival": 0,
                "shards": {},
                "tiers": [],
            }
        manifest: dict[str, Any] = json.loads(data)
        if any_settings:
            return manifest
        if manifest.get("format") != FORMAT or manifest.get("fingerprint") != self.fingerprint:
            raise SpecError(
                f"{self.lake.url(self.folder)} was built with other {self.settings} or by an earlier release; "
                "materialize the deduped stage "
                "again for every shard of this version, in arrival order"
            )
        return manifest

    def _save(self, manifest: dict[str, Any]) -> None:
        data = json.dumps(manifest, sort_keys=True, separators=(",", ":")).encode()
        self.lake.write_bytes(f"{self.folder}/{MANIFEST}", data)

    def shards(self) -> list[str]:
        """The shards with a run, in arrival order."""
        entries = self.manifest()["shards"]
        return sorted(entries, key=lambda shard: entries[shard]["arrival"])

    # ---------------------------------------------------------------------------------------- write

    def put(self, shard: str, keys: np.ndarray, rows: np.ndarray, payloads: np.ndarray | None = None) -> None:
        """Replace `shard`'s run with these keys (uint64) pointing at these rows (of its index file), with
        these payloads in a store that has them, then merge what the size tiers call for."""
        check_segment(shard)
        keys = np.asarray(keys, dtype=np.uint64).reshape(-1)
        rows = np.asarray(rows, dtype=np.uint32).reshape(-1)
        if (payloads is not None) != self.payload:
            raise ValueError("payloads go with a store that has them, and only there")
        values = np.asarray(payloads if payloads is not None else np.zeros(0), dtype=np.uint64).reshape(-1)
        if keys.shape != rows.shape or (self.payload and values.shape != keys.shape):
            raise ValueError("keys, rows and payloads differ in length")
        keys, rows, sorted_values = sort_entries(keys, rows, values if self.payload else None)
        values = values if sorted_values is None else sorted_values
        token = _content_token(keys, rows, values)
        manifest = self.manifest()
        entry = manifest["shards"].get(shard)
        arrival = entry["arrival"] if entry else manifest["next_arrival"]
        sources = np.zeros(len(keys), np.uint32)
        self._write_file(
            self._run_path(shard),
            f"{shard}.{token}.bloom",
            (keys, sources, rows, values if self.payload else None),
            [shard],
        )
        manifest["shards"][shard] = {"arrival": arrival, "token": token, "keys": len(keys)}
        manifest["next_arrival"] = max(manifest["next_arrival"], arrival + 1)
        self._save(manifest)
        if entry and entry["token"] != token:
            self.lake.remove(self._run_bloom_path(shard, entry["token"]))
        self._compact(manifest)

    def remove(self, shard: str) -> None:
        """Forget `shard`: its run goes, and tiers ignore their entries for it."""
        manifest = self.manifest(any_settings=True)
        entry = manifest["shards"].pop(shard, None)
        if entry is not None:
            self._save(manifest)
        self.lake.remove(self._run_path(shard))
        if entry is not None:
            self.lake.remove(self._run_bloom_path(shard, entry["token"]))

    def _compact(self, manifest: dict[str, Any]) -> None:
        """Merge `fanout` unmerged runs into a level-1 tier, then `fanout` tiers of a level into one of
        the next, until no level is full; tiers past `MAX_TIER_KEYS` stay as they are."""
        while True:
            loose = self._loose_shards(manifest)
            if len(loose) >= self.fanout:
                members = [("run", shard) for shard in loose[: self.fanout]]
                level = 1
            else:
                full = self._full_level(manifest)
                if full is None:
                    return
                level, tiers = full
                members = [("tier", tier["name"]) for tier in tiers]
                level += 1
            self._merge(manifest, members, level)

    def _full_level(self, manifest: dict[str, Any]) -> tuple[int, list[dict[str, Any]]] | None:
        by_level: dict[int, list[dict[str, Any]]] = {}
        for tier in manifest["tiers"]:
            if tier["keys"] < MAX_TIER_KEYS:
                by_level.setdefault(tier["level"], []).append(tier)
        for level in sorted(by_level):
            if len(by_level[level]) >= self.fanout:
                return level, by_level[level][: self.fanout]
        return None

    def _merge(self, manifest: dict[str, Any], members: list[tuple[str, str]], level: int) -> None:
        """One new tier from runs or tiers; entries of shards whose run changed are dropped. The key space
        is merged range by range, so memory holds one range's entries (about `MERGE_RANGE_KEYS`), not the
        tier's; each range is written as the record batches of its key slices."""
        inputs: list[tuple[pa.Table, np.ndarray, np.ndarray]] = []
        names: list[str] = []
        covered: dict[str, str] = {}
        total = 0
        for kind, name in members:
            table, file_shards = self._read(self._run_path(name) if kind == "run" else self._tier_path(name))
            current = self._valid_sources(manifest, file_shards, kind, name)
            remap = np.zeros(len(file_shards), dtype=np.uint32)
            for index, shard in enumerate(file_shards):
                if current[index] and shard not in covered:
                    covered[shard] = manifest["shards"][shard]["token"]
                    remap[index] = len(names)
                    names.append(shard)
                    current[index] = True
                elif current[index]:
                    current[index] = False  # already answered by an earlier member
            inputs.append((table, np.asarray(current, dtype=bool), remap))
            total += table.num_rows
        arrival = np.array([manifest["shards"][shard]["arrival"] for shard in names], dtype=np.int64)
        name = hashlib.sha256(json.dumps(sorted(covered.items())).encode()).hexdigest()[:20]
        slices = _slice_count(total)
        per_range = max(1, MERGE_RANGE_KEYS // _slice_keys())
        starts = [*slice_starts(slices).tolist(), 1 << 64]
        schema = _file_schema(names, slices, self.payload, f"{name}.bloom")
        words = words_per_slice(total, slices)
        written = 0
        # The filter is committed before the tier (contexts close in reverse): a tier names only a filter
        # that exists.
        with (
            self.lake.atomic_file(self._tier_path(name)) as handle,
            pa.ipc.new_file(handle, schema) as writer,
            bloom_writer(self.lake, self._tier_path(name, ".bloom"), slices, words) as bloom,
        ):
            for first in range(0, slices, per_range):
                last = min(first + per_range, slices)
                merged = _merged_range(inputs, arrival, starts[first], starts[last], self.payload)
                keys = merged["key"]
                for part in slice_bounds(keys, np.array(starts[first + 1 : last], dtype=np.uint64)):
                    batch = {name: values[part] for name, values in merged.items()}
                    writer.write_batch(pa.record_batch(batch, schema=schema))
                bloom.write(build(keys, first, last, slices, words))
                written += len(keys)
        merged_tiers = {member for kind, member in members if kind == "tier"}
        manifest["tiers"] = [tier for tier in manifest["tiers"] if tier["name"] not in merged_tiers]
        manifest["tiers"].append({"name": name, "level": level, "shards": covered, "keys": written})
        self._save(manifest)
        for member in merged_tiers - {name}:
            self.lake.remove(self._tier_path(member))
            self.lake.remove(self._tier_path(member, ".bloom"))

    # ----------------------------------------------------------------------------------------- read

    def lookup(
        self,
        probes: np.ndarray,
        exclude: str | None = None,
        prefetched: Found | None = None,
        ordered_by_probe: bool = True,
    ) -> Matches:
        """Every entry whose key equals one of `probes`, from every shard but `exclude`, sorted by probe,
        then arrival, then row (in no particular order when not `ordered_by_probe`).

        With `prefetched` (`prefetch` of a superset of these probes, earlier, with no lock held), only
        the shards that arrived or were run again since are searched for the prefetched keys; the answer
        is the same as without it.

        A writer of another stage may merge tiers meanwhile (the synthesized stage reads while a deduped
        run writes): a file the manifest named that is gone or replaced by now means a newer manifest,
        read again. Of each file only the footer and the batches whose key slice holds a probe are read."""
        probes = np.asarray(probes, dtype=np.uint64).reshape(-1)
        if prefetched is not None and prefetched.exclude != exclude:
            raise ValueError("prefetched for another shard")
        groups = prefetched.groups if prefetched is not None else None
        if groups is None or not groups.holds(probes):
            groups = ProbeGroups.of(probes)
        order, unique, first = groups.order, groups.unique, groups.first
        manifest, found = self._retrying(lambda manifest: self._delta(unique, exclude, prefetched, manifest))
        if not len(found.keys):
            return _no_matches()
        unique_probe = np.searchsorted(unique, found.keys)
        arrival_of = [manifest["shards"].get(shard, {}).get("arrival", -1) for shard in found.names]
        arrivals = np.asarray(arrival_of, dtype=np.int64)[found.sources]
        # Each unique key may stand for several probes; expand back to the caller's positions.
        repeat = np.diff(np.append(first, len(probes)))[unique_probe]
        probe_out = order[np.repeat(first[unique_probe], repeat) + _ranges(repeat)].astype(np.int64)
        source, rows, arrivals, payloads = (
            np.repeat(array, repeat)
            for array in (found.sources, found.rows.astype(np.int64), arrivals, found.payloads)
        )
        if not ordered_by_probe:
            return Matches(probe_out, source, found.names, rows, arrivals, payloads)
        sort = np.lexsort((rows, arrivals, probe_out))
        return Matches(probe_out[sort], source[sort], found.names, rows[sort], arrivals[sort], payloads[sort])

    def prefetch(self, probes: np.ndarray, exclude: str | None = None, grouped: bool = False) -> Found:
        """The entries of every shard but `exclude` whose key is one of `probes`, and the shards' run
        tokens: `lookup` then only searches shards that changed since. `grouped` keeps the probes grouped
        by key (`ProbeGroups`, 16 bytes a probe) for a `lookup` of the same probes, which then neither
        sorts them nor searches them among the prefetched keys under the claim lock."""
        probes = np.asarray(probes, dtype=np.uint64).reshape(-1)
        groups = ProbeGroups.of(probes) if grouped else None
        unique = groups.unique if groups is not None else sorted_unique(probes)
        found = self._retrying(lambda manifest: self._find(unique, exclude, None, manifest))[1]
        found.groups = groups
        return found

    def _retrying(self, search: Callable[[dict[str, Any]], Found]) -> tuple[dict[str, Any], Found]:
        """`search` on the current manifest, again on a newer one when a file it named went away."""
        for attempt in range(LOOKUP_ATTEMPTS):
            manifest = self.manifest()
            try:
                return manifest, search(manifest)
            except FileNotFoundError:
                if attempt == LOOKUP_ATTEMPTS - 1:
                    raise
        raise AssertionError("unreachable")

    def _delta(
        self, unique: np.ndarray, exclude: str | None, prefetched: Found | None, manifest: dict[str, Any]
    ) -> Found:
        """The entries for the sorted keys `unique`: what `prefetched` found in shards unchanged since,
        plus a search of the changed shards for the prefetched keys and of every shard for the others."""
        if prefetched is None:
            return self._find(unique, exclude, None, manifest)
        tokens = {shard: entry["token"] for shard, entry in manifest["shards"].items()}
        changed = {shard for shard, token in tokens.items() if prefetched.tokens.get(shard) != token}
        kept_names = np.array([tokens.get(name) == prefetched.tokens.get(name) for name in prefetched.names])
        still = kept_names[prefetched.sources] if len(prefetched.names) else np.zeros(0, dtype=bool)
        if unique is prefetched.searched:  # the very keys prefetched (`ProbeGroups`): nothing to search
            covered = np.ones(len(unique), dtype=bool)
        else:
            still &= _in_sorted(prefetched.keys, unique)
            covered = _in_sorted(unique, prefetched.searched)
        parts = [prefetched.where(still)]
        if changed and covered.any():
            parts.append(self._find(unique[covered], exclude, changed, manifest))
        if not covered.all():
            parts.append(self._find(unique[~covered], exclude, None, manifest))
        return Found.combine(parts, unique, exclude, tokens)

    def _find(
        self, unique: np.ndarray, exclude: str | None, only: set[str] | None, manifest: dict[str, Any]
    ) -> Found:
        """The entries whose key is one of the sorted `unique`, of every current shard but `exclude` (of
        the shards in `only`, when given)."""
        tokens = {shard: entry["token"] for shard, entry in manifest["shards"].items()}
        found: list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]] = []
        shard_names: list[str] = []
        if len(unique) == 0 or not manifest["shards"]:
            return Found.empty(unique, exclude, tokens)
        served: set[str] = set()
        probes: BloomProbes | None = None  # mixed once, when the first file large enough asks its filter
        probe_table: ProbeTable | None = None  # built once, when the first file smaller than them needs it
        files: list[tuple[str, str, int]] = [
            ("tier", tier["name"], tier["keys"]) for tier in manifest["tiers"]
        ]
        files += [("run", shard, manifest["shards"][shard]["keys"]) for shard in self._loose_shards(manifest)]
        for kind, name, entries in files:
            path = self._run_path(name) if kind == "run" else self._tier_path(name)
            with ArrowFile(self.lake, path) as file:
                file_shards = _shards_of(file.schema)
                valid = self._valid_sources(manifest, file_shards, kind, name)
                usable = [
                    ok and shard != exclude and shard not in served and (only is None or shard in only)
                    for ok, shard in zip(valid, file_shards, strict=True)
                ]
                served.update(shard for shard, ok in zip(file_shards, usable, strict=True) if ok)
                if not any(usable):
                    continue
                wanted, table = unique, None
                if entries > len(unique):
                    probes = probes or BloomProbes.of(unique)
                    wanted = self._not_ruled_out(file, path, probes)
                elif len(unique) >= TABLE_PROBES:
                    table = probe_table = probe_table or ProbeTable(unique)
                offset = len(shard_names)
                shard_names.extend(file_shards)
                allowed = np.asarray(usable, dtype=bool)
                for index, start, stop in file.batches_holding(wanted):
                    part = matches_in(file.batch(index), wanted[start:stop], start, allowed, table)
                    if part is not None:
                        found.append((wanted[part[0]], part[1] + offset, part[2], part[3]))
        if not found:
            return Found.empty(unique, exclude, tokens)
        keys, sources, rows, payloads = (np.concatenate([part[i] for part in found]) for i in range(4))
        return Found(keys, sources, rows.astype(np.int64), payloads, shard_names, unique, exclude, tokens)

    def _not_ruled_out(self, file: ArrowFile, path: str, probes: BloomProbes) -> np.ndarray:
        """The probed keys that the file's Bloom filter does not rule out (all of them, for a file written
        before filters existed). Asked only of files with more entries than probes: a smaller file is
        searched entry by entry among the probes, every page of it read whatever a filter says."""
        name = file.metadata.get(_BLOOM)
        if name is None:
            return probes.keys
        return probes.keys[may_hold(self.lake, f"{path.rsplit('/', 1)[0]}/{name.decode()}", probes)]

    def _loose_shards(self, manifest: dict[str, Any]) -> list[str]:
        """Shards whose current run no tier holds, in arrival order."""
        held = {
            shard
            for tier in manifest["tiers"]
            for shard, token in tier["shards"].items()
            if manifest["shards"].get(shard, {}).get("token") == token
        }
        loose = [shard for shard in manifest["shards"] if shard not in held]
        return sorted(loose, key=lambda shard: manifest["shards"][shard]["arrival"])

    @staticmethod
    def _valid_sources(manifest: dict[str, Any], file_shards: list[str], kind: str, name: str) -> list[bool]:
        """Which of a file's shards it still answers for: a run always, a tier where the token matches."""
        if kind == "run":
            return [name in manifest["shards"]]
        tier = next(tier for tier in manifest["tiers"] if tier["name"] == name)
        return [
            manifest["shards"].get(shard, {}).get("token") == tier["shards"].get(shard)
            for shard in file_shards
        ]

    # ---------------------------------------------------------------------------------------- files

    def _run_path(self, shard: str) -> str:
        return f"{self.folder}/runs/{check_segment(shard)}.arrow"

    def _run_bloom_path(self, shard: str, token: str) -> str:
        """A run's filter is named after its content's token: a run being replaced keeps naming its own
        filter until the new run (and its new filter, written first) is in place."""
        return f"{self.folder}/runs/{check_segment(shard)}.{token}.bloom"

    def _tier_path(self, name: str, suffix: str = ".arrow") -> str:
        return f"{self.folder}/tiers/{check_segment(name, 'tier')}{suffix}"

    def _write_file(
        self,
        path: str,
        bloom: str,
        entries: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray | None],
        shards: list[str],
    ) -> None:
        """Sorted entries (keys, sources, rows, payloads or None) as the record batches of their key
        slices, after their filter, written as `bloom` beside them."""
        keys, sources, rows, payloads = entries
        slices = _slice_count(len(keys))
        words = words_per_slice(len(keys), slices)
        per_range = max(1, BLOOM_RANGE_KEYS // _slice_keys())
        starts = slice_starts(slices)
        with bloom_writer(self.lake, f"{path.rsplit('/', 1)[0]}/{bloom}", slices, words) as writer:
            # Range by range, so the filter's temporaries (five words a key) follow the range, not the run.
            for first in range(0, slices, per_range):
                last = min(first + per_range, slices)
                low = int(np.searchsorted(keys, starts[first], side="left")) if first else 0
                high = int(np.searchsorted(keys, starts[last], side="left")) if last < slices else len(keys)
                writer.write(build(keys[low:high], first, last, slices, words))
        schema = _file_schema(shards, slices, payloads is not None, bloom)
        columns = {"key": keys, "source": sources, "row": rows}
        if payloads is not None:
            columns["payload"] = payloads
        batches = (
            pa.record_batch({name: values[part] for name, values in columns.items()}, schema=schema)
            for part in slice_bounds(keys, slice_starts(slices)[1:])
        )
        write_batches(self.lake, path, schema, batches)

    def _read(self, path: str) -> tuple[pa.Table, list[str]]:
        """A whole run or tier, one chunk per record batch, and the shards its sources name."""
        with ArrowFile(self.lake, path) as file:
            return file.table(), _shards_of(file.schema)


def _content_token(keys: np.ndarray, rows: np.ndarray, values: np.ndarray) -> str:
    """A run's content token: the sha256 of its sorted keys, `|`, its rows and payloads, hashed from the
    arrays' memory without joining copies of them."""
    digest = hashlib.sha256()
    for part in (keys, b"|", rows, values):
        digest.update(part if isinstance(part, bytes) else np.ascontiguousarray(part).data)
    return digest.hexdigest()[:24]


def _slice_keys() -> int:
    return min(BATCH_KEYS, MERGE_RANGE_KEYS)


def _slice_count(keys: int) -> int:
    """Key slices (record batches) of a file of `keys` entries: about `BATCH_KEYS` entries each."""
    return max(1, -(-keys // _slice_keys()))


def _file_schema(shards: list[str], slices: int, payload: bool, bloom: str) -> pa.Schema:
    schema = _SCHEMA.append(_PAYLOAD) if payload else _SCHEMA
    metadata = {
        b"shards": json.dumps(shards).encode(),
        KEY_SLICES: str(slices).encode(),
        _BLOOM: bloom.encode(),
    }
    return schema.with_metadata(metadata)


def _shards_of(schema: pa.Schema) -> list[str]:
    return list(json.loads((schema.metadata or {}).get(b"shards", b"[]")))


def _merged_range(
    inputs: list[tuple[pa.Table, np.ndarray, np.ndarray]],
    arrival: np.ndarray,
    low: int,
    high: int,
    payload: bool,
) -> dict[str, np.ndarray]:
    """The entries (columns by name) of the merge's inputs with keys in `[low, high)` that still answer,
    with their sources renumbered, sorted by key, then arrival, then row."""
    parts: dict[str, list[np.ndarray]] = {"key": [], "source": [], "row": [], "payload": []}
    for table, answers, remap in inputs:
        for chunk in _chunks(table.to_batches()):
            chunk_keys = chunk["key"]
            start = int(np.searchsorted(chunk_keys, np.uint64(low)))
            stop = len(chunk_keys) if high >> 64 else int(np.searchsorted(chunk_keys, np.uint64(high)))
            source = chunk["source"][start:stop]
            keep = answers[source]
            for name, values in chunk.items():
                parts[name].append(remap[source[keep]] if name == "source" else values[start:stop][keep])
    kinds = {"key": np.uint64, "source": np.uint32, "row": np.uint32, "payload": np.uint64}
    merged = {
        name: np.concatenate(values) if values else np.zeros(0, kinds[name])
        for name, values in parts.items()
        if payload or name != "payload"
    }
    order = np.lexsort((merged["row"], arrival[merged["source"]], merged["key"]))
    return {name: values[order] for name, values in merged.items()}


def _chunks(batches: list[pa.RecordBatch]) -> list[dict[str, np.ndarray]]:
    """A store file's record batches (key ranges in ascending order, each sorted) as numpy views of the
    (memory-mapped) buffers, not copies; empty batches left out."""
    return [
        {name: batch.column(name).to_numpy() for name in batch.schema.names}
        for batch in batches
        if batch.num_rows
    ]


def _in_sorted(values: np.ndarray, sorted_values: np.ndarray) -> np.ndarray:
    """Which of `values` are in the sorted `sorted_values` (a binary search each: no hashing, no copy
    of either)."""
    if not len(sorted_values):
        return np.zeros(len(values), dtype=bool)
    position = np.minimum(np.searchsorted(sorted_values, values), len(sorted_values) - 1)
    return sorted_values[position] == values


def _ranges(lengths: np.ndarray) -> np.ndarray:
    """0..n-1 for each n in `lengths`, concatenated."""
    total = int(lengths.sum())
    if total == 0:
        return np.zeros(0, np.int64)
    starts = np.repeat(np.cumsum(lengths) - lengths, lengths)
    return np.arange(total) - starts


def _no_matches() -> Matches:
    zeros = np.zeros(0, np.int64)
    return Matches(zeros, zeros, [], zeros, zeros, np.zeros(0, np.uint64))
