"""Tests of curation_dagster/filters/media.py: image size and blankness, duration, audio silence."""

from __future__ import annotations

import io

import numpy as np
import pyarrow as pa
import pytest
import soundfile
from PIL import Image

from curation_dagster.filters.media import AudioSilence, Duration, ImageBlank, ImageSize, silence_ratio
from curation_dagster.spec import AudioSilenceFilter, DurationFilter, ImageBlankFilter, ImageSizeFilter


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

SIZE = ImageSize(ImageSizeFilter(min_width=64, min_height=32, max_aspect_ratio=4.0))


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

BLANK = ImageBlank(ImageBlankFilter(min_grey_std=2.0))


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

DURATION = Duration(DurationFilter(min_s=1.0, max_s=10.0))


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

SILENCE = AudioSilence(AudioSilenceFilter(silence_dbfs=-50.0, max_silence_ratio=0.9))


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
