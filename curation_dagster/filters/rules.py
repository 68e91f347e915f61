"""Threshold rules over score columns for a batch of rows: the first rule each row breaks, its reject code
and a short detail, as the text quality filters report them."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from curation_dagster.filters.base import Filter


@dataclass(frozen=True)
class Rule:
    """Rejects a row whose value is past `bound` (`<` or `>`); NaN (no value) or no bound never does.
    `template` holds `{}` for the value in the detail; `whole` values print as integers."""

    name: str
    template: str
    values: np.ndarray
    comparison: str
    bound: float | None
    whole: bool = False


def number_text(value: float) -> str:
    return str(value) if isinstance(value, int) else f"{value:.4g}"


def first_broken(
    item: Filter, rules: Sequence[Rule], size: int, decided: np.ndarray | None = None
) -> tuple[list[str | None], list[str | None]]:
    """Per row, the code and detail of the first rule it breaks, or None for both; rows already `decided`
    (rejected for another reason) are left as None."""
    reasons: list[str | None] = [None] * size
    details: list[str | None] = [None] * size
    open_rows = np.ones(size, np.bool_) if decided is None else ~decided
    for rule in rules:
        if rule.bound is None:
            continue
        with np.errstate(invalid="ignore"):
            broken = rule.values < rule.bound if rule.comparison == "<" else rule.values > rule.bound
        broken &= open_rows
        if not broken.any():
            continue
        code = item.code(rule.name)
        bound = number_text(rule.bound)
        for row in np.flatnonzero(broken).tolist():
            value = rule.values[row]
            shown = number_text(int(value) if rule.whole else float(value))
            reasons[row] = code
            details[row] = f"{rule.template.format(shown)} {rule.comparison} {bound}"
        open_rows &= ~broken
    return reasons, details


def ratio(part: np.ndarray, whole: np.ndarray) -> np.ndarray:
    """`part / whole` per row as floats, NaN where `whole` is 0."""
    result = np.full(len(part), np.nan)
    np.divide(part, whole, out=result, where=whole != 0)
    return result


def score_list(values: np.ndarray, whole: bool = False, missing: np.ndarray | None = None) -> list[object]:
    """A score column as Python values: None for NaN and for `missing` rows, integers when `whole`."""
    absent = np.isnan(values) if values.dtype.kind == "f" else np.zeros(len(values), np.bool_)
    if missing is not None:
        absent = absent | missing
    filled = np.where(absent, 0, values)
    column: list[object] = filled.astype(np.int64).tolist() if whole else filled.astype(np.float64).tolist()
    for row in np.flatnonzero(absent).tolist():
        column[row] = None
    return column
