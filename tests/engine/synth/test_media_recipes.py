"""Tests of curation_dagster/synth/media_recipes.py: image, audio and video recipes, measured on their
decoded output."""

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

from curation_dagster.io.validate import probe_image, probe_video
from curation_dagster.media import encode_mp4
from curation_dagster.models.runtime import ModelRuntime
from curation_dagster.spec import (
    ColourJitterSettings,
    CompositeSettings,
    FrameAugmentSettings,
    NoiseSettings,
    PanZoomSettings,
    ReverbSettings,
    SpeedPitchSettings,
    SynthSettings,
)
from curation_dagster.synth.base import REJECT_RECIPE_FAILED, Recipe, Unusable, Variant
from curation_dagster.synth.captions import REJECT_CAPTION_GEOMETRY
from curation_dagster.synth.image_generator import ImageGeneration
from curation_dagster.synth.media_recipes import (
    REJECT_NO_PARTNER,
    ColourJitter,
    Composite,
    FrameAugment,
    Noise,
    PanZoom,
    Reverb,
    SpeedPitch,
    merge_captions,
)
from curation_dagster.synth.recipes import FlipCrop, FrameStepCrop, GainShift
from curation_dagster.synth.registry import build_recipes
from curation_dagster.synth.tts import TextToSpeech
from tests.media_fixtures import noisy_png, tone_wav

RATE = 8000


def item(
    modality: str, media: bytes | None, text: str | None = "a caption", item_id: str = "p1"
) -> dict[str, Any]:
    return {"id": item_id, "modality": modality, "text": text, "media": media, "uri": f"land/{item_id}"}


def solid_png(size: tuple[int, int], colour: tuple[int, int, int]) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, colour).save(buffer, format="PNG")
    return buffer.getvalue()


def ramp_png(width: int = 64, height: int = 48) -> bytes:
    """Red rises from 0 at the left edge to 255 at the right; green and blue are constant."""
    pixels = np.zeros((height, width, 3), np.uint8)
    pixels[:, :, 0] = np.round(np.linspace(0, 255, width))[None, :]
    pixels[:, :, 1] = 90
    pixels[:, :, 2] = 40
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


def pixels(png: bytes) -> np.ndarray:
    with Image.open(io.BytesIO(png)) as image:
        return np.asarray(image.convert("RGB")).astype(np.float64)


