"""Captions of mirrored pictures (curation_dagster/synth/captions.py): side and turning words exchanged in
their case, the other senses of "left" and "right" left alone, writing noticed."""

import pytest

from curation_dagster.synth.captions import has_side_words, mirror_caption


@pytest.mark.parametrize(
    ("caption", "mirrored"),
    [
        ("Gradient from orange to yellow, left to right", "Gradient from orange to yellow, right to left"),
        ("A red ball rolls from left to right.", "A red ball rolls from right to left."),
        ("LEFT hand and Right-hand side", "RIGHT hand and Left-hand side"),
        ("upper left corner, far right", "upper right corner, far left"),
        ("Left: a cat. Right: a dog.", "Right: a cat. Left: a dog."),
        ("the leftmost tree turns leftwards", "the rightmost tree turns rightwards"),
        ("a wheel turning clockwise", "a wheel turning anticlockwise"),
        ("a wheel turning counter-clockwise", "a wheel turning clockwise"),
    ],
)
def test_side_and_turning_words_are_exchanged_in_their_case(caption: str, mirrored: str) -> None:
    assert mirror_caption(caption).text == mirrored
    assert has_side_words(caption)


@pytest.mark.parametrize(
    "caption",
    [
        "She left the room right now",
        "That's right, all right",
        "leftover cake, brightly lit, a copyright notice",
        "A cat on a sofa",
    ],
)
def test_words_that_name_no_side_stay(caption: str) -> None:
    assert mirror_caption(caption).text == caption
    assert not has_side_words(caption)


@pytest.mark.parametrize(
    ("caption", "writing"),
    [
        ("A shop sign that reads OPEN", "sign"),
        ("a logo on a mug", "logo"),
        ("Hand-written letters on paper", "written"),
        ("a cat on a sofa", None),
    ],
)
def test_writing_in_the_picture_is_noticed(caption: str, writing: str | None) -> None:
    assert mirror_caption(caption).writing == writing
