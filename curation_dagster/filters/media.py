"""Media filters without models: image size, blankness and blur; duration; audio silence, sample rate,
clipping and noise; video frame rate, resolution, motion and scene cuts."""

from __future__ import annotations

import io
import math
from typing import TYPE_CHECKING, Any, ClassVar, Final

import pyarrow as pa

from curation_dagster.filters.base import Reject, RowFilter
from curation_dagster.io.validate import describe_error
from curation_dagster.media import media_bytes, sample_video_frames
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

if TYPE_CHECKING:
    import numpy as np
    from PIL import Image

#: What decoding media that passed the raw stage can still raise (a file behind `uri` changed, say).
DECODE_ERRORS = (OSError, ValueError, RuntimeError)


class ImageSize(RowFilter):
    """Rejects images (or video frames) below a minimum size or with an extreme aspect ratio."""

    name = "image_size"
    columns = ("width", "height")
    score_fields: ClassVar = [pa.field("aspect_ratio", pa.float64())]

    def __init__(self, settings: ImageSizeSettings) -> None:
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

    def __init__(self, settings: ImageBlankSettings) -> None:
        self.settings = settings

    def judge(self, row: dict[str, Any]) -> tuple[dict[str, object], Reject]:
        import numpy as np
        from PIL import Image

        try:
            with Image.open(io.BytesIO(media_bytes(row))) as image:
                image.draft("L", (256, 256))
                grey = np.asarray(image.convert("L").resize((128, 128)), dtype=np.float64)
        except DECODE_ERRORS as error:
            return {}, ("decode", describe_error(error)[:200])
        std = float(grey.std())
        if std < self.settings.min_grey_std:
            return {"grey_std": std}, ("blank", f"grey-level std {std:.2f} < {self.settings.min_grey_std}")
        return {"grey_std": std}, None


class Duration(RowFilter):
    """Rejects audio or video whose duration lies outside [min_s, max_s]."""

    name = "duration"
    columns = ("duration_s",)

    def __init__(self, settings: DurationSettings) -> None:
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

    def __init__(self, settings: AudioSilenceSettings) -> None:
        self.settings = settings

    def judge(self, row: dict[str, Any]) -> tuple[dict[str, object], Reject]:
        import soundfile

        try:
            samples, rate = soundfile.read(io.BytesIO(media_bytes(row)), dtype="float64", always_2d=True)
        except DECODE_ERRORS as error:
            return {}, ("decode", describe_error(error)[:200])
        ratio = silence_ratio(samples, rate, self.settings.silence_dbfs)
        if ratio > self.settings.max_silence_ratio:
            return {"silence_ratio": ratio}, (
                "silent",
                f"{ratio:.0%} of frames below {self.settings.silence_dbfs} dBFS",
            )
        return {"silence_ratio": ratio}, None


#: Blur is measured with the image's shorter side resized to this many pixels (up or down) ...
BLUR_SHORT_SIDE: Final = 256
#: ... and its longer side to at most this many (a more elongated image is shrunk further to fit).
BLUR_LONG_SIDE: Final = 1024


def blur_working_size(width: int, height: int) -> tuple[int, int]:
    """The size an image is resized to before its Laplacian is taken, so that the score does not depend
    on the original resolution."""
    scale = min(BLUR_SHORT_SIDE / min(width, height), BLUR_LONG_SIDE / max(width, height))
    return max(1, round(width * scale)), max(1, round(height * scale))


def laplacian_variance(grey: object) -> float:
    """Variance of the 4-neighbour Laplacian (OpenCV's default kernel) over the interior pixels of a grey
    image; sharp edges and fine texture raise it, blur lowers it."""
    import numpy as np

    pixels = np.asarray(grey, dtype=np.float64)
    if pixels.shape[0] < 3 or pixels.shape[1] < 3:
        return 0.0
    laplacian = (
        pixels[:-2, 1:-1] + pixels[2:, 1:-1] + pixels[1:-1, :-2] + pixels[1:-1, 2:] - 4 * pixels[1:-1, 1:-1]
    )
    return float(laplacian.var())


