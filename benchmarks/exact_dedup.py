"""Exact dedup: curation_dagster's ExactDedup against DuckDB doing the same job, in one process.

The corpus is built from the demo's real sentences: documents of 3 to 12 sentences, a share of them
repeated later with case and whitespace changes (the planted duplicates, whose positions are the ground
truth). DuckDB is the reference: lower-case, collapse whitespace, keep the first row per key. The script
prints, for both, the duplicates found, recall and precision against the plant, and rows per second, then
the throughput ratio.

    python benchmarks/exact_dedup.py --documents 200000
"""

from __future__ import annotations

import argparse
import random
import time

import pyarrow as pa

from curation_dagster.dedup.exact import ExactDedup
from curation_dagster.demo import ENCYCLOPEDIA_SENTENCES, NEWS_SENTENCES


def corpus(documents: int, duplicate_share: float, seed: int = 0) -> tuple[pa.Table, set[int]]:
    """Documents plus planted variants of earlier ones; returns the table and the planted row numbers."""
    rng = random.Random(seed)
    sentences = [s for pool in NEWS_SENTENCES.values() for s in pool] + list(ENCYCLOPEDIA_SENTENCES)
    texts: list[str] = []
    planted: set[int] = set()
    while len(texts) < documents:
        if texts and rng.random() < duplicate_share:
            original = rng.choice(texts)
            variant = original.upper() if rng.random() < 0.5 else "  " + original.replace(" ", "\n  ")
            planted.add(len(texts))
            texts.append(variant)
        else:
            texts.append(" ".join(rng.sample(sentences, rng.randint(3, 12))) + f" [{len(texts)}]")
    table = pa.table(
        {
            "id": [f"doc-{index:08d}" for index in range(documents)],
            "modality": ["text"] * documents,
            "text": pa.array(texts, pa.large_string()),
            "media": pa.nulls(documents, pa.large_binary()),
        }
    )
    return table, planted


def ours(table: pa.Table, batch_rows: int) -> set[int]:
    dedup = ExactDedup()
    known: dict[str, str] = {}
    rejected_ids: set[str] = set()
    for start in range(0, table.num_rows, batch_rows):
        _, rejected = dedup.run(table.slice(start, batch_rows), known)
        rejected_ids.update(rejected.column("id").to_pylist())
    return {int(item.split("-")[1]) for item in rejected_ids}


def reference(table: pa.Table) -> set[int]:
    import duckdb

    connection = duckdb.connect()
    connection.register("docs", table)
    rows = connection.execute(
        """
        SELECT position FROM (
            SELECT CAST(split_part(id, '-', 2) AS BIGINT) AS position,
                   row_number() OVER (
                       PARTITION BY trim(regexp_replace(lower(text), '\\s+', ' ', 'g'))
                       ORDER BY id
                   ) AS nth
            FROM docs
        ) WHERE nth > 1
        """
    ).fetchall()
    return {int(row[0]) for row in rows}


def report(name: str, found: set[int], planted: set[int], rows: int, seconds: float) -> float:
    recall = len(found & planted) / max(len(planted), 1)
    precision = len(found & planted) / max(len(found), 1)
    rate = rows / seconds
    print(
        f"{name:<18} found {len(found):>7}  recall {recall:.4f}  precision {precision:.4f}  {rate:>10,.0f} rows/s"
    )
    return rate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--documents", type=int, default=100_000)
    parser.add_argument("--duplicate-share", type=float, default=0.2)
    parser.add_argument("--batch-rows", type=int, default=1024)
    args = parser.parse_args()
    table, planted = corpus(args.documents, args.duplicate_share)
    print(f"{table.num_rows:,} documents, {len(planted):,} planted duplicates")
    started = time.perf_counter()
    ours_found = ours(table, args.batch_rows)
    ours_rate = report("curation_dagster", ours_found, planted, table.num_rows, time.perf_counter() - started)
    started = time.perf_counter()
    reference_found = reference(table)
    reference_rate = report(
        "duckdb reference", reference_found, planted, table.num_rows, time.perf_counter() - started
    )
    print(f"throughput ratio (ours / reference): {ours_rate / reference_rate:.2f}")
    print(f"decisions that differ: {len(ours_found ^ reference_found)}")


if __name__ == "__main__":
    main()
