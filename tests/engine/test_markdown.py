"""Markdown cells for metadata (curation_dagster/markdown.py): the difference between near-duplicate texts
shown so that a reader sees it."""

from __future__ import annotations

from curation_dagster.markdown import cell, excerpt_at_difference, word_difference

KEPT = (
    "Residents complained that the construction work on the square began before seven every morning and "
    "went on past dark, and the council promised to review the permits at its next meeting in March."
)
REMOVED = KEPT.replace("seven", "six").replace("next meeting", "spring meeting")


def test_near_duplicates_that_share_their_first_160_characters_are_shown_from_their_difference() -> None:
    assert cell(REMOVED, 60) == cell(KEPT, 60)  # the old cells looked the same
    removed, kept = excerpt_at_difference(REMOVED, KEPT, 60), excerpt_at_difference(KEPT, REMOVED, 60)
    assert removed != kept
    assert removed.startswith("…the square began before six")
    assert kept.startswith("…the square began before seven")


def test_the_difference_strikes_the_kept_words_and_bolds_the_removed_ones_with_context() -> None:
    shown = word_difference(REMOVED, KEPT)
    assert shown == (
        "the square began before ~~seven~~ **six** every morning and went … the permits at its "
        "~~next~~ **spring** meeting in March."
    )


def test_insertions_deletions_and_identical_words() -> None:
    assert word_difference("a b c d", "a b d") == "a b **c** d"
    assert word_difference("a b d", "a b c d") == "a b ~~c~~ d"
    assert word_difference("a  b\nc", "a b c") == "(same words)"


def test_markdown_in_the_texts_is_escaped_and_a_long_difference_is_cut_with_emphasis_closed() -> None:
    assert word_difference("x *y* | z", "x y | z") == "x ~~y~~ **\\*y\\*** \\| z"
    long_kept = " ".join(f"w{index}" for index in range(400))
    long_removed = " ".join(f"v{index}" for index in range(400))
    shown = word_difference(long_removed, long_kept, limit=80)
    assert len(shown) <= 84 and shown.endswith(" …")
    assert shown.count("~~") % 2 == 0 and shown.count("**") % 2 == 0


def test_a_text_that_fits_is_shown_whole() -> None:
    assert excerpt_at_difference("a short text, changed", "a short text, kept") == "a short text, changed"
