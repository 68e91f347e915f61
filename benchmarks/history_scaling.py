"""What adding a shard costs when the version already holds a thousand: the deduped stage of one shard next to
one earlier shard, against the same shard next to 999 earlier shards whose keys fill the version's key
stores (exact, near-duplicate text and image hashes).

The shards are WebDataset tars of real English (`near_dedup.py`'s corpus: Python's documentation and
docstrings, package descriptions, licences, with planted near and exact copies) and pieces of the real
photographs that ship with scikit-learn (random crops and scales, re-encoded as JPEG). Shard `first` is
processed by the stage; the probed shard holds planted copies of its documents and re-encodes of some of
its pictures. The history of the large lake is made from `first`'s own index entries, one copy per shard
with fresh keys (content hashes drawn anew, band keys XORed with a per-shard mask, image hashes drawn
anew), written through the indexes' own writers, so the stores merge their tiers as a real history would.

Printed: the seconds of the probed shard's deduped stage added for the first time next to one earlier shard
and next to `--history` - 1 (median of `--repeats` adds after one warm-up, each to a fresh hard-linked copy
of the lake, each in a process of its own as a Dagster step runs, or all in this one with `--in-process`,
the two lakes taking turns), the ratio (the issue's goal: at most 1.5), the phases of each, and the rows
removed (which must be the same in both lakes: the history holds no duplicates of the probe); then the same
ratio with the merges the add triggers replaced by the history's merges shared out over its shards; then
the same ratio for the probe run again in place, in this process (what this script timed before
2026-12-06's fifth session: a rerun also meets the probe's own earlier keys, merged into a tier in the
large lake).

    python benchmarks/history_scaling.py                         # 1,000 shards of 1,000 documents and 100 images
    python benchmarks/history_scaling.py --history 200 --documents 500 --images 50
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pyarrow as pa
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))

from near_dedup import CorpusBuilder

from curation_dagster.dedup.arrow_files import ArrowFile
from curation_dagster.dedup.exact_index import ExactIndex
from curation_dagster.dedup.indexes import IMAGE_HASHES
from curation_dagster.dedup.near import signature_columns_schema
from curation_dagster.dedup.near_index import NearIndex
from curation_dagster.dedup.plan import media_index, media_steps
from curation_dagster.dedup.word_sketch import WordSketches
from curation_dagster.io.lake import Lake
from curation_dagster.pipeline import run_stage
from curation_dagster.spec import parse_spec

SPEC = parse_spec({"name": "bench", "modalities": ["text", "image"]})
PHOTOS = Path(__import__("sklearn.datasets", fromlist=["x"]).__file__).parent / "images"


def photo_pieces(count: int, seed: int) -> list[bytes]:
    """JPEG crops of the photographs that ship with scikit-learn, at random places and scales."""
    rng = np.random.default_rng(seed)
    photos = [Image.open(path).convert("RGB") for path in sorted(PHOTOS.glob("*.jpg"))]
    pieces = []
    for _ in range(count):
        photo = photos[int(rng.integers(len(photos)))]
        side = int(rng.integers(96, 260))
        left, top = int(rng.integers(0, photo.width - side)), int(rng.integers(0, photo.height - side))
        piece = photo.crop((left, top, left + side, top + side)).resize((side * 2, side * 2))
        pieces.append(_jpeg(piece, 90))
    return pieces


def _jpeg(image: Image.Image, quality: int) -> bytes:
    out = io.BytesIO()
    image.save(out, "JPEG", quality=quality)
    return out.getvalue()


def write_tar(path: Path, texts: list[str], images: list[bytes]) -> None:
    """A WebDataset shard: one `.txt` sample per document, one `.jpg` sample per picture."""
    with tarfile.open(path, "w") as tar:
        members = [(f"t{n:06d}.txt", text.encode()) for n, text in enumerate(texts)]
        members += [(f"i{n:06d}.jpg", data) for n, data in enumerate(images)]
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))


def fill_history(lake: Lake, first: str, shards: int, seed: int) -> tuple[float, float]:
    """`shards` copies of `first`'s index entries with fresh keys, written through the indexes' writers,
    each store merged after each shard as the deduped stage merges them; returns the seconds it took and
    the seconds of those merges."""
    started, merging = time.perf_counter(), 0.0
    rng = np.random.default_rng(seed)
    exact, near = ExactIndex(lake, SPEC.name), NearIndex(lake, SPEC.name, SPEC.dedup.near)
    claims = lake.read_table(lake.path(SPEC.name, "dedup_index", first))
    stored = near.signatures(first)
    columns = stored.select(signature_columns_schema(SPEC.dedup.near).names)
    with ArrowFile(lake, f"{near.keys.folder}/runs/{first}.arrow") as run:
        entries = run.table()
    band_keys = entries.column("key").to_numpy()
    band_rows = entries.column("row").to_numpy()
    (image_step,) = [step for step in media_steps(SPEC) if step.modality == "image"]
    images = media_index(lake, SPEC.name, image_step)
    image_rows = lake.read_table(lake.path(SPEC.name, IMAGE_HASHES, first))
    for number in range(shards):
        shard = f"history_{number:04d}"
        drawn = rng.integers(0, 2**63, size=(claims.num_rows, 2)).tolist()
        hashes = [f"{high:016x}{low:016x}" for high, low in drawn]
        exact.write(shard, hashes, [f"{shard}/{n}" for n in range(len(hashes))], merge=False)
        mask = np.uint64(int(rng.integers(1, 2**63)))
        # What `NearIndex.write` takes of a shard's outcome: signatures, sketches and band keys (indexed
        # already, so `indexed` hands them over).
        bands = SimpleNamespace(indexed=lambda keys=band_keys ^ mask: (keys, band_rows))
        outcome = SimpleNamespace(signatures=columns, sketches=WordSketches.from_table(stored), bands=bands)
        near.write(shard, outcome, merge=False)  # type: ignore[arg-type]
        fresh = rng.integers(0, 2**63, size=image_rows.num_rows, dtype=np.uint64)
        images.write(shard, image_rows.set_column(2, "hash", pa.array(fresh, pa.uint64())), merge=False)
        merge_started = time.perf_counter()
        for store in (exact.keys, near.keys, images.keys):
            store.compact()
        merging += time.perf_counter() - merge_started
    return time.perf_counter() - started, merging


@dataclass
class Adds:
    """What `timed_adds` measured in one lake: the median seconds of the adds, the median without their
    merge phase, the last add's phases and rows removed."""

    seconds: float
    unmerged: float
    phases: dict[str, Any]
    removed: int


