"""Tests of curation_dagster/filters/summary.py: the per-shard score quantiles, value mix and examples."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

from curation_dagster.filters.summary import EXAMPLES_PER_REASON, summarize

SCORES = [pa.field("words", pa.int64()), pa.field("quality", pa.float64()), pa.field("lang", pa.string())]


def write(
    tmp_path: Path, kept: dict[str, list[object]], rejected: dict[str, list[object]]
) -> tuple[str, str]:
    kept_path, rejected_path = tmp_path / "kept.parquet", tmp_path / "rejected.parquet"
    pq.write_table(pa.table(kept), kept_path)
    pq.write_table(pa.table(rejected), rejected_path)
    return str(kept_path), str(rejected_path)


def test_quantiles_count_kept_and_rejected_scores_and_skip_nan(tmp_path: Path) -> None:
    kept, rejected = write(
        tmp_path,
        {"id": ["a", "b"], "text": ["x", "y"], "uri": ["u", "u"], "words": [10, 20], "quality": [0.5, float("nan")], "lang": ["en", "de"]},
        {
            "id": ["c"], "text": ["z"], "uri": ["u"], "words": [30], "quality": [1.5], "lang": ["en"],
            "reject_reason": ["quality.x"], "reject_detail": ["too low"],
        },
    )  # fmt: skip

    summary = summarize(duckdb.connect(), kept, rejected, SCORES)

    assert summary.quantiles["words"]["rows"] == 3
    assert summary.quantiles["words"]["min"] == 10
    assert summary.quantiles["words"]["p50"] == 20
    assert summary.quantiles["words"]["max"] == 30
    assert summary.quantiles["quality"]["p50"] == 1.0  # NaN left out: the median of 0.5 and 1.5
    assert summary.categories == {"lang": {"en": 2, "de": 1}}
    assert "| `words` | 3 | 10 |" in summary.quantiles_markdown()


def test_examples_are_capped_per_reason_and_safe_in_a_markdown_table(tmp_path: Path) -> None:
    count = EXAMPLES_PER_REASON + 2
    kept, rejected = write(
        tmp_path,
        {
            "id": pa.array([], pa.string()),
            "text": pa.array([], pa.string()),
            "uri": pa.array([], pa.string()),
        },
        {
            "id": [f"id{i}" for i in range(count)] + ["img"],
            "text": ["a | b\nc"] * count + [None],
            "uri": ["u"] * count + ["landing/x.png"],
            "reject_reason": ["r.one"] * count + ["r.two"],
            "reject_detail": ["d"] * count + [None],
        },
    )

    summary = summarize(duckdb.connect(), kept, rejected, [])

    assert [row["id"] for row in summary.examples["r.one"]] == ["id0", "id1", "id2"]
    assert summary.examples["r.two"] == [{"id": "img", "detail": "", "item": "landing/x.png"}]
    table = summary.examples_markdown()
    assert "a \\| b c" in table
    assert len(table.splitlines()) == 2 + EXAMPLES_PER_REASON + 1
    assert summary.quantiles_markdown() == "No scores."


def test_a_score_without_a_finite_value_has_no_quantiles_and_the_others_keep_theirs(tmp_path: Path) -> None:
    kept, rejected = write(
        tmp_path,
        {"id": ["a", "b"], "text": ["x", "y"], "uri": ["u", "u"], "words": [1, 3], "ratio": [float("nan"), None]},
        {
            "id": ["c"], "text": ["z"], "uri": ["u"], "words": [2], "ratio": [float("inf")],
            "reject_reason": ["quality.x"], "reject_detail": ["d"],
        },
    )  # fmt: skip

    fields = [pa.field("ratio", pa.float64()), pa.field("words", pa.int64())]
    summary = summarize(duckdb.connect(), kept, rejected, fields)

    assert set(summary.quantiles) == {"words"}
    words = summary.quantiles["words"]
    assert (words["rows"], words["min"], words["p50"], words["max"]) == (3, 1, 2, 3)
