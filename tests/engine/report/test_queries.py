"""Tests of curation_dagster/report/queries.py: histogram bins follow the bulk of the items, not outliers."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa

from curation_dagster.io.lake import Lake
from curation_dagster.report.queries import VersionViews
from tests.engine.report.card_fixtures import text_items


def filtered_views(folder: Path, table: pa.Table) -> tuple[VersionViews, str]:
    """The views of a lake whose filtered stage kept `table`, and the filtered stage's outcomes."""
    lake = Lake(folder / "lake")
    lake.write_table(lake.path("mm", "filtered", "x.jsonl"), table)
    views = VersionViews(lake.duckdb("mm"))
    source = views.filtered_outcomes()
    assert source is not None
    return views, source


def test_one_huge_item_is_counted_above_the_bins_and_the_rest_spreads_over_them(tmp_path: Path) -> None:
    lengths = [100 + (index * 397) % 401 for index in range(999)] + [1_000_000]
    views, source = filtered_views(tmp_path, text_items(1000, text_chars=lengths))

    histogram = views.histogram(source, "text_chars")

    assert histogram is not None
    assert all(histogram.counts["kept"])  # every one of the bins holds some of the 999
    assert histogram.above == {"kept": 1, "rejected": 0}
    assert histogram.below == {"kept": 0, "rejected": 0}
    assert (histogram.low, histogram.high) == (100, 500)


def test_values_without_a_long_tail_span_their_whole_range(tmp_path: Path) -> None:
    views, source = filtered_views(tmp_path, text_items(101, toxicity=[i / 100 for i in range(101)]))

    histogram = views.histogram(source, "toxicity")

    assert histogram is not None
    assert (histogram.low, histogram.high) == (0.0, 1.0)
    assert sum(histogram.below.values()) + sum(histogram.above.values()) == 0
