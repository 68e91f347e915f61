"""Tests of curation_dagster/synth/recipes.py: deterministic recipes whose output decodes."""

from __future__ import annotations

import io
import json
import random
from typing import Any

import av
import numpy as np
import pytest
import soundfile
from PIL import Image

from curation_dagster.io.validate import probe_audio, probe_image, probe_video
from curation_dagster.spec import (
    FlipCropSettings,
    FrameStepCropSettings,
    GainShiftSettings,
    SentenceShuffleSettings,
    SynthSettings,
    WordEditsSettings,
)
from curation_dagster.synth.base import REJECT_RECIPE_FAILED, Unusable, Variant
from curation_dagster.synth.recipes import (
    REJECT_CAPTION_GEOMETRY,
    FlipCrop,
    FrameStepCrop,
    GainShift,
    SentenceShuffle,
    WordEdits,
)
from curation_dagster.synth.registry import build_recipes
from tests.media_fixtures import tone_wav

SENTENCE = "the quick brown fox jumps over the lazy dog while seven small birds sing in the old oak tree"


def gradient_png(width: int = 10, height: int = 8) -> bytes:
    """Pixel (x, y) is (20x, 20y, 7): every pixel tells where it came from."""
    pixels = np.zeros((height, width, 3), np.uint8)
    pixels[:, :, 0] = (np.arange(width) * 20)[None, :]
    pixels[:, :, 1] = (np.arange(height) * 20)[:, None]
    pixels[:, :, 2] = 7
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


def moving_mp4(frames: int = 8, fps: int = 8, size: int = 32) -> bytes:
    buffer = io.BytesIO()
    rng = np.random.default_rng(0)
    with av.open(buffer, mode="w", format="mp4") as container:
        stream = container.add_stream("mpeg4", rate=fps)
        stream.width, stream.height, stream.pix_fmt = size, size, "yuv420p"
        for _ in range(frames):
            pixels = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
            container.mux(stream.encode(av.VideoFrame.from_ndarray(pixels, format="rgb24")))
        container.mux(stream.encode())
    return buffer.getvalue()


def parent(modality: str, text: str | None = "a caption", media: bytes | None = None) -> dict[str, Any]:
    return {"id": "p1", "modality": modality, "text": text, "media": media, "uri": "land/x#1"}


def rms(wav: bytes) -> float:
    samples, _ = soundfile.read(io.BytesIO(wav), dtype="float64")
    return float(np.sqrt(np.mean(samples**2)))


# Text ------------------------------------------------------------------------------------------------


def test_word_edits_is_deterministic_for_the_same_seed() -> None:
    recipe = WordEdits(WordEditsSettings(edit_rate=0.3))

    one = recipe.make(parent("text", SENTENCE), random.Random("s"))
    two = recipe.make(parent("text", SENTENCE), random.Random("s"))

    assert one == two


def test_word_edits_changes_the_text() -> None:
    variant = WordEdits(WordEditsSettings(edit_rate=0.3)).make(parent("text", SENTENCE), random.Random("s"))

    assert variant.text != SENTENCE
    assert (variant.media, variant.media_format) == (None, None)


def test_word_edits_only_swaps_and_drops_words() -> None:
    variant = WordEdits(WordEditsSettings(edit_rate=0.5)).make(parent("text", SENTENCE), random.Random(1))

    assert variant.text is not None
    assert set(variant.text.split()) <= set(SENTENCE.split())
    assert len(variant.text.split()) <= len(SENTENCE.split())


def test_word_edits_leaves_a_single_word_unchanged() -> None:
    recipe = WordEdits(WordEditsSettings(edit_rate=0.5))

    assert {recipe.make(parent("text", "hello"), random.Random(seed)).text for seed in range(20)} == {"hello"}


PARAGRAPHS = "One is first. Two is second! Three is third?\n\nFour is alone here.\n"


def test_sentence_shuffle_is_deterministic_for_the_same_seed() -> None:
    recipe = SentenceShuffle(SentenceShuffleSettings())

    assert recipe.make(parent("text", PARAGRAPHS), random.Random(3)) == recipe.make(
        parent("text", PARAGRAPHS), random.Random(3)
    )


def test_sentence_shuffle_reorders_sentences_and_keeps_paragraphs() -> None:
    variant = SentenceShuffle(SentenceShuffleSettings(swap_rate=1.0)).make(
        parent("text", PARAGRAPHS), random.Random(0)
    )

    assert variant.text is not None and variant.text != PARAGRAPHS
    first, second = variant.text.split("\n\n")
    assert sorted(re_sentences(first)) == ["One is first.", "Three is third?", "Two is second!"]
    assert second == "Four is alone here.\n"


