"""What every selection strategy shares: the candidate pool it ranks, the ranking it returns, the reject
codes and the `select_*` columns that say why a row was (or was not) selected.

A strategy implements one method, `rank(pool, k)`: the candidates in priority order (best first) and the
ones it refuses whatever the budget. The planner (`plan.py`) owns budgets, quotas and the decisions.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
import pyarrow as pa

from curation_dagster.spec import SelectSettings

if TYPE_CHECKING:
    from curation_dagster.io.lake import Lake
    from curation_dagster.models.runtime import ModelRuntime

REJECT_NOT_SAMPLED = "select.not_sampled"
REJECT_BUDGET = "select.budget"
REJECT_THRESHOLD = "select.threshold"
REJECT_QUOTA = "select.quota"
REJECT_CLUSTER_CAP = "select.cluster_cap"
REJECT_NO_TEXT = "select.no_text"
#: What an item refused as `select.no_text` lacks, by embedding space.
MISSING = {
    "text": "a text embedding",
    "image": "a CLIP image embedding (the image could not be read or decoded)",
}

#: Columns the selected stage adds to every row, kept or rejected.
SELECT_FIELDS = [
    pa.field("select_score", pa.float64()),
    pa.field("select_strategy", pa.string()),
    pa.field("select_group", pa.string()),
    pa.field("select_cluster", pa.int32()),
    pa.field("select_rank", pa.int64()),
]


@dataclass
class Pool:
    """Candidates a strategy ranks: one quota group of one shard (or the whole shard without quotas).

    Positions index every array. Only what the strategy `needs` is filled in.
    """

    ids: list[str]
    modalities: list[str]
    seed: int
    values: np.ndarray | None = None
    """`top_k`'s order value per item (NaN where null)."""
    texts: list[str | None] | None = None
    embeddings: np.ndarray | None = None
    """(n, d) float32 unit vectors; rows where `embedded` is false are meaningless. With `spaces`, each
    space's vectors are zero-padded to the widest (padding changes no distance within a space)."""
    embedded: np.ndarray | None = None
    """Whether the item has an embedding (items without text have none)."""
    spaces: np.ndarray | None = None
    """Each item's embedding space (`text`, `image`) when the pool mixes spaces that do not compare
    (`select.image_embeddings: clip`); None: one space."""
    clusters: np.ndarray | None = None
    """k-means cluster per item, -1 where the item has no embedding."""
    cluster_count: int = 0
    """How many clusters the version's k-means has."""
    prior_embeddings: np.ndarray | None = None
    """Embeddings of the items earlier shards selected in this group."""
    prior_spaces: np.ndarray | None = None
    """The embedding space of each row of `prior_embeddings`, with `spaces`."""
    prior_cluster_counts: Mapping[int, int] = field(default_factory=dict)
    """Items earlier shards selected per cluster, in this group."""

    def __len__(self) -> int:
        return len(self.ids)

    def subset(self, positions: np.ndarray) -> Pool:
        """The pool of the items at `positions`, in that order."""

        def take(array: np.ndarray | None) -> np.ndarray | None:
            return None if array is None else array[positions]

        return replace(
            self,
            ids=[self.ids[p] for p in positions],
            modalities=[self.modalities[p] for p in positions],
            values=take(self.values),
            texts=None if self.texts is None else [self.texts[p] for p in positions],
            embeddings=take(self.embeddings),
            embedded=take(self.embedded),
            spaces=take(self.spaces),
            clusters=take(self.clusters),
        )

    def by_space(self) -> list[tuple[str, np.ndarray, Pool]]:
        """(space, positions, pool of those items with that space's earlier selections), per embedding
        space in name order; one `text` space when the pool does not mix spaces."""
        if self.spaces is None:
            return [("text", np.arange(len(self), dtype=np.int64), self)]
        out = []
        for space in sorted(set(self.spaces.tolist())):
            positions = np.flatnonzero(self.spaces == space)
            part = self.subset(positions)
            part.spaces, part.prior_spaces, part.prior_embeddings = None, None, None
            if self.prior_embeddings is not None and self.prior_spaces is not None:
                part.prior_embeddings = self.prior_embeddings[self.prior_spaces == space]
            out.append((str(space), positions, part))
        return out


@dataclass(frozen=True)
class Ranking:
    """A strategy's answer for one pool: the positions it would select, best first, a score per item
    (NaN for none), and the items it refuses whatever the budget, with a reason code and detail."""

    order: np.ndarray
    scores: np.ndarray
    excluded: Mapping[int, tuple[str, str]] = field(default_factory=dict)


class Strategy:
    """A way to rank candidates. Subclasses set `name` (the `select_strategy` value) and `needs`
    (`values`, `texts`, `embeddings`, `prior_embeddings`, `clusters`) and implement `rank`."""

    name: ClassVar[str] = ""
    needs: ClassVar[frozenset[str]] = frozenset()

    def __init__(self, settings: SelectSettings | None = None) -> None:
        self.settings = settings or SelectSettings()

    def bind(self, lake: Lake | None, version: str, runtime: ModelRuntime | None) -> None:
        """Load what ranking needs from the version's lake and the runtime (a model, a trained probe) before
        any pool is ranked; most strategies need nothing."""

    def rank(self, pool: Pool, k: int | None) -> Ranking:
        """Rank the pool; at most `k` items will be taken (`None`: no limit), so `order` may stop there."""
        raise NotImplementedError

    def describe(self, pool: Pool, selected: np.ndarray) -> dict[str, Any]:
        """Numbers for the stage metadata, given the whole eligible pool and which items were selected."""
        return {}


def ordered(keys: np.ndarray, ids: list[str], positions: np.ndarray | None = None) -> np.ndarray:
    """Positions sorted by ascending `keys` (NaN last), ties broken by id; only `positions` if given."""
    chosen = np.arange(len(ids), dtype=np.int64) if positions is None else np.asarray(positions, np.int64)
    if chosen.size == 0:
        return chosen
    names = np.asarray(ids, dtype=str)[chosen]
    return chosen[np.lexsort((names, np.asarray(keys, np.float64)[chosen]))]
