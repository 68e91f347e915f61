"""What a filter chain knows about the shard it runs on: the lake, version and shard for filters that keep
per-item results there (CLIP image embeddings), state its filters share, and filters it skipped."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar, runtime_checkable

from curation_dagster.io.lake import Lake

T = TypeVar("T")


@runtime_checkable
class Finishing(Protocol):
    """Shared state with work left at the end of the shard (a file to save); returns stage metadata."""

    def finish(self) -> dict[str, Any]: ...


@dataclass
class FilterContext:
    """Handed to filters that take a `context`; without a lake (a notebook, synthetic candidates) shared
    state lives only as long as the chain."""

    lake: Lake | None = None
    version: str = ""
    shard: str = ""
    skipped: dict[str, str] = field(default_factory=dict)
    """Filters that did not run, by name, and why (an optional CLIP filter without CLIP weights)."""
    _shared: dict[str, Any] = field(default_factory=dict, repr=False)

    def shared(self, key: str, make: Callable[[], T]) -> T:
        """The chain's one instance of something several filters use, made on first request."""
        if key not in self._shared:
            self._shared[key] = make()
        value: T = self._shared[key]
        return value

    def finish(self) -> dict[str, Any]:
        """Finish shared state (saving what it computed) and return the stage metadata it reports, with
        `skipped_filters` when a filter was skipped."""
        metadata: dict[str, Any] = {}
        for value in self._shared.values():
            if isinstance(value, Finishing):
                metadata.update(value.finish())
        if self.skipped:
            metadata["skipped_filters"] = dict(sorted(self.skipped.items()))
        return metadata
