"""Near-duplicate images on real pictures: the deduped stage end to end against plain pHash (imagehash
4.3.2), in one process.

The pictures are `wallpapers.py`'s: the desktop wallpapers of Debian's packages (photographs, renders,
gradients, abstract shapes) reduced to `--side` pixels, and the two scikit-learn photographs. Pictures of
one family are colourings of one design (light and dark variants): distinct pictures, the hard negatives.
Each picture's original is its JPEG at quality 95; eight changed copies of it are made here (re-encode at
quality 40, half size, a 90% centre crop, 15% brighter, a watermark, WebP, mirrored, turned 5 degrees).

For each `--distances` value and each of `--seeds` seeds the originals and copies are spread at random
over four media-folder shards (file names carry a random rank, so they also arrive in random order within
a shard) and run through the raw and deduped stages in a fresh lake, one shard after another. Printed:

1. per change, the share of copies caught (removed, or kept with no other item of its picture kept),
   mean and minimum over seeds, for the stage and for plain pHash (imagehash.phash of the fully decoded
   image, whole-image hashes only, under the same arrival order: an item is removed when a kept item is
   within the distance, earliest wins); precision (removals whose `dup_of` is the same picture), every
   false removal, the items the stage missed, and the images it could not hash;
2. images per second per core of imagehash.phash and of our hasher (all variants, and the whole image
   only), decode included, on the originals as JPEG and as PNG;
3. the multi-index search against brute force on the real pictures' hashes, and its time on 20,000
   random hashes against 1,000,000.

One thread: `OMP_NUM_THREADS` and friends are set to 1 before numpy is imported; rates are images over
process CPU seconds.

    python benchmarks/image_dedup.py                       # 89 pictures, 3 seeds, ≤8 and ≤10: about 3 minutes
    python benchmarks/image_dedup.py --quick               # 30 pictures, 1 seed: about 1 minute
    python benchmarks/image_dedup.py --distances 8 --seeds 5
"""

from __future__ import annotations

import os

os.environ["OMP_NUM_THREADS"] = "1"
os.environ["OPENBLAS_NUM_THREADS"] = "1"
os.environ["MKL_NUM_THREADS"] = "1"
os.environ["NUMEXPR_NUM_THREADS"] = "1"

import argparse
import inspect
import io
import statistics
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, ImageEnhance, ImageOps

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from wallpapers import Picture, design_files, pictures

from curation_dagster.dedup.perceptual import ImageHasher, brute_force_pairs, near_pairs, popcount
from curation_dagster.io.lake import Lake
from curation_dagster.pipeline import run_stage
from curation_dagster.spec import VersionSpec, parse_spec
from tests.engine.dedup.image_fixtures import crop, encode, jpeg, watermark

SHARDS = 4
ORIGINAL = "original"
REJECT_IMAGE = "dedup.image"
LANCZOS = Image.Resampling.LANCZOS
BICUBIC = Image.Resampling.BICUBIC

