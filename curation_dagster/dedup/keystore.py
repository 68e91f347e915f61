"""A sorted key store for cross-shard lookups: 64-bit keys to (shard, row), searched, never scanned.

Each shard writes one run: its keys sorted, each with the row it points at in that shard's own index
file. Runs are merged into tiers, size-tiered as in an LSM tree: once `fanout` runs are not yet in a
tier they become one level-1 tier, `fanout` level-L tiers become one level-(L+1) tier. A lookup binary
searches every tier and every run not yet merged, so it touches the pages its probes land on, about
`probes × log(keys)` comparisons per file and at most `fanout − 1` files per level once merges are done
(`compact`): adding a shard costs
its own keys plus a logarithmic share of merging, not a scan of every earlier shard.

Files are uncompressed Arrow IPC (`arrow_files.py`) in record batches that are equal slices of the key
space, about `BATCH_KEYS` keys each: a lookup reads a file's footer and only the batches whose slice holds
a probe, memory-mapped on a local lake, one ranged request each on a remote one. `manifest.json` names
every shard's current run (its token is a hash of the run's content and its arrival number orders the
shards) and every tier with the tokens of the runs it merged; a tier's entries for a shard whose run
changed since are ignored, that shard is read from its run until the next merge. Callers serialise `put`
and `remove` (the deduped stage holds the index lock); a merge (`compact`) is written with no lock held and
takes the callers' lock only to add its tier to the manifest. The file layout and the merge's writing are
in `key_files.py`.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import threading
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

import numpy as np
import pyarrow as pa

from curation_dagster.dedup.arrow_files import ArrowFile
from curation_dagster.dedup.bloom import BloomProbes, may_hold
from curation_dagster.dedup.key_files import (
    BLOOM,
    MergeInput,
    run_token,
    shards_of,
    stray_tiers,
    write_entries,
    write_merged,
)
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
#: Times a lookup starts over when a merge removed (or a rerun replaced) a file it was about to read.
LOOKUP_ATTEMPTS = 5


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
        manifest = _parsed_manifest(f"{self.folder}/{MANIFEST}", data)
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
        _remember_manifest(f"{self.folder}/{MANIFEST}", data, _own_copy(manifest))

    def shards(self) -> list[str]:
        """The shards with a run, in arrival order."""
        entries = self.manifest()["shards"]
        return sorted(entries, key=lambda shard: entries[shard]["arrival"])

    # ---------------------------------------------------------------------------------------- write

    def put(
        self,
        shard: str,
        keys: np.ndarray,
        rows: np.ndarray,
        payloads: np.ndarray | None = None,
        merge: bool = True,
    ) -> None:
        """Replace `shard`'s run with these keys (uint64) pointing at these rows (of its index file), with
        these payloads in a store that has them, then merge what the size tiers call for; with `merge`
        False the merges are left to `compact`, called once the caller's lock is released."""
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
        entries = (keys, sources, rows, values if self.payload else None)
        write_entries(self.lake, self._run_path(shard), f"{shard}.{token}.bloom", entries, [shard])
        manifest["shards"][shard] = {"arrival": arrival, "token": token, "keys": len(keys)}
        manifest["next_arrival"] = max(manifest["next_arrival"], arrival + 1)
        self._save(manifest)
        if entry and entry["token"] != token:
            self.lake.remove(self._run_bloom_path(shard, entry["token"]))
        if merge:
            self.compact()

    def remove(self, shard: str) -> None:
        """Forget `shard`: its run goes, and tiers ignore their entries for it."""
        manifest = self.manifest(any_settings=True)
        entry = manifest["shards"].pop(shard, None)
        if entry is not None:
            self._save(manifest)
        self.lake.remove(self._run_path(shard))
        if entry is not None:
            self.lake.remove(self._run_bloom_path(shard, entry["token"]))

    def compact(self, hold: Callable[[], contextlib.AbstractContextManager[Any]] | None = None) -> int:
        """Merge `fanout` unmerged runs into a level-1 tier, then `fanout` tiers of a level into one of the
        next, until no level is full (tiers past `MAX_TIER_KEYS` stay as they are); returns the tiers
        added. Each tier is written with no lock held; `hold()` (the lock `put`'s callers hold; none when
        the caller holds it already) is taken only to add it to the manifest, and only if what it merged
        is still unmerged: another writer may have merged the same inputs first, or the tier is dropped.
        So a merge does not stall the version's other writers, only the manifest's update does. After a
        tier is added, files of tiers that were never added and are a day old (`stray_tiers`) go."""
        hold = hold or contextlib.nullcontext
        added = misses = 0
        while misses < LOOKUP_ATTEMPTS:
            manifest = self.manifest()
            plan = self._plan(manifest)
            if plan is None:
                break
            members, level = plan
            try:
                tier = self._write_tier(manifest, members, level)
            except FileNotFoundError:  # an input was merged (or a run replaced) meanwhile: plan again
                misses += 1
                continue
            with hold():
                merged = self._commit(tier, members)
            if merged is None:
                misses += 1
                continue
            added += 1
            for member in merged - {tier["name"]}:
                self.lake.remove(self._tier_path(member))
                self.lake.remove(self._tier_path(member, ".bloom"))
        if added:  # a listing of `tiers/` every few merges, not every shard
            named = {tier["name"] for tier in self.manifest()["tiers"]}
            for path in stray_tiers(self.lake, f"{self.folder}/tiers", named):
                self.lake.remove(path)
        return added

    def _plan(self, manifest: dict[str, Any]) -> tuple[list[tuple[str, str]], int] | None:
        """The next merge the size tiers call for: its members (`("run", shard)` or `("tier", name)`) and
        the level of the tier it makes."""
        loose = self._loose_shards(manifest)
        if len(loose) >= self.fanout:
            return [("run", shard) for shard in loose[: self.fanout]], 1
        by_level: dict[int, list[dict[str, Any]]] = {}
        for tier in manifest["tiers"]:
            if tier["keys"] < MAX_TIER_KEYS:
                by_level.setdefault(tier["level"], []).append(tier)
        for level in sorted(by_level):
            if len(by_level[level]) >= self.fanout:
                return [("tier", tier["name"]) for tier in by_level[level][: self.fanout]], level + 1
        return None

    def _write_tier(
        self, manifest: dict[str, Any], members: list[tuple[str, str]], level: int
    ) -> dict[str, Any]:
        """The tier merged from `members` as `manifest` names them, written; returns its manifest entry.
        Entries of shards whose run changed since a member was written are dropped. A run read names its
        own content's token (`run_token`): a run replaced since `manifest` was read is merged as what it
        holds now, under the token it holds, never under the manifest's."""
        inputs: list[MergeInput] = []
        names: list[str] = []
        covered: dict[str, str] = {}
        tiers = {tier["name"]: tier for tier in manifest["tiers"]}
        total = 0
        with contextlib.ExitStack() as files:
            for kind, member in members:
                path = self._run_path(member) if kind == "run" else self._tier_path(member)
                file = files.enter_context(ArrowFile(self.lake, path))
                inputs.append(self._merge_input(manifest, kind, member, file, names, covered))
                total += manifest["shards"][member]["keys"] if kind == "run" else tiers[member]["keys"]
            arrival = np.array([manifest["shards"][shard]["arrival"] for shard in names], dtype=np.int64)
            name = hashlib.sha256(json.dumps(sorted(covered.items())).encode()).hexdigest()[:20]
            path = self._tier_path(name)
            written = write_merged(self.lake, path, inputs, names, arrival, self.payload, total)
        return {"name": name, "level": level, "shards": covered, "keys": written}

    def _merge_input(
        self,
        manifest: dict[str, Any],
        kind: str,
        member: str,
        file: ArrowFile,
        names: list[str],
        covered: dict[str, str],
    ) -> MergeInput:
        """A merge's input `file` (of run or tier `member`), its sources numbered after the `names` of the
        inputs before it; the shards it answers for join `names` and `covered` (shard to token)."""
        file_shards = shards_of(file.schema)
        token = run_token(file.schema, member) if kind == "run" else None
        current = self._valid_sources(manifest, file_shards, kind, member)
        remap = np.zeros(len(file_shards), dtype=np.uint32)
        for index, shard in enumerate(file_shards):
            if current[index] and shard not in covered:
                covered[shard] = token or manifest["shards"][shard]["token"]
                remap[index] = len(names)
                names.append(shard)
            else:
                current[index] = False  # gone, changed, or already answered by an earlier member
        return MergeInput(file, np.asarray(current, dtype=bool), remap)

    def _commit(self, tier: dict[str, Any], members: list[tuple[str, str]]) -> set[str] | None:
        """Under the writers' lock: add `tier` to the manifest in place of the tiers it merged (returned,
        for their files to go once the lock is released) if every tier it merged is still there and every
        run it merged is still unmerged (or replaced since: the tier's entries for it are then ignored).
        Otherwise its files go, unless a tier of that name is in the manifest already (the same merge,
        committed by another writer), and None is returned."""
        manifest = self.manifest()
        names = {entry["name"] for entry in manifest["tiers"]}
        if tier["name"] in names:
            return None
        loose = set(self._loose_shards(manifest))
        tiers = {member for kind, member in members if kind == "tier"}
        current = tiers <= names and all(
            shard in loose or manifest["shards"].get(shard, {}).get("token") != tier["shards"].get(shard)
            for kind, shard in members
            if kind == "run"
        )
        # A writer that merged the same inputs and lost may have removed the file just now.
        if not current or not self.lake.exists(self._tier_path(tier["name"])):
            self.lake.remove(self._tier_path(tier["name"]))
            self.lake.remove(self._tier_path(tier["name"], ".bloom"))
            return None
        manifest["tiers"] = [entry for entry in manifest["tiers"] if entry["name"] not in tiers]
        manifest["tiers"].append(tier)
        self._save(manifest)
        return tiers

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
        is the same as without it, less any prefetched entries the caller dropped (`Found.where`: a media
        index keeps only those within reach of their probes).

        A writer of another stage may merge tiers meanwhile (the synthesized stage reads while a deduped
        run writes): a file the manifest named that is gone or replaced by now means a newer manifest,
        read again. Of each file only the footer and the batches whose key slice holds a probe are read."""
        probes = np.asarray(probes, dtype=np.uint64).reshape(-1)
        if prefetched is not None and prefetched.exclude != exclude:
            raise ValueError("prefetched for another shard")
        groups = prefetched.groups if prefetched is not None else None
        if groups is None or not groups.holds(probes):
            groups = ProbeGroups.of(probes)
        unique = groups.unique
        manifest, found = self._retrying(lambda manifest: self._delta(unique, exclude, prefetched, manifest))
        if not len(found.keys):
            return _no_matches()
        arrival_of = [manifest["shards"].get(shard, {}).get("arrival", -1) for shard in found.names]
        arrivals = np.asarray(arrival_of, dtype=np.int64)[found.sources]
        # Each unique key may stand for several probes; expand back to the caller's positions.
        entry, probe_out = groups.probes_of(found.keys)
        source, rows, arrivals, payloads = (
            array[entry] for array in (found.sources, found.rows.astype(np.int64), arrivals, found.payloads)
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
        files: list[tuple[str, str, int, list[str]]] = [
            ("tier", tier["name"], tier["keys"], list(tier["shards"])) for tier in manifest["tiers"]
        ]
        files += [
            ("run", shard, manifest["shards"][shard]["keys"], [shard])
            for shard in self._loose_shards(manifest)
        ]

        def asked(kind: str, name: str, shards: list[str]) -> list[bool]:
            """Which of a file's shards this search asks it for: current, not left out, not yet served."""
            valid = self._valid_sources(manifest, shards, kind, name)
            return [
                ok and shard != exclude and shard not in served and (only is None or shard in only)
                for ok, shard in zip(valid, shards, strict=True)
            ]

        for kind, name, entries, holds in files:
            # A file that answers for none of the shards searched is not opened (under the claim lock only
            # the shards that claimed since the prefetch are); the manifest says which shards it holds.
            if not any(asked(kind, name, holds)):
                continue
            path = self._run_path(name) if kind == "run" else self._tier_path(name)
            with ArrowFile(self.lake, path) as file:
                file_shards = shards_of(file.schema)  # in the order the file numbers its sources
                usable = asked(kind, name, file_shards)
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
        name = file.metadata.get(BLOOM)
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

    def _read(self, path: str) -> tuple[pa.Table, list[str]]:
        """A whole run or tier, one chunk per record batch, and the shards its sources name."""
        with ArrowFile(self.lake, path) as file:
            return file.table(), shards_of(file.schema)


