"""What a key-store search returns: `Found`, the entries of a set of keys (what `KeyStore.prefetch` keeps
and `KeyStore.lookup` combines), and `Matches`, those entries matched to the caller's probes; and how a
search finds them in one record batch of a store file (`matches_in`, `ProbeTable`)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from curation_dagster.dedup.range_sort import first_in_runs, key_order


@dataclass
class Matches:
    """Entries whose key equals a probe: for each, the probe's position, the shard and row it points at,
    and the shard's arrival number. Sorted by probe, then arrival, then row."""

    probes: np.ndarray
    sources: np.ndarray
    """Per entry, the position of its shard in `names`."""
    names: list[str]
    rows: np.ndarray
    arrivals: np.ndarray
    payloads: np.ndarray
    """Per entry, its payload (zeros in a store without payloads)."""

    def __len__(self) -> int:
        return len(self.probes)

    @property
    def shards(self) -> list[str]:
        return [self.names[source] for source in self.sources.tolist()]

    def first_per_probe(self, count: int) -> Matches:
        """At most `count` entries per probe: the earliest shards' first rows."""
        if len(self) == 0:
            return self
        return self.where(first_in_runs(self.probes, count))

    @classmethod
    def joined(cls, parts: list[tuple[int, Matches]]) -> Matches:
        """The matches of consecutive runs of probes, each given with the position of its first probe
        (its matches' `probes` count from there), as one answer over all of them."""
        index: dict[str, int] = {}
        columns: list[list[np.ndarray]] = [[], [], [], [], []]
        for offset, part in parts:
            remap = np.array([index.setdefault(name, len(index)) for name in part.names], dtype=np.int64)
            sources = remap[part.sources] if len(part) else np.zeros(0, np.int64)
            for column, values in zip(
                columns,
                (part.probes + offset, sources, part.rows, part.arrivals, part.payloads),
                strict=True,
            ):
                column.append(values)
        if not parts:
            zeros = np.zeros(0, np.int64)
            return cls(zeros, zeros, [], zeros, zeros, np.zeros(0, np.uint64))
        probes, sources, rows, arrivals, payloads = (np.concatenate(column) for column in columns)
        return cls(probes, sources, list(index), rows, arrivals, payloads)

    def where(self, keep: np.ndarray) -> Matches:
        """The entries where `keep` (a mask or positions) holds, in order."""
        return Matches(
            self.probes[keep],
            self.sources[keep],
            self.names,
            self.rows[keep],
            self.arrivals[keep],
            self.payloads[keep],
        )