#: The changed copies of a picture, each as (file suffix, encoder).
CHANGES: dict[str, tuple[str, Callable[[Image.Image], bytes]]] = {
    "jpeg_q40": (".jpg", lambda im: jpeg(im, 40)),
    "resize_50": (".jpg", lambda im: jpeg(im.resize((im.width // 2, im.height // 2), LANCZOS))),
    "crop_centre_90": (".jpg", lambda im: jpeg(crop(im, 0.9, 0.5, 0.5))),
    "brightness_15": (".jpg", lambda im: jpeg(ImageEnhance.Brightness(im).enhance(1.15))),
    "watermark": (".jpg", lambda im: jpeg(watermark(im))),
    "webp": (".webp", lambda im: encode(im, "WEBP", quality=80)),
    "mirror": (".jpg", lambda im: jpeg(ImageOps.mirror(im))),
    "rotate_5": (".jpg", lambda im: jpeg(im.rotate(5, resample=BICUBIC, expand=False))),
}


@dataclass(frozen=True)
class Item:
    """One file of the benchmark: a picture's original or one changed copy of it."""

    picture: str
    family: str
    change: str
    suffix: str
    data: bytes


UNKNOWN = Item("?", "?", "?", "", b"")


@dataclass(frozen=True)
class Removal:
    """Why a file was removed: the reject reason, the file of its `dup_of` item, `dup_similarity`."""

    reason: str
    dup_of: str | None
    similarity: float | None


@dataclass
class Outcome:
    """What one run decided: the files kept and the files removed."""

    kept: set[str]
    removed: dict[str, Removal]
    not_hashed: int = 0


def make_items(chosen: Sequence[Picture]) -> list[Item]:
    """Every picture's original (JPEG quality 95) and its eight changed copies."""
    items = []
    for picture in chosen:
        image = picture.image
        items.append(Item(picture.name, picture.family, ORIGINAL, ".jpg", jpeg(image, 95)))
        for change, (suffix, make) in CHANGES.items():
            items.append(Item(picture.name, picture.family, change, suffix, make(image)))
    return items


def arrival(items: Sequence[Item], seed: int) -> list[tuple[int, str]]:
    """Each item's (shard, file name), in the order the stage meets them: shard by shard, and within a
    shard by file name, which starts with a random rank."""
    rng = np.random.default_rng(seed)
    ranks = rng.permutation(len(items))
    shards = rng.integers(0, SHARDS, len(items))
    placed = [
        (int(shard), f"{rank:05d}_{index:04d}_{item.change}{item.suffix}")
        for index, (item, rank, shard) in enumerate(zip(items, ranks, shards, strict=True))
    ]
    return sorted(placed)


def file_index(name: str) -> int:
    """The item index a file name carries (`<rank>_<index>_<change>.<suffix>`)."""
    return int(name.split("_")[1])


def run_stages(spec: VersionSpec, items: Sequence[Item], order: list[tuple[int, str]], root: Path) -> Outcome:
    """Write the shards into a landing zone, run raw then deduped for each in order, and read every
    shard's kept and rejected rows back, by file name (each row's `uri` is its file's path)."""
    landing, lake = root / "landing", Lake(root / "lake")
    for shard, name in order:
        folder = landing / f"shard-{shard}"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(items[file_index(name)].data)
    not_hashed = 0
    keys = sorted({f"shard-{shard}" for shard, _ in order})
    for key in keys:
        raw = run_stage(spec, lake, "raw", key, landing / key)
        if raw.rows_rejected:
            raise RuntimeError(f"the raw stage rejected {raw.reasons} in {key}")
        not_hashed += int(run_stage(spec, lake, "deduped", key).extra.get("image_not_fingerprinted", 0))
    file_of: dict[str, str] = {}
    kept: set[str] = set()
    rejected = []
    for key in keys:
        for row in lake.read_table(lake.path(spec.name, "deduped", key), columns=["id", "uri"]).to_pylist():
            file_of[row["id"]] = Path(row["uri"]).name
            kept.add(Path(row["uri"]).name)
        columns = ["id", "uri", "reject_reason", "dup_of", "dup_similarity"]
        for row in lake.read_table(lake.path(spec.name, "deduped", key, rejected=True), columns).to_pylist():
            file_of[row["id"]] = Path(row["uri"]).name
            rejected.append(row)
    removed = {
        Path(row["uri"]).name: Removal(
            row["reject_reason"], file_of.get(row["dup_of"] or ""), row["dup_similarity"]
        )
        for row in rejected
    }
    if len(kept) + len(removed) != len(order):
        raise RuntimeError(
            f"{len(order)} files went in, {len(kept)} kept and {len(removed)} removed came out"
        )
    return Outcome(kept, removed, not_hashed)


def phash_run(hashes: dict[str, int], order: list[tuple[int, str]], max_distance: int) -> Outcome:
    """Plain pHash under the stage's rule: in arrival order, an item is removed when a kept item is within
    `max_distance` bits (`dup_of` the nearest, earliest of equals), else kept. `hashes` is keyed by file
    name without its rank."""
    kept_names: list[str] = []
    kept_hashes = np.zeros(len(order), np.uint64)
    removed: dict[str, Removal] = {}
    for _, name in order:
        value = np.uint64(hashes[name.split("_", 1)[1]])
        if kept_names:
            distances = popcount(kept_hashes[: len(kept_names)] ^ value)
            nearest = int(np.argmin(distances))
            if distances[nearest] <= max_distance:
                similarity = 1 - float(distances[nearest]) / 64
                removed[name] = Removal(REJECT_IMAGE, kept_names[nearest], similarity)
                continue
        kept_hashes[len(kept_names)] = value
        kept_names.append(name)
    return Outcome(set(kept_names), removed)


def missed(items: Sequence[Item], outcome: Outcome) -> list[Item]:
    """The items not caught: kept beside another kept item of their picture."""
    kept = [items[file_index(name)] for name in outcome.kept]
    kept_per_picture = Counter(item.picture for item in kept)
    return [item for item in kept if kept_per_picture[item.picture] > 1]


def caught(items: Sequence[Item], outcome: Outcome) -> dict[str, float]:
    """Per change, the share of items caught: removed, or kept with no other item of its picture kept."""
    total = Counter(item.change for item in items)
    lost = Counter(item.change for item in missed(items, outcome))
    return {change: 1 - lost[change] / count for change, count in total.items()}


#: A false removal: removed picture, its change, dup_of picture, its change, whether the two are colour
#: variants of one design, whether the dup_of item was kept, dup_similarity.
FalseRemoval = tuple[str, str, str, str, bool, bool, float]


def false_removals(items: Sequence[Item], outcome: Outcome) -> tuple[int, list[FalseRemoval]]:
    """The number of near-duplicate image removals, and those whose `dup_of` is another picture."""
    removals = [(name, why) for name, why in outcome.removed.items() if why.reason == REJECT_IMAGE]
    wrong = []
    for name, why in removals:
        item = items[file_index(name)]
        other = items[file_index(why.dup_of)] if why.dup_of else UNKNOWN
        if other.picture != item.picture:
            variant, other_kept = item.family == other.family, why.dup_of in outcome.kept
            similarity = round(why.similarity or 0.0, 3)
            wrong.append(
                (item.picture, item.change, other.picture, other.change, variant, other_kept, similarity)
            )
    return len(removals), wrong


@dataclass
class Tally:
    """One scheme's results at one distance, over the seeds."""

    caught: list[dict[str, float]] = field(default_factory=list)
    removals: int = 0
    wrong: Counter[FalseRemoval] = field(default_factory=Counter)
    missed: Counter[tuple[str, str]] = field(default_factory=Counter)
    """(picture, change) of each item not caught."""
    not_hashed: list[int] = field(default_factory=list)
    other_reasons: Counter[str] = field(default_factory=Counter)

    def add(self, items: Sequence[Item], outcome: Outcome) -> None:
        self.caught.append(caught(items, outcome))
        removals, wrong = false_removals(items, outcome)
        self.removals += removals
        self.wrong.update(wrong)
        self.missed.update((item.picture, item.change) for item in missed(items, outcome))
        self.not_hashed.append(outcome.not_hashed)
        self.other_reasons.update(
            why.reason for why in outcome.removed.values() if why.reason != REJECT_IMAGE
        )


def end_to_end(items: list[Item], distances: list[int], seeds: int) -> dict[tuple[str, int], Tally]:
    """Section 1: the deduped stage (`ours`) and plain pHash (`plain`) on the same arrivals."""
    hashes = imagehash_phash([item.data for item in items])
    by_file = {
        f"{index:04d}_{item.change}{item.suffix}": int(hashes[index]) for index, item in enumerate(items)
    }
    tallies: dict[tuple[str, int], Tally] = {}
    for distance in distances:
        spec = parse_spec(
            {"name": "bench", "modalities": ["image"], "dedup": {"image": {"max_distance": distance}}}
        )
        ours = tallies[("ours", distance)] = Tally()
        plain = tallies[("plain", distance)] = Tally()
        for seed in range(seeds):
            order = arrival(items, seed)
            with tempfile.TemporaryDirectory() as scratch:
                ours.add(items, run_stages(spec, items, order, Path(scratch)))
            plain.add(items, phash_run(by_file, order, distance))
    return tallies


def print_end_to_end(tallies: dict[tuple[str, int], Tally], distances: list[int], seeds: int) -> None:
    """Section 1's tables: caught per change, precision, false removals, misses, unhashed images."""
    header = " | ".join(f"ours ≤{d} | imagehash.phash ≤{d}" for d in distances)
    print(f"\nCaught per change through the deduped stage: mean over {seeds} seed(s), minimum in brackets")
    print(f"| change | {header} |")
    print("| --- |" + " ---: |" * (2 * len(distances)))
    for change in [ORIGINAL, *CHANGES]:
        cells = [
            mean_min([run[change] for run in tallies[(label, d)].caught])
            for d in distances
            for label in ("ours", "plain")
        ]
        print(f"| {change} | " + " | ".join(cells) + " |")
    print("\nPrecision: near-duplicate image removals whose dup_of is the same picture (all seeds)")
    print("| scheme | " + " | ".join(f"≤{d}" for d in distances) + " |")
    print("| --- |" + " ---: |" * len(distances))
    for label, name in (("ours", "ours (deduped stage)"), ("plain", "imagehash.phash")):
        cells = []
        for d in distances:
            tally = tallies[(label, d)]
            false = sum(tally.wrong.values())
            variants = sum(count for wrong, count in tally.wrong.items() if wrong[4])
            cells.append(
                f"{1 - false / max(tally.removals, 1):.4f} ({false} false of {tally.removals:,}, "
                f"{variants} of them colour variants)"
            )
        print(f"| {name} | " + " | ".join(cells) + " |")
    print("\nFalse removals of the deduped stage (removed item → its dup_of)")
    if not any(tallies[("ours", d)].wrong for d in distances):
        print("none")
    else:
        print(
            "| distance | removed | change | dup_of | change | colour variant | dup_of kept | similarity | seeds |"
        )
        print("| ---: | --- | --- | --- | --- | --- | --- | ---: | ---: |")
        for d in distances:
            for wrong, count in sorted(tallies[("ours", d)].wrong.items()):
                picture, change, other, other_change, variant, other_kept, similarity = wrong
                flags = " | ".join("yes" if flag else "no" for flag in (variant, other_kept))
                print(
                    f"| {d} | {picture} | {change} | {other} | {other_change} | {flags} | {similarity:.3f} | "
                    f"{count} |"
                )
    print("\nItems the deduped stage kept beside another kept item of their picture (seeds in brackets)")
    for d in distances:
        by_picture: dict[str, list[str]] = {}
        for (picture, change), count in sorted(tallies[("ours", d)].missed.items()):
            by_picture.setdefault(picture, []).append(f"{change} ({count})")
        listed = "; ".join(f"{picture}: {', '.join(changes)}" for picture, changes in by_picture.items())
        print(f"- ≤{d}: {listed or 'none'}")
    counts = "; ".join(f"≤{d}: {', '.join(map(str, tallies[('ours', d)].not_hashed))}" for d in distances)
    print(f"\nImages the stage could not hash (image_not_fingerprinted over all shards, per run): {counts}")
    reasons: Counter[str] = Counter()
    for d in distances:
        reasons.update(tallies[("ours", d)].other_reasons)
    if reasons:
        print("Other removals by the stage: " + ", ".join(f"{reason} {n}" for reason, n in reasons.items()))


def imagehash_phash(images: Sequence[bytes]) -> np.ndarray:
    """imagehash.phash of each fully decoded image, as uint64 (first bit most significant)."""
    import imagehash

    return np.array(
        [int(str(imagehash.phash(Image.open(io.BytesIO(data)))), 16) for data in images], np.uint64
    )


def rate(function: Callable[[], object], count: int, repeats: int = 3) -> float:
    """Images per process CPU second, the best of `repeats` runs."""
    best = float("inf")
    for _ in range(repeats):
        started = time.process_time()
        function()
        best = min(best, time.process_time() - started)
    return count / best


def png(image: Image.Image) -> bytes:
    return encode(image, "PNG")


def whole_only_hasher() -> tuple[str, ImageHasher]:
    """Our hasher with every variant switch it has (a keyword whose default is True: mirror, crops,
    rotations, ...) turned off, and the names of those switches."""
    switches = [name for name, p in inspect.signature(ImageHasher).parameters.items() if p.default is True]
    return ", ".join(switches), ImageHasher(**dict.fromkeys(switches, False))  # type: ignore[arg-type]


def mean_min(values: list[float]) -> str:
    return f"{statistics.mean(values):.2f}" + (f" (min {min(values):.2f})" if len(values) > 1 else "")


def speed(chosen: Sequence[Picture], items: Sequence[Item]) -> None:
    """Section 2: images per second per core, decode included."""
    jpegs = [item.data for item in items if item.change == ORIGINAL]
    pngs = [png(picture.image) for picture in chosen]
    extras, whole_only = whole_only_hasher()
    full = ImageHasher()
    rows: dict[str, tuple[float, float]] = {}
    for label, function in (
        ("imagehash.phash, full decode", imagehash_phash),
        (f"ours, all {full.variants} variants", full.hash_many),
        (f"ours, whole image only ({extras} off)", whole_only.hash_many),
    ):
        rows[label] = (
            rate(lambda f=function: f(jpegs), len(jpegs)),  # type: ignore[misc]
            rate(lambda f=function: f(pngs), len(pngs)),  # type: ignore[misc]
        )
    print(f"\nImages per second per core, {len(jpegs)} originals at up to {max(chosen[0].image.size)} px")
    print("| hasher | JPEG q95 | PNG | JPEG ÷ imagehash.phash | PNG ÷ imagehash.phash |")
    print("| --- | ---: | ---: | ---: | ---: |")
    base_jpeg, base_png = rows["imagehash.phash, full decode"]
    for label, (jpeg_rate, png_rate) in rows.items():
        print(
            f"| {label} | {jpeg_rate:,.0f} | {png_rate:,.0f} | "
            f"{jpeg_rate / base_jpeg:.2f}x | {png_rate / base_png:.2f}x |"
        )
    print("Goal: ours (all variants) at least 2x imagehash.phash per core.")


def search(hashes: np.ndarray, distances: list[int]) -> None:
    """Section 3: the multi-index search against brute force on the pictures' hashes, and at scale."""
    flat, whole = hashes.reshape(-1), hashes[:, 0]
    print()
    for distance in distances:
        started = time.process_time()
        pairs = near_pairs(whole, flat, distance)
        search_s = time.process_time() - started
        started = time.process_time()
        expected = brute_force_pairs(whole, flat, distance)
        brute_s = time.process_time() - started
        same = all(np.array_equal(a, b) for a, b in zip(pairs, expected, strict=True))
        print(
            f"Search, {len(whole):,} whole hashes against {len(flat):,} hashes, distance ≤ {distance}: "
            f"multi-index {search_s:.3f} s, brute force {brute_s:.3f} s, same pairs: {same}"
        )
    rng = np.random.default_rng(0)
    queries = rng.integers(0, 2**63, 20_000, dtype=np.uint64) * np.uint64(2)
    targets = rng.integers(0, 2**63, 1_000_000, dtype=np.uint64) * np.uint64(2)
    started = time.process_time()
    near_pairs(queries, targets, 8)
    print(
        f"Search, 20,000 random hashes against 1,000,000, distance ≤ 8: multi-index "
        f"{time.process_time() - started:.2f} s (brute force would compare {20_000 * 1_000_000:,} pairs)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--distances", type=int, nargs="+", default=[8, 10], help="stage max_distance values")
    parser.add_argument("--seeds", type=int, default=3, help="random arrivals per distance")
    parser.add_argument("--side", type=int, default=1024, help="pixels on a wallpaper's longer side")
    parser.add_argument("--quick", action="store_true", help="the first 30 pictures and 1 seed")
    parser.add_argument("--speed-only", action="store_true", help="section 2 alone: hashing speed")
    args = parser.parse_args()

    every = pictures(args.side)
    chosen = every[:30] if args.quick else every
    seeds = 1 if args.quick else args.seeds
    families = Counter(picture.family for picture in chosen)
    shown = {picture.name for picture in every}
    skipped = [name for name, _, _ in design_files() if name not in shown]
    print(
        f"{len(chosen)} pictures (of {len(every)}), {len(families)} designs, "
        f"{sum(count > 1 for count in families.values())} with colour variants "
        f"({sum(count for count in families.values() if count > 1)} pictures); "
        f"{len(CHANGES)} changed copies each, {SHARDS} shards, {seeds} seed(s)"
    )
    print("Skipped as one flat colour: " + (", ".join(skipped) or "none"))
    items = make_items(chosen)
    if args.speed_only:
        speed(chosen, items)
        return
    ours = ImageHasher().hash_many([item.data for item in items])
    errors = [
        f"{item.picture} ({item.change}): {error}"
        for item, error in zip(items, ours.errors, strict=True)
        if error
    ]
    print("ImageHasher() cannot hash: " + ("; ".join(errors) or "none"))

    print_end_to_end(end_to_end(items, args.distances, seeds), args.distances, seeds)
    speed(chosen, items)
    search(ours.hashes[ours.usable], args.distances)


if __name__ == "__main__":
    main()
