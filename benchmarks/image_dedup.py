"""Near-duplicate images: our combined perceptual hashes against plain pHash (imagehash 4.3.2), in one
process.

Distinct images are procedural scenes (`tests/engine/dedup/image_fixtures.py`: sky over a 1/f-noise
ridge, 1/f colour fields, gradients with texture, shapes, some blurred; natural images have a power
spectrum near 1/f²) plus non-overlapping 160-pixel tiles of the photographs that ship with scikit-learn.
Copies of the first `--changed` scenes get each change users call the same picture (re-encode at JPEG
quality 20, resize, 90% crops, brightness, contrast, watermark, caption, format change, mirror).

Printed: recall per change and false matches among all pairs of distinct images at several distances,
for plain pHash (imagehash.phash on the fully decoded image, whole-image hashes only) and for our
scheme (the whole image, its mirror and nine 90% crop windows; a pair of hashes, one of them whole,
within the distance); images per second per core for imagehash.phash on full-size decodes and for our
hasher; and the multi-index search against brute force on the same hashes. One thread:
`OMP_NUM_THREADS` and friends are set to 1 before numpy is imported; rates are images over process CPU
seconds.

    python benchmarks/image_dedup.py                      # 1,500 scenes, 150 changed, about 3 minutes
    python benchmarks/image_dedup.py --scenes 400 --changed 60
    python benchmarks/image_dedup.py --kind dhash
"""

from __future__ import annotations

import os

os.environ["OMP_NUM_THREADS"] = "1"
os.environ["OPENBLAS_NUM_THREADS"] = "1"
os.environ["MKL_NUM_THREADS"] = "1"
os.environ["NUMEXPR_NUM_THREADS"] = "1"

import argparse
import io
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from curation_dagster.dedup.perceptual import (
    ImageHasher,
    brute_force_pairs,
    near_pairs,
    popcount,
)
from tests.engine.dedup.image_fixtures import CHANGES, jpeg, photo_tiles, scene

DISTANCES = (6, 8, 10, 12)


def imagehash_phash(images: list[bytes]) -> np.ndarray:
    """imagehash.phash of each fully decoded image, as uint64 (first bit most significant)."""
    import imagehash
    from PIL import Image

    return np.array(
        [int(str(imagehash.phash(Image.open(io.BytesIO(data)))), 16) for data in images], np.uint64
    )


def combined_distance(first: np.ndarray, second: np.ndarray) -> np.ndarray:
    """Per row pair of `(n, variants)` hashes, the smallest distance over pairs with a whole hash."""
    distances = popcount(first[:, :, None] ^ second[:, None, :])
    return np.minimum(distances[:, 0, :].min(axis=1), distances[:, :, 0].min(axis=1))


def false_matches(hashes: np.ndarray, distance: Callable[[np.ndarray, np.ndarray], np.ndarray]) -> np.ndarray:
    """The distance of every unordered pair of distinct images."""
    found = []
    for row in range(len(hashes) - 1):
        others = hashes[row + 1 :]
        found.append(distance(np.repeat(hashes[row : row + 1], len(others), axis=0), others))
    return np.concatenate(found)


