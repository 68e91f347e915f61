"""Basic media filters: image size and blankness, duration bounds, audio silence."""

from __future__ import annotations

import io
import math
from typing import Any, ClassVar

import pyarrow as pa

from curation_dagster.filters.base import Reject, RowFilter
from curation_dagster.media import media_bytes
from curation_dagster.spec import AudioSilenceFilter, DurationFilter, ImageBlankFilter, ImageSizeFilter

#: What decoding media that passed the raw stage can still raise (a file behind `uri` changed, say).
DECODE_ERRORS = (OSError, ValueError, RuntimeError)


class ImageSize(RowFilter):
    """Rejects images (or video frames) below a minimum size or with an extreme aspect ratio."""

    name = "image_size"
    columns = ("width", "height")
    score_fields: ClassVar = [pa.field("aspect_ratio", pa.float64())]

    def __init__(self, settings: ImageSizeFilter) -> None:
        self.settings = settings

    def judge(self, row: dict[str, Any]) -> tuple[dict[str, object], Reject]:
        s = self.settings
        width, height = row["width"], row["height"]
        if not width or not height:
            return {}, ("unknown", "width or height missing")
        ratio = max(width, height) / min(width, height)
        if width < s.min_width or height < s.min_height:
            return {"aspect_ratio": ratio}, ("too_small", f"{width}x{height} < {s.min_width}x{s.min_height}")
        if ratio > s.max_aspect_ratio:
            return {"aspect_ratio": ratio}, ("aspect", f"aspect ratio {ratio:.2f} > {s.max_aspect_ratio}")
        return {"aspect_ratio": ratio}, None


class ImageBlank(RowFilter):
    """Rejects near-blank images: grey-level standard deviation below a threshold."""

    name = "image_blank"
    columns = ("media", "uri")
    score_fields: ClassVar = [pa.field("grey_std", pa.float64())]

    def __init__(self, settings: ImageBlankFilter) -> None:
        self.settings = settings

    def judge(self, row: dict[str, Any]) -> tuple[dict[str, object], Reject]:
        import numpy as np
        from PIL import Image

        try:
            with Image.open(io.BytesIO(media_bytes(row))) as image:
                image.draft("L", (256, 256))
                grey = np.asarray(image.convert("L").resize((128, 128)), dtype=np.float64)
        except DECODE_ERRORS as error:
            return {}, ("decode", str(error)[:200])
        std = float(grey.std())
        if std < self.settings.min_grey_std:
            return {"grey_std": std}, ("blank", f"grey-level std {std:.2f} < {self.settings.min_grey_std}")
        return {"grey_std": std}, None


class Duration(RowFilter):
    """Rejects audio or video whose duration lies outside [min_s, max_s]."""

    name = "duration"
    columns = ("duration_s",)

    def __init__(self, settings: DurationFilter) -> None:
        self.settings = settings

    def judge(self, row: dict[str, Any]) -> tuple[dict[str, object], Reject]:
        s = self.settings
        duration = row["duration_s"]
        if duration is None or math.isnan(duration):
            return {}, ("unknown", "duration unknown")
        if duration < s.min_s:
            return {}, ("too_short", f"{duration:.2f} s < {s.min_s} s")
        if duration > s.max_s:
            return {}, ("too_long", f"{duration:.2f} s > {s.max_s} s")
        return {}, None


def silence_ratio(samples: object, sample_rate: int, silence_dbfs: float) -> float:
    """Share of 20 ms frames in which every channel's RMS level is below `silence_dbfs` (dBFS).

    Channels are measured separately, not averaged, so opposite-phase stereo does not cancel to silence.
    """
    import numpy as np

    audio = np.asarray(samples, dtype=np.float64)
    if audio.ndim == 1:
        audio = audio[:, None]
    frame = max(1, int(sample_rate * 0.02))
    usable = (audio.shape[0] // frame) * frame
    if usable == 0:
        return 1.0
    frames = audio[:usable].reshape(-1, frame, audio.shape[1])
    rms = np.sqrt(np.mean(frames**2, axis=1)).max(axis=1)
    level = 20 * np.log10(np.maximum(rms, 1e-12))
    return float(np.mean(level < silence_dbfs))


class AudioSilence(RowFilter):
    """Rejects clips that are mostly silent."""

    name = "audio_silence"
    columns = ("media", "uri")
    score_fields: ClassVar = [pa.field("silence_ratio", pa.float64())]

    def __init__(self, settings: AudioSilenceFilter) -> None:
        self.settings = settings

    def judge(self, row: dict[str, Any]) -> tuple[dict[str, object], Reject]:
        import soundfile

        try:
            samples, rate = soundfile.read(io.BytesIO(media_bytes(row)), dtype="float64", always_2d=True)
        except DECODE_ERRORS as error:
            return {}, ("decode", str(error)[:200])
        ratio = silence_ratio(samples, rate, self.settings.silence_dbfs)
        if ratio > self.settings.max_silence_ratio:
            return {"silence_ratio": ratio}, (
                "silent",
                f"{ratio:.0%} of frames below {self.settings.silence_dbfs} dBFS",
            )
        return {"silence_ratio": ratio}, None
