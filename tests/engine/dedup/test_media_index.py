"""The key-store index of media hashes (curation_dagster/dedup/media_index.py): its look-ups decide
exactly as a pass over every earlier shard's hashes would, for images and sequences and any distance, and
read only the index files of the shards that hold a match."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from curation_dagster.dedup import media_index
from curation_dagster.dedup.image_rule import ImageMatcher, image_index_schema, meets_variants
from curation_dagster.dedup.media import (
    HashSet,
    MediaMatcher,
    MediaOutcome,
    ShardMedia,
    VideoMatcher,
    decide,
    index_hash_set,
    video_index_schema,
)
from curation_dagster.dedup.media_index import MediaIndex, store_plan
from curation_dagster.dedup.perceptual import (
    VARIANT_CENTRE,
    VARIANT_MARGIN,
    VARIANT_MIRROR,
    VARIANT_WHOLE,
    popcount,
    variant_codes,
)
from curation_dagster.errors import SpecError
from curation_dagster.io.lake import Lake
from curation_dagster.spec import ImageDedupSettings, VideoDedupSettings

CODES = variant_codes(mirror=True, crops=True, rotations=True, margins=True)


class Scan:
    """The reference: every other shard's whole index file, one after another."""

    def __init__(self, index: MediaIndex, exclude: str) -> None:
        self.index, self.exclude = index, exclude

    @property
    def shards(self) -> int:
        return len([shard for shard in self.index.keys.shards() if shard != self.exclude])

    def candidates(self, queries: HashSet) -> Iterator[tuple[HashSet, list[str]]]:
        for shard in self.index.keys.shards():
            if shard != self.exclude:
                yield index_hash_set(self.index.read(shard))


def flipped(rng: np.random.Generator, hashes: np.ndarray, bits: int) -> np.ndarray:
    """Each hash with `bits` random bits of its 64 flipped."""
    out = hashes.copy()
    for position in range(len(out)):
        for bit in rng.choice(64, size=bits, replace=False).tolist():
            out[position] ^= np.uint64(1 << bit)
    return out


def built_shards(
    seed: int, shards: int, items: int, share: float, copy, new, images: bool
) -> dict[str, ShardMedia]:
    """Shards of items; each item is, with chance `share`, `copy(rng, earlier hashes)` of an earlier
    item, else `new(rng)`; its units are the 17 image variants, or number its frames."""
    rng = np.random.default_rng(seed)
    made: dict[str, ShardMedia] = {}
    pool: list[np.ndarray] = []
    for number in range(shards):
        media = ShardMedia()
        for item in range(items):
            hashes = (
                copy(rng, pool[int(rng.integers(len(pool)))]) if pool and rng.random() < share else new(rng)
            )
            pool.append(hashes)
            units = CODES.astype(np.int64) if images else np.arange(len(hashes))
            media.add(f"s{number}-{item}", units, hashes)
        made[f"s{number:02d}"] = media
    return made


def image_copy(rng: np.random.Generator, base: np.ndarray, distance: int = 8) -> np.ndarray:
    """A changed copy: a few bits of every variant changed (some just over `distance`), or only the
    variants near the original's whole hash (the rule's whole-variant pairs), or only the margin windows
    near the original's (the rule's same-margin pairs), or only the mirror, centre crop and turns near
    the original's, shuffled among themselves (the rule's pairs of variants that meet each other)."""
    bits = int(rng.integers(0, distance + 3))
    hashes = flipped(rng, base, bits) if rng.random() < 0.5 else base.copy()
    roll = rng.random()
    if roll < 0.3:
        hashes[0] = rng.integers(0, 2**63, dtype=np.uint64)
        hashes[1:] = flipped(rng, base[[0] * (len(base) - 1)], bits)
    elif roll < 0.5:  # a mark along one side: only the margin windows stay near the original's
        kept_near(rng, hashes, base, CODES >= VARIANT_MARGIN, bits)
    elif roll < 0.7:  # a centre crop of a mirrored or turned original: only the meeting variants
        meeting = meets_variants(CODES.astype(np.int64))
        kept_near(
            rng, hashes, base[np.nonzero(meeting)[0][rng.permutation(int(meeting.sum()))]], meeting, bits
        )
    return hashes


def kept_near(
    rng: np.random.Generator, hashes: np.ndarray, near: np.ndarray, chosen: np.ndarray, bits: int
) -> None:
    """`hashes` made random but at `chosen`, where they become `near`'s hashes (those of `chosen`, or one
    per chosen position) with `bits` bits flipped."""
    hashes[~chosen] = rng.integers(0, 2**63, size=int((~chosen).sum()), dtype=np.uint64)
    hashes[chosen] = flipped(rng, near[chosen] if len(near) == len(chosen) else near, bits)