def re_sentences(text: str) -> list[str]:
    import re

    return re.split(r"(?<=[.!?])\s+", text.strip())


def test_sentence_shuffle_moves_a_sentence_at_most_max_distance() -> None:
    sentences = [f"Sentence {index}." for index in range(12)]
    recipe = SentenceShuffle(SentenceShuffleSettings(swap_rate=1.0, max_distance=1))

    for seed in range(10):
        variant = recipe.make(parent("text", " ".join(sentences)), random.Random(seed))
        assert variant.text is not None
        moved = re_sentences(variant.text)
        assert sorted(moved) == sorted(sentences)
        assert moved != sentences
        assert all(abs(moved.index(sentence) - index) <= 1 for index, sentence in enumerate(sentences))


def test_sentence_shuffle_swaps_at_least_once_even_at_a_low_rate() -> None:
    recipe = SentenceShuffle(SentenceShuffleSettings(swap_rate=0.001))

    texts = {
        recipe.make(parent("text", "Alpha one. Beta two."), random.Random(seed)).text for seed in range(5)
    }

    assert texts == {"Beta two. Alpha one."}


def test_sentence_shuffle_leaves_a_single_sentence_unchanged() -> None:
    variant = SentenceShuffle(SentenceShuffleSettings()).make(
        parent("text", "Just one sentence here."), random.Random(0)
    )

    assert variant.text == "Just one sentence here."


def test_make_batch_turns_a_failing_parent_into_an_unusable_outcome() -> None:
    recipe = FlipCrop(FlipCropSettings())

    outcomes = recipe.make_batch(
        [parent("image", media=b"not an image"), parent("image", media=gradient_png())], ["1:a", "1:b"]
    )

    assert isinstance(outcomes[0], Unusable) and outcomes[0].reason == REJECT_RECIPE_FAILED
    assert isinstance(outcomes[1], Variant)


def test_make_batch_seeds_each_parent_from_its_key() -> None:
    recipe = WordEdits(WordEditsSettings(edit_rate=0.3))

    (variant,) = recipe.make_batch([parent("text", SENTENCE)], ["7:p1"])

    assert variant == recipe.make(parent("text", SENTENCE), random.Random("7:p1"))


# Image -----------------------------------------------------------------------------------------------


def test_flip_crop_is_deterministic_for_the_same_seed() -> None:
    recipe = FlipCrop(FlipCropSettings(crop_fraction=0.5))
    source = parent("image", media=gradient_png())

    assert recipe.make(source, random.Random(1)) == recipe.make(source, random.Random(1))


def test_flip_crop_output_is_a_png_with_the_cropped_size() -> None:
    variant = FlipCrop(FlipCropSettings(crop_fraction=0.5)).make(
        parent("image", media=gradient_png(10, 8)), random.Random(0)
    )

    assert isinstance(variant, Variant) and variant.media is not None
    assert variant.media_format == "png"
    assert probe_image(variant.media) == (5, 4)


def test_flip_crop_output_is_the_centre_of_the_mirrored_image() -> None:
    variant = FlipCrop(FlipCropSettings(crop_fraction=0.5)).make(
        parent("image", media=gradient_png(10, 8)), random.Random(0)
    )

    assert isinstance(variant, Variant) and variant.media is not None
    with Image.open(io.BytesIO(variant.media)) as output:
        # The crop starts at (2, 2) of the mirror; mirrored x=2 is source x=10-1-2=7.
        assert output.getpixel((0, 0)) == (140, 40, 7)
        assert output.getpixel((4, 3)) == (60, 100, 7)


def test_flip_crop_keeps_a_caption_that_names_no_side() -> None:
    variant = FlipCrop(FlipCropSettings()).make(parent("image", "cap", gradient_png()), random.Random(0))

    assert isinstance(variant, Variant) and variant.text == "cap" and variant.meta == {}


def test_flip_crop_mirrors_the_sides_its_caption_names() -> None:
    caption = "A gradient from orange to yellow, left to right."
    variant = FlipCrop(FlipCropSettings()).make(parent("image", caption, gradient_png()), random.Random(0))

    assert isinstance(variant, Variant)
    assert variant.text == "A gradient from orange to yellow, right to left."
    assert variant.meta == {"caption_mirrored": ["left", "right"]}


