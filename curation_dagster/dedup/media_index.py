"""The cross-shard index of near-duplicate images, videos and sounds: hash segments in a sorted key store.

`<version>/<index>/<shard>.parquet` (`image_hashes`, `video_hashes`, `audio_hashes`) stays the readable
record of the hashes of a shard's kept items. Beside it, `<version>/<index>_keys/` (a key store whose
entries carry a payload, `keystore.py`) holds one key per hash and segment (about 21 bits each, fixed by
the hash width), pointing at the hash's row, with the whole hash as payload. Two hashes within
`max_distance` bits agree within `max_distance // segments` bits on at least one segment (pigeonhole), so a
lookup expands each probed hash's segments by every mask of that many bits, binary-searches the keys,
keeps the entries whose payload is within `max_distance` of the probe and reads only the index files of
the shards that hold such a hash. A shard costs its own hashes and its matches, never a pass over every
earlier shard.

Which hashes are probed keeps the lookup exact for the matching rules of `media.py` and `image_rule.py`:
- images: whole-image hashes look up every stored hash but the margins, the other variants (mirror, crops,
  turns) the stored whole-image hashes and the stored mirror, centre crop and turns (which meet each other,
  `image_rule.meets_variants`), and each margin hash only the stored hashes of the same margin: the pairs
  `ImageMatcher` compares. Keys live in separate key spaces (the crops but the centre one; whole hashes with
  the mirror, centre crop and turns; one per margin), so a probe looks up only the space it may match;
- videos and sounds: of an item with F frames, of which a match leaves at most U unmatched, U + 1 frames
  evenly spread are probed, so every item it can match has a frame within reach of one of them.
The matcher then decides on the complete hashes of every item found, as it would on the whole index.
"""

from __future__ import annotations

import hashlib
import itertools
import json
from collections.abc import Iterator
from dataclasses import dataclass
from math import comb
from typing import Final

import numpy as np
import pyarrow as pa

from curation_dagster.dedup.image_rule import ImageMatcher, meets_variants
from curation_dagster.dedup.key_matches import Found
from curation_dagster.dedup.keystore import KeyStore
from curation_dagster.dedup.media import HashSet, MediaMatcher, SequenceMatcher, index_hash_set
from curation_dagster.dedup.perceptual import VARIANT_MARGIN, VARIANT_WHOLE, SegmentPlan, popcount
from curation_dagster.errors import SpecError
from curation_dagster.io.lake import Lake
from curation_dagster.mixing import splitmix64

#: The key store of an index is named after it with this suffix (`image_hashes_keys`, ...).
KEYS_SUFFIX: Final = "_keys"
#: Bits per key segment: a probe meets about one unrelated entry per 2**21 stored uniform hashes, and a
#: 64-bit hash has three segments, so a lookup within 8 bits expands each by the 254 masks of 2 bits.
SEGMENT_BITS: Final = 21
#: The most masks one segment's probe may expand to (a 21-bit segment within 3 bits: 1,794). Past it
#: (64-bit hashes within 12 bits or more) probing costs more than reading every shard's hashes, which a
#: look-up then does instead.
MAX_BALL: Final = 2048
#: Probes looked up at once: bounds the memory of a lookup (and of its matches) whatever the shard size.
PROBES_PER_LOOKUP: Final = 1 << 21
_LAYOUT: Final = 1
#: The key spaces of image hashes: 2 stores the mirror, centre crop and turns with the whole hashes (in 1
#: they were with the other crops, and met whole hashes only).
_IMAGE_SPACES: Final = 2