def image_shards(seed: int, shards: int, items: int, distance: int) -> dict[str, ShardMedia]:
    """Shards of images, each with 11 variant hashes; about half of each later shard's images are
    changed copies of an earlier one."""
    return built_shards(
        seed,
        shards,
        items,
        0.5,
        lambda rng, base: image_copy(rng, base, distance),
        lambda rng: rng.integers(0, 2**63, size=len(CODES), dtype=np.uint64),
        images=True,
    )


def video_shards(seed: int, shards: int, items: int, distance: int) -> dict[str, ShardMedia]:
    """Shards of videos of 3-40 frame hashes; later videos are often trims and re-encodes (bit flips)
    of earlier ones."""

    def trim(rng: np.random.Generator, base: np.ndarray) -> np.ndarray:
        keep = max(2, int(len(base) * rng.uniform(0.5, 1.0)))
        start = int(rng.integers(0, len(base) - keep + 1))
        return flipped(rng, base[start : start + keep], int(rng.integers(0, distance + 3)))

    return built_shards(
        seed,
        shards,
        items,
        0.6,
        trim,
        lambda rng: rng.integers(0, 2**63, size=int(rng.integers(3, 41)), dtype=np.uint64),
        images=False,
    )


def run_shards(
    index: MediaIndex, matcher: MediaMatcher, shards: dict[str, ShardMedia], schema, unit: str
) -> dict[str, tuple[MediaOutcome, MediaOutcome]]:
    """Every shard decided in order both ways (the index's look-up, the reference scan); what the
    reference kept is what the index gets."""
    outcomes = {}
    for shard, media in shards.items():
        looked_up = decide(media, matcher, index.lookup(shard), schema, unit)
        scanned = decide(media, matcher, Scan(index, shard), schema, unit)
        index.write(shard, scanned.index)
        outcomes[shard] = (looked_up, scanned)
    return outcomes


def assert_same(outcomes: dict[str, tuple[MediaOutcome, MediaOutcome]]) -> None:
    for looked_up, scanned in outcomes.values():
        assert looked_up.removed == scanned.removed
        assert looked_up.index.equals(scanned.index)
        assert (looked_up.cross_shard, looked_up.checked) == (scanned.cross_shard, scanned.checked)


def decided_alike(index: MediaIndex, shards: dict[str, ShardMedia], schema, unit: str) -> None:
    """The index's look-ups decide every shard as the reference does, and some copies cross shards."""
    outcomes = run_shards(index, index.matcher, shards, schema, unit)
    assert_same(outcomes)
    assert sum(outcome.cross_shard for outcome, _ in outcomes.values()) > 0


@settings(max_examples=8, deadline=None)
@given(seed=st.integers(0, 2**31), distance=st.integers(0, 11))
def test_image_lookups_decide_exactly_as_a_pass_over_every_shard(tmp_path_factory, seed: int, distance: int):
    image = ImageDedupSettings(max_distance=distance)
    index = MediaIndex(
        Lake(tmp_path_factory.mktemp("lake")), "v", "image_hashes", ImageMatcher(image), "f", "i"
    )
    decided_alike(index, image_shards(seed, 5, 30, distance), image_index_schema(image), "variant")


@settings(max_examples=8, deadline=None)
@given(seed=st.integers(0, 2**31), distance=st.integers(0, 11), share=st.sampled_from([0.5, 0.7, 0.9]))
def test_video_lookups_probe_enough_frames_to_decide_exactly(
    tmp_path_factory, seed: int, distance: int, share: float
):
    video = VideoDedupSettings(max_distance=distance, min_matching_share=share, max_trim_s=1.0)
    index = MediaIndex(
        Lake(tmp_path_factory.mktemp("lake")), "v", "video_hashes", VideoMatcher(video), "f", "v"
    )
    decided_alike(index, video_shards(seed, 5, 20, distance), video_index_schema(video), "frame")


def test_a_distance_too_wide_for_the_key_segments_falls_back_to_reading_every_shard(tmp_path: Path) -> None:
    image = ImageDedupSettings(max_distance=32)
    matcher = ImageMatcher(image)
    index = MediaIndex(Lake(tmp_path / "lake"), "v", "image_hashes", matcher, "f", "dedup.image")
    assert index.too_wide() and index.plan.radius == 10  # 2.4 million masks of a 21-bit segment
    assert index.prefetch(HashSet.empty(), "s00") is None
    assert_same(run_shards(index, matcher, image_shards(7, 4, 20, 32), image_index_schema(image), "variant"))


