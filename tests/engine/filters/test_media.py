"""Tests of curation_dagster/filters/media.py: image size, blankness and blur; duration; audio silence and
quality; video quality, motion and scene cuts."""

from __future__ import annotations

import io
from collections.abc import Sequence

import numpy as np
import pyarrow as pa
import pydantic
import pytest
import soundfile
from PIL import Image, ImageFilter
from sklearn.datasets import load_sample_image

from curation_dagster.filters.media import (
    AudioQuality,
    AudioSilence,
    Duration,
    ImageBlank,
    ImageBlur,
    ImageSize,
    VideoMotion,
    VideoQuality,
    clipping_ratio,
    frame_motion,
    silence_ratio,
    snr_db,
)
from curation_dagster.media import H264_VIDEO, encode_mp4
from curation_dagster.spec import (
    AudioQualitySettings,
    AudioSilenceSettings,
    DurationSettings,
    ImageBlankSettings,
    ImageBlurSettings,
    ImageSizeSettings,
    VideoMotionSettings,
    VideoQualitySettings,
)
from tests.media_fixtures import tiny_mp4


def sizes(*pairs: tuple[int | None, int | None]) -> pa.Table:
    return pa.table(
        {
            "width": pa.array([w for w, _ in pairs], pa.int32()),
            "height": pa.array([h for _, h in pairs], pa.int32()),
        }
    )


def media(*blobs: bytes) -> pa.Table:
    return pa.table(
        {
            "media": pa.array(blobs, pa.large_binary()),
            "uri": pa.array([f"land#{i}" for i in range(len(blobs))], pa.string()),
        }
    )