def rate(function: Callable[[], object], count: int) -> float:
    started = time.process_time()
    function()
    return count / (time.process_time() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--scenes", type=int, default=1500, help="distinct procedural scenes")
    parser.add_argument("--changed", type=int, default=150, help="scenes that get every change")
    parser.add_argument("--kind", choices=["phash", "dhash", "whash"], default="phash")
    parser.add_argument("--throughput-images", type=int, default=200)
    args = parser.parse_args()

    originals = [scene(seed) for seed in range(args.scenes)]
    distinct = [jpeg(image) for image in originals] + [jpeg(tile) for tile in photo_tiles()]
    hasher = ImageHasher(kind=args.kind)
    ours = hasher.hash_many(distinct)
    plain = imagehash_phash(distinct)
    print(
        f"{len(distinct)} distinct images ({args.scenes} scenes, {len(distinct) - args.scenes} photo tiles); "
        f"{int((~ours.usable).sum())} too plain to hash; ours: {args.kind}, {hasher.variants} hashes per image"
    )

    print("\nRecall per change (share of copies within the distance of their original)")
    header = (
        " | ".join(f"plain ≤{d}" for d in DISTANCES) + " | " + " | ".join(f"ours ≤{d}" for d in DISTANCES)
    )
    print(f"| change | {header} |")
    print("| --- |" + " ---: |" * (2 * len(DISTANCES)))
    for name, change in CHANGES.items():
        copies = [change(image) for image in originals[: args.changed]]
        plain_d = popcount(imagehash_phash(copies) ^ plain[: args.changed])
        ours_d = combined_distance(hasher.hash_many(copies).hashes, ours.hashes[: args.changed])
        cells = [f"{(plain_d <= d).mean():.2f}" for d in DISTANCES] + [
            f"{(ours_d <= d).mean():.2f}" for d in DISTANCES
        ]
        print(f"| {name} | " + " | ".join(cells) + " |")

    usable = ours.usable
    plain_pairs = false_matches(plain[usable][:, None], lambda a, b: popcount(a[:, 0] ^ b[:, 0]))
    ours_pairs = false_matches(ours.hashes[usable], combined_distance)
    print(f"\nFalse matches among {len(ours_pairs):,} pairs of distinct images")
    print("| scheme | " + " | ".join(f"≤{d}" for d in DISTANCES) + " |")
    print("| --- |" + " ---: |" * len(DISTANCES))
    for label, pairs in (("plain pHash", plain_pairs), ("ours", ours_pairs)):
        print(
            f"| {label} | "
            + " | ".join(f"{int((pairs <= d).sum())} ({(pairs <= d).mean():.1e})" for d in DISTANCES)
            + " |"
        )

    big = [jpeg(scene(seed, (1024, 768))) for seed in range(10_000, 10_000 + args.throughput_images)]
    pngs = [_png(scene(seed, (1024, 768))) for seed in range(20_000, 20_000 + args.throughput_images // 4)]
    whole_only = ImageHasher(kind=args.kind, mirror=False, crops=False)
    print("\nImages per second per core, 1024 x 768")
    print("| hasher | JPEG q90 | PNG |")
    print("| --- | ---: | ---: |")
    for label, function in (
        ("imagehash.phash, full decode", imagehash_phash),
        (f"ours, whole image only ({args.kind})", whole_only.hash_many),
        (f"ours, whole + mirror + 9 crops ({args.kind})", hasher.hash_many),
    ):
        jpeg_rate = rate(lambda f=function: f(big), len(big))  # type: ignore[misc]
        png_rate = rate(lambda f=function: f(pngs), len(pngs))  # type: ignore[misc]
        print(f"| {label} | {jpeg_rate:,.0f} | {png_rate:,.0f} |")

    flat = ours.hashes[usable].reshape(-1)
    whole = ours.hashes[usable][:, 0]
    started = time.process_time()
    found = near_pairs(whole, flat, 8)
    search_s = time.process_time() - started
    started = time.process_time()
    expected = brute_force_pairs(whole, flat, 8)
    brute_s = time.process_time() - started
    same = all(np.array_equal(a, b) for a, b in zip(found, expected, strict=True))
    print(
        f"\nSearch, {len(whole):,} whole hashes against {len(flat):,} hashes, distance ≤ 8: multi-index "
        f"{search_s:.3f} s, brute force {brute_s:.3f} s, same pairs: {same}"
    )
    rng = np.random.default_rng(0)
    queries = rng.integers(0, 2**63, 20_000, dtype=np.uint64) * np.uint64(2)
    targets = rng.integers(0, 2**63, 1_000_000, dtype=np.uint64) * np.uint64(2)
    started = time.process_time()
    near_pairs(queries, targets, 8)
    print(
        f"Search, 20,000 random hashes against 1,000,000: multi-index {time.process_time() - started:.2f} s "
        f"(brute force would compare {20_000 * 1_000_000:,} pairs)"
    )


def _png(image: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "PNG")  # type: ignore[attr-defined]
    return buffer.getvalue()


if __name__ == "__main__":
    main()
