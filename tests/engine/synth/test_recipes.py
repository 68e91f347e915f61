"""Tests of curation_dagster/synth/recipes.py: deterministic recipes whose output decodes."""

from __future__ import annotations

import io
import json
import random
from typing import Any

import av
import numpy as np
import soundfile
from PIL import Image

from curation_dagster.io.validate import probe_audio, probe_image, probe_video
from curation_dagster.spec import AudioRecipe, ImageRecipe, SynthSpec, TextRecipe, VideoRecipe
from curation_dagster.synth.recipes import FlipCrop, FrameStepCrop, GainShift, WordEdits, build_recipes
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
    recipe = WordEdits(TextRecipe(edit_rate=0.3))

    one = recipe.make(parent("text", SENTENCE), random.Random("s"))
    two = recipe.make(parent("text", SENTENCE), random.Random("s"))

    assert one == two


def test_word_edits_changes_the_text() -> None:
    variant = WordEdits(TextRecipe(edit_rate=0.3)).make(parent("text", SENTENCE), random.Random("s"))

    assert variant.text != SENTENCE
    assert (variant.media, variant.media_format) == (None, None)


def test_word_edits_only_swaps_and_drops_words() -> None:
    variant = WordEdits(TextRecipe(edit_rate=0.5)).make(parent("text", SENTENCE), random.Random(1))

    assert variant.text is not None
    assert set(variant.text.split()) <= set(SENTENCE.split())
    assert len(variant.text.split()) <= len(SENTENCE.split())


def test_word_edits_leaves_a_single_word_unchanged() -> None:
    recipe = WordEdits(TextRecipe(edit_rate=0.5))

    assert {recipe.make(parent("text", "hello"), random.Random(seed)).text for seed in range(20)} == {"hello"}


# Image -----------------------------------------------------------------------------------------------


def test_flip_crop_is_deterministic_for_the_same_seed() -> None:
    recipe = FlipCrop(ImageRecipe(crop_fraction=0.5))
    source = parent("image", media=gradient_png())

    assert recipe.make(source, random.Random(1)) == recipe.make(source, random.Random(1))


def test_flip_crop_output_is_a_png_with_the_cropped_size() -> None:
    variant = FlipCrop(ImageRecipe(crop_fraction=0.5)).make(
        parent("image", media=gradient_png(10, 8)), random.Random(0)
    )

    assert variant.media is not None
    assert variant.media_format == "png"
    assert probe_image(variant.media) == (5, 4)


def test_flip_crop_output_is_the_centre_of_the_mirrored_image() -> None:
    variant = FlipCrop(ImageRecipe(crop_fraction=0.5)).make(
        parent("image", media=gradient_png(10, 8)), random.Random(0)
    )

    assert variant.media is not None
    with Image.open(io.BytesIO(variant.media)) as output:
        # The crop starts at (2, 2) of the mirror; mirrored x=2 is source x=10-1-2=7.
        assert output.getpixel((0, 0)) == (140, 40, 7)
        assert output.getpixel((4, 3)) == (60, 100, 7)


def test_flip_crop_keeps_the_caption() -> None:
    variant = FlipCrop(ImageRecipe()).make(parent("image", "cap", gradient_png()), random.Random(0))

    assert variant.text == "cap"


# Audio -----------------------------------------------------------------------------------------------


def test_gain_shift_is_deterministic_for_the_same_seed() -> None:
    recipe = GainShift(AudioRecipe())
    source = parent("audio", media=tone_wav())

    assert recipe.make(source, random.Random(1)) == recipe.make(source, random.Random(1))


def test_gain_shift_output_decodes_with_the_same_duration() -> None:
    source = tone_wav(0.5, 8000)

    variant = GainShift(AudioRecipe()).make(parent("audio", media=source), random.Random(0))

    assert variant.media is not None
    assert variant.media != source
    assert variant.media_format == "wav"
    assert probe_audio(variant.media) == probe_audio(source)


def test_gain_shift_lowers_rms_by_the_gain() -> None:
    source = tone_wav()

    variant = GainShift(AudioRecipe(gain_db=-6.0, shift_fraction=0.25)).make(
        parent("audio", media=source), random.Random(0)
    )

    assert variant.media is not None
    change_db = 20 * np.log10(rms(variant.media) / rms(source))
    assert abs(change_db - -6.0) < 0.05


def test_gain_shift_shifts_in_time() -> None:
    source = tone_wav()

    variant = GainShift(AudioRecipe(gain_db=0.0, shift_fraction=0.25)).make(
        parent("audio", media=source), random.Random(0)
    )

    assert variant.media is not None
    original, _ = soundfile.read(io.BytesIO(source), dtype="int16")
    shifted, _ = soundfile.read(io.BytesIO(variant.media), dtype="int16")
    assert np.array_equal(shifted, np.roll(original, len(original) // 4))


# Video -----------------------------------------------------------------------------------------------


def test_frame_step_crop_is_deterministic_for_the_same_seed() -> None:
    recipe = FrameStepCrop(VideoRecipe())
    source = parent("video", media=moving_mp4())

    assert recipe.make(source, random.Random(1)) == recipe.make(source, random.Random(1))


def test_frame_step_crop_output_decodes_with_fewer_frames_and_a_cropped_size() -> None:
    source = moving_mp4(frames=8, fps=8, size=32)

    variant = FrameStepCrop(VideoRecipe(frame_step=2, crop_fraction=0.5)).make(
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
    recipes = build_recipes(SynthSpec(image=None, video=None))

    assert {m: type(r) for m, r in recipes.items()} == {"text": WordEdits, "audio": GainShift}


def test_generator_names_the_recipe_and_its_settings() -> None:
    generator = json.loads(WordEdits(TextRecipe(edit_rate=0.2)).generator)

    assert generator == {"recipe": "word_edits", "edit_rate": 0.2}
