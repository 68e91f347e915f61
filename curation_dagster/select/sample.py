"""A seeded, budgeted sample: each item is drawn by a hash of (seed, id), the budget shared by shards."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping

import pyarrow as pa
import pyarrow.compute as pc

from curation_dagster.schema import mark_rejected, with_fields
from curation_dagster.spec import SelectSpec

REJECT_NOT_SAMPLED = "select.not_sampled"
REJECT_BUDGET = "select.budget"
SELECT_FIELDS = [pa.field("select_score", pa.float64()), pa.field("select_strategy", pa.string())]
STRATEGY = "seeded_sample"


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

    def run(self, table: pa.Table, used: Mapping[str, int]) -> tuple[pa.Table, pa.Table]:
        """Split `table` into (selected, rejected), both with the `select_*` columns."""
        s = self.settings
        ids = table.column("id").to_pylist()
        modalities = table.column("modality").to_pylist()
        scores = [sample_score(s.seed, item) for item in ids]
        remaining_total = None if s.budget is None else max(0, s.budget - used.get("*", 0))
        remaining = {m: max(0, cap - used.get(m, 0)) for m, cap in s.budget_per_modality.items()}
        reasons: list[str | None] = [None] * len(ids)
        details: list[str | None] = [None] * len(ids)
        for index in sorted(range(len(ids)), key=lambda i: (scores[i], ids[i])):
            modality = modalities[index]
            if scores[index] >= s.fraction:
                reasons[index] = REJECT_NOT_SAMPLED
                details[index] = f"sample score {scores[index]:.3f} >= fraction {s.fraction}"
            elif remaining_total is not None and remaining_total <= 0:
                reasons[index] = REJECT_BUDGET
                details[index] = f"version budget of {s.budget} items used"
            elif modality in remaining and remaining[modality] <= 0:
                reasons[index] = REJECT_BUDGET
                details[index] = f"{modality} budget of {s.budget_per_modality[modality]} items used"
            else:
                if remaining_total is not None:
                    remaining_total -= 1
                if modality in remaining:
                    remaining[modality] -= 1
        annotated = table
        for field, values in zip(SELECT_FIELDS, (scores, [STRATEGY] * len(ids)), strict=True):
            annotated = annotated.append_column(field, pa.array(values, field.type))
        annotated = annotated.cast(with_fields(table.schema, SELECT_FIELDS))
        is_rejected = pa.array([reason is not None for reason in reasons], pa.bool_())
        kept = annotated.filter(pc.invert(is_rejected))
        rejected = mark_rejected(
            annotated.filter(is_rejected),
            "selected",
            [r for r in reasons if r is not None],
            [d for r, d in zip(reasons, details, strict=True) if r is not None],
        )
        return kept, rejected