#: Manifests parsed in this process, by path, with the bytes each was parsed from, the last used last: a
#: shard reads each store's manifest about six times (120 KB of JSON at 1,000 shards), mostly unchanged.
_PARSED: OrderedDict[str, tuple[bytes, dict[str, Any]]] = OrderedDict()
_PARSED_LOCK = threading.Lock()
#: Manifests kept parsed at most.
PARSED_MANIFESTS = 16


def _parsed_manifest(path: str, data: bytes) -> dict[str, Any]:
    """`json.loads(data)`, kept for the next read of `path` that finds the same bytes. The caller gets its
    own copy of what `put`, `remove` and `_commit` change (`_own_copy`)."""
    with _PARSED_LOCK:
        cached = _PARSED.get(path)
        if cached is not None and cached[0] == data:
            _PARSED.move_to_end(path)
            return _own_copy(cached[1])
    manifest: dict[str, Any] = json.loads(data)
    _remember_manifest(path, data, manifest)
    return _own_copy(manifest)


def _remember_manifest(path: str, data: bytes, manifest: dict[str, Any]) -> None:
    with _PARSED_LOCK:
        _PARSED[path] = (data, manifest)
        _PARSED.move_to_end(path)
        while len(_PARSED) > PARSED_MANIFESTS:
            _PARSED.popitem(last=False)


