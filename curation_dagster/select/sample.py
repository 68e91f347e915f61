"""A seeded, budgeted sample: each item is drawn by a hash of (seed, id), the budget shared by shards."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.compute as pc

from curation_dagster.schema import mark_rejected, with_fields
from curation_dagster.spec import SelectSpec

REJECT_NOT_SAMPLED = "select.not_sampled"
REJECT_BUDGET = "select.budget"
SELECT_FIELDS = [pa.field("select_score", pa.float64()), pa.field("select_strategy", pa.string())]
STRATEGY = "seeded_sample"


@dataclass(frozen=True)
class Decision:
    """One item's sample score and, when it is not selected, the reason code and detail."""

    score: float
    reason: str | None
    detail: str | None


def sample_score(seed: int, item: str) -> float:
    """A uniform number in [0, 1) fixed by the seed and the item id."""
    digest = hashlib.blake2b(f"{seed}:{item}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64


class SeededSample:
    """Keeps items whose seeded score is below `fraction`, lowest scores first, while budget remains.

    `used` gives how much of the budget other shards already hold: in total (key `"*"`) and per modality.
    """

    def __init__(self, settings: SelectSpec | None = None) -> None:
        self.settings = settings or SelectSpec()

    def plan(self, ids: list[str], modalities: list[str], used: Mapping[str, int]) -> dict[str, Decision]:
        """The decision for every id: its sample score and, if it is not selected, why."""
        s = self.settings
        scores = [sample_score(s.seed, item) for item in ids]
        remaining_total = None if s.budget is None else max(0, s.budget - used.get("*", 0))
        remaining = {m: max(0, cap - used.get(m, 0)) for m, cap in s.budget_per_modality.items()}
        decisions: dict[str, Decision] = {}
        for index in sorted(range(len(ids)), key=lambda i: (scores[i], ids[i])):
            modality, score = modalities[index], scores[index]
            if score >= s.fraction:
                decision = Decision(
                    score, REJECT_NOT_SAMPLED, f"sample score {score:.3f} >= fraction {s.fraction}"
                )
            elif remaining_total is not None and remaining_total <= 0:
                decision = Decision(score, REJECT_BUDGET, f"version budget of {s.budget} items used")
            elif modality in remaining and remaining[modality] <= 0:
                cap = s.budget_per_modality[modality]
                decision = Decision(score, REJECT_BUDGET, f"{modality} budget of {cap} items used")
            else:
                decision = Decision(score, None, None)
                if remaining_total is not None:
                    remaining_total -= 1
                if modality in remaining:
                    remaining[modality] -= 1
            decisions[ids[index]] = decision
        return decisions

    def apply(self, table: pa.Table, decisions: Mapping[str, Decision]) -> tuple[pa.Table, pa.Table]:
        """Split a batch into (selected, rejected) by the plan, both with the `select_*` columns."""
        chosen = [decisions[item] for item in table.column("id").to_pylist()]
        annotated = table
        for field, values in zip(
            SELECT_FIELDS, ([d.score for d in chosen], [STRATEGY] * len(chosen)), strict=True
        ):
            annotated = annotated.append_column(field, pa.array(values, field.type))
        annotated = annotated.cast(with_fields(table.schema, SELECT_FIELDS))
        is_rejected = pa.array([d.reason is not None for d in chosen], pa.bool_())
        rejected = [d for d in chosen if d.reason is not None]
        return annotated.filter(pc.invert(is_rejected)), mark_rejected(
            annotated.filter(is_rejected),
            "selected",
            [str(d.reason) for d in rejected],
            [d.detail for d in rejected],
        )

    def run(self, table: pa.Table, used: Mapping[str, int]) -> tuple[pa.Table, pa.Table]:
        """Plan and apply in one go on a table that fits in memory (a notebook's)."""
        decisions = self.plan(table.column("id").to_pylist(), table.column("modality").to_pylist(), used)
        return self.apply(table, decisions)