def _working_grey(image: Image.Image) -> np.ndarray:
    """`image` as grey levels at its blur working size; JPEG is decoded at reduced scale in the decoder,
    and transparency is laid on white. Images under the working size are enlarged (bilinear), so they score
    as blurry as they look at that size."""
    import numpy as np
    from PIL import Image

    size = blur_working_size(*image.size)
    image.draft("L", size)
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        image = Image.alpha_composite(Image.new("RGBA", rgba.size, (255, 255, 255, 255)), rgba)
    # Area averaging when shrinking, so that shrinking in one step or two gives the same pixels.
    shrinking = size[0] <= image.width
    grey = image.convert("L").resize(size, Image.Resampling.BOX if shrinking else Image.Resampling.BILINEAR)
    return np.asarray(grey, dtype=np.float64)


class ImageBlur(RowFilter):
    """Rejects blurry images: a low variance of the Laplacian at a fixed working size."""

    name = "image_blur"
    columns = ("media", "uri")
    score_fields: ClassVar = [pa.field("laplacian_variance", pa.float64())]

    def __init__(self, settings: ImageBlurSettings) -> None:
        self.settings = settings

    def judge(self, row: dict[str, Any]) -> tuple[dict[str, object], Reject]:
        from PIL import Image

        try:
            with Image.open(io.BytesIO(media_bytes(row))) as image:
                variance = laplacian_variance(_working_grey(image))
        except DECODE_ERRORS as error:
            return {}, ("decode", describe_error(error)[:200])
        scores: dict[str, object] = {"laplacian_variance": variance}
        if variance < self.settings.min_variance:
            return scores, ("blurry", f"Laplacian variance {variance:.1f} < {self.settings.min_variance}")
        return scores, None


#: A sample at or beyond this fraction of full scale is on the rail.
CLIP_LEVEL: Final = 0.999


def clipping_ratio(samples: object) -> float:
    """Share of samples on full-scale flat tops: at or beyond CLIP_LEVEL of full scale with the previous
    or next sample of the same channel on the same rail. A lone full-scale peak is not clipping."""
    import numpy as np

    audio = np.asarray(samples)
    if audio.ndim == 1:
        audio = audio[:, None]
    if audio.size == 0:
        return 0.0
    flat = 0
    for rail in (audio >= CLIP_LEVEL, audio <= -CLIP_LEVEL):
        neighbour = np.zeros_like(rail)
        neighbour[1:] |= rail[:-1]
        neighbour[:-1] |= rail[1:]
        flat += int(np.count_nonzero(rail & neighbour))
    return flat / audio.size


#: SNR analysis frames: 64 ms resolve tones and harmonics (bins of about 16 Hz) from the noise floor.
SNR_FRAME_S: Final = 0.064
#: A bin's noise floor is this quantile of its power over the frames ...
SNR_NOISE_QUANTILE: Final = 0.1
#: ... smoothed by a running median over this many hertz, which drops tones narrower than half of it.
SNR_MEDIAN_HZ: Final = 1000.0
#: Clips with fewer analysis frames (0.512 s) get no estimate.
SNR_MIN_FRAMES: Final = 8
#: Estimates are clipped to plus or minus this (a digitally clean noise floor reads +100 dB).
SNR_LIMIT_DB: Final = 100.0
#: Frames transformed at a time, which bounds the memory of a long clip.
_SNR_BLOCK_FRAMES: Final = 256


