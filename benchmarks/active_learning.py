"""Active learning against random labelling: how many labels a downstream classifier needs.

Corpus: the register (formality) set shipped in `curation_dagster/filters/data/`: the 356 texts of
`register_train.jsonl` are the unlabelled pool (a filtered shard of a temporary lake) and the 157 texts of
`register_test.jsonl` the held-out evaluation set (`eval_files`); labels `formal` / `colloquial`, in
English, German, Spanish and French. The downstream classifier is the proxy probe itself: logistic
regression (C = 1, balanced) on the packaged all-MiniLM-L6-v2 embeddings.

Every run starts from 2 + 2 seed examples drawn with its seed. The active arms run the engine as a user
would: `ActiveLearning.run_round()` on the lake, an oracle filling in each exported batch from the true
labels and saving it as the round's labels file, until `--max-labels`. The random arm adds seeded random
batches of the same size and fits the same probe. Prints the mean held-out accuracy against the number of
labels, and per arm the labels each seed needed to reach `--target`.

    python benchmarks/active_learning.py                        # 10 seeds, batches of 4, to 120 labels
    python benchmarks/active_learning.py --seeds 3 --arms random,margin
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from curation_dagster.io.lake import Lake
from curation_dagster.schema import RAW_SCHEMA, conform
from curation_dagster.select.active import (
    ACTIVE_LEARNING,
    LABELLED_EMBEDDINGS,
    ActiveLearning,
    labels_name,
    to_label_name,
)
from curation_dagster.select.probe import Probe
from curation_dagster.spec import SelectSettings
from curation_dagster.vectors.text import TextEmbedder

VERSION = "bench"
WANTED = "formal"


def read(name: str) -> list[dict[str, Any]]:
    text = (resources.files("curation_dagster.filters") / "data" / name).read_text("utf-8")
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def write_pool(lake: Lake, rows: list[dict[str, Any]]) -> list[str]:
    ids = [f"t{n:03d}" for n in range(len(rows))]
    table = pa.table(
        {
            "id": ids,
            "modality": ["text"] * len(rows),
            "text": [row["text"] for row in rows],
            "uri": [f"register_train.jsonl#{n}" for n in range(len(rows))],
            "shard": ["train"] * len(rows),
        }
    )
    lake.write_table(lake.path(VERSION, "filtered", "train"), conform(table, RAW_SCHEMA))
    return ids


def initial_labels(labels: list[str], seed: int) -> list[int]:
    """Two examples of each class, drawn with the seed."""
    rng = np.random.default_rng(seed)
    chosen: list[int] = []
    for label in sorted(set(labels)):
        members = [n for n, value in enumerate(labels) if value == label]
        chosen.extend(int(n) for n in rng.choice(members, 2, replace=False))
    return chosen


def settings(seeds: Path, evaluation: Path, by: str, batch: int) -> SelectSettings:
    return SelectSettings.model_validate(
        {
            "seed": 0,
            "strategy": {
                "kind": "proxy",
                "wanted_label": WANTED,
                "seed_files": [str(seeds)],
                "eval_files": [str(evaluation)],
                "active_learning": {"by": by, "batch_size": batch},
            },
        }
    )


def reset(lake: Lake) -> None:
    """Remove the rounds of the previous run, keeping the embeddings of texts already seen."""
    folder = Path(lake.root) / VERSION / ACTIVE_LEARNING
    for path in folder.glob("*") if folder.exists() else []:
        if path.name != LABELLED_EMBEDDINGS:
            path.unlink()


def active_run(
    lake: Lake, work: Path, by: str, seed: int, train: list[dict[str, Any]], args: argparse.Namespace
) -> list[tuple[int, float]]:
    """(labels, held-out accuracy) after every round of the engine's active learning."""
    reset(lake)
    seeds = work / f"seeds_{seed}.jsonl"
    labels = [row["label"] for row in train]
    rows = [{"text": train[n]["text"], "label": labels[n]} for n in initial_labels(labels, seed)]
    seeds.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    truth = {f"t{n:03d}": label for n, label in enumerate(labels)}
    learning = ActiveLearning(
        settings(seeds, work / "eval.jsonl", by, args.batch), lake, VERSION, args.embedder
    )
    curve = []
    folder = Path(lake.root) / VERSION / ACTIVE_LEARNING
    while True:
        result = learning.run_round()
        assert result.advanced and result.current.eval_accuracy is not None
        curve.append((result.current.labelled, result.current.eval_accuracy))
        if result.current.labelled >= args.max_labels or not result.current.exported:
            return curve
        batch = [json.loads(line) for line in (folder / to_label_name(result.current.round + 1)).open()]
        for row in batch:
            row["label"] = truth[row["id"]]
        (folder / labels_name(result.current.round + 1)).write_text(
            "".join(json.dumps(row) + "\n" for row in batch), encoding="utf-8"
        )


