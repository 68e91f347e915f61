"""A seeded sample: each item is drawn by a hash of (seed, id), lowest scores first under the budget."""

from __future__ import annotations

import numpy as np

from curation_dagster.sampling import sample_scores
from curation_dagster.select.base import REJECT_NOT_SAMPLED, Pool, Ranking, Strategy, ordered


class SeededSample(Strategy):
    """Keeps items whose seeded score is below `select.fraction`, lowest scores first, while budget remains.

    An item's fate does not depend on the rest of its shard: the score is a hash of the seed and its id.
    """

    name = "seeded_sample"

    def rank(self, pool: Pool, k: int | None) -> Ranking:
        fraction = self.settings.fraction
        scores = sample_scores(pool.seed, pool.ids)
        sampled = np.flatnonzero(scores < fraction)
        excluded = {
            int(p): (REJECT_NOT_SAMPLED, f"sample score {scores[p]:.3f} >= fraction {fraction}")
            for p in np.flatnonzero(scores >= fraction)
        }
        return Ranking(ordered(scores, pool.ids, sampled), scores, excluded)
