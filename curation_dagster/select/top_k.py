"""Top-k by a score column or SQL expression, with optional bounds that make it a threshold."""

from __future__ import annotations

from typing import Any

import numpy as np

from curation_dagster.select.base import REJECT_THRESHOLD, Pool, Ranking, Strategy, ordered
from curation_dagster.spec import TopKSettings


class TopK(Strategy):
    """The items with the best `order_by` value first (highest when `descending`), ties broken by id.

    The value is evaluated by DuckDB over the row's columns before ranking (`Pool.values`); items outside
    `min_value` / `max_value`, or with a null value when a bound is set, are refused as `select.threshold`.
    Without bounds, items with a null value rank last.
    """

    name = "top_k"
    needs = frozenset({"values"})

    @property
    def spec(self) -> TopKSettings:
        strategy = self.settings.strategy
        if not isinstance(strategy, TopKSettings):
            raise TypeError(f"TopK needs select.strategy of kind top_k, got {strategy.kind}")
        return strategy

    def rank(self, pool: Pool, k: int | None) -> Ranking:
        spec = self.spec
        values = np.asarray(pool.values, dtype=np.float64)
        excluded: dict[int, tuple[str, str]] = {}
        bounded = spec.min_value is not None or spec.max_value is not None
        for position, value in enumerate(values.tolist()):
            if bounded and np.isnan(value):
                excluded[position] = (REJECT_THRESHOLD, f"{spec.order_by} is null")
            elif spec.min_value is not None and value < spec.min_value:
                excluded[position] = (REJECT_THRESHOLD, f"{spec.order_by} = {value:.4g} < {spec.min_value}")
            elif spec.max_value is not None and value > spec.max_value:
                excluded[position] = (REJECT_THRESHOLD, f"{spec.order_by} = {value:.4g} > {spec.max_value}")
        eligible = np.asarray([p for p in range(len(pool)) if p not in excluded], dtype=np.int64)
        keys = -values if spec.descending else values
        return Ranking(ordered(keys, pool.ids, eligible), values, excluded)

    def describe(self, pool: Pool, selected: np.ndarray) -> dict[str, Any]:
        values = np.asarray(pool.values, dtype=np.float64)[selected]
        values = values[~np.isnan(values)]
        if not values.size:
            return {"order_by": self.spec.order_by}
        return {
            "order_by": self.spec.order_by,
            "selected_value_min": round(float(values.min()), 6),
            "selected_value_max": round(float(values.max()), 6),
        }