@dataclass
class ProbeGroups:
    """Probes grouped by key: `order[first[k]:first[k + 1]]` are the positions of the probes of the k-th of
    the sorted distinct keys `unique`. A prefetch keeps them for the look-up of the same probes under the
    claim lock, which then does not sort a million probes again while every other worker waits."""

    probes: np.ndarray
    order: np.ndarray
    unique: np.ndarray
    first: np.ndarray

    @classmethod
    def of(cls, probes: np.ndarray) -> ProbeGroups:
        order = key_order(probes)
        ordered = probes[order]
        starts = np.concatenate(([True], ordered[1:] != ordered[:-1])) if len(ordered) else np.zeros(0, bool)
        small = np.int32 if len(probes) < 2**31 else np.int64  # half the memory kept until the claim
        return cls(probes, order.astype(small), ordered[starts], np.flatnonzero(starts).astype(small))

    def holds(self, probes: np.ndarray) -> bool:
        """Whether these groups are of exactly `probes`."""
        return probes is self.probes or np.array_equal(probes, self.probes)

    def probes_of(self, keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """For `keys` (each one of `unique`), every probe of each: (the position in `keys`, the probe's
        position in `probes`), the probes of a key in the order they were given."""
        key = np.searchsorted(self.unique, keys)
        counts = np.diff(np.append(self.first, len(self.probes)))[key]
        total = int(counts.sum())
        within = np.arange(total) - np.repeat(np.cumsum(counts) - counts, counts)
        probes = self.order[np.repeat(self.first[key], counts) + within].astype(np.int64)
        return np.repeat(np.arange(len(keys)), counts), probes


@dataclass
class Found:
    """Entries found for a set of keys before they are matched to probes: per entry its key, source (a
    position in `names`), row and payload; the sorted keys searched, the shard left out, and the run
    token of every shard of the manifest searched (what `KeyStore.lookup` compares to see what changed);
    with `groups`, the probes those keys came from, grouped (`KeyStore.prefetch(..., grouped=True)`)."""

    keys: np.ndarray
    sources: np.ndarray
    rows: np.ndarray
    payloads: np.ndarray
    names: list[str]
    searched: np.ndarray
    exclude: str | None
    tokens: dict[str, str]
    groups: ProbeGroups | None = None

    @classmethod
    def empty(cls, searched: np.ndarray, exclude: str | None, tokens: dict[str, str]) -> Found:
        zeros = np.zeros(0, np.int64)
        return cls(
            np.zeros(0, np.uint64), zeros, zeros, np.zeros(0, np.uint64), [], searched, exclude, tokens
        )

    def where(self, keep: np.ndarray) -> Found:
        """The entries `keep` says, for the same keys searched (and probes grouped)."""
        return Found(
            self.keys[keep],
            self.sources[keep],
            self.rows[keep],
            self.payloads[keep],
            self.names,
            self.searched,
            self.exclude,
            self.tokens,
            self.groups,
        )

    @classmethod
    def combine(
        cls, parts: list[Found], searched: np.ndarray, exclude: str | None, tokens: dict[str, str]
    ) -> Found:
        """The entries of every part, their sources renumbered into one list of distinct shard names."""
        names: list[str] = []
        position: dict[str, int] = {}
        sources = []
        for part in parts:
            remap = np.array(
                [position.setdefault(name, len(position)) for name in part.names], dtype=np.int64
            )
            sources.append(remap[part.sources] if len(part.names) else np.zeros(0, np.int64))
        names = list(position)
        return cls(
            np.concatenate([part.keys for part in parts]),
            np.concatenate(sources),
            np.concatenate([part.rows for part in parts]),
            np.concatenate([part.payloads for part in parts]),
            names,
            searched,
            exclude,
            tokens,
        )


#: Probes from which a key-store file with fewer entries than probes finds its entries through a
#: `ProbeTable` of them.
TABLE_PROBES = 65_536
#: The most top bits of a key a `ProbeTable`'s bitmap tells apart (32 MiB).
FILTER_MAX_BITS = 28
#: Keys per bucket of a `ProbeTable` that `find` compares one by one; the keys of fuller buckets (keys that
#: are not mixed, such as small test keys) are binary-searched instead.
BUCKET_SCAN = 4


class ProbeTable:
    """Sorted unique keys and where each bucket of their top bits starts among them. Finding a key costs
    two reads of the table and a comparison or a few, where a binary search over a million probes (the
    keys of an image shard's hash balls) costs twenty reads that miss the cache. The stores' keys are
    mixed, so a bucket holds about one key. A bitmap of the keys' top bits, 8 to 16 bits a key (2 MiB for
    a million keys, so it stays in cache), turns away most values first: of a tier's entries read whole,
    few are probed, and the table's reads are for those that may be."""

    def __init__(self, keys: np.ndarray) -> None:
        self.keys = keys
        bits = max(1, min(30, len(keys).bit_length()))
        self.shift = np.uint64(64 - bits)
        counts = np.bincount((keys >> self.shift).astype(np.int64), minlength=1 << bits)
        self.starts = np.zeros((1 << bits) + 1, dtype=np.int64)
        np.cumsum(counts, out=self.starts[1:])
        filter_bits = min(FILTER_MAX_BITS, max(3, bits + 3))
        self.filter_shift = np.uint64(64 - filter_bits)
        flags = np.zeros(1 << filter_bits, dtype=bool)
        flags[(keys >> self.filter_shift).astype(np.intp)] = True
        self.filter = np.packbits(flags, bitorder="little")

    def find(self, values: np.ndarray) -> np.ndarray:
        """For each of `values` (uint64), its position among the keys, or -1 when it is not one."""
        slot = (values >> self.filter_shift).astype(np.intp)
        maybe = np.flatnonzero((self.filter.take(slot >> 3) >> (slot & 7).astype(np.uint8)) & 1)
        found = np.full(len(values), -1, dtype=np.int64)
        found[maybe] = self._find(values[maybe])
        return found

    def _find(self, values: np.ndarray) -> np.ndarray:
        bucket = (values >> self.shift).astype(np.int64)
        low = self.starts[bucket]
        size = self.starts[bucket + 1] - low
        found = np.full(len(values), -1, dtype=np.int64)
        open_ = np.flatnonzero((size > 0) & (size <= BUCKET_SCAN))
        for step in range(BUCKET_SCAN):
            at = low[open_] + step
            hit = self.keys[at] == values[open_]
            found[open_[hit]] = at[hit]
            open_ = open_[~hit & (size[open_] > step + 1)]
            if not len(open_):
                break
        full = np.flatnonzero(size > BUCKET_SCAN)
        if len(full):
            position = np.minimum(np.searchsorted(self.keys, values[full]), len(self.keys) - 1)
            hit = self.keys[position] == values[full]
            found[full[hit]] = position[hit]
        return found


def matches_in(
    batch: pa.RecordBatch,
    wanted: np.ndarray,
    first: int,
    allowed: np.ndarray,
    table: ProbeTable | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray] | None:
    """(position among the probes, source, row, payload) of every entry of a sorted record batch (numpy
    views of its memory-mapped buffers) whose key is in the sorted `wanted` (the probes from position
    `first` on that the batch's key slice may hold) and whose source is `allowed`; only the keys are looked
    at until one matches. `table`, a `ProbeTable` of every probe, finds the entries of a batch smaller than
    its probes."""
    if not batch.num_rows:
        return None
    keys = batch.column(0).to_numpy()
    if len(wanted) > len(keys):  # more probes than entries: only those within the batch's key range
        start = int(np.searchsorted(wanted, keys[0], side="left"))
        stop = int(np.searchsorted(wanted, keys[-1], side="right"))
        wanted, first = wanted[start:stop], first + start
    if not len(wanted):
        return None
    if len(keys) < len(wanted) and table is not None:  # fewer entries than probes: their buckets
        probe = table.find(keys)
        positions, probe = np.flatnonzero(probe >= 0), probe[probe >= 0]
    elif len(keys) < len(wanted):  # fewer entries than probes: search each entry among the probes
        slot = np.minimum(np.searchsorted(wanted, keys), len(wanted) - 1)
        hit = wanted[slot] == keys
        positions = np.flatnonzero(hit)
        probe = first + slot[hit]
    else:
        low = np.searchsorted(keys, wanted, side="left")
        hit = keys[np.minimum(low, len(keys) - 1)] == wanted
        if not hit.any():  # the common case: probes a Bloom filter let through
            return None
        high = low.copy()
        high[hit] = np.searchsorted(keys, wanted[hit], side="right")
        counts = high - low
        probe = np.repeat(np.arange(first, first + len(wanted)), counts)
        positions = np.repeat(low - np.cumsum(counts) + counts, counts) + np.arange(counts.sum())
    if not len(positions):
        return None
    source = batch.column(1).to_numpy()[positions]
    keep = allowed[source]
    rows = batch.column(2).to_numpy()[positions][keep]
    if batch.num_columns > 3:
        payload = batch.column(3).to_numpy()[positions][keep]
    else:
        payload = np.zeros(int(keep.sum()), np.uint64)
    return probe[keep], source[keep].astype(np.int64), rows, payload
