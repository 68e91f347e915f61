"""Tests of curation_dagster/select/quotas.py: exact budget splits and redistribution of leftover quota."""

from __future__ import annotations

from curation_dagster.select.quotas import allot, largest_remainder


def test_largest_remainder_gives_floors_then_the_largest_remainders() -> None:
    # Exact shares 3.5, 2.1 and 1.4: floors 3, 2, 1 leave one unit, which goes to the largest remainder (a).
    assert largest_remainder(7, {"a": 0.5, "b": 0.3, "c": 0.2}) == {"a": 4, "b": 2, "c": 1}


def test_largest_remainder_sums_to_the_total_exactly() -> None:
    for total in range(0, 50):
        assert sum(largest_remainder(total, {"en": 0.6, "de": 0.25, "fr": 0.15}).values()) == total


def test_largest_remainder_breaks_equal_remainders_by_name() -> None:
    assert largest_remainder(10, {"b": 1, "a": 1, "c": 1}) == {"a": 4, "b": 3, "c": 3}


def test_largest_remainder_reads_decimal_shares_exactly() -> None:
    # In binary floating point 0.1 * 10 is not exactly 1; as decimals the split is exact.
    assert largest_remainder(10, {"a": 0.1, "b": 0.2, "c": 0.7}) == {"a": 1, "b": 2, "c": 7}


def test_allot_takes_at_most_quota_and_supply() -> None:
    allotted = allot({"a": 5, "b": 5}, {"a": 9, "b": 2}, {"a": 1, "b": 1}, total=10, redistribute=False)

    assert allotted == {"a": 5, "b": 2}


def test_allot_redistributes_what_a_short_group_cannot_use() -> None:
    # b can use 2 of its 5, so 3 are spare; split 0.4 : 0.1 between a and c that is 2.4 and 0.6, so a
    # gets 2 and c (larger remainder) 1.
    allotted = allot(
        {"a": 4, "b": 5, "c": 1},
        {"a": 9, "b": 2, "c": 2},
        {"a": 0.4, "b": 0.5, "c": 0.1},
        total=10,
        redistribute=True,
    )

    assert allotted == {"a": 6, "b": 2, "c": 2}


def test_allot_hands_on_what_a_group_with_spare_share_cannot_take() -> None:
    # The 4 spare from b would go 2 / 2 to a and c, but c can take only 1 more; the next round gives a the rest.
    allotted = allot(
        {"a": 3, "b": 4, "c": 3},
        {"a": 10, "b": 0, "c": 4},
        {"a": 1, "b": 1, "c": 1},
        total=10,
        redistribute=True,
    )

    assert allotted == {"a": 6, "b": 0, "c": 4}


def test_allot_never_exceeds_the_budget_left() -> None:
    # Earlier shards overfilled nothing here, but only 4 of the version budget is left for 3 + 3 of quota.
    allotted = allot({"a": 3, "b": 3}, {"a": 5, "b": 5}, {"a": 1, "b": 1}, total=4, redistribute=True)

    assert allotted == {"a": 2, "b": 2}


def test_allot_without_redistribution_keeps_a_short_groups_quota_unused() -> None:
    allotted = allot({"a": 3, "b": 3}, {"a": 5, "b": 0}, {"a": 1, "b": 1}, total=6, redistribute=False)

    assert allotted == {"a": 3, "b": 0}
