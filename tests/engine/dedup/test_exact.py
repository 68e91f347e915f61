"""Tests of curation_dagster/dedup/exact.py: normalised content hashes and keep-first exact dedup."""

from __future__ import annotations

from typing import Any

import pyarrow as pa
import pytest

from curation_dagster.dedup.exact import REJECT_EXACT, ExactDedup, content_hash, normalize_text
from curation_dagster.schema import RAW_SCHEMA, rows_to_table
from curation_dagster.spec import ExactDedupSettings, NormalizeSettings

DEFAULT = NormalizeSettings()


def items(*rows: tuple[str, str, str | None, bytes | None]) -> pa.Table:
    """A raw-stage table from (id, modality, text, media) tuples."""
    dicts: list[dict[str, Any]] = [
        {"id": id_, "modality": modality, "text": text, "media": media, "uri": f"land#{id_}", "shard": "s"}
        for id_, modality, text, media in rows
    ]
    return rows_to_table(dicts, RAW_SCHEMA)


def text_hash(text: str, settings: NormalizeSettings = DEFAULT) -> str:
    return content_hash("text", text, None, settings)


# Normalisation and hashing ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "variant",
    [
        "HELLO World",  # case
        "  hello \t\n world  ",  # whitespace runs and ends
        "ｈｅｌｌｏ world",  # full-width letters (NFKC)
    ],
)
def test_trivial_variants_hash_alike(variant: str) -> None:
    assert text_hash(variant) == text_hash("hello world")


def test_different_texts_hash_differently() -> None:
    assert text_hash("hello world") != text_hash("hello word")


def test_normalize_text_applies_nfkc_casefold_and_whitespace() -> None:
    assert normalize_text("  ﬁne\u00a0 ＴＵＮＥ\n", DEFAULT) == "fine tune"


def test_casefold_off_keeps_case_apart() -> None:
    settings = NormalizeSettings(casefold=False)

    assert text_hash("Hello", settings) != text_hash("hello", settings)


def test_whitespace_collapse_off_keeps_spacing_apart() -> None:
    settings = NormalizeSettings(collapse_whitespace=False)

    assert text_hash("a  b", settings) != text_hash("a b", settings)


def test_nfkc_off_keeps_compatibility_characters_apart() -> None:
    settings = NormalizeSettings(unicode_nfkc=False)

    assert text_hash("ｈｉ", settings) != text_hash("hi", settings)


def test_media_is_hashed_on_its_bytes_not_its_caption() -> None:
    one = content_hash("image", "a cat", b"\x89PNG-same-bytes", DEFAULT)
    two = content_hash("image", "a dog", b"\x89PNG-same-bytes", DEFAULT)

    assert one == two


def test_media_with_different_bytes_hash_differently() -> None:
    assert content_hash("image", "x", b"one", DEFAULT) != content_hash("image", "x", b"two", DEFAULT)


def test_same_bytes_of_different_modalities_hash_differently() -> None:
    assert content_hash("audio", None, b"data", DEFAULT) != content_hash("image", None, b"data", DEFAULT)


# Keep first, reject later ----------------------------------------------------------------------------


def test_first_of_duplicates_is_kept_and_later_ones_point_to_it() -> None:
    table = items(
        ("a", "text", "Hello world", None),
        ("b", "text", "something else", None),
        ("c", "text", "hello   WORLD", None),
        ("d", "text", "HELLO world", None),
    )

    kept, rejected = ExactDedup().run(table, {})

    assert kept.column("id").to_pylist() == ["a", "b"]
    assert kept.column("dup_of").to_pylist() == [None, None]
    assert rejected.column("id").to_pylist() == ["c", "d"]
    assert rejected.column("dup_of").to_pylist() == ["a", "a"]


def test_rejected_duplicates_carry_stage_reason_and_detail() -> None:
    table = items(("a", "text", "same", None), ("b", "text", "same", None))

    _, rejected = ExactDedup().run(table, {})

    assert rejected.to_pylist()[0]["reject_stage"] == "deduped"
    assert rejected.to_pylist()[0]["reject_reason"] == REJECT_EXACT == "dedup.exact"
    assert "a" in rejected.to_pylist()[0]["reject_detail"]


def test_identical_media_bytes_are_duplicates() -> None:
    table = items(("a", "image", "a cat", b"bytes"), ("b", "image", "another caption", b"bytes"))

    kept, rejected = ExactDedup().run(table, {})

    assert kept.column("id").to_pylist() == ["a"]
    assert rejected.column("dup_of").to_pylist() == ["a"]


def test_kept_rows_carry_their_content_hash() -> None:
    kept, _ = ExactDedup().run(items(("a", "text", "Hello", None)), {})

    assert kept.column("content_hash").to_pylist() == [text_hash("hello")]


def test_kept_items_are_added_to_the_known_map() -> None:
    known: dict[str, str] = {}

    ExactDedup().run(items(("a", "text", "one", None), ("b", "text", "one", None)), known)

    assert known == {text_hash("one"): "a"}


def test_hash_in_the_known_map_rejects_with_its_claimant() -> None:
    known = {text_hash("earlier text"): "from-earlier-batch"}

    kept, rejected = ExactDedup().run(items(("a", "text", "Earlier  text", None)), known)

    assert kept.num_rows == 0
    assert rejected.column("dup_of").to_pylist() == ["from-earlier-batch"]


def test_hash_returned_by_lookup_rejects_with_its_claimant() -> None:
    claimed = text_hash("indexed text")
    asked: list[list[str]] = []

    def lookup(hashes: list[str]) -> dict[str, str]:
        asked.append(sorted(hashes))
        return {claimed: "other-shard-id"} if claimed in hashes else {}

    kept, rejected = ExactDedup().run(
        items(("a", "text", "indexed text", None), ("b", "text", "new text", None)), {}, lookup
    )

    assert kept.column("id").to_pylist() == ["b"]
    assert rejected.column("dup_of").to_pylist() == ["other-shard-id"]
    assert asked == [sorted([claimed, text_hash("new text")])]


def test_lookup_is_not_asked_for_hashes_already_known() -> None:
    known = {text_hash("known"): "k"}
    asked: list[str] = []

    def lookup(hashes: list[str]) -> dict[str, str]:
        asked.extend(hashes)
        return {}

    ExactDedup().run(items(("a", "text", "known", None), ("b", "text", "fresh", None)), known, lookup)

    assert asked == [text_hash("fresh")]


def test_disabled_dedup_keeps_every_item() -> None:
    table = items(("a", "text", "same", None), ("b", "text", "same", None))

    kept, rejected = ExactDedup(ExactDedupSettings(enabled=False)).run(table, {})

    assert kept.column("id").to_pylist() == ["a", "b"]
    assert rejected.num_rows == 0


@pytest.mark.parametrize("enabled", [True, False])
def test_kept_and_rejected_have_the_dedup_and_reject_columns(enabled: bool) -> None:
    table = items(("a", "text", "x", None), ("b", "text", "x", None))

    kept, rejected = ExactDedup(ExactDedupSettings(enabled=enabled)).run(table, {})

    assert {"content_hash", "dup_of"} <= set(kept.column_names)
    assert {"content_hash", "dup_of", "reject_stage", "reject_reason", "reject_detail"} <= set(
        rejected.column_names
    )


def test_empty_table_gives_empty_kept_and_rejected() -> None:
    kept, rejected = ExactDedup().run(items(), {})

    assert (kept.num_rows, rejected.num_rows) == (0, 0)
    assert "reject_reason" in rejected.column_names
