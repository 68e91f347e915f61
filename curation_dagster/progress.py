"""Progress of long steps in the run logs: items done, rate and time left, at most once per interval.

The engine does not know about Dagster: it reports to whatever `reporting_to` installed for the current
context (the assets install `context.log.info`), or else to the `curation_dagster.progress` logger.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable, Iterable, Iterator
from contextvars import ContextVar
from typing import Protocol, TypeVar

#: Seconds between two progress lines of one step.
INTERVAL_S = 15.0

_LOGGER = logging.getLogger("curation_dagster.progress")
_REPORTER: ContextVar[Callable[[str], None] | None] = ContextVar("curation_progress_reporter", default=None)


class _Sized(Protocol):
    @property
    def num_rows(self) -> int: ...


Batch = TypeVar("Batch", bound=_Sized)


@contextlib.contextmanager
def reporting_to(report: Callable[[str], None]) -> Iterator[None]:
    """Send the progress lines of the steps run inside the block to `report`."""
    token = _REPORTER.set(report)
    try:
        yield
    finally:
        _REPORTER.reset(token)


def note(line: str) -> None:
    """Send one line to the current step's log (the run's logs in Dagster), like a progress line."""
    _report(line)


def _report(line: str) -> None:
    report = _REPORTER.get()
    if report is None:
        _LOGGER.info(line)
    else:
        report(line)


class Progress:
    """Counts items of one step and reports `label: done/total (share), rate, time left` every
    `interval_s` seconds, never per item; `total` may be unknown (0)."""

    def __init__(
        self,
        label: str,
        total: int = 0,
        interval_s: float = INTERVAL_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.label, self.total, self.interval_s, self.clock = label, total, interval_s, clock
        self.done = 0
        self.started = self.last = clock()

    def advance(self, items: int) -> None:
        self.done += items
        now = self.clock()
        if now - self.last >= self.interval_s:
            self.last = now
            _report(self.line(now))

    def line(self, now: float) -> str:
        elapsed = max(now - self.started, 1e-9)
        rate = self.done / elapsed
        if not self.total:
            return f"{self.label}: {self.done:,} items, {rate:,.0f} items/s"
        left = (self.total - self.done) / rate if rate > 0 else float("inf")
        return (
            f"{self.label}: {self.done:,}/{self.total:,} items ({self.done / self.total:.0%}), "
            f"{rate:,.0f} items/s, about {_duration(left)} left"
        )


def _duration(seconds: float) -> str:
    if seconds == float("inf"):
        return "unknown time"
    seconds = max(seconds, 0.0)
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def tracked(batches: Iterable[Batch], label: str, total: int = 0) -> Iterator[Batch]:
    """The batches, counting their rows into a `Progress` that reports as they pass."""
    progress = Progress(label, total)
    for batch in batches:
        yield batch
        progress.advance(batch.num_rows)


class PhaseClock:
    """When each phase of a step ended, in wall-clock time: compute (no lock), wait (for a claim lock),
    claim (under it), output, merge (of the key stores' tiers, with no lock held but to add each).
    `table()` gives each phase's start, end and seconds, so runs of several shards can be laid side by side
    (did their compute phases overlap? what share was the claim?)."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self.clock = clock
        self.started = clock()
        self.ends: list[tuple[str, float]] = []

    def mark(self, phase: str) -> None:
        """Phase `phase` ends now (and the next one starts)."""
        self.ends.append((phase, self.clock()))

    def table(self) -> dict[str, dict[str, float]]:
        rows: dict[str, dict[str, float]] = {}
        start = self.started
        for phase, end in self.ends:
            rows[phase] = {"start": round(start, 3), "end": round(end, 3), "seconds": round(end - start, 3)}
            start = end
        return rows