def timed_adds(roots: list[Path], shard: str, repeats: int, in_process: bool = False) -> list[Adds]:
    """The deduped stage adding `shard` for the first time to each lake of `roots`, `repeats` times after
    a warm-up, each to a fresh copy of the lake made of hard links (the lake replaces its files by renames
    and never writes into one, so the copy's writes leave the lake as it was) and in a process of its own,
    as a Dagster step runs: its memory, memory maps and parsed manifests start cold. `in_process` times them
    all in this process instead, where each add reuses the memory the last one freed. The lakes take
    turns, so a machine that slows down for a while slows each about alike. A rerun (`timed_runs`) also
    meets the shard's own earlier keys."""
    seconds: list[list[float]] = [[] for _ in roots]
    unmerged: list[list[float]] = [[] for _ in roots]
    last: list[dict[str, Any]] = [{} for _ in roots]
    for attempt in range(repeats + 1):
        for number, root in enumerate(roots):
            copy = root.with_name(f"{root.name}-add{attempt}")
            shutil.copytree(root, copy, copy_function=os.link)
            try:
                if in_process:
                    output = io.StringIO()
                    with contextlib.redirect_stdout(output):
                        one_add(str(copy), shard, warm_up=False)
                    printed = output.getvalue()
                else:
                    command = [sys.executable, __file__, "--add", str(copy), shard]
                    printed = subprocess.run(command, check=True, capture_output=True, text=True).stdout
            finally:
                shutil.rmtree(copy)
            last[number] = json.loads(printed.splitlines()[-1])
            if attempt:  # the first is the warm-up (the lake's files into the page cache)
                seconds[number].append(last[number]["seconds"])
                unmerged[number].append(last[number]["seconds"] - last[number]["phases"]["merge"]["seconds"])
    return [
        Adds(
            statistics.median(seconds[number]),
            statistics.median(unmerged[number]),
            last[number]["phases"],
            last[number]["removed"],
        )
        for number in range(len(roots))
    ]


def one_add(root: str, shard: str, warm_up: bool = True) -> None:
    """Print, as a JSON line, the seconds of the deduped stage of `shard` on the lake at `root`, its phases
    and the rows it removed (what `timed_adds` runs in a process of its own). With `warm_up`, a tiny shard
    goes through the raw and deduped stages first, in a lake of its own, so that what a process does once
    (imports, first calls) is not timed, while the memory the add needs is still fresh to it."""
    if warm_up:
        with tempfile.TemporaryDirectory() as scratch:
            tiny = Path(scratch) / "tiny.tar"
            texts = [f"A few words to warm up with, number {number}, " * 20 for number in range(20)]
            write_tar(tiny, texts, photo_pieces(8, 1))
            for stage in ("raw", "deduped"):
                run_stage(SPEC, Lake(Path(scratch) / "lake"), stage, "tiny.tar", tiny)
    started = time.perf_counter()
    result = run_stage(SPEC, Lake(root), "deduped", shard)
    seconds = time.perf_counter() - started
    print(json.dumps({"seconds": seconds, "phases": result.extra["phases"], "removed": result.rows_rejected}))