@pytest.mark.parametrize(
    ("captions", "caption", "mirrored"),
    [
        ("mirror", "A shop sign that reads OPEN", False),
        ("skip", "A tree on the left", False),
        ("skip", "A tree", True),
        ("keep", "A sign on the left", True),
    ],
)
def test_flip_crop_does_not_mirror_what_its_caption_cannot_follow(
    captions: str, caption: str, mirrored: bool
) -> None:
    recipe = FlipCrop(FlipCropSettings(captions=captions))
    outcome = recipe.make(parent("image", caption, gradient_png()), random.Random(0))

    if mirrored:
        assert isinstance(outcome, Variant) and outcome.text == caption
    else:
        assert isinstance(outcome, Unusable) and outcome.reason == REJECT_CAPTION_GEOMETRY


# Audio -----------------------------------------------------------------------------------------------


def test_gain_shift_is_deterministic_for_the_same_seed() -> None:
    recipe = GainShift(GainShiftSettings())
    source = parent("audio", media=tone_wav())

    assert recipe.make(source, random.Random(1)) == recipe.make(source, random.Random(1))


def test_gain_shift_output_decodes_with_the_same_duration() -> None:
    source = tone_wav(0.5, 8000)

    variant = GainShift(GainShiftSettings()).make(parent("audio", media=source), random.Random(0))

    assert variant.media is not None
    assert variant.media != source
    assert variant.media_format == "wav"
    assert probe_audio(variant.media) == probe_audio(source)


def test_gain_shift_lowers_rms_by_the_gain() -> None:
    source = tone_wav()

    variant = GainShift(GainShiftSettings(gain_db=-6.0, shift_fraction=0.25)).make(
        parent("audio", media=source), random.Random(0)
    )

    assert variant.media is not None
    change_db = 20 * np.log10(rms(variant.media) / rms(source))
    assert abs(change_db - -6.0) < 0.05


def test_gain_shift_shifts_in_time() -> None:
    source = tone_wav()

    variant = GainShift(GainShiftSettings(gain_db=0.0, shift_fraction=0.25)).make(
        parent("audio", media=source), random.Random(0)
    )

    assert variant.media is not None
    original, _ = soundfile.read(io.BytesIO(source), dtype="int16")
    shifted, _ = soundfile.read(io.BytesIO(variant.media), dtype="int16")
    assert np.array_equal(shifted, np.roll(original, len(original) // 4))


# Video -----------------------------------------------------------------------------------------------


def test_frame_step_crop_is_deterministic_for_the_same_seed() -> None:
    recipe = FrameStepCrop(FrameStepCropSettings())
    source = parent("video", media=moving_mp4())

    assert recipe.make(source, random.Random(1)) == recipe.make(source, random.Random(1))


def test_frame_step_crop_output_decodes_with_fewer_frames_and_a_cropped_size() -> None:
    source = moving_mp4(frames=8, fps=8, size=32)

    variant = FrameStepCrop(FrameStepCropSettings(frame_step=2, crop_fraction=0.5)).make(
        parent("video", media=source), random.Random(0)
    )

    assert variant.media is not None
    assert variant.media != source
    assert variant.media_format == "mp4"
    probed = probe_video(variant.media)
    assert (probed["width"], probed["height"], probed["frame_count"]) == (16, 16, 4)
    assert probed["fps"] == 4


# Recipes from the spec -------------------------------------------------------------------------------


def test_build_recipes_returns_only_the_recipes_the_spec_switches_on() -> None:
    recipes = build_recipes(SynthSettings(image=None, video=None))

    assert [(r.modality, type(r)) for r in recipes] == [("text", WordEdits), ("audio", GainShift)]


def test_generator_names_the_recipe_and_its_settings() -> None:
    generator = json.loads(WordEdits(WordEditsSettings(edit_rate=0.2)).generator)

    assert generator == {"recipe": "word_edits", "edit_rate": 0.2}


def test_generator_names_a_named_recipe_by_its_name() -> None:
    generator = json.loads(
        SentenceShuffle(SentenceShuffleSettings(name="shuffle_far", max_distance=5)).generator
    )

    assert generator == {
        "recipe": "shuffle_far",
        "swap_rate": 0.5,
        "max_distance": 5,
        "within_paragraphs": True,
    }


def test_build_recipes_keeps_the_spec_order_of_text_recipes() -> None:
    spec = SynthSettings(
        text=[{"kind": "sentence_shuffle"}, {"kind": "word_edits", "fraction": 0.5}],
        image=None,
        audio=None,
        video=None,
    )

    recipes = build_recipes(spec)

    assert [(type(r), r.label, r.fraction) for r in recipes] == [
        (SentenceShuffle, "sentence_shuffle", None),
        (WordEdits, "word_edits", 0.5),
    ]