def _own_copy(manifest: dict[str, Any]) -> dict[str, Any]:
    """A manifest whose top level, `shards` and `tiers` are the caller's own: changing a manifest adds,
    removes or replaces entries there, and never changes an entry in place (entries are shared)."""
    copy = dict(manifest)
    for key, kind in (("shards", dict), ("tiers", list)):
        if isinstance(copy.get(key), kind):  # a manifest of another format is refused after, not here
            copy[key] = kind(copy[key])
    return copy


def _content_token(keys: np.ndarray, rows: np.ndarray, values: np.ndarray) -> str:
    """A run's content token: the sha256 of its sorted keys, `|`, its rows and payloads, hashed from the
    arrays' memory without joining copies of them."""
    digest = hashlib.sha256()
    for part in (keys, b"|", rows, values):
        digest.update(part if isinstance(part, bytes) else np.ascontiguousarray(part).data)
    return digest.hexdigest()[:24]


def _in_sorted(values: np.ndarray, sorted_values: np.ndarray) -> np.ndarray:
    """Which of `values` are in the sorted `sorted_values` (a binary search each: no hashing, no copy
    of either)."""
    if not len(sorted_values):
        return np.zeros(len(values), dtype=bool)
    position = np.minimum(np.searchsorted(sorted_values, values), len(sorted_values) - 1)
    return sorted_values[position] == values


def _no_matches() -> Matches:
    zeros = np.zeros(0, np.int64)
    return Matches(zeros, zeros, [], zeros, zeros, np.zeros(0, np.uint64))