def timed_runs(lake: Lake, shard: str, repeats: int) -> tuple[float, dict[str, Any], int]:
    """Median seconds of the deduped stage of `shard` over `repeats` runs after a warm-up, the last run's
    phases and rows removed."""
    run_stage(SPEC, lake, "deduped", shard)
    seconds = []
    for _ in range(repeats):
        started = time.perf_counter()
        result = run_stage(SPEC, lake, "deduped", shard)
        seconds.append(time.perf_counter() - started)
    return statistics.median(seconds), result.extra["phases"], result.rows_rejected


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--history", type=int, default=1000, help="shards in the large lake, the probe included"
    )
    parser.add_argument("--documents", type=int, default=1000, help="documents per shard")
    parser.add_argument("--images", type=int, default=100, help="pictures per shard")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument(
        "--in-process",
        action="store_true",
        help="time the adds in this process, one after another, not each in a process of its own",
    )
    parser.add_argument("--add", nargs=2, metavar=("LAKE", "SHARD"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.add:
        one_add(*args.add)
        return
    corpus = CorpusBuilder(args.seed).corpus(2 * args.documents, 0.2, 0.05)
    pictures = photo_pieces(args.images, args.seed)
    copies = [_jpeg(Image.open(io.BytesIO(data)), 60) for data in pictures[: args.images // 4]]
    with tempfile.TemporaryDirectory() as scratch:
        landing = Path(scratch) / "landing"
        landing.mkdir()
        write_tar(landing / "first.tar", corpus.texts[: args.documents], pictures)
        fresh = photo_pieces(args.images - len(copies), args.seed + 1)
        write_tar(landing / "probe.tar", corpus.texts[args.documents :], copies + fresh)
        small_root = Path(scratch) / "small"
        small = Lake(small_root)
        for shard in ("first.tar", "probe.tar"):
            run_stage(SPEC, small, "raw", shard, landing / shard)
        run_stage(SPEC, small, "deduped", "first.tar")
        large_root = Path(scratch) / "large"
        shutil.copytree(Path(scratch) / "small", large_root)
        large = Lake(large_root)
        built, merging = fill_history(large, "first.tar", args.history - 2, args.seed)
        stores = {
            name: json.loads((large_root / SPEC.name / name / "manifest.json").read_text())
            for name in ("exact_keys", "near_keys", "image_hashes_keys")
        }
        keys = {
            name: sum(entry["keys"] for entry in store["shards"].values()) for name, store in stores.items()
        }
        print(
            f"history: {args.history - 2} shards added in {built:.0f} s, {merging:.1f} s of it merging "
            "tiers; keys per store: " + ", ".join(f"{name} {count:,}" for name, count in keys.items())
        )
        small_adds, large_adds = timed_adds(
            [small_root, large_root], "probe.tar", args.repeats, args.in_process
        )
        one, one_own, one_phases, one_removed = (
            small_adds.seconds,
            small_adds.unmerged,
            small_adds.phases,
            small_adds.removed,
        )
        many, many_own, many_phases, many_removed = (
            large_adds.seconds,
            large_adds.unmerged,
            large_adds.phases,
            large_adds.removed,
        )
        again = {
            name: timed_runs(lake, "probe.tar", args.repeats)[0]
            for name, lake in (("one", small), ("many", large))
        }
    for label, seconds, phases, removed in (
        ("next to 1 shard", one, one_phases, one_removed),
        (f"next to {args.history - 1} shards", many, many_phases, many_removed),
    ):
        detail = ", ".join(f"{name} {phase['seconds']:.2f} s" for name, phase in phases.items())
        print(f"probe shard added {label}: {seconds:.2f} s ({detail}); {removed} rows removed")
    print(f"cost of adding shard {args.history} over shard 2: {many / one:.2f}x (goal at most 1.5x)")
    # The merges a shard triggers fall on every `FANOUT`th shard (shard 1,000 is one), each a merge of
    # fanout runs or tiers: what adding a shard costs over many shards is its work without them plus
    # the history's merges shared out over its shards (none next to 1 shard: 2 shards never merge).
    shared = merging / (args.history - 2)
    print(
        f"the same with merges shared out: {one_own:.2f} s next to 1 shard, {many_own:.2f} s + "
        f"{shared * 1000:.0f} ms of merges a shard next to {args.history - 1}: "
        f"{(many_own + shared) / one_own:.2f}x"
    )
    print(
        f"the probe run again in place: {again['one']:.2f} s next to 1 shard, {again['many']:.2f} s next to "
        f"{args.history - 1}: {again['many'] / again['one']:.2f}x"
    )


if __name__ == "__main__":
    main()
