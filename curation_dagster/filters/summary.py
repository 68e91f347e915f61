"""What a filtered shard looks like, for the metadata a person reads to tune thresholds: score quantiles,
the mix of categorical scores, and a few rejected examples per reason. Read back from the shard's kept
and rejected Parquet files with DuckDB, so it costs no memory in the stage itself."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pyarrow as pa

#: The quantiles shown for each numeric score column.
QUANTILES = (0.05, 0.25, 0.5, 0.75, 0.95)
#: Rejected rows shown per reason.
EXAMPLES_PER_REASON = 3
#: Characters of text shown per example.
SNIPPET_CHARS = 120
#: Distinct values shown for a categorical score column (such as `lang`).
TOP_VALUES = 10


@dataclass
class FilterSummary:
    """Quantiles per numeric score (finite values; NaN and infinities left out), counts per value of
    string scores, and rejected examples."""

    quantiles: dict[str, dict[str, float | int | None]]
    categories: dict[str, dict[str, int]]
    examples: dict[str, list[dict[str, str]]]

    def quantiles_markdown(self) -> str:
        if not self.quantiles:
            return "No scores."
        header = ["score", "rows", "min", *(f"p{round(q * 100):02d}" for q in QUANTILES), "max"]
        lines = ["| " + " | ".join(header) + " |", "| --- |" + " ---: |" * (len(header) - 1)]
        for name, values in self.quantiles.items():
            cells = [f"`{name}`", *(_number(values[column]) for column in header[1:])]
            lines.append("| " + " | ".join(cells) + " |")
        return "\n".join(lines)

    def examples_markdown(self) -> str:
        if not self.examples:
            return "No rows rejected."
        lines = ["| reason | id | detail | item |", "| --- | --- | --- | --- |"]
        for reason, rows in self.examples.items():
            for row in rows:
                cells = [f"`{reason}`", f"`{row['id']}`", _cell(row["detail"]), _cell(row["item"])]
                lines.append("| " + " | ".join(cells) + " |")
        return "\n".join(lines)


def _number(value: float | int | None) -> str:
    if value is None:
        return "–"
    if isinstance(value, int) or float(value).is_integer():
        return f"{int(value):,}"
    return f"{value:.3g}"


def _cell(text: str) -> str:
    """Text safe inside a markdown table cell: one line, no pipe characters."""
    return " ".join(text.split()).replace("|", "\\|")


def _is_numeric(field: pa.Field) -> bool:
    return pa.types.is_integer(field.type) or pa.types.is_floating(field.type)


def summarize(
    connection: Any, kept_url: str, rejected_url: str, score_fields: Sequence[pa.Field]
) -> FilterSummary:
    """Summarise one filtered shard from its two files (`connection` is a DuckDB connection that can
    read them). Scores of rejected rows count too: they are what a threshold was compared with."""
    columns = [field.name for field in score_fields]
    selected = ", ".join(_quoted(column) for column in columns) or "1"
    both = f"SELECT {selected} FROM read_parquet(?) UNION ALL SELECT {selected} FROM read_parquet(?)"
    params = [kept_url, rejected_url]
    quantiles = _quantiles(connection, both, params, [field for field in score_fields if _is_numeric(field)])
    categories: dict[str, dict[str, int]] = {}
    for field in score_fields:
        name = _quoted(field.name)
        if pa.types.is_string(field.type) or pa.types.is_large_string(field.type):
            counts = connection.sql(
                f"SELECT {name}, count(*) FROM ({both}) WHERE {name} IS NOT NULL GROUP BY 1 "
                f"ORDER BY 2 DESC, 1 LIMIT {TOP_VALUES}",
                params=params,
            ).fetchall()
            if counts:
                categories[field.name] = {str(value): int(count) for value, count in counts}
    examples: dict[str, list[dict[str, str]]] = {}
    rows = connection.sql(
        "SELECT reject_reason, id, coalesce(reject_detail, ''), "
        f"coalesce(left(text, {SNIPPET_CHARS}), uri) FROM read_parquet(?) "
        "QUALIFY row_number() OVER (PARTITION BY reject_reason ORDER BY id) <= ? ORDER BY 1, 2",
        params=[rejected_url, EXAMPLES_PER_REASON],
    ).fetchall()
    for reason, item_id, detail, item in rows:
        examples.setdefault(reason, []).append({"id": item_id, "detail": detail, "item": item or ""})
    return FilterSummary(quantiles, categories, examples)


def _quantiles(
    connection: Any, both: str, params: list[str], fields: Sequence[pa.Field]
) -> dict[str, dict[str, float | int | None]]:
    """Row count, minimum, `QUANTILES` and maximum of every numeric score, in one scan of the files. Over
    finite values only: NaN sorts above every number in DuckDB and would skew the top."""
    if not fields:
        return {}
    parts = []
    for field in fields:
        # NULL where not finite, which every aggregate skips (a FILTER clause per aggregate is several times
        # slower in DuckDB).
        value = f"{_quoted(field.name)}::DOUBLE"
        finite = f"(CASE WHEN isfinite({value}) THEN {value} END)"
        parts += [
            f"count({finite})",
            f"min({finite})",
            f"quantile_cont({finite}, {list(QUANTILES)})",
            f"max({finite})",
        ]
    (row,) = connection.sql(f"SELECT {', '.join(parts)} FROM ({both})", params=params).fetchall()
    labels = ["rows", "min", *(f"p{round(q * 100):02d}" for q in QUANTILES), "max"]
    quantiles: dict[str, dict[str, float | int | None]] = {}
    for number, field in enumerate(fields):
        count, low, middle, high = row[4 * number : 4 * number + 4]
        if count:
            quantiles[field.name] = dict(zip(labels, [count, low, *middle, high], strict=True))
    return quantiles


def _quoted(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'
