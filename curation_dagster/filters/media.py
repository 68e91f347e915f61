"""Basic media filters: image size and blankness, duration bounds, audio silence."""

from __future__ import annotations

import io
import math
from typing import ClassVar

import pyarrow as pa

from curation_dagster.filters.base import Filter, Verdicts
from curation_dagster.media import media_bytes
from curation_dagster.spec import AudioSilenceFilter, DurationFilter, ImageBlankFilter, ImageSizeFilter


class ImageSize(Filter):
    """Rejects images (or video frames) below a minimum size or with an extreme aspect ratio."""

    name = "image_size"
    score_fields: ClassVar = [pa.field("aspect_ratio", pa.float64())]

    def __init__(self, settings: ImageSizeFilter) -> None:
        self.settings = settings

    def evaluate(self, table: pa.Table) -> Verdicts:
        s = self.settings
        ratios: list[object] = []
        reasons: list[str | None] = []
        details: list[str | None] = []
        for width, height in zip(
            table.column("width").to_pylist(), table.column("height").to_pylist(), strict=True
        ):
            if not width or not height:
                ratios.append(None)
                reasons.append(self.code("unknown"))
                details.append("width or height missing")
                continue
            ratio = max(width, height) / min(width, height)
            ratios.append(ratio)
            if width < s.min_width or height < s.min_height:
                reasons.append(self.code("too_small"))
                details.append(f"{width}x{height} < {s.min_width}x{s.min_height}")
            elif ratio > s.max_aspect_ratio:
                reasons.append(self.code("aspect"))
                details.append(f"aspect ratio {ratio:.2f} > {s.max_aspect_ratio}")
            else:
                reasons.append(None)
                details.append(None)
        return Verdicts({"aspect_ratio": ratios}, reasons, details)


class ImageBlank(Filter):
    """Rejects near-blank images: grey-level standard deviation below a threshold."""

    name = "image_blank"
    score_fields: ClassVar = [pa.field("grey_std", pa.float64())]

    def __init__(self, settings: ImageBlankFilter) -> None:
        self.settings = settings

    def evaluate(self, table: pa.Table) -> Verdicts:
        import numpy as np
        from PIL import Image

        values: list[object] = []
        reasons: list[str | None] = []
        details: list[str | None] = []
        for row in table.select(["media", "uri"]).to_pylist():
            try:
                with Image.open(io.BytesIO(media_bytes(row))) as image:
                    image.draft("L", (256, 256))
                    grey = np.asarray(image.convert("L").resize((128, 128)), dtype=np.float64)
            except (OSError, ValueError) as error:
                values.append(None)
                reasons.append(self.code("decode"))
                details.append(str(error)[:200])
                continue
            std = float(grey.std())
            values.append(std)
            if std < self.settings.min_grey_std:
                reasons.append(self.code("blank"))
                details.append(f"grey-level std {std:.2f} < {self.settings.min_grey_std}")
            else:
                reasons.append(None)
                details.append(None)
        return Verdicts({"grey_std": values}, reasons, details)


class Duration(Filter):
    """Rejects audio or video whose duration lies outside [min_s, max_s]."""

    name = "duration"

    def __init__(self, settings: DurationFilter) -> None:
        self.settings = settings

    def evaluate(self, table: pa.Table) -> Verdicts:
        s = self.settings
        reasons: list[str | None] = []
        details: list[str | None] = []
        for duration in table.column("duration_s").to_pylist():
            if duration is None or math.isnan(duration):
                reasons.append(self.code("unknown"))
                details.append("duration unknown")
            elif duration < s.min_s:
                reasons.append(self.code("too_short"))
                details.append(f"{duration:.2f} s < {s.min_s} s")
            elif duration > s.max_s:
                reasons.append(self.code("too_long"))
                details.append(f"{duration:.2f} s > {s.max_s} s")
            else:
                reasons.append(None)
                details.append(None)
        return Verdicts({}, reasons, details)


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


class AudioSilence(Filter):
    """Rejects clips that are mostly silent."""

    name = "audio_silence"
    score_fields: ClassVar = [pa.field("silence_ratio", pa.float64())]

    def __init__(self, settings: AudioSilenceFilter) -> None:
        self.settings = settings

    def evaluate(self, table: pa.Table) -> Verdicts:
        import soundfile

        values: list[object] = []
        reasons: list[str | None] = []
        details: list[str | None] = []
        for row in table.select(["media", "uri"]).to_pylist():
            try:
                samples, rate = soundfile.read(io.BytesIO(media_bytes(row)), dtype="float64", always_2d=True)
            except (OSError, ValueError, RuntimeError) as error:
                values.append(None)
                reasons.append(self.code("decode"))
                details.append(str(error)[:200])
                continue
            ratio = silence_ratio(samples, rate, self.settings.silence_dbfs)
            values.append(ratio)
            if ratio > self.settings.max_silence_ratio:
                reasons.append(self.code("silent"))
                details.append(f"{ratio:.0%} of frames below {self.settings.silence_dbfs} dBFS")
            else:
                reasons.append(None)
                details.append(None)
        return Verdicts({"silence_ratio": values}, reasons, details)
