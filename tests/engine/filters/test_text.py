"""Tests of curation_dagster/filters/text.py: exact reject codes and scores on tiny literal texts."""

from __future__ import annotations

import pyarrow as pa
import pytest

from curation_dagster.filters.text import Blocklist, TextLength
from curation_dagster.spec import BlocklistSettings, TextLengthSettings


def texts(*values: str | None) -> pa.Table:
    return pa.table({"text": pa.array(values, pa.large_string())})


LENGTH = TextLength(TextLengthSettings(min_chars=10, max_chars=40, min_words=3))


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("too short", "filter.text_length.too_short"),
        ("   padded    ", "filter.text_length.too_short"),
        (None, "filter.text_length.too_short"),
        ("x" * 41, "filter.text_length.too_long"),
        ("twowords onlyhere", "filter.text_length.too_few_words"),
        ("three fine words", None),
    ],
)
def test_text_length_reason(text: str | None, reason: str | None) -> None:
    assert LENGTH.evaluate(texts(text)).reasons == [reason]


def test_text_length_boundaries_are_inclusive() -> None:
    verdicts = LENGTH.evaluate(texts("a b " + "c" * 6, "a b " + "c" * 36))

    assert verdicts.reasons == [None, None]


def test_text_length_scores_characters_after_stripping_and_words() -> None:
    verdicts = LENGTH.evaluate(texts("  one two\tthree  ", "x"))

    assert verdicts.scores == {"text_chars": [13, 1], "text_words": [3, 1]}


def test_text_length_detail_states_the_numbers() -> None:
    assert LENGTH.evaluate(texts("short")).details == ["5 characters < 10"]


BLOCK = Blocklist(BlocklistSettings(words=("spam", "shut up")))


@pytest.mark.parametrize(
    ("text", "hits"),
    [
        ("this is spam", 1),
        ("SPAM, Spam and spam!", 3),
        ("please SHUT UP now", 1),
        ("spammer and antispam", 0),  # no hit inside a longer word
        ("spam_filter", 0),
        ("clean text", 0),
    ],
)
def test_blocklist_counts_whole_word_case_insensitive_hits(text: str, hits: int) -> None:
    assert BLOCK.evaluate(texts(text)).scores == {"blocklist_hits": [hits]}


def test_blocklist_hit_rejects_with_its_code_and_the_matched_words() -> None:
    verdicts = BLOCK.evaluate(texts("Spam! shut up", "spammers welcome"))

    assert verdicts.reasons == ["filter.blocklist.hit", None]
    assert verdicts.details == ["matched: shut up, spam", None]


def test_blocklist_allows_up_to_max_hits() -> None:
    lenient = Blocklist(BlocklistSettings(words=("spam",), max_hits=1))

    assert lenient.evaluate(texts("spam", "spam spam")).reasons == [None, "filter.blocklist.hit"]


def test_blocklist_words_are_literal_not_patterns() -> None:
    dotted = Blocklist(BlocklistSettings(words=("a.b",)))

    assert dotted.evaluate(texts("a.b", "axb")).scores == {"blocklist_hits": [1, 0]}
