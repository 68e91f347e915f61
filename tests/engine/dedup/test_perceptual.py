"""Perceptual hashes and the multi-index search (curation_dagster/dedup/perceptual.py), and which images
the image rule matches (curation_dagster/dedup/image_rule.py)."""

from __future__ import annotations

import io

import imagehash
import numpy as np
import pytest
from PIL import Image, ImageOps

from curation_dagster.dedup.image_rule import (
    ImageMatcher,
    add_images,
    colours_agree,
    image_hasher,
    meets_variants,
)
from curation_dagster.dedup.media import HashSet, ShardMedia
from curation_dagster.dedup.perceptual import (
    VARIANT_CENTRE,
    VARIANT_MARGIN,
    VARIANT_MIRROR,
    VARIANT_WHOLE,
    ImageHasher,
    brute_force_pairs,
    hash_grids,
    near_pairs,
    segment_plan,
    variant_codes,
)
from curation_dagster.spec import ImageDedupSettings
from tests.engine.dedup.image_fixtures import CHANGES, crop, jpeg, photo_tiles, scene, watermark

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


def test_reduced_decoding_stays_within_six_bits_of_imagehash_on_full_images() -> None:
    # Ours decodes at 1/8 scale (the JPEG's DC terms), keeps luminance in floating point and clips it at
    # its 2nd and 98th percentiles; imagehash decodes every pixel.
    hasher = ImageHasher(crops=False, mirror=False, rotations=False)
    images = [jpeg(scene(seed, (800, 600))) for seed in range(8)]
    ours = hasher.hash_many(images).hashes[:, 0]
    reference = [int(str(imagehash.phash(Image.open(io.BytesIO(data)))), 16) for data in images]
    distances = [bin(int(a) ^ b).count("1") for a, b in zip(ours, reference, strict=True)]
    assert max(distances) <= 6


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
    assert hashed.errors[0] == "blank: one flat colour"
    assert hashed.errors[1] is not None and hashed.errors[1].startswith("cannot decode")


def test_mirror_hash_is_the_hash_of_the_mirrored_image() -> None:
    hasher = ImageHasher(crops=False)
    image = SCENES[1]
    mirrored_whole = hasher.hash_many([jpeg(ImageOps.mirror(image))]).hashes[0, 0]
    mirror_variant = hasher.hash_many([jpeg(image)]).hashes[0, 1]
    assert bin(int(mirrored_whole ^ mirror_variant)).count("1") <= 2


def smooth_picture(low: tuple[int, int, int], high: tuple[int, int, int]) -> Image.Image:
    """A wallpaper-like picture with little contrast: a diagonal gradient between two close colours and a
    soft, slightly lighter disc (in 8-bit grey its 32 x 32 reduction spans about five levels)."""
    height, width = 400, 640
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    ramp = ((x / width + y / height) / 2)[..., None]
    pixels = np.array(low, np.float32) * (1 - ramp) + np.array(high, np.float32) * ramp
    disc = np.exp(-(((x - 420) / 110) ** 2 + ((y - 160) / 90) ** 2))[..., None]
    return Image.fromarray(np.clip(pixels + 4.0 * disc, 0, 255).astype(np.uint8))


def test_smooth_low_contrast_pictures_are_hashed_and_their_copies_found() -> None:
    faint = smooth_picture((40, 62, 92), (46, 66, 98))
    soft = smooth_picture((30, 50, 90), (60, 80, 120))
    assert ImageHasher().hash_many([jpeg(faint), jpeg(soft)]).usable.tolist() == [True, True]
    for picture in (faint, soft):
        for change in ("resize_half", "upscale", "crop90_centre", "png", "mirror", "rotate_5"):
            assert matched(jpeg(picture, 95), CHANGES[change](picture)), change
    # A gradient this smooth has few hashable frequencies: the other 60-odd of the 64 are noise, which a
    # heavy re-encode redraws (the limit of any 64-bit pHash; benchmarks/README.md, image dedup).


def test_a_recoloured_design_is_not_a_duplicate_though_its_luminance_hashes_match() -> None:
    gray = np.asarray(SCENES[2].convert("L"), np.float32)[..., None]
    warm = Image.fromarray(np.clip(gray * np.array([1.15, 0.95, 0.7]), 0, 255).astype(np.uint8))
    cold = Image.fromarray(np.clip(gray * np.array([0.7, 1.0, 1.25]), 0, 255).astype(np.uint8))
    unchecked = ImageDedupSettings(colour_check=False)
    assert matched(jpeg(warm), jpeg(cold), unchecked)
    assert not matched(jpeg(warm), jpeg(cold))
    # A brighter or lower-contrast copy keeps its colours: still a duplicate.
    assert matched(jpeg(warm), CHANGES["brighter"](warm))
    assert matched(jpeg(warm), CHANGES["contrast"](warm))


def test_colours_agree_under_brightness_and_contrast_changes_not_under_recolouring() -> None:
    colour = np.array([[150.0, 110.0, 70.0]])
    grey = colour.mean()
    assert colours_agree(colour, colour + 25).all()  # a brightness offset
    assert colours_agree(colour, colour * 1.15).all()  # a brightness gain
    assert colours_agree(colour, grey + (colour - grey) * 0.6).all()  # contrast 0.6
    assert not colours_agree(colour, colour[:, ::-1]).any()  # red and blue swapped
    assert not colours_agree(colour, colour * 0.3).any()  # the dark variant of the design
    assert not colours_agree(colour, grey + (colour - grey) * 0.3).any()  # washed out to near grey