def store_plan(bits: int, max_distance: int) -> SegmentPlan:
    """The key layout of an index of `bits`-bit hashes and the radius a lookup within `max_distance`
    needs. The segments depend on the hash width only (about `SEGMENT_BITS` bits each), so a store
    serves any distance; the radius is the pigeonhole's: two hashes within `max_distance` bits differ by
    at most `max_distance // segments` bits in some segment."""
    count = max(1, min(bits, round(bits / SEGMENT_BITS)))
    bounds = tuple(round(index * bits / count) for index in range(count + 1))
    return SegmentPlan(bits, bounds, max_distance // count)


def _ball_size(plan: SegmentPlan) -> int:
    """Masks of the widest segment's probe."""
    width = max(plan.bounds[i + 1] - plan.bounds[i] for i in range(plan.segments))
    return sum(comb(width, flipped) for flipped in range(min(plan.radius, width) + 1))


#: Key spaces of `segment_keys`: image variants compared with whole hashes only (the crops but the centre
#: one), whole-item hashes (every frame of a sequence; an image's whole hash, mirror, centre crop and
#: turns), and from `SPACE_MARGIN` on one per image margin window.
SPACE_OTHER: Final = 0
SPACE_WHOLE: Final = 1
SPACE_MARGIN: Final = 2


def segment_keys(plan: SegmentPlan, values: np.ndarray, segment: int, space: int) -> np.ndarray:
    """The store keys of segment values: one key space per segment and `space`."""
    tag_value = (segment << 1) | space if space < SPACE_MARGIN else (space << 40) | (segment << 1)
    tag = splitmix64(np.array([tag_value], dtype=np.uint64))[0]
    return splitmix64(np.asarray(values, dtype=np.uint64) ^ tag)


@dataclass
class ProbeBlock:
    """Probed hashes and the store keys they look up: `owners[i]` is the position in `hashes` of the
    hash whose mask made `probes[i]`."""

    hashes: np.ndarray
    probes: np.ndarray
    owners: np.ndarray


@dataclass
class MediaPrefetch:
    """What `MediaIndex.prefetch` searched for, before the claim lock: the queries and, per probe block,
    the entries found within reach of a probe (`MediaIndex._within_reach`)."""

    queries: HashSet
    blocks: list[ProbeBlock]
    found: list[Found]


@dataclass
class MediaLookup:
    """What a shard's media items are checked against: every other shard's kept items in the index."""

    index: MediaIndex
    exclude: str | None
    prefetched: MediaPrefetch | None = None

    @property
    def shards(self) -> int:
        """Shards of the index a lookup reads from."""
        return len([shard for shard in self.index.keys.shards() if shard != self.exclude])

    def candidates(self, queries: HashSet) -> Iterator[tuple[HashSet, list[str]]]:
        """For each other shard holding an item that may match one of `queries`, every hash of those
        items (and of no others) and their ids, as `HashSet` and names."""
        if self.index.too_wide():
            for shard in self.index.keys.shards():
                if shard != self.exclude:
                    yield index_hash_set(self.index.read(shard))
            return
        if self.prefetched is not None:  # a superset of `queries`: more candidates, the same matches
            rows = self.index.near_rows(self.prefetched.queries, self.exclude, self.prefetched)
        else:
            rows = self.index.near_rows(queries, self.exclude)
        for shard in sorted(rows):
            yield self.index.items_at(shard, rows[shard])


class MediaIndex:
    """The media hash index `name` (`image_hashes`, `synth_video_hashes`, ...) of one version."""

    def __init__(
        self,
        lake: Lake,
        version: str,
        name: str,
        matcher: MediaMatcher,
        fingerprint: str,
        section: str,
    ) -> None:
        self.lake, self.version, self.name, self.matcher = lake, version, name, matcher
        self.plan = store_plan(matcher.bits, matcher.max_distance)
        layout: dict[str, object] = {"settings": fingerprint, "bounds": self.plan.bounds}
        if isinstance(matcher, ImageMatcher):
            layout["spaces"] = _IMAGE_SPACES
        digest = hashlib.sha256(json.dumps({"layout": _LAYOUT, **layout}).encode()).hexdigest()[:16]
        self.keys = KeyStore(
            lake, version, name + KEYS_SUFFIX, digest, settings=f"{section} settings", payload=True
        )

    # ------------------------------------------------------------------------------------------ write

    def write(self, shard: str, table: pa.Table, merge: bool = True) -> None:
        """A shard's index rows (`media.index_table`): its Parquet record and its keys (`merge`: as
        `KeyStore.put`'s)."""
        self.lake.write_table(self.lake.path(self.version, self.name, shard), table)
        hashes = table.column("hash").to_numpy().astype(np.uint64)
        spaces = self._spaces(table)
        keys, rows = [], []
        for segment in range(self.plan.segments):
            values = self.plan.values(hashes, segment)
            segment_keyed = np.zeros(len(hashes), dtype=np.uint64)
            for space in np.unique(spaces).tolist():
                chosen = spaces == space
                segment_keyed[chosen] = segment_keys(self.plan, values[chosen], segment, space)
            keys.append(segment_keyed)
            rows.append(np.arange(len(hashes), dtype=np.uint32))
        self.keys.put(
            shard,
            np.concatenate(keys) if keys else np.zeros(0, np.uint64),
            np.concatenate(rows) if rows else np.zeros(0, np.uint32),
            np.tile(hashes, self.plan.segments),
            merge=merge,
        )

    def remove(self, shard: str) -> None:
        self.keys.remove(shard)
        self.lake.remove(self.lake.path(self.version, self.name, shard))

    def _spaces(self, table: pa.Table) -> np.ndarray:
        """The key space of each row: every frame of a sequence, and whole-image hashes with the variants
        that meet each other (mirror, centre crop, turns) in `SPACE_WHOLE`, margin hashes in their margin's
        space, the other crops in `SPACE_OTHER`."""
        if "variant" not in table.column_names:
            return np.full(table.num_rows, SPACE_WHOLE, dtype=np.int64)
        variants = table.column("variant").to_numpy().astype(np.int64)
        spaces = _image_probes(variants)
        spaces[meets_variants(variants)] = SPACE_WHOLE
        return spaces

    # ------------------------------------------------------------------------------------------- read

    def check(self, shard: str | None) -> None:
        """Refuse index files of other shards that have no keys in the store (written by an earlier
        release, or with other settings, which `manifest` refuses): a lookup would miss their items."""
        stored = set(self.keys.shards())
        stray = sorted(set(self.lake.list_shards(self.version, self.name)) - stored - {shard})
        if stray:
            raise SpecError(
                f"the {self.name} of shards {', '.join(stray[:3])} have no keys in "
                f"{self.lake.url(self.keys.folder)} (an index of an earlier release); materialize the "
                "deduped stage again for every shard of this version, in arrival order"
            )

    def lookup(self, exclude: str | None, prefetched: MediaPrefetch | None = None) -> MediaLookup:
        """The look-up of every shard's items but `exclude`'s (every shard's, when None); with
        `prefetched`, the candidates of its queries (a superset of what is asked) are found from the
        prefetch and the shards that changed since."""
        return MediaLookup(self, exclude, prefetched)

    def prefetch(self, queries: HashSet, exclude: str | None) -> MediaPrefetch | None:
        """The key-store entries `queries` probe, searched now (with no lock held) so that the look-up
        under the claim lock only searches the shards that arrive in between; None for a distance too
        wide to probe (the look-up reads every shard's index file then)."""
        if self.too_wide():
            return None
        blocks = self._probe_blocks(queries)
        found = [
            self._within_reach(block, self.keys.prefetch(block.probes, exclude, grouped=True))
            for block in blocks
        ]
        return MediaPrefetch(queries, blocks, found)

    def _within_reach(self, block: ProbeBlock, found: Found) -> Found:
        """The entries of `found` (prefetched for `block`) whose hash is within `max_distance` of a hash
        that probed their key: what `near_rows` keeps of them, kept now, with no lock held. A key segment
        meets unrelated stored hashes in proportion to how many are stored (126,571 entries at 1,000
        shards for 100 pictures, a few thousand of them within reach), which the look-up under the claim
        lock then no longer expands to its probes."""
        assert found.groups is not None  # prefetched grouped
        entry, probe = found.groups.probes_of(found.keys)
        near = (
            popcount(block.hashes[block.owners[probe]] ^ found.payloads[entry]) <= self.matcher.max_distance
        )
        keep = np.zeros(len(found.keys), dtype=bool)
        keep[entry[near]] = True
        return found.where(keep)

    def too_wide(self) -> bool:
        """Whether the distance needs more masks per segment than `MAX_BALL`."""
        return _ball_size(self.plan) > MAX_BALL

    def near_rows(
        self, queries: HashSet, exclude: str | None, prefetched: MediaPrefetch | None = None
    ) -> dict[str, set[int]]:
        """By shard, the index rows of the items that hold a hash within `max_distance` of a probed hash
        of `queries` (with a whole-image hash on one side for images); with `prefetched` (made for these
        `queries`), its probe blocks and entries are reused."""
        found: dict[str, set[int]] = {}
        blocks = prefetched.blocks if prefetched is not None else self._probe_blocks(queries)
        for number, block in enumerate(blocks):
            earlier = prefetched.found[number] if prefetched is not None else None
            matches = self.keys.lookup(block.probes, exclude, earlier, ordered_by_probe=False)
            if not len(matches):
                continue
            owners = block.owners[matches.probes]
            near = popcount(block.hashes[owners] ^ matches.payloads) <= self.matcher.max_distance
            names = np.asarray(matches.names, dtype=object)[matches.sources[near]].tolist()
            for shard, row in zip(names, matches.rows[near].tolist(), strict=True):
                found.setdefault(str(shard), set()).add(int(row))
        return found

    def _probe_blocks(self, queries: HashSet) -> list[ProbeBlock]:
        """The keys the probed hashes of `queries` look up, in blocks of about `PROBES_PER_LOOKUP`."""
        hashes, spaces = self._probed(queries)
        balls = [self.plan.ball(segment) for segment in range(self.plan.segments)]
        # Each hash probes its balls in one key space, or two (a whole image's hash).
        probes = np.where(spaces == SPACE_WHOLE, 2, 1) * sum(len(ball) for ball in balls)
        cuts = _block_cuts(probes, PROBES_PER_LOOKUP)
        blocks = []
        for start, stop in itertools.pairwise(cuts):
            block, block_spaces = hashes[start:stop], spaces[start:stop]
            keys, owners = [], []
            for segment, ball in enumerate(balls):
                values = (self.plan.values(block, segment)[:, None] ^ ball[None, :]).reshape(-1)
                owner = np.repeat(np.arange(len(block)), len(ball))
                probe_spaces = np.repeat(block_spaces, len(ball))
                for space in np.unique(block_spaces).tolist():
                    chosen = probe_spaces == space
                    looked: tuple[int, ...]
                    if space == SPACE_WHOLE:  # a whole image: every stored hash but the margins
                        looked = (SPACE_WHOLE, SPACE_OTHER)
                    elif space == SPACE_OTHER:  # another variant, or a frame: `SPACE_WHOLE` only
                        looked = (SPACE_WHOLE,)
                    else:  # a margin: the same margin only
                        looked = (space,)
                    for target in looked:
                        keys.append(segment_keys(self.plan, values[chosen], segment, target))
                        owners.append(owner[chosen])
            blocks.append(ProbeBlock(block, np.concatenate(keys), np.concatenate(owners)))
        return blocks

    def _probed(self, queries: HashSet) -> tuple[np.ndarray, np.ndarray]:
        """The query hashes to look up and what each probes (`_probe_blocks`): an image's whole hash
        as `SPACE_WHOLE`, its other variants as `SPACE_OTHER`, a margin as its own space; every probed
        frame of a sequence as `SPACE_OTHER`."""
        if isinstance(self.matcher, ImageMatcher):
            return queries.hash, _image_probes(queries.unit)
        assert isinstance(self.matcher, SequenceMatcher)
        chosen: list[np.ndarray] = []
        order = np.argsort(queries.item, kind="stable")
        starts = np.searchsorted(queries.item[order], np.arange(len(queries.units) + 1))
        for item in range(len(queries.units)):
            positions = order[starts[item] : starts[item + 1]]
            frames = max(int(queries.units[item]), len(positions))
            unmatched = int(max((1 - self.matcher.min_share) * frames, self.matcher.trim_frames))
            count = min(len(positions), unmatched + 1)
            picks = np.unique(np.linspace(0, len(positions) - 1, count).round().astype(np.int64))
            chosen.append(positions[picks] if count < len(positions) else positions)
        picked = np.concatenate(chosen) if chosen else np.zeros(0, np.int64)
        return queries.hash[picked], np.full(len(picked), SPACE_OTHER, dtype=np.int64)

    def read(self, shard: str) -> pa.Table:
        """A shard's index file."""
        return self.lake.read_table(self.lake.path(self.version, self.name, shard))

    def items_at(self, shard: str, rows: set[int]) -> tuple[HashSet, list[str]]:
        """Every hash of the items that own `rows` of a shard's index file, and the ids of the file."""
        hash_set, ids = index_hash_set(self.read(shard))
        owners = np.unique(hash_set.item[np.fromiter(rows, dtype=np.int64, count=len(rows))])
        keep = np.isin(hash_set.item, owners)
        found = HashSet(
            hash_set.item[keep],
            hash_set.unit[keep],
            hash_set.hash[keep],
            hash_set.units,
            hash_set.colour,
            hash_set.via,
        )
        return found, ids


def _block_cuts(sizes: np.ndarray, limit: int) -> list[int]:
    """Cuts of consecutive items of these sizes into blocks of about `limit` in all: an item goes to the
    block its first unit falls in, so a block passes `limit` by less than its last item's size."""
    starts = np.cumsum(sizes) - sizes
    block = starts // max(limit, 1)
    return [0, *(np.flatnonzero(np.diff(block)) + 1).tolist(), len(sizes)] if len(sizes) else [0]


def _image_probes(variants: np.ndarray) -> np.ndarray:
    """How image hashes probe, by variant code (`_probe_blocks`): whole hashes as `SPACE_WHOLE`, other
    variants as `SPACE_OTHER`, margins as their own space."""
    spaces = np.full(len(variants), SPACE_OTHER, dtype=np.int64)
    spaces[variants == VARIANT_WHOLE] = SPACE_WHOLE
    margin = variants >= VARIANT_MARGIN
    spaces[margin] = SPACE_MARGIN + variants[margin] - VARIANT_MARGIN
    return spaces
