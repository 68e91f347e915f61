"""The deduped stage of several shards of one version, one run at a time and two at a time: compute in
parallel, claim in order.

The corpus is `near_dedup.py`'s, built from real English on this machine (Python's documentation and
docstrings, package descriptions, licences) with planted near and exact duplicates spread over the shards.
Each shard's deduped stage runs in its own process, as a Dagster run would; with `--runs 2` two such
processes run at a time. The script prints the wall time of all shards for one and for two runs at a time
and the ratio (the issue's goal: two runs at least 1.7 times one), each phase's share of a shard's time
(compute with no lock, waiting for the claim lock, claim, output), and recall and precision of both
against the planted duplicates.

    python benchmarks/concurrent_dedup.py                     # 8 shards of 8,000 documents
    python benchmarks/concurrent_dedup.py --shards 4 --documents 3000
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from near_dedup import Corpus, CorpusBuilder

from curation_dagster.io.lake import Lake
from curation_dagster.pipeline import run_stage
from curation_dagster.schema import item_id
from curation_dagster.spec import parse_spec

SPEC = parse_spec({"name": "bench", "modalities": ["text"]})
CHILD = """
import json, sys
from curation_dagster.io.lake import Lake
from curation_dagster.pipeline import run_stage
from curation_dagster.spec import parse_spec
spec, root, shard = json.loads(sys.argv[1])
result = run_stage(parse_spec(spec), Lake(root), "deduped", shard)
print(json.dumps(result.extra["phases"]))
"""


def write_shards(corpus: Corpus, shards: int, folder: Path) -> list[str]:
    """The corpus cut into `shards` JSON Lines files in corpus order (so an original lands before its
    planted variants in most cases, across shards as well as within them)."""
    folder.mkdir(parents=True, exist_ok=True)
    size = -(-len(corpus.texts) // shards)
    names = []
    for number in range(shards):
        name = f"shard_{number:03d}.jsonl"
        chunk = corpus.texts[number * size : (number + 1) * size]
        (folder / name).write_text("".join(json.dumps({"text": text}) + "\n" for text in chunk))
        names.append(name)
    return names


def dedup_in_child(lake: Lake, shard: str) -> dict[str, Any]:
    arguments = json.dumps([SPEC.model_dump(mode="json"), lake.root, shard])
    done = subprocess.run(
        [sys.executable, "-c", CHILD, arguments],
        capture_output=True,
        text=True,
        check=True,
        env=dict(os.environ),
    )
    phases: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return phases


def run(landing: Path, names: list[str], folder: Path, runs: int) -> tuple[float, list[dict[str, Any]], Lake]:
    """Raw for every shard (not timed), then deduped with `runs` processes at a time: wall seconds."""
    lake = Lake(folder)
    for name in names:
        run_stage(SPEC, lake, "raw", name, landing / name)
    started = time.perf_counter()
    with ThreadPoolExecutor(runs) as pool:
        phases = list(pool.map(lambda name: dedup_in_child(lake, name), names))
    return time.perf_counter() - started, phases, lake


def quality(lake: Lake, names: list[str], corpus: Corpus) -> tuple[float, float]:
    """Recall: the share of planted groups (an original and its variants) of which exactly one item is
    kept, whichever claimed first. Precision: the share of removed items that belong to a planted group."""
    size = -(-len(corpus.texts) // len(names))
    position = {
        item_id(name, f"L{line + 1}"): number * size + line
        for number, name in enumerate(names)
        for line in range(size)
    }
    removed = {
        position[row["id"]]
        for name in names
        for row in lake.read_table(
            lake.path(SPEC.name, "deduped", name, rejected=True), columns=["id"]
        ).to_pylist()
    }
    groups: dict[int, set[int]] = {}
    for variant, plant in corpus.plants.items():
        groups.setdefault(plant.original, {plant.original}).add(variant)
    one_survivor = sum(len(group - removed) == 1 for group in groups.values())
    members = {member for group in groups.values() for member in group}
    return one_survivor / max(len(groups), 1), len(removed & members) / max(len(removed), 1)


def shares(phases: list[dict[str, Any]]) -> dict[str, float]:
    total = sum(phase["seconds"] for shard in phases for phase in shard.values())
    names = {name for shard in phases for name in shard}
    return {
        name: sum(shard[name]["seconds"] for shard in phases if name in shard) / total
        for name in sorted(names)
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shards", type=int, default=8)
    parser.add_argument("--documents", type=int, default=8000, help="documents per shard")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    corpus = CorpusBuilder(args.seed).corpus(args.shards * args.documents, 0.15, 0.02)
    print(
        f"corpus: {len(corpus.texts)} documents ({corpus.megabytes():.1f} MB), {len(corpus.plants)} planted"
    )
    with tempfile.TemporaryDirectory() as scratch:
        landing = Path(scratch) / "landing"
        names = write_shards(corpus, args.shards, landing)
        results = {}
        for runs in (1, 2):
            seconds, phases, lake = run(landing, names, Path(scratch) / f"lake_{runs}", runs)
            recall, precision = quality(lake, names, corpus)
            results[runs] = seconds
            share_text = ", ".join(f"{name} {share:.0%}" for name, share in shares(phases).items())
            print(
                f"{runs} run(s) at a time: {seconds:.1f} s for {args.shards} shards; "
                f"groups with one survivor {recall:.4f}, removals in a planted group {precision:.4f}; time per phase: {share_text}"
            )
    print(
        f"speed-up of two runs at a time over one: {results[1] / results[2]:.2f}x (goal 1.7x, {os.cpu_count()} cores)"
    )


if __name__ == "__main__":
    main()
