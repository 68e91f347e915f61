"""A large `.jsonl.gz` landing file read whole and in parts by the raw stage (`shard_parts`, `gzip_stream`).

The shard is real English (`near_dedup.py`'s corpus, as `text_recipe.py` builds it: Python's documentation
and docstrings, package descriptions and licences found on this machine, about 2.4 KB a document),
compressed by the `gzip` module at level 6. Printed:

- decompressing the whole file with `gzip_stream` (what a part does before its own lines) against the
  standard library's `gzip.open` (the reference), MB of output per second;
- the raw stage (in this process) over the whole file, then over each part of `--bound-mib` compressed
  MiB: each part's seconds, the longest, and the sum against the whole (the price of decompressing every
  part's prefix: part i decompresses i bounds before its own);
- whether the parts' rows are the whole file's (ids aside, which name the part).

    python benchmarks/gzip_parts.py                      # 256 MB of text, parts of 16 MiB compressed
    python benchmarks/gzip_parts.py --megabytes 64 --bound-mib 4
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

sys.path.insert(0, str(Path(__file__).resolve().parent))

from text_recipe import write_shard

from curation_dagster.io.gzip_stream import open_gzip_stream
from curation_dagster.io.lake import Lake
from curation_dagster.io.landing import discover_partitions
from curation_dagster.pipeline import run_stage
from curation_dagster.spec import parse_spec

SPEC = parse_spec({"name": "gz", "modalities": ["text"]})


def decompress_rate(path: Path) -> tuple[float, float]:
    """MB of output per second decompressing `path` with `gzip_stream`, then with `gzip.open`."""
    rates = []
    for ours in (True, False):
        started, produced = time.perf_counter(), 0
        with open_gzip_stream(path)[0] if ours else gzip.open(path, "rb") as stream:
            while block := stream.read(1 << 20):
                produced += len(block)
        rates.append(produced / 1e6 / (time.perf_counter() - started))
    return rates[0], rates[1]


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
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="gzip_parts_") as scratch:
        folder = Path(scratch)
        landing = folder / "landing"
        landing.mkdir()
        plain = folder / "web.jsonl"
        with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as builder:
            _, megabytes = builder.submit(write_shard, plain, args.megabytes, args.seed).result()
        source = landing / "web.jsonl.gz"
        with plain.open("rb") as raw, gzip.open(source, "wb", compresslevel=6) as packed:
            shutil.copyfileobj(raw, packed, 1 << 20)
        plain.unlink()
        print(f"{source.name}: {os.path.getsize(source) / 1e6:.1f} MB compressed, {megabytes:.1f} MB of text")
        ours, reference = decompress_rate(source)
        print(
            f"decompressing: gzip_stream {ours:.0f} MB/s, gzip.open {reference:.0f} MB/s "
            f"({ours / reference:.2f}x the standard library)"
        )
        lake = Lake(folder / "lake")
        started = time.perf_counter()
        run_stage(SPEC, lake, "raw", source.name, source)
        whole = time.perf_counter() - started
        print(f"raw stage, whole file: {whole:.1f} s")
        bound = int(args.bound_mib * 2**20)
        seconds, found = [], []
        for key, shard in discover_partitions(landing, bound).items():
            started = time.perf_counter()
            run_stage(SPEC, lake, "raw", key, source, part=shard.part)
            seconds.append(time.perf_counter() - started)
            found += uris(lake, key)
            print(f"  {key}: {seconds[-1]:.1f} s, {len(uris(lake, key)):,} rows")
        print(
            f"raw stage, {len(seconds)} parts of {args.bound_mib:g} MiB compressed: {sum(seconds):.1f} s in all "
            f"({sum(seconds) / whole:.2f}x the whole file), longest part {max(seconds):.1f} s "
            f"({max(seconds) / whole:.2f}x)"
        )
        same = sorted(found) == sorted(uris(lake, source.name))
        print(f"parts' rows are the whole file's: {same}")
        if not same:
            raise SystemExit(1)


if __name__ == "__main__":
    main()