def png(pixels: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


def wav(samples: np.ndarray, rate: int = 8000) -> bytes:
    buffer = io.BytesIO()
    soundfile.write(buffer, samples, rate, format="WAV", subtype="PCM_16")
    return buffer.getvalue()


def tone(seconds: float = 0.5, rate: int = 8000, amplitude: float = 0.5) -> np.ndarray:
    return amplitude * np.sin(2 * np.pi * 440 * np.arange(int(seconds * rate)) / rate)


# Image size ------------------------------------------------------------------------------------------

SIZE = ImageSize(ImageSizeSettings(min_width=64, min_height=32, max_aspect_ratio=4.0))


@pytest.mark.parametrize(
    ("width", "height", "reason"),
    [
        (63, 100, "filter.image_size.too_small"),
        (100, 31, "filter.image_size.too_small"),
        (300, 70, "filter.image_size.aspect"),
        (64, 257, "filter.image_size.aspect"),
        (64, 32, None),
        (128, 32, None),
        (None, 40, "filter.image_size.unknown"),
    ],
)
def test_image_size_reason(width: int | None, height: int | None, reason: str | None) -> None:
    assert SIZE.evaluate(sizes((width, height))).reasons == [reason]


def test_image_size_scores_the_aspect_ratio_of_every_row() -> None:
    verdicts = SIZE.evaluate(sizes((200, 100), (10, 40), (None, None)))

    assert verdicts.scores == {"aspect_ratio": [2.0, 4.0, None]}


def test_too_small_takes_precedence_over_aspect() -> None:
    assert SIZE.evaluate(sizes((10, 100))).reasons == ["filter.image_size.too_small"]


# Image blank -----------------------------------------------------------------------------------------

BLANK = ImageBlank(ImageBlankSettings(min_grey_std=2.0))


def test_single_colour_image_is_blank() -> None:
    flat = png(np.full((40, 40, 3), (30, 120, 200), np.uint8))

    verdicts = BLANK.evaluate(media(flat))

    assert verdicts.reasons == ["filter.image_blank.blank"]
    assert verdicts.scores == {"grey_std": [0.0]}


def test_noisy_image_is_not_blank() -> None:
    noisy = png(np.random.default_rng(0).integers(0, 256, (40, 40, 3), dtype=np.uint8))

    verdicts = BLANK.evaluate(media(noisy))

    assert verdicts.reasons == [None]
    assert verdicts.scores["grey_std"][0] > 20


def test_undecodable_image_is_rejected_as_decode() -> None:
    verdicts = BLANK.evaluate(media(b"not an image"))

    assert verdicts.reasons == ["filter.image_blank.decode"]
    assert verdicts.scores == {"grey_std": [None]}


# Duration --------------------------------------------------------------------------------------------

DURATION = Duration(DurationSettings(min_s=1.0, max_s=10.0))


@pytest.mark.parametrize(
    ("duration", "reason"),
    [
        (0.99, "filter.duration.too_short"),
        (10.01, "filter.duration.too_long"),
        (1.0, None),
        (10.0, None),
        (None, "filter.duration.unknown"),
        (float("nan"), "filter.duration.unknown"),
    ],
)
def test_duration_reason(duration: float | None, reason: str | None) -> None:
    table = pa.table({"duration_s": pa.array([duration], pa.float64())})

    assert DURATION.evaluate(table).reasons == [reason]


# Audio silence ---------------------------------------------------------------------------------------

SILENCE = AudioSilence(AudioSilenceSettings(silence_dbfs=-50.0, max_silence_ratio=0.9))


def test_all_zero_audio_is_silent() -> None:
    verdicts = SILENCE.evaluate(media(wav(np.zeros(4000))))

    assert verdicts.reasons == ["filter.audio_silence.silent"]
    assert verdicts.scores == {"silence_ratio": [1.0]}


def test_tone_is_not_silent() -> None:
    verdicts = SILENCE.evaluate(media(wav(tone())))

    assert verdicts.reasons == [None]
    assert verdicts.scores == {"silence_ratio": [0.0]}


def test_clip_mostly_silent_beyond_the_ratio_is_rejected() -> None:
    mostly_quiet = np.concatenate([tone(0.05), np.zeros(7600)])  # 2 loud frames of 25

    assert SILENCE.evaluate(media(wav(mostly_quiet))).reasons == ["filter.audio_silence.silent"]


def test_undecodable_audio_is_rejected_as_decode() -> None:
    assert SILENCE.evaluate(media(b"RIFF....")).reasons == ["filter.audio_silence.decode"]


def test_silence_ratio_counts_quiet_twenty_millisecond_frames() -> None:
    rate = 1000  # 20-sample frames
    samples = np.concatenate([np.full(20, 0.5), np.zeros(60)])

    assert silence_ratio(samples, rate, -50.0) == 0.75


# Image blur ------------------------------------------------------------------------------------------

BLUR = ImageBlur(ImageBlurSettings(min_variance=15.0))


def checkerboard(side: int = 256, square: int = 32) -> Image.Image:
    cells = (np.indices((side, side)) // square).sum(axis=0) % 2
    return Image.fromarray((cells * 255).astype(np.uint8))


def encoded(image: Image.Image, format: str = "PNG") -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=format)
    return buffer.getvalue()


def test_sharp_checkerboard_is_kept_and_its_gaussian_blur_is_blurry() -> None:
    sharp = checkerboard()

    verdicts = BLUR.evaluate(media(encoded(sharp), encoded(sharp.filter(ImageFilter.GaussianBlur(5)))))

    assert verdicts.reasons == [None, "filter.image_blur.blurry"]
    sharp_score, blurred_score = verdicts.scores["laplacian_variance"]
    assert sharp_score > 1000 > 15 > blurred_score


def test_blur_score_does_not_depend_on_the_resolution_above_the_working_size() -> None:
    sizes = [checkerboard(256 * factor, 32 * factor) for factor in (1, 2, 4)]

    scores = BLUR.evaluate(media(*(encoded(image) for image in sizes))).scores["laplacian_variance"]

    assert scores[1] == pytest.approx(scores[0], rel=0.01)
    assert scores[2] == pytest.approx(scores[0], rel=0.01)


def test_real_photograph_is_sharp_until_blurred() -> None:
    photo = Image.fromarray(load_sample_image("china.jpg"))

    verdicts = BLUR.evaluate(
        media(encoded(photo, "JPEG"), encoded(photo.filter(ImageFilter.GaussianBlur(5)), "JPEG"))
    )

    assert verdicts.reasons == [None, "filter.image_blur.blurry"]
    assert verdicts.scores["laplacian_variance"][0] > 500


def test_transparent_pixels_are_judged_as_white() -> None:
    noise = np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    invisible = np.dstack([noise, np.zeros((64, 64), np.uint8)])

    verdicts = BLUR.evaluate(media(encoded(Image.fromarray(invisible, "RGBA"))))

    assert verdicts.reasons == ["filter.image_blur.blurry"]
    assert verdicts.scores["laplacian_variance"] == [0.0]


def test_undecodable_image_is_rejected_by_blur_as_decode() -> None:
    verdicts = BLUR.evaluate(media(b"\xff\xd8\xff\xe0 truncated jpeg"))

    assert verdicts.reasons == ["filter.image_blur.decode"]
    assert verdicts.scores == {"laplacian_variance": [None]}


# Audio quality ---------------------------------------------------------------------------------------

QUALITY = AudioQuality(AudioQualitySettings(min_sample_rate=16_000, max_clipping_ratio=0.01, min_snr_db=15.0))


def sounds(*clips: tuple[np.ndarray, int]) -> pa.Table:
    """A media table of 16-bit WAV clips, each with the sample rate the raw stage would have probed."""
    table = media(*(wav(samples, rate) for samples, rate in clips))
    return table.append_column("sample_rate", pa.array([rate for _, rate in clips], pa.int32()))


def tone_in_noise(snr: float, rate: int = 16_000, seconds: float = 2.0, seed: int = 0) -> np.ndarray:
    """A 440 Hz tone of amplitude 0.5 (power 0.125) plus white noise `snr` dB below it."""
    noise = np.random.default_rng(seed).normal(0.0, np.sqrt(0.125 / 10 ** (snr / 10)), int(seconds * rate))
    return tone(seconds, rate) + noise


def test_clean_tone_passes_every_audio_quality_rule() -> None:
    verdicts = QUALITY.evaluate(sounds((tone(2.0, 16_000), 16_000)))

    assert verdicts.reasons == [None]
    assert verdicts.scores["sample_rate"] == [16_000]
    assert verdicts.scores["clipping_ratio"] == [0.0]
    assert verdicts.scores["snr_db"][0] > 60


def test_hard_clipped_tone_is_clipped() -> None:
    clipped = np.clip(4 * tone(2.0, 16_000), -1.0, 1.0)

    verdicts = QUALITY.evaluate(sounds((clipped, 16_000)))

    assert verdicts.reasons == ["filter.audio_quality.clipped"]
    assert verdicts.scores["clipping_ratio"][0] > 0.5


def test_tone_normalised_to_full_scale_is_not_clipping() -> None:
    samples = tone(1.0, 16_000)

    assert clipping_ratio(samples / np.abs(samples).max()) == 0.0


def test_clipping_ratio_counts_samples_on_flat_tops_of_either_rail() -> None:
    samples = np.array([0.0, 1.0, 1.0, 1.0, 0.2, -1.0, -1.0, 0.1, 1.0, 0.0])  # a lone peak at index 8

    assert clipping_ratio(samples) == 0.5


@pytest.mark.parametrize("true_snr", [0.0, 10.0, 20.0, 30.0])
def test_snr_estimate_of_a_tone_in_white_noise_is_within_a_db_of_the_truth(true_snr: float) -> None:
    samples, rate = soundfile.read(io.BytesIO(wav(tone_in_noise(true_snr), 16_000)), dtype="float32")

    assert snr_db(samples, rate) == pytest.approx(true_snr, abs=1.0)


def test_tone_in_noise_below_the_minimum_snr_is_noisy() -> None:
    verdicts = QUALITY.evaluate(sounds((tone_in_noise(10.0), 16_000), (tone_in_noise(25.0), 16_000)))

    assert verdicts.reasons == ["filter.audio_quality.noisy", None]


def test_eight_kilohertz_clip_is_under_a_sixteen_kilohertz_minimum() -> None:
    verdicts = QUALITY.evaluate(sounds((tone(2.0, 8000), 8000)))

    assert verdicts.reasons == ["filter.audio_quality.low_sample_rate"]
    assert verdicts.scores["sample_rate"] == [8000]


def test_null_bounds_are_not_checked() -> None:
    lenient = AudioQuality(
        AudioQualitySettings(min_sample_rate=None, max_clipping_ratio=None, min_snr_db=None)
    )
    clipped_and_noisy = np.clip(4 * tone_in_noise(0.0, rate=8000), -1.0, 1.0)

    assert lenient.evaluate(sounds((clipped_and_noisy, 8000))).reasons == [None]


def test_silent_and_short_clips_get_no_snr_and_are_not_judged_on_it() -> None:
    verdicts = QUALITY.evaluate(sounds((np.zeros(32_000), 16_000), (tone(0.3, 16_000), 16_000)))

    assert verdicts.reasons == [None, None]
    assert verdicts.scores["snr_db"] == [None, None]


def test_undecodable_audio_is_rejected_as_decode_and_keeps_the_probed_sample_rate() -> None:
    table = media(b"RIFF....").append_column("sample_rate", pa.array([44_100], pa.int32()))

    verdicts = QUALITY.evaluate(table)

    assert verdicts.reasons == ["filter.audio_quality.decode"]
    assert verdicts.scores == {"sample_rate": [44_100], "clipping_ratio": [None], "snr_db": [None]}


# Video quality ---------------------------------------------------------------------------------------

VIDEO_QUALITY = VideoQuality(VideoQualitySettings(min_fps=10, max_fps=60, min_width=64, min_height=48))


@pytest.mark.parametrize(
    ("fps", "width", "height", "reason"),
    [
        (25.0, 64, 48, None),
        (10.0, 640, 480, None),
        (9.99, 640, 480, "filter.video_quality.low_fps"),
        (120.0, 640, 480, "filter.video_quality.high_fps"),
        (25.0, 63, 480, "filter.video_quality.too_small"),
        (25.0, 640, 47, "filter.video_quality.too_small"),
        (None, 640, 480, "filter.video_quality.unknown"),
        (float("nan"), 640, 480, "filter.video_quality.unknown"),
        (25.0, None, 480, "filter.video_quality.unknown"),
    ],
)
def test_video_quality_reason(
    fps: float | None, width: int | None, height: int | None, reason: str | None
) -> None:
    table = pa.table(
        {
            "fps": pa.array([fps], pa.float64()),
            "width": pa.array([width], pa.int32()),
            "height": pa.array([height], pa.int32()),
        }
    )

    assert VIDEO_QUALITY.evaluate(table).reasons == [reason]


def test_video_quality_refuses_a_maximum_fps_below_the_minimum() -> None:
    with pytest.raises(pydantic.ValidationError, match="max_fps"):
        VideoQualitySettings(min_fps=24, max_fps=12)


# Video motion ----------------------------------------------------------------------------------------

MOTION = VideoMotion(VideoMotionSettings(frames_per_second=2.0, min_motion=1.0, cut_threshold=0.3))


def mp4(frames: Sequence[np.ndarray], fps: int = 10) -> bytes:
    """An H.264 clip of grey frames (uint8, all the same even size)."""
    return encode_mp4((np.repeat(pixels[..., None], 3, axis=-1) for pixels in frames), fps, H264_VIDEO)


def scene(background: int, square: int, frames: int, side: int = 64) -> list[np.ndarray]:
    """`frames` frames of a 16-pixel square of grey level `square` moving right 2 pixels a frame."""
    shots = []
    for index in range(frames):
        pixels = np.full((side, side), background, np.uint8)
        left = (2 * index) % (side - 16)
        pixels[24:40, left : left + 16] = square
        shots.append(pixels)
    return shots


def still(background: int, seed: int, side: int = 64) -> np.ndarray:
    """A textured still: blocks of random grey levels around `background`."""
    blocks = np.random.default_rng(seed).integers(-40, 40, (side // 8, side // 8))
    return np.clip(background + np.kron(blocks, np.ones((8, 8))), 0, 255).astype(np.uint8)


def test_still_frame_repeated_is_static_and_a_moving_square_is_not() -> None:
    frozen = mp4([still(128, seed=1)] * 30)

    verdicts = MOTION.evaluate(media(frozen, tiny_mp4()))

    assert verdicts.reasons == ["filter.video_motion.static", None]
    frozen_motion, moving_motion = verdicts.scores["motion"]
    assert frozen_motion < 0.1
    assert moving_motion > 5
    assert verdicts.scores["scene_cuts"] == [0, 0]


def test_two_hard_cuts_are_counted_as_two() -> None:
    clip = mp4(scene(20, 230, 10) + scene(230, 20, 10) + scene(120, 250, 10))

    verdicts = MOTION.evaluate(media(clip))

    assert verdicts.reasons == [None]
    assert verdicts.scores["scene_cuts"] == [2]
    assert verdicts.scores["motion"][0] > 5


def test_more_cuts_than_the_bound_is_too_many_cuts() -> None:
    bounded = VideoMotion(VideoMotionSettings(max_scene_cuts=1))
    clip = mp4(scene(20, 230, 10) + scene(230, 20, 10) + scene(120, 250, 10))

    assert bounded.evaluate(media(clip)).reasons == ["filter.video_motion.too_many_cuts"]


def test_slideshow_of_stills_is_static_despite_its_cuts() -> None:
    slides = [still(40, seed=1)] * 10 + [still(200, seed=2)] * 10 + [still(120, seed=3)] * 10

    verdicts = MOTION.evaluate(media(mp4(slides)))

    assert verdicts.reasons == ["filter.video_motion.static"]
    assert verdicts.scores["scene_cuts"] == [2]


def test_clip_with_one_sampled_frame_is_too_few_frames() -> None:
    verdicts = MOTION.evaluate(media(tiny_mp4(frames=3)))

    assert verdicts.reasons == ["filter.video_motion.too_few_frames"]
    assert verdicts.scores == {"motion": [None], "scene_cuts": [None]}


def test_corrupt_video_is_rejected_as_decode() -> None:
    corrupt = bytes(np.random.default_rng(5).integers(0, 256, 4000, dtype=np.uint8))

    verdicts = MOTION.evaluate(media(corrupt, b""))

    assert verdicts.reasons == ["filter.video_motion.decode", "filter.video_motion.decode"]


def test_frame_motion_leaves_cut_pairs_out_of_the_motion() -> None:
    dark, bright = np.zeros((4, 4)), np.full((4, 4), 255.0)
    shifted = dark.copy()
    shifted[0, 0] = 16.0  # one pixel of sixteen changes by 16: a difference of 1

    motion, cuts = frame_motion([dark, shifted, bright, bright], cut_threshold=0.3)

    assert (motion, cuts) == (0.5, 1)