@given(bits=st.sampled_from([16, 36, 49, 64]), data=st.data())
def test_two_hashes_within_the_distance_agree_within_the_radius_on_some_segment(bits: int, data) -> None:
    distance = data.draw(st.integers(0, min(32, bits)))
    plan = store_plan(bits, distance)
    first = data.draw(st.integers(0, 2**bits - 1))
    flips = data.draw(st.sets(st.integers(0, bits - 1), max_size=distance))
    second = first ^ sum(1 << bit for bit in flips)
    pair = np.array([first, second], dtype=np.uint64)
    differences = [
        int(popcount(np.bitwise_xor.reduce(plan.values(pair, s), keepdims=True))[0])
        for s in range(plan.segments)
    ]
    assert min(differences) <= plan.radius


@pytest.mark.parametrize("probes_per_lookup", [1, 30_000])
def test_image_lookups_in_blocks_of_few_probes_decide_as_in_one_block(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, probes_per_lookup: int
) -> None:
    """A shard's probes are looked up in blocks of about `PROBES_PER_LOOKUP` (one block for the shards
    here by default), prefetched and not: the decisions are the reference pass's either way."""
    image = ImageDedupSettings()
    shards = image_shards(11, 4, 30, 8)
    monkeypatch.setattr(media_index, "PROBES_PER_LOOKUP", probes_per_lookup)
    index = MediaIndex(Lake(tmp_path / "lake"), "v", "image_hashes", ImageMatcher(image), "f", "i")
    blocks = [len(index._probe_blocks(media.hash_set())) for media in shards.values()]
    assert min(blocks) > 1
    for shard, media in shards.items():
        prefetched = index.prefetch(media.hash_set(), shard)
        looked_up = decide(
            media, index.matcher, index.lookup(shard, prefetched), image_index_schema(image), "variant"
        )
        scanned = decide(media, index.matcher, Scan(index, shard), image_index_schema(image), "variant")
        assert_same({shard: (looked_up, scanned)})
        index.write(shard, scanned.index)