def snr_db(samples: object, sample_rate: int) -> float | None:
    """A signal-to-noise estimate in dB from the clip alone; None for clips too short to estimate or
    digitally silent.

    Per frequency bin of 64 ms Blackman-Harris frames, the noise floor is the bin's 10th-percentile power
    over time, divided by that quantile's expected share of the mean under Gaussian noise, then a running
    median over 1 kHz of bins takes out tones and harmonics. Signal is the mean power above the floor,
    noise the floor, each summed over bins and channels. A tone or music over steady hiss reads within about
    a dB; speech with pauses reads its average over the whole clip, pauses included. Stationary broadband
    sound (rain, applause, noise itself) is taken for noise, and hum for signal.
    """
    import numpy as np

    audio = np.asarray(samples, dtype=np.float32)
    if audio.ndim == 1:
        audio = audio[:, None]
    frame = max(16, round(sample_rate * SNR_FRAME_S))
    count = audio.shape[0] // frame
    if count < SNR_MIN_FRAMES:
        return None
    window = _blackman_harris(frame)
    power = np.zeros((count, frame // 2 + 1), dtype=np.float64)
    for channel in range(audio.shape[1]):
        frames = audio[: count * frame, channel].reshape(count, frame)
        for start in range(0, count, _SNR_BLOCK_FRAMES):
            block = frames[start : start + _SNR_BLOCK_FRAMES] * window
            power[start : start + _SNR_BLOCK_FRAMES] += np.abs(np.fft.rfft(block, axis=1)) ** 2
    power = power[:, 1:-1]  # DC (offset, not noise) and Nyquist are not Gaussian bins
    floor = np.quantile(power, SNR_NOISE_QUANTILE, axis=0) / _expected_exponential_quantile(count)
    width = 2 * round(SNR_MEDIAN_HZ * frame / sample_rate / 2) + 1
    padded = np.pad(floor, width // 2, mode="edge")
    noise_floor = np.median(np.lib.stride_tricks.sliding_window_view(padded, width), axis=1)
    noise = float(noise_floor.sum())
    signal = float(np.maximum(power.mean(axis=0) - noise_floor, 0.0).sum())
    if noise + signal <= 0:
        return None
    if noise <= 0:
        return SNR_LIMIT_DB
    if signal <= 0:
        return -SNR_LIMIT_DB
    return float(np.clip(10 * math.log10(signal / noise), -SNR_LIMIT_DB, SNR_LIMIT_DB))


def _expected_exponential_quantile(count: int) -> float:
    """The mean of `np.quantile(x, SNR_NOISE_QUANTILE)` over `count` unit-exponential samples (a bin's
    power under Gaussian noise): the divisor that makes the noise floor unbiased for short clips too,
    where the bare -ln(1 - q) would overstate the noise (by a quarter at 2 s)."""
    import numpy as np

    position = SNR_NOISE_QUANTILE * (count - 1)
    low = int(position)
    tail = np.cumsum(1.0 / np.arange(1, count + 1))  # the k-th smallest has mean H(count) - H(count - k)

    def smallest(k: int) -> float:
        return float(tail[-1] - (tail[count - k - 2] if count - k - 2 >= 0 else 0.0))

    fraction = position - low
    return (1 - fraction) * smallest(low) + fraction * smallest(min(low + 1, count - 1))


def _blackman_harris(size: int) -> np.ndarray:
    """The periodic 4-term Blackman-Harris window: sidelobes 92 dB down, so a loud tone does not leak
    into the noise floor."""
    import numpy as np

    phase = 2 * np.pi * np.arange(size) / size
    return (
        0.35875 - 0.48829 * np.cos(phase) + 0.14128 * np.cos(2 * phase) - 0.01168 * np.cos(3 * phase)
    ).astype(np.float32)


class AudioQuality(RowFilter):
    """Rejects clips with a low sample rate, digital clipping, or a noise floor close to the content."""

    name = "audio_quality"
    # The raw stage's `sample_rate` is kept as the score when the clip no longer decodes.
    columns = ("media", "uri", "sample_rate")
    score_fields: ClassVar = [
        pa.field("sample_rate", pa.int32()),
        pa.field("clipping_ratio", pa.float64()),
        pa.field("snr_db", pa.float64()),
    ]

    def __init__(self, settings: AudioQualitySettings) -> None:
        self.settings = settings

    def judge(self, row: dict[str, Any]) -> tuple[dict[str, object], Reject]:
        import soundfile

        s = self.settings
        try:
            samples, rate = soundfile.read(io.BytesIO(media_bytes(row)), dtype="float32", always_2d=True)
        except DECODE_ERRORS as error:
            return {"sample_rate": row["sample_rate"]}, ("decode", describe_error(error)[:200])
        if samples.shape[0] == 0:
            return {"sample_rate": rate}, ("empty", "no audio samples")
        clipping, snr = clipping_ratio(samples), snr_db(samples, rate)
        scores: dict[str, object] = {"sample_rate": rate, "clipping_ratio": clipping, "snr_db": snr}
        if s.min_sample_rate is not None and rate < s.min_sample_rate:
            return scores, ("low_sample_rate", f"{rate} Hz < {s.min_sample_rate} Hz")
        if s.max_clipping_ratio is not None and clipping > s.max_clipping_ratio:
            return scores, ("clipped", f"{clipping:.2%} of samples clipped > {s.max_clipping_ratio:.2%}")
        if s.min_snr_db is not None and snr is not None and snr < s.min_snr_db:
            return scores, ("noisy", f"SNR {snr:.1f} dB < {s.min_snr_db} dB")
        return scores, None


class VideoQuality(RowFilter):
    """Rejects videos outside frame-rate and resolution bounds, from what the raw stage probed."""

    name = "video_quality"
    columns = ("fps", "width", "height")

    def __init__(self, settings: VideoQualitySettings) -> None:
        self.settings = settings

    def judge(self, row: dict[str, Any]) -> tuple[dict[str, object], Reject]:
        s = self.settings
        fps, width, height = row["fps"], row["width"], row["height"]
        if not width or not height:
            return {}, ("unknown", "width or height missing")
        if width < s.min_width or height < s.min_height:
            return {}, ("too_small", f"{width}x{height} < {s.min_width}x{s.min_height}")
        if fps is None or math.isnan(fps) or fps <= 0:
            return {}, ("unknown", "frame rate unknown")
        if fps < s.min_fps:
            return {}, ("low_fps", f"{fps:.2f} fps < {s.min_fps} fps")
        if s.max_fps is not None and fps > s.max_fps:
            return {}, ("high_fps", f"{fps:.2f} fps > {s.max_fps} fps")
        return {}, None


#: Grey-level histogram bins compared between sampled frames to find scene cuts.
CUT_HISTOGRAM_BINS: Final = 16


def frame_motion(frames: object, cut_threshold: float) -> tuple[float, int]:
    """Motion and scene cuts of two or more sampled grey frames (0-255).

    A pair of consecutive frames is a cut when their normalised grey histograms differ by at least
    `cut_threshold` in total variation distance (0-1): a histogram barely moves with motion within a
    shot. Motion is the mean absolute pixel difference of the pairs that are not cuts, so a slideshow
    is still static; when every pair is a cut, of all pairs.
    """
    import numpy as np

    grids = np.asarray(frames, dtype=np.float32)
    count = len(grids)
    if count < 2:
        raise ValueError(f"motion needs two frames, got {count}")
    pixels = grids.reshape(count, -1)
    difference = np.abs(np.diff(pixels, axis=0)).mean(axis=1)
    bins = np.clip(pixels * (CUT_HISTOGRAM_BINS / 256), 0, CUT_HISTOGRAM_BINS - 1).astype(np.int64)
    offsets = CUT_HISTOGRAM_BINS * np.arange(count)[:, None]
    counts = np.bincount((bins + offsets).ravel(), minlength=CUT_HISTOGRAM_BINS * count)
    histograms = counts.reshape(count, CUT_HISTOGRAM_BINS) / pixels.shape[1]
    cuts = 0.5 * np.abs(np.diff(histograms, axis=0)).sum(axis=1) >= cut_threshold
    steady = difference[~cuts]
    motion = float(steady.mean() if steady.size else difference.mean())
    return motion, int(cuts.sum())


#: Motion is measured on grayscale frames this many pixels square (small enough to ignore noise and
#: compression artefacts, large enough to see an object move).
MOTION_GRID_SIDE: Final = 32


class VideoMotion(RowFilter):
    """Rejects static videos (slideshows, frozen clips) and, with a bound, videos with too many cuts."""

    name = "video_motion"
    columns = ("media", "uri")
    score_fields: ClassVar = [pa.field("motion", pa.float64()), pa.field("scene_cuts", pa.int32())]

    def __init__(self, settings: VideoMotionSettings) -> None:
        self.settings = settings

    def judge(self, row: dict[str, Any]) -> tuple[dict[str, object], Reject]:
        import av

        s = self.settings
        try:
            frames = sample_video_frames(
                media_bytes(row), s.frames_per_second, s.max_frames, MOTION_GRID_SIDE
            )
        except (*DECODE_ERRORS, EOFError, IndexError, av.FFmpegError) as error:
            return {}, ("decode", describe_error(error)[:200])
        if len(frames) < 2:
            return {}, ("too_few_frames", f"1 frame sampled at {s.frames_per_second:g} fps; motion needs 2")
        motion, cuts = frame_motion(frames, s.cut_threshold)
        scores: dict[str, object] = {"motion": motion, "scene_cuts": cuts}
        if motion < s.min_motion:
            return scores, ("static", f"motion {motion:.2f} < {s.min_motion}")
        if s.max_scene_cuts is not None and cuts > s.max_scene_cuts:
            return scores, ("too_many_cuts", f"{cuts} scene cuts > {s.max_scene_cuts}")
        return scores, None
