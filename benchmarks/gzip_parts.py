"""A large compressed JSON Lines landing file (`.jsonl.gz`, or `.jsonl.zst` with `--codec zstandard`) read
whole and in parts by the raw stage (`shard_parts`, `compressed_stream`).

The shard is real English (`near_dedup.py`'s corpus, as `text_recipe.py` builds it: Python's documentation
and docstrings, package descriptions and licences found on this machine, about 2.4 KB a document),
compressed by the `gzip` module at level 6 or by zstandard at level 3 (its default). Printed:

- decompressing the whole file with `compressed_stream` (what a part does before its own lines) against
  the codec's own reader (`gzip.open`, `zstandard`'s `stream_reader`), MB of output per second;
- the raw stage (in this process) over the whole file, then over each part of `--bound-mib` compressed
  MiB, each part from the start of the file (the price of decompressing every part's prefix: part i
  decompresses i bounds before its own) and entering the stream at its resume point (`resume_points`;
  the first later part makes the points of all; a zstandard file of one frame has none, and reads as
  from the start): each part's seconds, the longest, and the sum against the whole;
- whether the parts' rows are the whole file's, each way;
- for gzip or zstandard frames, the pass that makes the resume points alone, in MB of text per second.

    python benchmarks/gzip_parts.py                      # 256 MB of text, parts of 16 MiB compressed
    python benchmarks/gzip_parts.py --megabytes 64 --bound-mib 4
    python benchmarks/gzip_parts.py --codec zstandard
    python benchmarks/gzip_parts.py --codec zstandard --frame-mib 1   # a frame a MiB of text, as pzstd
"""

from __future__ import annotations

import argparse
import gzip
import multiprocessing
import os
import shutil
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import zstandard

sys.path.insert(0, str(Path(__file__).resolve().parent))

from text_recipe import write_shard

from curation_dagster.io import stage
from curation_dagster.io.compressed_stream import GZIP, ZSTD, open_compressed_stream
from curation_dagster.io.lake import Lake
from curation_dagster.io.landing import discover_partitions
from curation_dagster.io.resume_points import build_points
from curation_dagster.pipeline import run_stage
from curation_dagster.spec import parse_spec

SPEC = parse_spec({"name": "gz", "modalities": ["text"]})


def decompress_rate(path: Path, codec: str) -> tuple[float, float]:
    """MB of output per second decompressing `path` with `compressed_stream`, then with the codec's own
    reader."""
    rates = []
    for ours in (True, False):
        started, produced = time.perf_counter(), 0
        with _reader(path, codec, ours) as stream:
            while block := stream.read(1 << 20):
                produced += len(block)
        rates.append(produced / 1e6 / (time.perf_counter() - started))
    return rates[0], rates[1]


def _reader(path: Path, codec: str, ours: bool) -> Any:
    """A reader of the decompressed bytes of `path`: ours, or the codec's own."""
    if ours:
        return open_compressed_stream(path, GZIP if codec == "gzip" else ZSTD)[0]
    if codec == "gzip":
        return gzip.open(path, "rb")
    return zstandard.ZstdDecompressor().stream_reader(path.open("rb"), closefd=True)


def uris(lake: Lake, key: str) -> list[str]:
    return [
        uri
        for rejected in (False, True)
        for uri in lake.read_table(lake.path(SPEC.name, "raw", key, rejected=rejected))["uri"].to_pylist()
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--megabytes", type=float, default=256)
    parser.add_argument("--bound-mib", type=float, default=16)
    parser.add_argument("--seed", type=int, default=18)
    parser.add_argument("--codec", choices=["gzip", "zstandard"], default="gzip")
    parser.add_argument(
        "--frame-mib",
        type=float,
        default=0,
        help="zstandard: a frame every this many MiB of text, as pzstd writes (0: one frame)",
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="gzip_parts_") as scratch:
        folder = Path(scratch)
        landing = folder / "landing"
        landing.mkdir()
        plain = folder / "web.jsonl"
        with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as builder:
            _, megabytes = builder.submit(write_shard, plain, args.megabytes, args.seed).result()
        source = landing / ("web.jsonl.gz" if args.codec == "gzip" else "web.jsonl.zst")
        with plain.open("rb") as raw, source.open("wb") as out:
            if args.codec == "gzip":
                with gzip.open(out, "wb", compresslevel=6) as packed:
                    shutil.copyfileobj(raw, packed, 1 << 20)
            elif args.frame_mib:
                while text := raw.read(int(args.frame_mib * 2**20)):
                    out.write(zstandard.ZstdCompressor(level=3).compress(text))
            else:
                zstandard.ZstdCompressor(level=3).copy_stream(raw, out)
        plain.unlink()
        print(f"{source.name}: {os.path.getsize(source) / 1e6:.1f} MB compressed, {megabytes:.1f} MB of text")
        ours, reference = decompress_rate(source, args.codec)
        print(
            f"decompressing: compressed_stream {ours:.0f} MB/s, the codec's reader {reference:.0f} MB/s "
            f"({ours / reference:.2f}x)"
        )
        lake = Lake(folder / "lake")
        started = time.perf_counter()
        run_stage(SPEC, lake, "raw", source.name, source)
        whole = time.perf_counter() - started
        print(f"raw stage, whole file: {whole:.1f} s")
        bound = int(args.bound_mib * 2**20)
        found_whole = sorted(uris(lake, source.name))
        ways = [("from the start", False), ("entering at resume points", True)]
        for label, resume in ways:
            found: list[str] = []
            seconds = time_parts(lake, landing, source, bound, resume, found)
            print(
                f"raw stage, {len(seconds)} parts of {args.bound_mib:g} MiB compressed, {label}: "
                f"{sum(seconds):.1f} s in all ({sum(seconds) / whole:.2f}x the whole file), longest part "
                f"{max(seconds):.1f} s ({max(seconds) / whole:.2f}x)"
            )
            same = sorted(found) == found_whole
            print(f"  parts' rows are the whole file's: {same}")
            if not same:
                raise SystemExit(1)
        if args.codec == "gzip" or args.frame_mib:
            started = time.perf_counter()
            starts = [
                part.start for shard in discover_partitions(landing, bound).values() if (part := shard.part)
            ]
            points = build_points(source, starts[1:], GZIP if args.codec == "gzip" else ZSTD)
            made = time.perf_counter() - started
            print(
                f"making the {len(points)} resume points alone: {made:.2f} s, one pass to the last part's "
                "start "
                f"({megabytes * (starts[-1] / os.path.getsize(source)) / made:.0f} MB/s of text)"
            )


def time_parts(
    lake: Lake, landing: Path, source: Path, bound: int, resume: bool, found: list[str]
) -> list[float]:
    """Each part's seconds through the raw stage, its rows' uris added to `found`; without `resume`, every
    part decompresses from the start of the file (as before resume points), with it the first later part
    makes the points (in its time) and every later part enters at its own."""
    seconds = []
    original = stage.resume_part
    for old in lake.fs.glob(f"{lake.root}/_landing/resume/*/*.points"):
        lake.remove(old)
    if not resume:
        stage.resume_part = lambda lake, source, shard, part: part  # type: ignore[assignment]
    try:
        for key, shard in discover_partitions(landing, bound).items():
            started = time.perf_counter()
            run_stage(SPEC, lake, "raw", key, source, part=shard.part)
            seconds.append(time.perf_counter() - started)
            rows = uris(lake, key)
            found += rows
            print(f"  {key}: {seconds[-1]:.1f} s, {len(rows):,} rows")
    finally:
        stage.resume_part = original  # type: ignore[assignment]
    return seconds


if __name__ == "__main__":
    main()