def half_bright_mp4(frames: int = 6, fps: int = 6, size: tuple[int, int] = (32, 16)) -> bytes:
    """A clip whose left half is dark grey and right half light grey, with brightness rising per frame."""
    width, height = size
    arrays = []
    for index in range(frames):
        array = np.full((height, width, 3), 60 + 10 * index, np.uint8)
        array[:, width // 2 :] = 180 + 10 * index
        arrays.append(array)
    return encode_mp4(arrays, fps)


def decoded_frames(data: bytes) -> list[np.ndarray]:
    with av.open(io.BytesIO(data)) as container:
        return [frame.to_ndarray(format="rgb24").astype(np.float64) for frame in container.decode(video=0)]


def samples_of(wav: bytes) -> tuple[np.ndarray, int]:
    samples, rate = soundfile.read(io.BytesIO(wav), dtype="float64")
    return samples, int(rate)


def peak_frequency(samples: np.ndarray, rate: int) -> float:
    spectrum = np.abs(np.fft.rfft(samples * np.hanning(len(samples))))
    return float(np.argmax(spectrum) * rate / len(samples))


def media_of(variant: Any) -> bytes:
    assert isinstance(variant, Variant) and variant.media is not None
    return variant.media


# Colour jitter -----------------------------------------------------------------------------------------


def test_colour_jitter_is_deterministic_per_seed_and_varies_across_seeds() -> None:
    recipe = ColourJitter(ColourJitterSettings())
    parent = item("image", noisy_png(16, 3))

    first = recipe.make(parent, random.Random("2:p1"))

    assert first == recipe.make(parent, random.Random("2:p1"))
    assert first.media != recipe.make(parent, random.Random("2:p2")).media


def test_colour_jitter_draws_factors_within_the_bounds_and_records_them() -> None:
    recipe = ColourJitter(ColourJitterSettings(brightness=0.3, contrast=0.2, saturation=0.1, hue=0.05))

    drawn = [
        recipe.make(item("image", noisy_png(8)), random.Random(seed)).meta["colour_jitter"]
        for seed in range(20)
    ]

    for factors in drawn:
        assert 0.7 <= factors["brightness"] <= 1.3
        assert 0.8 <= factors["contrast"] <= 1.2
        assert 0.9 <= factors["saturation"] <= 1.1
        assert -0.05 <= factors["hue"] <= 0.05
    assert len({factors["brightness"] for factors in drawn}) == 20


def test_colour_jitter_brightness_alone_scales_every_pixel_by_the_recorded_factor() -> None:
    recipe = ColourJitter(ColourJitterSettings(brightness=0.5, contrast=0, saturation=0, hue=0))
    source = ramp_png()

    variant = recipe.make(item("image", source, "ramp"), random.Random(4))

    factor = variant.meta["colour_jitter"]["brightness"]
    assert factor != 1.0
    expected = np.clip(pixels(source) * factor, 0, 255)
    assert np.abs(pixels(media_of(variant)) - expected).max() <= 1.0
    assert (variant.text, variant.media_format) == ("ramp", "png")


def test_colour_jitter_turns_the_hue_by_the_recorded_fraction_of_the_circle() -> None:
    import colorsys

    recipe = ColourJitter(ColourJitterSettings(brightness=0, contrast=0, saturation=0, hue=0.2))

    for seed in range(3):
        variant = recipe.make(item("image", solid_png((4, 4), (255, 0, 0))), random.Random(seed))

        turn = variant.meta["colour_jitter"]["hue"]
        hue, _, _ = colorsys.rgb_to_hsv(*(pixels(media_of(variant))[0, 0] / 255))
        assert abs(turn) > 0.01
        assert abs((hue - turn + 0.5) % 1 - 0.5) < 0.01


# Composite ---------------------------------------------------------------------------------------------


def red_and_blue() -> list[dict[str, Any]]:
    return [
        item("image", solid_png((10, 8), (200, 0, 0)), "A red square.", "red"),
        item("image", solid_png((5, 4), (0, 0, 100)), "A blue square.", "blue"),
    ]


def test_composite_side_by_side_puts_the_second_image_right_scaled_to_the_parent_height() -> None:
    red, blue = red_and_blue()

    (variant,) = Composite(CompositeSettings()).make_batch([red], ["1:red"], pool=[red, blue])

    media = media_of(variant)
    assert probe_image(media) == (20, 8)
    assert tuple(pixels(media)[4, 2]) == (200, 0, 0)
    assert tuple(pixels(media)[4, 15]) == (0, 0, 100)
    assert isinstance(variant, Variant)
    assert variant.text == "Left: A red square. Right: A blue square."
    assert variant.other_parents == ("blue",)
    assert variant.meta == {"second_parent_uri": "land/blue"}


def test_composite_blend_mixes_the_two_images_by_alpha() -> None:
    red, blue = red_and_blue()

    (variant,) = Composite(CompositeSettings(layout="blend", alpha=0.25)).make_batch(
        [red], ["1:red"], pool=[red, blue]
    )

    assert probe_image(media_of(variant)) == (10, 8)
    assert tuple(pixels(media_of(variant))[3, 3]) == (150, 0, 25)
    assert isinstance(variant, Variant) and variant.text == "A red square. Blended with: A blue square."


def test_composite_overlay_pastes_an_inset_of_the_scaled_size() -> None:
    red = item("image", solid_png((20, 20), (200, 0, 0)), "red", "red")
    blue = item("image", solid_png((10, 10), (0, 0, 100)), "blue", "blue")

    (variant,) = Composite(CompositeSettings(layout="overlay", overlay_scale=0.5)).make_batch(
        [red], ["1:red"], pool=[red, blue]
    )

    inset = np.all(pixels(media_of(variant)) == (0, 0, 100), axis=2)
    assert inset.sum() == 100
    rows, columns = np.nonzero(inset)
    assert (rows.max() - rows.min(), columns.max() - columns.min()) == (9, 9)


def test_composite_custom_template_merges_captions_and_a_missing_caption_leaves_the_other() -> None:
    assert merge_captions("{second} beside {first}", "a cat", "a dog") == "a dog beside a cat"
    assert merge_captions("Left: {first} Right: {second}", None, "a dog") == "Left: Right: a dog"
    assert merge_captions("Left: {first} Right: {second}", " ", None) is None


def test_composite_draws_the_second_image_by_seed_and_never_the_parent_itself() -> None:
    pool = [item("image", noisy_png(8, seed), f"caption {seed}", f"img{seed}") for seed in range(5)]
    recipe = Composite(CompositeSettings())
    keys = [f"7:{parent['id']}" for parent in pool]

    first = recipe.make_batch(pool, keys, pool=pool)
    again = recipe.make_batch(list(reversed(pool)), list(reversed(keys)), pool=list(reversed(pool)))

    partners = [outcome.other_parents[0] for outcome in first]
    assert [outcome.other_parents[0] for outcome in reversed(again)] == partners
    assert all(partner != parent["id"] for partner, parent in zip(partners, pool, strict=True))
    assert len(set(partners)) > 1


def test_composite_without_another_image_is_a_no_partner_outcome() -> None:
    red, _ = red_and_blue()
    text = item("text", None, "only text", "t1")

    (outcome,) = Composite(CompositeSettings()).make_batch([red], ["1:red"], pool=[red, text])

    assert isinstance(outcome, Unusable)
    assert outcome.reason == REJECT_NO_PARTNER
    assert outcome.detail == "no other image among the 2 items to composite with"


def test_composite_with_an_undecodable_second_image_names_it_and_lists_it_as_parent() -> None:
    red, _ = red_and_blue()
    broken = item("image", b"not an image", "broken", "broken")

    (outcome,) = Composite(CompositeSettings()).make_batch([red], ["1:red"], pool=[red, broken])

    assert isinstance(outcome, Unusable)
    assert outcome.reason == REJECT_RECIPE_FAILED
    assert outcome.detail.startswith("the second image broken does not decode as an image")
    assert outcome.other_parents == ("broken",)


# Noise -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("colour", "snr_db"), [("white", 20.0), ("white", 5.0), ("pink", 10.0)])
def test_noise_reaches_the_target_snr_within_one_db(colour: str, snr_db: float) -> None:
    source = tone_wav(1.0, RATE)

    variant = Noise(NoiseSettings(snr_db=snr_db, colour=colour)).make(item("audio", source), random.Random(0))

    clean, _ = samples_of(source)
    noisy, rate = samples_of(media_of(variant))
    measured = 10 * np.log10(np.mean(clean**2) / np.mean((noisy - clean) ** 2))
    assert rate == RATE and len(noisy) == len(clean)
    assert abs(measured - snr_db) < 1.0


def octave_powers(noise: np.ndarray, rate: int) -> tuple[float, float]:
    """Mean power of `noise` in 100-200 Hz and in 1600-3200 Hz, per octave."""
    spectrum = np.abs(np.fft.rfft(noise)) ** 2
    frequencies = np.fft.rfftfreq(len(noise), 1 / rate)
    low = spectrum[(frequencies >= 100) & (frequencies < 200)].sum()
    high = spectrum[(frequencies >= 1600) & (frequencies < 3200)].sum()
    return float(low), float(high)


def test_pink_noise_has_equal_power_per_octave_and_white_noise_does_not() -> None:
    source = tone_wav(2.0, RATE)
    clean, _ = samples_of(source)
    ratios = {}
    for colour in ("white", "pink"):
        variant = Noise(NoiseSettings(snr_db=0.0, colour=colour)).make(
            item("audio", source), random.Random(5)
        )
        noisy, _ = samples_of(media_of(variant))
        low, high = octave_powers(noisy - clean, RATE)
        ratios[colour] = low / high

    assert 0.6 < ratios["pink"] < 1.6
    assert 0.03 < ratios["white"] < 0.12  # white: power per octave grows with its width (100 vs 1600 Hz)


def test_noise_is_deterministic_per_seed() -> None:
    recipe = Noise(NoiseSettings())
    parent = item("audio", tone_wav())

    assert recipe.make(parent, random.Random(3)) == recipe.make(parent, random.Random(3))
    assert recipe.make(parent, random.Random(3)).media != recipe.make(parent, random.Random(4)).media


def test_noise_on_a_silent_parent_is_a_rejected_candidate() -> None:
    silent = io.BytesIO()
    soundfile.write(silent, np.zeros(800), RATE, format="WAV", subtype="PCM_16")

    (outcome,) = Noise(NoiseSettings()).make_batch([item("audio", silent.getvalue())], ["1:p1"])

    assert isinstance(outcome, Unusable) and outcome.reason == REJECT_RECIPE_FAILED
    assert "silent" in outcome.detail


# Speed and pitch ---------------------------------------------------------------------------------------


def test_speed_without_semitones_changes_duration_and_pitch_by_the_factor() -> None:
    source = tone_wav(1.0, RATE)

    variant = SpeedPitch(SpeedPitchSettings(speed=1.25)).make(item("audio", source), random.Random(0))

    samples, rate = samples_of(media_of(variant))
    assert rate == RATE
    assert len(samples) == round(RATE / 1.25)
    assert abs(peak_frequency(samples, rate) - 440 * 1.25) < 4


@pytest.mark.parametrize("semitones", [12.0, -5.0])
def test_semitones_shift_the_pitch_and_keep_the_duration(semitones: float) -> None:
    source = tone_wav(1.0, RATE)

    variant = SpeedPitch(SpeedPitchSettings(speed=1.0, semitones=semitones)).make(
        item("audio", source), random.Random(0)
    )

    samples, rate = samples_of(media_of(variant))
    assert len(samples) == RATE
    assert abs(peak_frequency(samples, rate) - 440 * 2 ** (semitones / 12)) < 4


def test_speed_with_zero_semitones_keeps_the_pitch() -> None:
    source = tone_wav(1.0, RATE)

    variant = SpeedPitch(SpeedPitchSettings(speed=1.5, semitones=0)).make(
        item("audio", source), random.Random(0)
    )

    samples, rate = samples_of(media_of(variant))
    assert len(samples) == round(RATE / 1.5)
    assert abs(peak_frequency(samples, rate) - 440) < 4


# Reverb ------------------------------------------------------------------------------------------------


def impulse_wav(seconds: float = 1.0) -> bytes:
    samples = np.zeros(int(seconds * RATE))
    samples[0] = 0.9
    buffer = io.BytesIO()
    soundfile.write(buffer, samples, RATE, format="WAV", subtype="PCM_16")
    return buffer.getvalue()


def measured_rt60(response: np.ndarray, rate: int) -> float:
    """RT60 by Schroeder backward integration: three times the time the decay curve takes from -5 to -25 dB."""
    energy = np.cumsum((response**2)[::-1])[::-1]
    curve = 10 * np.log10(np.maximum(energy / energy[0], 1e-12))
    start = int(np.argmax(curve <= -5))
    end = int(np.argmax(curve <= -25))
    return 3 * (end - start) / rate


@pytest.mark.parametrize("rt60", [0.2, 0.5])
def test_reverb_of_an_impulse_decays_60_db_over_rt60(rt60: float) -> None:
    variant = Reverb(ReverbSettings(rt60_s=rt60, wet=1.0)).make(
        item("audio", impulse_wav()), random.Random(2)
    )

    response, rate = samples_of(media_of(variant))
    assert len(response) == RATE
    assert abs(measured_rt60(response, rate) - rt60) < 0.1 * rt60


def test_reverb_keeps_the_length_mixes_in_the_dry_signal_and_is_deterministic() -> None:
    source = tone_wav(0.5, RATE)
    recipe = Reverb(ReverbSettings(rt60_s=0.3, wet=0.3))

    variant = recipe.make(item("audio", source), random.Random(1))

    assert variant == recipe.make(item("audio", source), random.Random(1))
    mixed, _ = samples_of(media_of(variant))
    clean, _ = samples_of(source)
    assert len(mixed) == len(clean)
    assert 0.5 < np.corrcoef(mixed, clean)[0, 1] < 0.999


# Pan and zoom ------------------------------------------------------------------------------------------


def test_pan_zoom_makes_a_clip_of_the_expected_frames_size_and_rate() -> None:
    recipe = PanZoom(PanZoomSettings(seconds=1.5, fps=8, zoom=1.5))

    variant = recipe.make(item("image", ramp_png(64, 48), "a ramp"), random.Random(0))

    assert (variant.media_format, variant.text) == ("mp4", "a ramp")
    assert probe_video(media_of(variant)) == {
        "width": 64,
        "height": 48,
        "fps": 8.0,
        "frame_count": 12,
        "duration_s": 1.5,
    }
    assert len(decoded_frames(media_of(variant))) == 12


def test_pan_zoom_scales_a_large_still_to_max_side_with_even_sides() -> None:
    variant = PanZoom(PanZoomSettings(seconds=0.25, fps=4, max_side=31)).make(
        item("image", ramp_png(64, 48)), random.Random(0)
    )

    probed = probe_video(media_of(variant))
    assert (probed["width"], probed["height"], probed["frame_count"]) == (30, 22, 1)


def red_slope(frame: np.ndarray) -> float:
    """The red channel's rise per pixel across the frame, fitted on the columns away from the edges."""
    columns = np.arange(8, frame.shape[1] - 8)
    return float(np.polyfit(columns, frame[:, columns, 0].mean(axis=0), 1)[0])


def test_pan_zoom_eases_from_the_whole_still_to_a_close_up_around_the_recorded_centre() -> None:
    for seed in range(4):
        variant = PanZoom(PanZoomSettings(seconds=1, fps=6, zoom=2.0)).make(
            item("image", ramp_png(64, 48)), random.Random(seed)
        )
        frames = decoded_frames(media_of(variant))
        moves = variant.meta["pan_zoom"]
        whole, close = (frames[0], frames[-1]) if moves["direction"] == "in" else (frames[-1], frames[0])
        # The ramp rises 255 / 63 per pixel across the whole still, half that in a close-up at zoom 2.
        assert abs(red_slope(whole) - 255 / 63) < 0.3
        assert abs(red_slope(close) - 255 / 126) < 0.3
        assert abs(close[:, :, 0].mean() - 255 * moves["centre"][0]) < 8


def test_pan_zoom_is_deterministic_per_seed() -> None:
    recipe = PanZoom(PanZoomSettings(seconds=0.5, fps=4))
    parent = item("image", ramp_png(32, 24))

    assert recipe.make(parent, random.Random(9)) == recipe.make(parent, random.Random(9))


def test_pan_zoom_from_a_video_starts_from_its_first_frame() -> None:
    recipe = PanZoom(PanZoomSettings(source="video", seconds=0.5, fps=4, zoom=1.01))
    source = half_bright_mp4()

    variant = recipe.make(item("video", source), random.Random(0))

    assert recipe.parent_modality == "video"
    first = decoded_frames(source)[0]
    made = decoded_frames(media_of(variant))
    assert len(made) == 2 and made[0].shape == first.shape
    assert abs(made[0].mean() - first.mean()) < 3


# Frame augmentation ------------------------------------------------------------------------------------


def test_frame_augment_mirrors_every_frame_at_the_same_size_count_and_rate() -> None:
    source = half_bright_mp4()
    recipe = FrameAugment(FrameAugmentSettings(flip=True, brightness=0, contrast=0, saturation=0, hue=0))

    variant = recipe.make(item("video", source), random.Random(0))

    assert probe_video(media_of(variant)) == probe_video(source)
    assert variant.meta == {}
    for before, after in zip(decoded_frames(source), decoded_frames(media_of(variant)), strict=True):
        assert np.abs(after - before[:, ::-1]).mean() < 3


def test_frame_augment_mirrors_the_sides_its_caption_names_and_refuses_writing() -> None:
    recipe = FrameAugment(FrameAugmentSettings(flip=True, brightness=0, contrast=0, saturation=0, hue=0))
    rolling = item("video", half_bright_mp4(), "A red ball rolls from left to right.")
    sign = item("video", half_bright_mp4(), "A street sign that reads EXIT.")

    variant = recipe.make(rolling, random.Random(0))
    refused = recipe.make(sign, random.Random(0))
    unflipped = FrameAugment(FrameAugmentSettings(flip=False, brightness=0.2)).make(sign, random.Random(0))

    assert isinstance(variant, Variant) and variant.text == "A red ball rolls from right to left."
    assert variant.meta == {"caption_mirrored": ["left", "right"]}
    assert isinstance(refused, Unusable) and refused.reason == REJECT_CAPTION_GEOMETRY
    assert isinstance(unflipped, Variant) and unflipped.text == sign["text"]


def test_frame_augment_applies_one_colour_draw_to_every_frame() -> None:
    source = half_bright_mp4()
    recipe = FrameAugment(FrameAugmentSettings(flip=False, brightness=0.4, contrast=0, saturation=0, hue=0))

    variant = recipe.make(item("video", source), random.Random(3))

    factor = variant.meta["colour_jitter"]["brightness"]
    ratios = [
        after.mean() / before.mean()
        for before, after in zip(decoded_frames(source), decoded_frames(media_of(variant)), strict=True)
    ]
    assert abs(factor - 1) > 0.05
    assert all(abs(ratio - factor) < 0.03 for ratio in ratios)


def test_frame_augment_is_deterministic_per_seed() -> None:
    recipe = FrameAugment(FrameAugmentSettings())
    parent = item("video", half_bright_mp4())

    assert recipe.make(parent, random.Random(1)) == recipe.make(parent, random.Random(1))
    assert recipe.make(parent, random.Random(1)).media != recipe.make(parent, random.Random(2)).media


# Every media recipe ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("recipe", "modality"),
    [
        (ColourJitter(ColourJitterSettings()), "image"),
        (Noise(NoiseSettings()), "audio"),
        (SpeedPitch(SpeedPitchSettings()), "audio"),
        (Reverb(ReverbSettings()), "audio"),
        (PanZoom(PanZoomSettings()), "image"),
        (PanZoom(PanZoomSettings(source="video")), "video"),
        (FrameAugment(FrameAugmentSettings()), "video"),
    ],
    ids=lambda value: value.label if isinstance(value, Recipe) else value,
)
def test_an_undecodable_parent_is_a_rejected_candidate(recipe: Recipe, modality: str) -> None:
    good = {"image": noisy_png(16), "audio": tone_wav(), "video": half_bright_mp4()}[modality]

    broken, fine = recipe.make_batch(
        [item(modality, b"\x00garbage bytes", item_id="bad"), item(modality, good, item_id="good")],
        ["1:bad", "1:good"],
    )

    assert isinstance(broken, Unusable) and broken.reason == REJECT_RECIPE_FAILED and broken.detail
    assert isinstance(fine, Variant)


