"""Perceptual hashes and the multi-index search (curation_dagster/dedup/perceptual.py), and which images
the image rule matches (curation_dagster/dedup/media.py)."""

from __future__ import annotations

import io

import imagehash
import numpy as np
import pytest
from PIL import Image, ImageOps

from curation_dagster.dedup.media import HashSet, ImageMatcher, ShardMedia, add_images, image_hasher
from curation_dagster.dedup.perceptual import (
    ImageHasher,
    brute_force_pairs,
    hash_grids,
    near_pairs,
    segment_plan,
)
from curation_dagster.spec import ImageDedupSettings
from tests.engine.dedup.image_fixtures import CHANGES, crop, jpeg, photo_tiles, scene

SCENES = [scene(seed) for seed in range(6)]


def hash_set(images: list[bytes], settings: ImageDedupSettings | None = None) -> HashSet:
    media = ShardMedia()
    hasher, codes = image_hasher(settings or ImageDedupSettings())
    add_images(media, hasher, codes, [str(index) for index in range(len(images))], images)
    assert media.not_hashed == 0
    return media.hash_set()


def matched(first: bytes, second: bytes, settings: ImageDedupSettings | None = None) -> bool:
    settings = settings or ImageDedupSettings()
    pair = hash_set([first, second], settings)
    match = ImageMatcher(settings).match(pair.select(np.array([0])), pair.select(np.array([1])))
    return len(match.query) == 1


@pytest.mark.parametrize("kind", ["phash", "dhash"])
def test_hashes_equal_imagehash_on_the_same_pixels(kind: str) -> None:
    for seed in range(5):
        gray = scene(seed).convert("L")
        if kind == "phash":
            grid = gray.resize((32, 32), Image.Resampling.LANCZOS)
            reference = imagehash.phash(gray)
        else:
            grid = gray.resize((9, 8), Image.Resampling.LANCZOS)
            reference = imagehash.dhash(gray)
        ours = hash_grids(np.asarray(grid, dtype=np.float32)[None], kind, 8)[0]
        assert int(ours) == int(str(reference), 16)


def test_reduced_decoding_stays_within_two_bits_of_imagehash_on_full_images() -> None:
    hasher = ImageHasher(crops=False, mirror=False)
    images = [jpeg(scene(seed, (800, 600))) for seed in range(8)]
    ours = hasher.hash_many(images).hashes[:, 0]
    reference = [int(str(imagehash.phash(Image.open(io.BytesIO(data)))), 16) for data in images]
    distances = [bin(int(a) ^ b).count("1") for a, b in zip(ours, reference, strict=True)]
    assert max(distances) <= 2


@pytest.mark.parametrize(
    ("max_distance", "bits", "segments"), [(8, 64, None), (8, 64, 9), (10, 64, 4), (4, 36, None)]
)
def test_multi_index_search_equals_brute_force_on_random_hashes(
    max_distance: int, bits: int, segments: int | None
) -> None:
    rng = np.random.default_rng(max_distance + bits)
    mask = np.uint64((1 << bits) - 1)
    queries = rng.integers(0, 2**63, 400, dtype=np.uint64) * np.uint64(2) & mask
    # Plant neighbours at every distance up to max_distance + 2 so both sides of the threshold occur.
    near = []
    for index, query in enumerate(queries[:200]):
        flips = rng.choice(bits, size=index % (max_distance + 3), replace=False)
        near.append(query ^ np.uint64(sum(1 << int(bit) for bit in flips)))
    targets = np.concatenate(
        [np.array(near, dtype=np.uint64), rng.integers(0, 2**63, 600, dtype=np.uint64) & mask]
    )
    found = near_pairs(queries, targets, max_distance, bits, segments=segments)
    expected = brute_force_pairs(queries, targets, max_distance)
    assert len(expected[0]) >= 100
    for ours, reference in zip(found, expected, strict=True):
        assert np.array_equal(ours, reference)


def test_the_plan_never_compares_all_pairs() -> None:
    plan = segment_plan(64, 8, queries=100_000, targets=1_000_000)
    assert plan.segments > 1
    assert plan.radius < 8


@pytest.mark.parametrize("change", sorted(CHANGES))
def test_each_kind_of_change_is_found(change: str) -> None:
    for image in SCENES:
        assert matched(jpeg(image), CHANGES[change](image)), change


@pytest.mark.parametrize("change", ["mirror", "crop90_corner"])
def test_plain_phash_misses_mirrors_and_corner_crops_that_the_variants_find(change: str) -> None:
    plain = ImageDedupSettings(mirror=False, crops=False)
    misses = sum(not matched(jpeg(image), CHANGES[change](image), plain) for image in SCENES)
    assert misses >= len(SCENES) // 2


def test_a_crop_is_found_whichever_of_the_two_arrives_first() -> None:
    original, cropped = jpeg(SCENES[0]), jpeg(crop(SCENES[0], 0.9, 0.0, 1.0))
    assert matched(original, cropped)
    assert matched(cropped, original)


def test_distinct_images_are_never_merged() -> None:
    pictures = [jpeg(scene(seed, (320, 240))) for seed in range(100, 300)] + [
        jpeg(tile) for tile in photo_tiles()
    ]
    settings = ImageDedupSettings()
    hashes = hash_set(pictures, settings)
    match = ImageMatcher(settings).match(hashes, hashes)
    assert [(q, t) for q, t in zip(match.query, match.target, strict=True) if q != t] == []


def test_flat_and_undecodable_images_are_not_hashed() -> None:
    flat = jpeg(Image.new("RGB", (64, 64), (90, 90, 90)))
    hashed = ImageHasher().hash_many([flat, b"not an image", jpeg(SCENES[0])])
    assert hashed.usable.tolist() == [False, False, True]
    assert hashed.errors[0] == "too plain to hash"
    assert hashed.errors[1] is not None and hashed.errors[1].startswith("cannot decode")


def test_mirror_hash_is_the_hash_of_the_mirrored_image() -> None:
    hasher = ImageHasher(crops=False)
    image = SCENES[1]
    mirrored_whole = hasher.hash_many([jpeg(ImageOps.mirror(image))]).hashes[0, 0]
    mirror_variant = hasher.hash_many([jpeg(image)]).hashes[0, 1]
    assert bin(int(mirrored_whole ^ mirror_variant)).count("1") <= 2
