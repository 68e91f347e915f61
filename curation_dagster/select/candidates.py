"""A shard's selection candidates: the SQL settings (`where`, `quotas.by`, `strategy.order_by`)
evaluated by DuckDB over the rows' columns, with the text when a strategy needs it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from curation_dagster.errors import SpecError
from curation_dagster.spec import SelectSettings, TopKSettings

#: The view every query reads; the caller points it at a Parquet file or an Arrow table.
ITEMS = "items"
#: The group of items whose `quotas.by` value is null.
NULL_GROUP = "(none)"


@dataclass(frozen=True)
class Candidates:
    """One row per item in file order: id, modality, text (or None when not needed), whether `where`
    holds, the quota group (None without quotas) and the `order_by` value (NaN where null)."""

    ids: list[str]
    modalities: list[str]
    texts: list[str | None] | None
    passes: np.ndarray
    groups: list[str | None]
    values: np.ndarray | None


def sql_settings(settings: SelectSettings) -> list[tuple[str, str, str, str]]:
    """(setting, expression as written, expression cast to the type it must have, column alias) for each
    SQL setting in use."""
    out = []
    if settings.where is not None:
        where = settings.where
        out.append(("select.where", where, f"coalesce(CAST(({where}) AS BOOLEAN), false)", "passes"))
    if settings.quotas is not None:
        by = settings.quotas.by
        out.append(("select.quotas.by", by, f"CAST(({by}) AS VARCHAR)", "grp"))
    if isinstance(settings.strategy, TopKSettings):
        order_by = settings.strategy.order_by
        out.append(("select.strategy.order_by", order_by, f"CAST(({order_by}) AS DOUBLE)", "value"))
    return out


def read_candidates(connection: Any, settings: SelectSettings, *, need_text: bool, source: str) -> Candidates:
    """Evaluate the SQL settings over the `items` view; a failing expression is a `SpecError` naming the
    setting, the source and the columns it can use."""
    import duckdb

    expressions = sql_settings(settings)
    columns = ["id", "modality", *(["text"] if need_text else [])]
    select = ", ".join(columns + [f"{expression} AS {alias}" for _, _, expression, alias in expressions])
    try:
        table = connection.sql(f"SELECT {select} FROM {ITEMS}").to_arrow_table()
    except duckdb.Error as error:
        raise _diagnose(connection, expressions, source, error) from None
    count = table.num_rows
    passes = (
        np.asarray(table.column("passes").to_pylist(), dtype=bool)
        if "passes" in table.column_names
        else np.ones(count, bool)
    )
    groups: list[str | None] = (
        [NULL_GROUP if group is None else str(group) for group in table.column("grp").to_pylist()]
        if "grp" in table.column_names
        else [None] * count
    )
    values = (
        np.asarray(table.column("value").to_numpy(zero_copy_only=False), dtype=np.float64)
        if "value" in table.column_names
        else None
    )
    return Candidates(
        ids=[str(item) for item in table.column("id").to_pylist()],
        modalities=[str(modality) for modality in table.column("modality").to_pylist()],
        texts=table.column("text").to_pylist() if need_text else None,
        passes=passes,
        groups=groups,
        values=values,
    )


def _diagnose(
    connection: Any, expressions: list[tuple[str, str, str, str]], source: str, error: Exception
) -> Exception:
    """The error of the first SQL setting that fails on its own, naming it; else the original error."""
    import duckdb

    names = connection.sql(f"SELECT * FROM {ITEMS} LIMIT 0").columns
    for setting, written, expression, _ in expressions:
        try:
            connection.sql(f"SELECT {expression} FROM {ITEMS}").fetchall()
        except duckdb.Error as failure:
            first_line = str(failure).splitlines()[0]
            return SpecError(
                f"{setting}: {written!r} failed on {source}: {first_line} (columns there: {', '.join(names)})"
            )
    return error