@settings(max_examples=200, deadline=None)
@given(sizes=st.lists(st.integers(1, 50), max_size=40), limit=st.integers(1, 200))
def test_probe_blocks_cover_every_hash_in_order_each_about_the_limit(sizes: list[int], limit: int) -> None:
    cuts = media_index._block_cuts(np.array(sizes, dtype=np.int64), limit)
    assert cuts[0] == 0 and cuts[-1] == len(sizes) and cuts == sorted(set(cuts))
    for start, stop in itertools.pairwise(cuts):
        assert sum(sizes[start : stop - 1]) < limit  # all but the last hash's probes start below it
    assert len(cuts) - 1 <= -(-sum(sizes) // limit)  # no more blocks than the probes need


def test_a_lookup_reads_the_index_files_of_the_matching_shards_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    image = ImageDedupSettings()
    matcher = ImageMatcher(image)
    index = MediaIndex(Lake(tmp_path / "lake"), "v", "image_hashes", matcher, "f", "dedup.image")
    rng = np.random.default_rng(3)
    history = {
        f"s{number:02d}": rng.integers(0, 2**63, size=(40, len(CODES)), dtype=np.uint64)
        for number in range(24)
    }
    for shard, hashes in history.items():
        media = ShardMedia()
        for item, row in enumerate(hashes):
            media.add(f"{shard}-{item}", CODES.astype(np.int64), row)
        index.write(
            shard, decide(media, matcher, index.lookup(shard), image_index_schema(image), "variant").index
        )
    read: list[str] = []
    original = MediaIndex.read
    monkeypatch.setattr(MediaIndex, "read", lambda self, shard: read.append(shard) or original(self, shard))
    query = ShardMedia()
    query.add("copy", CODES.astype(np.int64), flipped(rng, history["s07"][5], 3))
    query.add("new", CODES.astype(np.int64), rng.integers(0, 2**63, size=len(CODES), dtype=np.uint64))
    outcome = decide(query, matcher, index.lookup("q"), image_index_schema(image), "variant")
    assert {item: decision.dup_of for item, decision in outcome.removed.items()} == {"copy": "s07-5"}
    assert read == ["s07"]
    assert outcome.checked == 24


def test_a_centre_crop_meets_a_mirrored_copy_through_the_index_when_no_whole_hash_is_close(
    tmp_path: Path,
) -> None:
    matcher, schema, index = image_index(tmp_path)
    rng = np.random.default_rng(11)
    mirrored = rng.integers(0, 2**63, size=len(CODES), dtype=np.uint64)
    cropped = rng.integers(0, 2**63, size=len(CODES), dtype=np.uint64)
    # The cropped copy's mirror is the mirrored copy's centre crop; no other pair is near.
    cropped[CODES == VARIANT_MIRROR] = flipped(rng, mirrored[CODES == VARIANT_CENTRE], 4)
    first, second = ShardMedia(), ShardMedia()
    first.add("mirrored", CODES.astype(np.int64), mirrored)
    second.add("cropped", CODES.astype(np.int64), cropped)
    index.write("s1", decide(first, matcher, index.lookup("s1"), schema, "variant").index)
    outcome = decide(second, matcher, index.lookup("s2"), schema, "variant")
    assert outcome.removed["cropped"].dup_of == "mirrored"
    assert "this image mirrored matches mirrored centre-cropped" in outcome.removed["cropped"].detail
    # Past `close_distance` (6) these weaker pairs do not match, though within `max_distance` (8).
    cropped[CODES == VARIANT_MIRROR] = flipped(rng, mirrored[CODES == VARIANT_CENTRE], 7)
    far = ShardMedia()
    far.add("cropped", CODES.astype(np.int64), cropped)
    assert decide(far, matcher, index.lookup("s2"), schema, "variant").removed == {}
    assert not meets_variants(np.array([VARIANT_WHOLE, VARIANT_CENTRE + 1])).any()


def test_an_image_key_store_of_the_earlier_key_spaces_is_refused_with_what_to_do(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Before the mirror, centre crop and turns met each other, they were stored in another key space:
    # a look-up in such a store would miss them, so it is refused, not read.
    monkeypatch.setattr(media_index, "_IMAGE_SPACES", 1)
    matcher, schema, old = image_index(tmp_path)
    media = ShardMedia()
    media.add("a", CODES.astype(np.int64), np.arange(len(CODES), dtype=np.uint64))
    old.write("s1", decide(media, matcher, old.lookup("s1"), schema, "variant").index)
    monkeypatch.undo()
    _, _, index = image_index(tmp_path)
    with pytest.raises(SpecError, match="by an earlier release; materialize the deduped stage again"):
        index.keys.manifest()


def chain(length: int, step: int = 8) -> list[np.ndarray]:
    """Whole-image hashes each `step` bits from the one before and `step` more from the first: a series
    of changes that drifts away (A, B, C, D: B within 8 bits of A, C of B, D of C; C 16 from A)."""
    return [np.array([(1 << (step * position)) - 1], dtype=np.uint64) for position in range(length)]


def whole(media: ShardMedia, item: str, hashes: np.ndarray) -> None:
    media.add(item, np.array([0]), hashes)


def image_index(tmp_path: Path) -> tuple[ImageMatcher, pa.Schema, MediaIndex]:
    """The default image matcher, its index schema and an empty image index in a fresh lake."""
    image = ImageDedupSettings()
    matcher = ImageMatcher(image)
    index = MediaIndex(Lake(tmp_path / "lake"), "v", "image_hashes", matcher, "f", "dedup.image")
    return matcher, image_index_schema(image), index


def test_a_copy_removed_as_a_direct_match_is_indexed_and_catches_later_copies_of_the_same_picture(
    tmp_path: Path,
) -> None:
    matcher, schema, index = image_index(tmp_path)
    a, b, c, d = chain(4)
    first, second, third = ShardMedia(), ShardMedia(), ShardMedia()
    whole(first, "a", a)
    whole(second, "b", b)
    whole(third, "c", c)
    whole(third, "d", d)
    outcomes = {}
    for shard, media in (("s1", first), ("s2", second), ("s3", third)):
        outcomes[shard] = decide(media, matcher, index.lookup(shard), schema, "variant")
        index.write(shard, outcomes[shard].index)
    assert outcomes["s2"].removed["b"].dup_of == "a"
    # c is far from a but near b, a's indexed copy: removed as a duplicate of a, through b.
    assert outcomes["s3"].removed["c"].dup_of == "a"
    assert outcomes["s3"].removed["c"].detail.endswith(", a copy of a")
    assert "near-duplicate image of b" in outcomes["s3"].removed["c"].detail
    # A copy of a copy is not indexed: d, near c only, is kept.
    assert "d" not in outcomes["s3"].removed
    assert dict(zip(*index_table_ids(index.read("s2")), strict=True)) == {"b": "a"}
    assert dict(zip(*index_table_ids(index.read("s3")), strict=True)) == {"d": None}
    # Deciding the first shard again keeps a: s2's copy of a names a, an item of s1 itself.
    again = decide(first, matcher, index.lookup("s1"), schema, "variant")
    assert again.removed == {}


def test_within_a_shard_copies_are_indexed_in_row_order_and_the_same_as_across_shards(
    tmp_path: Path,
) -> None:
    matcher, schema, index = image_index(tmp_path)
    media = ShardMedia()
    for item, hashes in zip("abcd", chain(4), strict=True):
        whole(media, item, hashes)
    outcome = decide(media, matcher, index.lookup("one"), schema, "variant")
    assert {item: decision.dup_of for item, decision in outcome.removed.items()} == {"b": "a", "c": "a"}
    assert dict(zip(*index_table_ids(outcome.index), strict=True)) == {"a": None, "b": "a", "d": None}


def test_colour_variants_are_not_merged_and_copies_keep_their_colour_in_the_index(tmp_path: Path) -> None:
    matcher, schema, index = image_index(tmp_path)
    light, dark = ShardMedia(), ShardMedia()
    light.add("light", np.array([0]), chain(1)[0], np.array([200.0, 180.0, 120.0]))
    dark.add("dark", np.array([0]), chain(1)[0], np.array([60.0, 54.0, 36.0]))
    dark.add("brighter", np.array([0]), chain(1)[0], np.array([220.0, 200.0, 140.0]))
    index.write("s1", decide(light, matcher, index.lookup("s1"), schema, "variant").index)
    outcome = decide(dark, matcher, index.lookup("s2"), schema, "variant")
    assert {item: decision.dup_of for item, decision in outcome.removed.items()} == {"brighter": "light"}
    stored = index_hash_set(index.read("s1"))[0].colour
    assert stored is not None and stored.tolist() == [[200.0, 180.0, 120.0]]


def index_table_ids(table: pa.Table) -> tuple[list[str], list[str | None]]:
    """Per indexed item of an index file, its id and the kept item it is a copy of (None if kept)."""
    ids = table.column("id").to_pylist()
    copies = table.column("copy_of").to_pylist()
    seen: dict[str, str | None] = {}
    for item, kept in zip(ids, copies, strict=True):
        seen.setdefault(item, kept)
    return list(seen), list(seen.values())


def test_a_prefetch_keeps_only_the_entries_within_reach_of_a_probe_of_their_key(tmp_path: Path) -> None:
    """Stored hashes that share a key segment with a probe but are 43 bits from it meet its key and are
    dropped before the claim lock; those within the distance stay; the look-up under the lock decides as
    a pass over every shard does."""
    image = ImageDedupSettings()
    matcher = ImageMatcher(image)
    index = MediaIndex(Lake(tmp_path / "lake"), "v", "image_hashes", matcher, "f", "i")
    shards = image_shards(5, 2, 20, 8)
    (first, media), (second, probe) = shards.items()
    # Every bit but the first key segment's flipped: the same first segment, 43 bits away.
    first_segment = [bit for bit in range(64) if index.plan.values(np.array([1 << bit], np.uint64), 0)[0]]
    outside = np.uint64(sum(1 << bit for bit in range(64) if bit not in first_segment))
    far = ShardMedia()
    for item, (units, hashes) in enumerate(zip(probe.units, probe.hashes, strict=True)):
        far.add(f"far-{item}", units, hashes ^ outside)
    for shard, stored in ((first, media), ("far", far)):
        index.write(
            shard, decide(stored, matcher, Scan(index, shard), image_index_schema(image), "variant").index
        )

    prefetched = index.prefetch(probe.hash_set(), second)
    assert prefetched is not None
    for block, kept in zip(prefetched.blocks, prefetched.found, strict=True):
        everything = index.keys.prefetch(block.probes, second, grouped=True)
        entry, owner = everything.groups.probes_of(everything.keys)
        close = popcount(block.hashes[block.owners[owner]] ^ everything.payloads[entry]) <= image.max_distance
        reach = np.zeros(len(everything.keys), dtype=bool)
        reach[entry[close]] = True
        names = np.asarray(everything.names, dtype=object)
        assert (names[everything.sources[~reach]] == "far").sum() > 0  # far hashes meet probed keys
        expected = sorted(
            zip(names[everything.sources[reach]].tolist(), everything.rows[reach].tolist(), strict=True)
        )
        kept_names = np.asarray(kept.names, dtype=object)
        assert sorted(zip(kept_names[kept.sources].tolist(), kept.rows.tolist(), strict=True)) == expected
    looked_up = decide(probe, matcher, index.lookup(second, prefetched), image_index_schema(image), "variant")
    scanned = decide(probe, matcher, Scan(index, second), image_index_schema(image), "variant")
    assert_same({second: (looked_up, scanned)})
