"""The data card's numbers: DuckDB queries over a version's views of the lake (`Lake.duckdb`: one view
per stage and one per stage's rejects). Views that do not exist yet count as empty."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from curation_dagster.schema import MODALITIES, SYNTH_FIELDS
from curation_dagster.stages import STAGES

#: The two outcomes of an item, in the order tables and stacked plots show them.
OUTCOMES = ("kept", "rejected")
HISTOGRAM_BINS = 20
#: A histogram's bins stop short of the values further than this many times the span between the 1st and
#: 99th percentiles beyond them; those outliers are counted apart, so they cannot squeeze the rest into a bar.
LONG_TAIL = 3
#: Numeric columns that are not scores: dedup similarity has its own section, the rest are bookkeeping.
NOT_SCORES = frozenset({"dup_similarity", "select_score", "select_cluster", "select_rank"})
NUMERIC_TYPES = (
    "TINYINT",
    "SMALLINT",
    "INTEGER",
    "BIGINT",
    "HUGEINT",
    "UTINYINT",
    "USMALLINT",
    "UINTEGER",
    "UBIGINT",
    "UHUGEINT",
    "FLOAT",
    "DOUBLE",
    "DECIMAL",
)
SAMPLE_COLUMNS = "id, modality, text, media, uri, media_format"


@dataclass(frozen=True)
class FunnelRow:
    """Items one stage kept and rejected, by modality."""

    stage: str
    kept: dict[str, int]
    rejected: dict[str, int]

    @property
    def kept_total(self) -> int:
        return sum(self.kept.values())

    @property
    def rejected_total(self) -> int:
        return sum(self.rejected.values())


def funnel_modalities(funnel: Sequence[FunnelRow]) -> list[str]:
    """The modalities that any stage of the funnel kept or rejected, in schema order."""
    return [m for m in MODALITIES if any(row.kept.get(m) or row.rejected.get(m) for row in funnel)]


@dataclass(frozen=True)
class Histogram:
    """Kept and rejected counts of one numeric column in `HISTOGRAM_BINS` equal bins from `low`, and of the
    outliers `below` and `above` that range, so that a few extreme items do not squeeze the rest into a bar."""

    low: float
    width: float
    counts: dict[str, list[int]]
    below: dict[str, int]
    above: dict[str, int]
    minimum: float
    maximum: float

    @property
    def edges(self) -> list[float]:
        """The left edge of every bin."""
        return [self.low + index * self.width for index in range(HISTOGRAM_BINS)]

    @property
    def high(self) -> float:
        """The right edge of the last bin."""
        return self.low + HISTOGRAM_BINS * self.width

    @property
    def items(self) -> int:
        """Items with a value, in the bins and beyond them."""
        return sum(map(sum, self.counts.values())) + sum(self.below.values()) + sum(self.above.values())


class VersionViews:
    """A DuckDB connection with a version's views, and the queries the data card asks of them."""

    def __init__(self, connection: Any) -> None:
        self.connection = connection
        self.views = {
            str(row[0]) for row in self.sql("SELECT view_name FROM duckdb_views() WHERE NOT internal")
        }

    def sql(self, query: str, params: Sequence[Any] | None = None) -> list[tuple[Any, ...]]:
        return list(self.connection.sql(query, params=list(params) if params else None).fetchall())

    def columns(self, view: str) -> dict[str, str]:
        """Column names and DuckDB types of a view, empty when the view does not exist."""
        if view not in self.views:
            return {}
        return {str(name): str(kind) for name, kind, *_ in self.sql(f"DESCRIBE {view}")}

    def union(self, *views: str) -> str | None:
        """A FROM clause over the existing views among `views` (stages add columns, so by name)."""
        present = [view for view in views if view in self.views]
        if not present:
            return None
        return "(" + " UNION ALL BY NAME ".join(f"SELECT * FROM {view}" for view in present) + ")"

    def reason_counts(self, source: str) -> dict[str, int]:
        """Rows of `source` per `reject_reason`, most frequent first."""
        rows = self.sql(f"SELECT reject_reason, count(*) FROM {source} GROUP BY 1 ORDER BY 2 DESC, 1")
        return {str(reason): int(count) for reason, count in rows}

    # ------------------------------------------------------------------------------------ funnel

    def funnel(self) -> list[FunnelRow]:
        """Kept and rejected items of every stage, by modality."""
        return [
            FunnelRow(stage, self._count_by_modality(stage), self._count_by_modality(f"{stage}_rejected"))
            for stage in STAGES
        ]

    def rejections(self) -> dict[str, int]:
        """Rejected items of all stages per reason, most frequent first."""
        rejected_views = self.union(*(f"{stage}_rejected" for stage in STAGES))
        return self.reason_counts(rejected_views) if rejected_views else {}

    def _count_by_modality(self, view: str) -> dict[str, int]:
        if view not in self.views:
            return {}
        return {str(m): int(c) for m, c in self.sql(f"SELECT modality, count(*) FROM {view} GROUP BY 1")}

    # ---------------------------------------------------------------------------- filtered stage

    def filtered_outcomes(self) -> str | None:
        """Kept and rejected rows of the filtered stage with an `outcome` column."""
        parts = [
            f"SELECT *, '{outcome}' AS outcome FROM {view}"
            for view, outcome in (("filtered", "kept"), ("filtered_rejected", "rejected"))
            if view in self.views
        ]
        return "(" + " UNION ALL BY NAME ".join(parts) + ")" if parts else None

    def filtered_columns(self) -> dict[str, str]:
        """Column names and types of the filtered stage's kept and rejected rows together."""
        return {**self.columns("filtered"), **self.columns("filtered_rejected")}

    def score_columns(self) -> list[str]:
        """The filtered stage's numeric columns that are scores."""
        return [
            name
            for name, kind in self.filtered_columns().items()
            if kind.startswith(NUMERIC_TYPES) and name not in NOT_SCORES
        ]

    def histogram(self, source: str, column: str) -> Histogram | None:
        """Kept and rejected counts of one numeric column, binned in DuckDB; None when it has no value.

        The bins span the values within `LONG_TAIL` percentile spans of the 1st and 99th percentiles; the
        items beyond are counted in `below` and `above`."""
        quoted = _quote(column)
        minimum, maximum, count, first, last, low, high = self.sql(
            f"WITH percentiles AS (SELECT quantile_disc({quoted}, 0.01)::DOUBLE AS first, "
            f"quantile_disc({quoted}, 0.99)::DOUBLE AS last FROM {source}) "
            f"SELECT min({quoted})::DOUBLE, max({quoted})::DOUBLE, count({quoted}), any_value(first), "
            f"any_value(last), (min({quoted}) FILTER (WHERE {quoted} >= first - ? * (last - first)))::DOUBLE, "
            f"(max({quoted}) FILTER (WHERE {quoted} <= last + ? * (last - first)))::DOUBLE "
            f"FROM {source}, percentiles",
            [LONG_TAIL, LONG_TAIL],
        )[0]
        if not count:
            return None
        if first == last:  # most items share one value: the others are the distribution, not outliers
            low, high = minimum, maximum
        minimum, maximum, low, high = float(minimum), float(maximum), float(low), float(high)
        if high == low:  # one value: centre it in a unit-wide range
            low, high = low - 0.5, high + 0.5
        width = (high - low) / HISTOGRAM_BINS
        rows = self.sql(
            f"SELECT CASE WHEN {quoted} < ? THEN -1 WHEN {quoted} > ? THEN {HISTOGRAM_BINS} "
            f"ELSE least(floor(({quoted} - ?) / ?)::INTEGER, {HISTOGRAM_BINS - 1}) END AS bin, outcome, count(*) "
            f"FROM {source} WHERE {quoted} IS NOT NULL GROUP BY ALL",
            [low, high, low, width],
        )
        counts = {outcome: [0] * HISTOGRAM_BINS for outcome in OUTCOMES}
        below, above = dict.fromkeys(OUTCOMES, 0), dict.fromkeys(OUTCOMES, 0)
        for bin_index, outcome, number in rows:
            if bin_index < 0:
                below[str(outcome)] += int(number)
            elif bin_index >= HISTOGRAM_BINS:
                above[str(outcome)] += int(number)
            else:
                counts[str(outcome)][int(bin_index)] += int(number)
        return Histogram(low, width, counts, below, above, minimum, maximum)

    def language_mix(self, source: str) -> list[tuple[Any, ...]]:
        """(language, outcome, items) of the text items in `source`."""
        return self.sql(
            f"SELECT coalesce(lang, '(none)') AS lang, outcome, count(*) FROM {source} "
            "WHERE modality = 'text' GROUP BY ALL ORDER BY 1, 2"
        )

    def register_mix(self, source: str) -> list[tuple[Any, ...]]:
        """(formal or colloquial, outcome, items) from a numeric `formality` (at least 0.5 is formal)."""
        return self.sql(
            f"SELECT CASE WHEN formality >= 0.5 THEN 'formal' ELSE 'colloquial' END, outcome, count(*) "
            f"FROM {source} WHERE formality IS NOT NULL GROUP BY ALL ORDER BY 1, 2"
        )

    def formality_values(self, source: str) -> list[tuple[Any, ...]]:
        """(value, outcome, items) of a `formality` column that is not numeric."""
        return self.sql(
            f"SELECT coalesce(formality::VARCHAR, '(none)'), outcome, count(*) FROM {source} "
            "GROUP BY ALL ORDER BY 1, 2"
        )

    # ------------------------------------------------------------------------ later stages

    def duplicate_reasons(self) -> list[tuple[Any, ...]]:
        """(reason, items) the deduped stage removed."""
        return self.sql("SELECT reject_reason, count(*) FROM deduped_rejected GROUP BY 1 ORDER BY 1")

    def cluster_sizes(self) -> list[tuple[Any, ...]]:
        """(size, clusters): a cluster is a kept item with all the duplicates that name it in `dup_of`."""
        return self.sql(
            "SELECT size, count(*) FROM (SELECT dup_of, count(*) + 1 AS size FROM deduped_rejected "
            "WHERE dup_of IS NOT NULL GROUP BY dup_of) GROUP BY size ORDER BY size"
        )

    def synthetic_outcomes(self) -> str | None:
        """Synthetic rows of the synthesized stage, admitted and rejected, with an `outcome` column."""
        parts = [
            f"SELECT modality, generator, '{outcome}' AS outcome, "
            + ("reject_reason" if outcome == "rejected" else "NULL AS reject_reason")
            + f" FROM {view} WHERE synthetic"
            for view, outcome in (("synthesized", "kept"), ("synthesized_rejected", "rejected"))
            if view in self.views and "synthetic" in self.columns(view)
        ]
        return "(" + " UNION ALL ".join(parts) + ")" if parts else None

    def synthetic_counts(self, source: str) -> dict[tuple[str, str], dict[str, int]]:
        """(modality, recipe) -> items per outcome."""
        rows = self.sql(
            f"SELECT modality, generator, outcome, count(*) FROM {source} GROUP BY ALL ORDER BY ALL"
        )
        counts: dict[tuple[str, str], dict[str, int]] = {}
        for modality, generator, outcome, number in rows:
            key = (str(modality), recipe_name(generator))
            counts.setdefault(key, dict.fromkeys(OUTCOMES, 0))[str(outcome)] += int(number)
        return counts

    def synthetic_kept(self) -> dict[str, int]:
        """Synthetic items in the final training set (the synthesized stage's kept rows), by modality."""
        if "synthetic" not in self.columns("synthesized"):
            return {}
        return {
            str(m): int(c)
            for m, c in self.sql("SELECT modality, count(*) FROM synthesized WHERE synthetic GROUP BY 1")
        }

    # ------------------------------------------------------------------------------- samples

    def _sample_columns(self, view: str) -> str:
        """`SAMPLE_COLUMNS` and the synthesized stage's provenance columns, NULL where `view` lacks them."""
        present = self.columns(view)
        provenance = [
            field.name if field.name in present else f"NULL AS {field.name}" for field in SYNTH_FIELDS
        ]
        return ", ".join([SAMPLE_COLUMNS, *provenance])

    def samples(self, view: str, per_modality: int) -> list[dict[str, Any]]:
        """The first `per_modality` items of `view` by id, for every modality."""
        if view not in self.views:
            return []
        query = (
            f"SELECT {self._sample_columns(view)} FROM {view} "
            "QUALIFY row_number() OVER (PARTITION BY modality ORDER BY id) <= ? ORDER BY modality, id"
        )
        return self.connection.sql(query, params=[per_modality]).to_arrow_table().to_pylist()

    def rejected_samples(self, views: Sequence[str], per_modality: int) -> list[dict[str, Any]]:
        """Rejected samples per modality, one per reason first so that every reason gets shown."""
        present = [view for view in views if view in self.views]
        if not present:
            return []
        source = " UNION ALL ".join(
            f"SELECT {self._sample_columns(view)}, reject_stage, reject_reason, reject_detail FROM {view}"
            for view in present
        )
        query = (
            f"SELECT * EXCLUDE (turn) FROM (SELECT *, row_number() OVER (PARTITION BY modality, reject_reason "
            f"ORDER BY id) AS turn FROM ({source})) "
            "QUALIFY row_number() OVER (PARTITION BY modality ORDER BY turn, reject_reason, id) <= ? "
            "ORDER BY modality, reject_reason, id"
        )
        return self.connection.sql(query, params=[per_modality]).to_arrow_table().to_pylist()


def recipe_name(generator: Any) -> str:
    """The recipe name recorded in a synthetic item's `generator` JSON."""
    try:
        return str(json.loads(str(generator))["recipe"])
    except (ValueError, KeyError, TypeError):
        return str(generator)


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'
