"""Tests of curation_dagster/schema.py: stable item ids."""

from __future__ import annotations

from curation_dagster.schema import item_id


def test_item_id_of_valid_utf8_positions_is_unchanged() -> None:
    # The ids every lake written so far holds: hashing must never change them.
    assert item_id("a.jsonl", "L1") == "cd89cef936b1ee13"
    assert item_id("photos", "cats/tom ü.png") == "be25b1c6157456bf"


def test_item_id_of_names_that_are_not_utf8_is_stable_and_distinct() -> None:
    # Python lists a file named b"caf\xe9.png" as "caf\udce9.png" (surrogateescape).
    first = item_id("photos", "caf\udce9.png")
    assert first == item_id("photos", "caf\udce9.png")
    assert first != item_id("photos", "caf\udce8.png")