def random_run(
    vectors: np.ndarray,
    labels: list[str],
    test: tuple[np.ndarray, list[str]],
    seed: int,
    args: argparse.Namespace,
) -> list[tuple[int, float]]:
    """(labels, held-out accuracy) with seeded random batches of the same size and the same probe."""
    rng = np.random.default_rng(seed + 10_000)
    chosen = initial_labels(labels, seed)
    curve = []
    while True:
        probe = Probe.fit(vectors[chosen], [labels[n] for n in chosen], WANTED)
        curve.append((len(chosen), probe.accuracy(*test)))
        rest = sorted(set(range(len(labels))) - set(chosen))
        if len(chosen) >= args.max_labels or not rest:
            return curve
        chosen += [int(n) for n in rng.choice(rest, min(args.batch, len(rest)), replace=False)]


def needed(curve: list[tuple[int, float]], target: float) -> int | None:
    return next((count for count, accuracy in curve if accuracy >= target), None)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--max-labels", type=int, default=120)
    parser.add_argument("--target", type=float, default=0.88)
    parser.add_argument("--arms", default="random,margin,entropy,learnability")
    parser.add_argument("--threads", type=int, default=2, help="torch threads for the embedder")
    args = parser.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    args.embedder = TextEmbedder(batch_size=64)
    train, test = read("register_train.jsonl"), read("register_test.jsonl")
    labels = [row["label"] for row in train]
    work = Path(tempfile.mkdtemp(prefix="active_learning_"))
    started = time.perf_counter()
    try:
        (work / "eval.jsonl").write_text("".join(json.dumps(row) + "\n" for row in test), encoding="utf-8")
        lake = Lake(work / "lake")
        write_pool(lake, train)
        vectors = args.embedder.embed([row["text"] for row in train])
        test_set = (args.embedder.embed([row["text"] for row in test]), [row["label"] for row in test])
        print(
            f"pool {len(train)} texts, held-out {len(test)} texts, embedded in {time.perf_counter() - started:.0f}s; "
            f"probe on all {len(train)} labels: {Probe.fit(vectors, labels, WANTED).accuracy(*test_set):.3f}"
        )
        curves: dict[str, list[list[tuple[int, float]]]] = {}
        for arm in args.arms.split(","):
            arm_started = time.perf_counter()
            curves[arm] = [
                random_run(vectors, labels, test_set, seed, args)
                if arm == "random"
                else active_run(lake, work, arm, seed, train, args)
                for seed in range(args.seeds)
            ]
            print(f"{arm}: {args.seeds} runs in {time.perf_counter() - arm_started:.0f}s")
        report(curves, args)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def report(curves: dict[str, list[list[tuple[int, float]]]], args: argparse.Namespace) -> None:
    arms = list(curves)
    counts = [count for count, _ in curves[arms[0]][0]]
    print(f"\nmean held-out accuracy (± std over {args.seeds} seeds) by number of labels")
    print("| labels | " + " | ".join(arms) + " |")
    print("| ---: |" + " ---: |" * len(arms))
    for index, count in enumerate(counts):
        if index % 2 and count != counts[-1]:
            continue
        cells = []
        for arm in arms:
            values = [run[index][1] for run in curves[arm] if index < len(run)]
            cells.append(f"{np.mean(values):.3f} ± {np.std(values):.3f}")
        print(f"| {count} | " + " | ".join(cells) + " |")
    print(f"\nlabels needed to reach accuracy {args.target} (per seed; '-' never within {args.max_labels})")
    for arm in arms:
        reached = [needed(run, args.target) for run in curves[arm]]
        hits = [n for n in reached if n is not None]
        median = (
            f"median {int(np.median(hits))}"
            if len(hits) == len(reached)
            else f"reached {len(hits)}/{len(reached)}"
        )
        shown = " ".join("-" if n is None else str(n) for n in reached)
        print(
            f"{arm:>13}: {median:<14} mean of reached {np.mean(hits) if hits else float('nan'):.1f}   [{shown}]"
        )


if __name__ == "__main__":
    main()
