"""Peak memory of the raw and deduped stages on one large text shard, each stage in its own process.

The deduped stage holds per-row decisions and signatures (about 1 KB a row) but reads text in record
batches, so its memory follows the number of documents, not their bytes. The issue's bound: a 1 GB text
shard within about 2 GB of resident memory.

    python benchmarks/dedup_memory.py --megabytes 1024
"""

from __future__ import annotations

import argparse
import json
import random
import resource
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path


def write_shard(path: Path, megabytes: int, seed: int = 0) -> int:
    """A JSON Lines shard of about `megabytes` MB: documents of 80 to 400 words drawn with their natural
    frequencies from Python's own documentation (so documents overlap as real text does), a tenth of
    them copies of a recent document with 5% of the words replaced."""
    import pydoc_data.topics

    rng = random.Random(seed)
    counts = Counter(" ".join(pydoc_data.topics.topics.values()).split())
    vocabulary, weights = list(counts), list(counts.values())
    written, count, recent = 0, 0, []
    with path.open("w", encoding="utf-8") as handle:
        while written < megabytes * 2**20:
            if recent and rng.random() < 0.1:
                words = rng.choice(recent).split()
                text = " ".join(w if rng.random() > 0.05 else rng.choice(vocabulary) for w in words)
            else:
                text = " ".join(rng.choices(vocabulary, weights, k=rng.randint(80, 400)))
                recent = [*recent[-999:], text]
            line = json.dumps({"text": text}) + "\n"
            handle.write(line)
            written += len(line.encode())
            count += 1
    return count


def run_stage_in_child(stage: str, lake: Path, landing: Path) -> tuple[float, float]:
    """Seconds and peak resident megabytes of one stage run in a fresh process."""
    code = (
        "import resource, sys, time\n"
        "from pathlib import Path\n"
        "from curation_dagster.io.lake import Lake\n"
        "from curation_dagster.pipeline import run_stage\n"
        "from curation_dagster.spec import parse_spec\n"
        "spec = parse_spec({'name': 'memory', 'modalities': ['text']})\n"
        f"start = time.perf_counter()\n"
        f"run_stage(spec, Lake({str(lake)!r}), {stage!r}, 'big.jsonl', Path({str(landing)!r}) / 'big.jsonl')\n"
        "print(time.perf_counter() - start, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)\n"
    )
    output = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    seconds, megabytes = output.split()
    return float(seconds), float(megabytes)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--megabytes", type=int, default=256)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        landing, lake = Path(folder) / "landing", Path(folder) / "lake"
        landing.mkdir()
        started = time.perf_counter()
        documents = write_shard(landing / "big.jsonl", args.megabytes)
        print(
            f"shard: {args.megabytes} MB, {documents:,} documents (written in {time.perf_counter() - started:.0f}s)"
        )
        for stage in ("raw", "deduped"):
            seconds, peak = run_stage_in_child(stage, lake, landing)
            print(
                f"{stage:<8} {seconds:7.1f} s  {documents / seconds:9,.0f} docs/s  peak RSS {peak:7,.0f} MB"
            )
    print(f"this process: peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:,.0f} MB")


if __name__ == "__main__":
    main()
