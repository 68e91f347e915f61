"""Quota maths: splitting a budget exactly between groups and handing on what a group cannot use."""

from __future__ import annotations

import math
from collections.abc import Mapping
from fractions import Fraction


def largest_remainder(total: int, weights: Mapping[str, float]) -> dict[str, int]:
    """`total` split into whole numbers proportional to `weights`, summing to exactly `total` (Hamilton's
    method): each group gets the floor of its exact share, then the units left go to the largest
    remainders (ties: larger weight, then name). Weights are read as the decimals they print as."""
    exact_weights = {group: Fraction(repr(float(weight))) for group, weight in weights.items()}
    weight_sum = sum(exact_weights.values(), Fraction(0))
    if total <= 0 or weight_sum <= 0:
        return dict.fromkeys(weights, 0)
    exact = {group: total * weight / weight_sum for group, weight in exact_weights.items()}
    shares = {group: math.floor(value) for group, value in exact.items()}
    left = total - sum(shares.values())
    by_remainder = sorted(exact, key=lambda g: (-(exact[g] - shares[g]), -exact_weights[g], g))
    for group in by_remainder[:left]:
        shares[group] += 1
    return shares


def allot(
    remaining: Mapping[str, int],
    supply: Mapping[str, int],
    weights: Mapping[str, float],
    total: int | None,
    *,
    redistribute: bool,
) -> dict[str, int]:
    """How many items each group may take now.

    `remaining` is each group's quota left, `supply` how many it can offer, `total` the version budget left
    (None: unlimited). A group takes at most its quota and its supply; with `redistribute`, quota that
    short groups cannot use goes to groups with spare supply, by weight, until none is left. The sum never
    exceeds `total`.
    """
    allotted = {group: min(remaining.get(group, 0), supply.get(group, 0)) for group in weights}
    if redistribute:
        spare = sum(remaining.get(group, 0) for group in weights) - sum(allotted.values())
        if total is not None:
            spare = min(spare, total - sum(allotted.values()))
        while spare > 0:
            hungry = {
                group: weight
                for group, weight in weights.items()
                if weight > 0 and supply.get(group, 0) > allotted[group]
            }
            if not hungry:
                break
            given = 0
            for group, extra in largest_remainder(spare, hungry).items():
                taken = min(extra, supply.get(group, 0) - allotted[group])
                allotted[group] += taken
                given += taken
            if given == 0:
                break
            spare -= given
    if total is not None and sum(allotted.values()) > total:
        # Groups over their quota in earlier shards leave less version budget than the quotas add up to.
        allotted = largest_remainder(total, {g: float(n) for g, n in allotted.items()})
    return allotted
