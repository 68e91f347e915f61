"""Tests of curation_dagster/progress.py: progress lines at an interval, never per item."""

from __future__ import annotations

import logging

import pyarrow as pa
import pytest

from curation_dagster.progress import Progress, reporting_to, tracked


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_a_line_is_reported_once_per_interval_with_rate_and_time_left() -> None:
    clock, lines = Clock(), []
    progress = Progress("demo/filtered[a]", total=1000, interval_s=10, clock=clock)
    with reporting_to(lines.append):
        for _ in range(9):
            clock.now += 1
            progress.advance(10)
        assert lines == []
        clock.now += 1
        progress.advance(10)

    assert lines == ["demo/filtered[a]: 100/1,000 items (10%), 10 items/s, about 90 s left"]


def test_long_waits_are_given_in_minutes_and_hours() -> None:
    clock = Clock()
    progress = Progress("x", total=1_000_000, interval_s=1, clock=clock)
    progress.done, clock.now = 100, 10.0
    assert progress.line(clock.now).endswith("about 27.8 h left")
    progress.done = 10_000
    assert progress.line(clock.now).endswith("about 16 min left")


def test_an_unknown_total_reports_items_and_rate_only() -> None:
    clock = Clock()
    progress = Progress("demo/raw[a]", interval_s=1, clock=clock)
    progress.done, clock.now = 500, 2.0
    assert progress.line(clock.now) == "demo/raw[a]: 500 items, 250 items/s"


def test_without_a_reporter_lines_go_to_the_logger(caplog: pytest.LogCaptureFixture) -> None:
    clock = Clock()
    progress = Progress("x", total=10, interval_s=0, clock=clock)
    clock.now = 1.0
    with caplog.at_level(logging.INFO, logger="curation_dagster.progress"):
        progress.advance(5)
    assert "x: 5/10 items (50%)" in caplog.text


def test_tracked_passes_batches_through_unchanged() -> None:
    batches = [pa.table({"a": [1, 2]}), pa.table({"a": [3]})]
    assert list(tracked(iter(batches), "x", 3)) == batches


def test_phase_clock_lays_out_each_phase_from_the_end_of_the_last() -> None:
    from curation_dagster.progress import PhaseClock

    ticks = iter([100.0, 103.5, 104.0, 110.25])
    clock = PhaseClock(clock=lambda: next(ticks))
    for phase in ("compute", "claim", "output"):
        clock.mark(phase)

    assert clock.table() == {
        "compute": {"start": 100.0, "end": 103.5, "seconds": 3.5},
        "claim": {"start": 103.5, "end": 104.0, "seconds": 0.5},
        "output": {"start": 104.0, "end": 110.25, "seconds": 6.25},
    }