def test_the_turned_variants_are_the_hashes_of_the_turned_image() -> None:
    hasher = ImageHasher(mirror=False, crops=False)
    image = SCENES[3]
    turned = hasher.hash_many([jpeg(image.rotate(5, Image.Resampling.BILINEAR))]).hashes[0, 0]
    variant = hasher.hash_many([jpeg(image)]).hashes[0, 1]
    assert bin(int(turned ^ variant)).count("1") <= 4


def test_a_watermark_that_moves_the_whole_hash_is_caught_by_the_margin_windows() -> None:
    picture = smooth_picture((30, 50, 90), (60, 80, 120))
    original, marked = jpeg(picture), jpeg(watermark(picture))
    # The mirrored and turned variants meet each other too (the turns' black corners hide a corner mark).
    assert not matched(original, marked, ImageDedupSettings(margins=False, mirror=False, rotations=False))
    settings = ImageDedupSettings(mirror=False, rotations=False)
    assert matched(original, marked, settings)
    assert matched(original, marked)
    pair = hash_set([original, marked], settings)
    match = ImageMatcher(settings).match(pair.select(np.array([1])), pair.select(np.array([0])))
    detail = ImageMatcher(settings).describe(
        float(match.similarity[0]), int(match.query_unit[0]), int(match.target_unit[0]), "original"
    )
    assert "without the" in detail and "margin" in detail


def test_margin_hashes_meet_the_same_margin_only() -> None:
    settings = ImageDedupSettings()
    codes = variant_codes(True, True, True, True)
    queries, targets = ShardMedia(), ShardMedia()
    rng = np.random.default_rng(5)
    shared = rng.integers(0, 2**63, dtype=np.uint64)
    first = rng.integers(0, 2**63, size=len(codes), dtype=np.uint64)
    second = rng.integers(0, 2**63, size=len(codes), dtype=np.uint64)
    first[codes == VARIANT_MARGIN], second[codes == VARIANT_MARGIN + 1] = shared, shared
    queries.add("q", codes.astype(np.int64), first)
    targets.add("t", codes.astype(np.int64), second)
    assert len(ImageMatcher(settings).match(queries.hash_set(), targets.hash_set()).query) == 0
    second[codes == VARIANT_MARGIN] = shared
    targets = ShardMedia()
    targets.add("t", codes.astype(np.int64), second)
    assert len(ImageMatcher(settings).match(queries.hash_set(), targets.hash_set()).query) == 1


def meeting_match(first: bytes, second: bytes) -> set[int]:
    """The variant codes of the pair that matches two images, or an empty set."""
    settings = ImageDedupSettings()
    pair = hash_set([first, second], settings)
    match = ImageMatcher(settings).match(pair.select(np.array([0])), pair.select(np.array([1])))
    return {int(match.query_unit[0]), int(match.target_unit[0])} if len(match.query) else set()


def test_a_centre_crop_meets_a_mirrored_or_turned_copy_of_the_same_picture() -> None:
    # Neither copy is the original: the cropped copy's mirror meets the mirrored copy's centre crop.
    for image in SCENES:
        pair = meeting_match(CHANGES["crop90_centre"](image), CHANGES["mirror"](image))
        assert pair == {VARIANT_MIRROR, VARIANT_CENTRE}
    # On smooth wallpaper-like pictures a cropped and a turned copy meet through turned variants.
    for colours in (((30, 50, 90), (60, 80, 120)), ((90, 40, 30), (140, 90, 60))):
        image = smooth_picture(*colours)
        pair = meeting_match(CHANGES["crop90_centre"](image), CHANGES["rotate_5"](image))
        assert pair and VARIANT_WHOLE not in pair and bool(meets_variants(np.array(sorted(pair))).all())


def test_a_tie_names_the_pair_that_says_most_about_the_change() -> None:
    # Every variant but the whole hash equal: margin windows and meeting variants tie at 0 bits, and the
    # detail names a margin window (a mark along one side), not two centre crops.
    codes = variant_codes(True, True, True, True).astype(np.int64)
    rng = np.random.default_rng(8)
    shared = rng.integers(0, 2**63, size=len(codes), dtype=np.uint64)
    first, second = shared.copy(), shared.copy()
    first[0], second[0] = np.uint64(0), np.uint64(2**64 - 1)
    queries, targets = ShardMedia(), ShardMedia()
    queries.add("q", codes, first)
    targets.add("t", codes, second)
    matcher = ImageMatcher(ImageDedupSettings())
    match = matcher.match(queries.hash_set(), targets.hash_set())
    assert (int(match.query_unit[0]), int(match.target_unit[0])) == (VARIANT_MARGIN, VARIANT_MARGIN)
    detail = matcher.describe(float(match.similarity[0]), VARIANT_MARGIN, VARIANT_MARGIN, "t")
    assert detail.endswith("(both without the bottom margin)")