def test_build_recipes_makes_media_recipes_in_the_spec_order() -> None:
    spec = SynthSettings(
        text=None,
        image=[{"kind": "flip_crop"}, {"kind": "colour_jitter", "name": "jitter"}, {"kind": "composite"}],
        audio=[
            {"kind": "gain_shift"},
            {"kind": "noise"},
            {"kind": "speed_pitch"},
            {"kind": "reverb"},
            {"kind": "tts"},
        ],
        video=[{"kind": "frame_step_crop"}, {"kind": "pan_zoom"}, {"kind": "frame_augment", "fraction": 0.5}],
    )
    runtime = ModelRuntime()

    recipes = build_recipes(spec, runtime)

    assert [(type(recipe), recipe.label, recipe.fraction) for recipe in recipes] == [
        (FlipCrop, "flip_crop", None),
        (ColourJitter, "jitter", None),
        (Composite, "composite", None),
        (GainShift, "gain_shift", None),
        (Noise, "noise", None),
        (SpeedPitch, "speed_pitch", None),
        (Reverb, "reverb", None),
        (TextToSpeech, "tts", None),
        (FrameStepCrop, "frame_step_crop", None),
        (PanZoom, "pan_zoom", None),
        (FrameAugment, "frame_augment", 0.5),
    ]
    tts = recipes[7]
    assert isinstance(tts, TextToSpeech) and tts.runtime is runtime


def test_cross_modality_recipes_take_parents_of_their_source_and_make_their_own_modality() -> None:
    spec = SynthSettings(
        text=None,
        image=[{"kind": "image_generator", "source": "text"}],
        audio=[{"kind": "tts"}],
        video=[{"kind": "pan_zoom"}],
    )

    recipes = build_recipes(spec)

    assert [(type(r), r.parent_modality, r.modality) for r in recipes] == [
        (ImageGeneration, "text", "image"),
        (TextToSpeech, "text", "audio"),
        (PanZoom, "image", "video"),
    ]


def test_generator_records_a_media_recipe_and_its_settings() -> None:
    generator = json.loads(Noise(NoiseSettings(name="noisy", snr_db=12.5, colour="pink")).generator)

    assert generator == {"recipe": "noisy", "snr_db": 12.5, "colour": "pink"}
