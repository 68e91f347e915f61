"""Register filter: refit the shipped weights and measure accuracy.

Fits `curation_dagster.filters.register.fit_register_model` on `filters/data/register_train.jsonl`, writes
`filters/data/register_weights.json` (the fit is deterministic, so an unchanged training set rewrites the
same file), then prints accuracy, precision and recall at formality 0.5 on the held-out
`register_test.jsonl`, per language, and on the demo's forum posts (colloquial) against its news and
encyclopedia sentences (formal), plus throughput.

    python benchmarks/register_accuracy.py             # refit, write the weights, report
    python benchmarks/register_accuracy.py --no-write  # report on a fresh fit without writing
"""

from __future__ import annotations

import argparse
import json
import time
from importlib import resources
from pathlib import Path

import numpy as np
import pyarrow as pa

from curation_dagster.demo import ENCYCLOPEDIA_SENTENCES, FORUM_SENTENCES, NEWS_SENTENCES
from curation_dagster.filters.register import (
    TEST_FILE,
    TRAIN_FILE,
    WEIGHTS_FILE,
    RegisterModel,
    fit_register_model,
    read_register_examples,
)


def report(name: str, model: RegisterModel, texts: list[str], formal: list[bool]) -> float:
    """Prints accuracy and per-class precision and recall at 0.5; returns the accuracy."""
    predicted = model.formality(pa.array(texts, pa.large_string())) >= 0.5
    truth = np.asarray(formal)
    accuracy = float(np.mean(predicted == truth))
    line = f"{name:<34} n={len(texts):>4}  accuracy {accuracy:.4f}"
    for label, positive in (("formal", True), ("colloquial", False)):
        hits = np.sum((predicted == positive) & (truth == positive))
        precision = hits / max(np.sum(predicted == positive), 1)
        recall = hits / max(np.sum(truth == positive), 1)
        line += f"  {label} P {precision:.3f} R {recall:.3f}"
    print(line)
    return accuracy


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--no-write", action="store_true", help="do not overwrite the shipped weights")
    args = parser.parse_args()

    texts, formal = read_register_examples(TRAIN_FILE)
    model = fit_register_model(texts, formal)
    if not args.no_write:
        path = Path(str(resources.files("curation_dagster.filters") / "data" / WEIGHTS_FILE))
        temporary = path.with_suffix(".json.tmp")
        temporary.write_text(json.dumps(model.to_json(), indent=1) + "\n", encoding="utf-8")
        temporary.replace(path)
        print(f"wrote {path}")

    report(f"train ({TRAIN_FILE})", model, texts, formal)
    test_texts, test_formal = read_register_examples(TEST_FILE)
    report(f"held-out ({TEST_FILE})", model, test_texts, test_formal)
    lines = (resources.files("curation_dagster.filters") / "data" / TEST_FILE).read_text("utf-8").splitlines()
    languages = [json.loads(line)["language"] for line in lines if line.strip()]
    for language in sorted(set(languages)):
        chosen = [index for index, value in enumerate(languages) if value == language]
        report(
            f"  held-out, {language}",
            model,
            [test_texts[index] for index in chosen],
            [test_formal[index] for index in chosen],
        )
    forum = [sentence for language in sorted(FORUM_SENTENCES) for sentence in FORUM_SENTENCES[language]]
    edited = [sentence for topic in sorted(NEWS_SENTENCES) for sentence in NEWS_SENTENCES[topic]]
    edited += list(ENCYCLOPEDIA_SENTENCES)
    report(
        "demo forum vs news+encyclopedia", model, forum + edited, [False] * len(forum) + [True] * len(edited)
    )

    batch = pa.array((forum + edited + test_texts) * 50, pa.large_string())
    started = time.perf_counter()
    model.formality(batch)
    print(f"throughput: {len(batch) / (time.perf_counter() - started):,.0f} texts/s ({len(batch):,} texts)")


if __name__ == "__main__":
    main()
