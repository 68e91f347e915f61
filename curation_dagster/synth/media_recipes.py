"""Rule-based media recipes beyond the first of each modality: colour jitter and compositing of images;
noise, speed and pitch, and reverb for audio; clips from stills and per-frame augmentation for video.

Every draw comes from the per-parent `rng`, so a parent's variant is the same on every run. Images come
out as PNG, audio as 16-bit WAV at the parent's rate, video as MPEG-4 part 2 in MP4 (`encode_mp4`).
"""

from __future__ import annotations

import io
import math
import random
from collections.abc import Iterator, Mapping, Sequence
from fractions import Fraction
from typing import TYPE_CHECKING, Any

from curation_dagster.media import encode_mp4, media_bytes
from curation_dagster.spec import (
    ColourJitterBounds,
    ColourJitterSettings,
    CompositeSettings,
    FrameAugmentSettings,
    NoiseSettings,
    PanZoomSettings,
    ReverbSettings,
    SpeedPitchSettings,
)
from curation_dagster.synth.base import (
    REJECT_RECIPE_FAILED,
    Outcome,
    Recipe,
    Unusable,
    Variant,
)
from curation_dagster.synth.captions import follow_mirror

if TYPE_CHECKING:
    import numpy as np
    from PIL import Image

REJECT_NO_PARTNER = "synth.no_partner"
#: Amplitude falls by 60 dB (a factor of 1000) over the reverberation time.
_RT60_DECAY = math.log(1000.0)


# Images ----------------------------------------------------------------------------------------------


def _decode_rgb(item: Mapping[str, Any], which: str) -> Image.Image:
    """The item's image as RGB; `ValueError` naming `which` item when it does not decode."""
    from PIL import Image

    try:
        with Image.open(io.BytesIO(media_bytes(item))) as source:
            return source.convert("RGB")
    except (OSError, ValueError) as error:
        raise ValueError(f"{which} does not decode as an image: {error}") from error


def _png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", optimize=False)
    return buffer.getvalue()


def draw_jitter(bounds: ColourJitterBounds, rng: random.Random) -> dict[str, float]:
    """Colour factors within `bounds`, drawn in a fixed order (brightness, contrast, saturation, hue) and
    rounded to 4 decimals so that what is recorded is what is applied; a zero bound draws nothing."""

    def factor(bound: float) -> float:
        return round(rng.uniform(1 - bound, 1 + bound), 4) if bound > 0 else 1.0

    return {
        "brightness": factor(bounds.brightness),
        "contrast": factor(bounds.contrast),
        "saturation": factor(bounds.saturation),
        "hue": round(rng.uniform(-bounds.hue, bounds.hue), 4) if bounds.hue > 0 else 0.0,
    }


def apply_jitter(image: Image.Image, factors: Mapping[str, float]) -> Image.Image:
    """`image` (RGB) with the brightness, contrast (against its mean grey) and saturation factors applied,
    then its hue turned by `factors["hue"]` of the colour circle."""
    from PIL import Image, ImageEnhance

    image = ImageEnhance.Brightness(image).enhance(factors["brightness"])
    image = ImageEnhance.Contrast(image).enhance(factors["contrast"])
    image = ImageEnhance.Color(image).enhance(factors["saturation"])
    shift = round(factors["hue"] * 256) % 256
    if shift:
        hue, saturation, value = image.convert("HSV").split()
        hue = hue.point([(level + shift) % 256 for level in range(256)])
        image = Image.merge("HSV", (hue, saturation, value)).convert("RGB")
    return image


class ColourJitter(Recipe):
    """Image augmentation: brightness, contrast, saturation and hue changes drawn per parent; the drawn
    factors are recorded in the item's `meta` as `colour_jitter`."""

    name = "colour_jitter"
    modality = "image"
    settings: ColourJitterSettings

    def make(self, parent: Mapping[str, Any], rng: random.Random) -> Variant:
        image = _decode_rgb(parent, "the parent")
        factors = draw_jitter(self.settings, rng)
        return Variant(
            parent.get("text"), _png(apply_jitter(image, factors)), "png", {"colour_jitter": factors}
        )


def merge_captions(template: str, first: str | None, second: str | None) -> str | None:
    """The two captions through `template` with whitespace collapsed; None when both are empty."""
    first, second = (first or "").strip(), (second or "").strip()
    if not (first or second):
        return None
    return " ".join(template.format(first=first, second=second).split())


class Composite(Recipe):
    """Image compositing: each parent with a second image drawn (seeded per parent) from the other images
    of the items it was chosen with; both ids go into `parent_ids` and the captions are merged."""

    name = "composite"
    modality = "image"
    settings: CompositeSettings

    def make(self, parent: Mapping[str, Any], rng: random.Random) -> Variant:
        raise ValueError("a composite needs a second image: run the recipe through make_batch with a pool")

    def make_batch(
        self,
        parents: Sequence[Mapping[str, Any]],
        seed_keys: Sequence[str],
        pool: Sequence[Mapping[str, Any]] = (),
    ) -> list[Outcome]:
        images = sorted(
            (item for item in pool if item["modality"] == "image"), key=lambda item: str(item["id"])
        )
        position = {item["id"]: index for index, item in enumerate(images)}
        outcomes: list[Outcome] = []
        for parent, key in zip(parents, seed_keys, strict=True):
            rng = random.Random(key)
            own = position.get(parent["id"])
            others = len(images) - (own is not None)
            if others == 0:
                outcomes.append(
                    Unusable(
                        REJECT_NO_PARTNER, f"no other image among the {len(pool)} items to composite with"
                    )
                )
                continue
            pick = rng.randrange(others)
            partner = images[pick + 1 if own is not None and pick >= own else pick]
            try:
                outcomes.append(self.combine(parent, partner, rng))
            except (OSError, ValueError) as error:
                outcomes.append(
                    Unusable(REJECT_RECIPE_FAILED, str(error)[:300], other_parents=(partner["id"],))
                )
        return outcomes

    def combine(self, parent: Mapping[str, Any], partner: Mapping[str, Any], rng: random.Random) -> Variant:
        """The composite of `parent` and `partner` in the settings' layout."""
        from PIL import Image

        first = _decode_rgb(parent, "the parent")
        second = _decode_rgb(partner, f"the second image {partner['id']}")
        s = self.settings
        if s.layout == "side_by_side":
            width = max(1, round(second.width * first.height / second.height))
            canvas = Image.new("RGB", (first.width + width, first.height))
            canvas.paste(first, (0, 0))
            canvas.paste(second.resize((width, first.height), Image.Resampling.BICUBIC), (first.width, 0))
        elif s.layout == "blend":
            canvas = Image.blend(first, second.resize(first.size, Image.Resampling.BICUBIC), s.alpha)
        else:
            scale = s.overlay_scale * min(first.width / second.width, first.height / second.height)
            size = (max(1, round(second.width * scale)), max(1, round(second.height * scale)))
            corner = (rng.randint(0, first.width - size[0]), rng.randint(0, first.height - size[1]))
            canvas = first.copy()
            canvas.paste(second.resize(size, Image.Resampling.BICUBIC), corner)
        caption = merge_captions(s.template, parent.get("text"), partner.get("text"))
        return Variant(
            caption,
            _png(canvas),
            "png",
            {"second_parent_uri": partner.get("uri")},
            other_parents=(str(partner["id"]),),
        )


# Audio -----------------------------------------------------------------------------------------------


def _read_audio(parent: Mapping[str, Any]) -> tuple[np.ndarray, int]:
    """The parent's samples as float64 (frames x channels) and its sample rate."""
    import soundfile

    samples, rate = soundfile.read(io.BytesIO(media_bytes(parent)), dtype="float64", always_2d=True)
    if len(samples) == 0:
        raise ValueError("the parent audio has no samples")
    return samples, int(rate)


def wav_bytes(samples: np.ndarray, rate: int) -> bytes:
    """16-bit WAV of `samples`, scaled down as a whole when they would clip."""
    import numpy as np
    import soundfile

    peak = float(np.max(np.abs(samples))) if samples.size else 0.0
    if peak > 1.0:
        samples = samples / peak
    buffer = io.BytesIO()
    soundfile.write(buffer, samples, rate, format="WAV", subtype="PCM_16")
    return buffer.getvalue()


def pink(noise: np.ndarray) -> np.ndarray:
    """White noise (frames x channels) shaped to a 1/f power spectrum, without its DC component."""
    import numpy as np

    spectrum = np.fft.rfft(noise, axis=0)
    bins = np.arange(spectrum.shape[0], dtype=np.float64)
    gain = np.zeros_like(bins)
    gain[1:] = 1.0 / np.sqrt(bins[1:])
    return np.fft.irfft(spectrum * gain[:, None], n=noise.shape[0], axis=0)


class Noise(Recipe):
    """Audio augmentation: seeded white or pink noise at `snr_db` below the clip's mean power."""

    name = "noise"
    modality = "audio"
    settings: NoiseSettings

    def make(self, parent: Mapping[str, Any], rng: random.Random) -> Variant:
        import numpy as np

        samples, rate = _read_audio(parent)
        power = float(np.mean(samples**2))
        if power == 0.0:
            raise ValueError("the parent audio is silent, so no noise level gives a signal-to-noise ratio")
        noise = np.random.default_rng(rng.getrandbits(64)).standard_normal(samples.shape)
        if self.settings.colour == "pink":
            noise = pink(noise)
        noise *= math.sqrt(power / 10 ** (self.settings.snr_db / 10) / float(np.mean(noise**2)))
        return Variant(parent.get("text"), wav_bytes(samples + noise, rate), "wav")


def resample(samples: np.ndarray, ratio: float) -> np.ndarray:
    """`samples` (frames x channels) played `ratio` times faster at the same rate: polyphase resampling
    with scipy's anti-aliasing filter, by `ratio` as a fraction with a denominator of at most 1000."""
    from scipy.signal import resample_poly

    fraction = Fraction(ratio).limit_denominator(1000)
    return resample_poly(samples, fraction.denominator, fraction.numerator, axis=0)


def stft_size(rate: int) -> int:
    """A power-of-two analysis window of about 40 ms (at least 256 samples)."""
    return 2 ** max(8, round(math.log2(rate * 0.04)))


def time_stretch(signal: np.ndarray, factor: float, n_fft: int) -> np.ndarray:
    """A mono `signal` made `factor` times longer at the same pitch: a phase vocoder (Hann window, 75%
    overlap) that interpolates magnitudes between analysis frames and advances each bin's phase by its
    measured frequency."""
    import numpy as np

    hop = n_fft // 4
    window = np.hanning(n_fft + 1)[:-1]
    padded = np.pad(signal, (n_fft, n_fft + hop))
    frames = np.lib.stride_tricks.sliding_window_view(padded, n_fft)[::hop]
    spectra = np.fft.rfft(frames * window, axis=1)
    steps = np.arange(0, len(spectra) - 1, 1 / factor)
    base = steps.astype(np.int64)
    weight = (steps - base)[:, None]
    magnitude = (1 - weight) * np.abs(spectra[base]) + weight * np.abs(spectra[base + 1])
    expected = 2 * np.pi * hop * np.arange(spectra.shape[1]) / n_fft
    deviation = np.angle(spectra[base + 1]) - np.angle(spectra[base]) - expected
    deviation -= 2 * np.pi * np.round(deviation / (2 * np.pi))
    advance = np.cumsum(expected + deviation, axis=0)
    phase = np.angle(spectra[0]) + np.vstack([np.zeros((1, spectra.shape[1])), advance[:-1]])
    pieces = np.fft.irfft(magnitude * np.exp(1j * phase), n=n_fft, axis=1) * window
    out = np.zeros(hop * (len(pieces) - 1) + n_fft)
    norm = np.zeros_like(out)
    for index, piece in enumerate(pieces):
        out[index * hop : index * hop + n_fft] += piece
        norm[index * hop : index * hop + n_fft] += window**2
    out /= np.maximum(norm, 1e-3 * norm.max())
    start = round(n_fft * factor)
    return out[start : start + round(len(signal) * factor)]


class SpeedPitch(Recipe):
    """Audio augmentation: `speed` times faster and, when `semitones` is set, shifted by that many
    semitones: a phase-vocoder stretch by pitch ratio / speed, then resampling by the pitch ratio."""

    name = "speed_pitch"
    modality = "audio"
    settings: SpeedPitchSettings

    def make(self, parent: Mapping[str, Any], rng: random.Random) -> Variant:
        import numpy as np

        samples, rate = _read_audio(parent)
        s = self.settings
        ratio = s.speed if s.semitones is None else 2 ** (s.semitones / 12)
        stretch = ratio / s.speed
        out = samples
        if not math.isclose(stretch, 1.0):
            size = stft_size(rate)
            out = np.stack([time_stretch(channel, stretch, size) for channel in out.T], axis=1)
        if not math.isclose(ratio, 1.0):
            out = resample(out, ratio)
        length = max(1, round(len(samples) / s.speed))
        out = np.pad(out[:length], ((0, max(0, length - len(out))), (0, 0)))
        return Variant(parent.get("text"), wav_bytes(out, rate), "wav")


def convolve(samples: np.ndarray, response: np.ndarray) -> np.ndarray:
    """Each channel of `samples` convolved with `response` (FFT), cut to the length of `samples`."""
    import numpy as np

    size = 1 << (len(samples) + len(response) - 2).bit_length()
    spectrum = np.fft.rfft(samples, n=size, axis=0) * np.fft.rfft(response, n=size)[:, None]
    return np.fft.irfft(spectrum, n=size, axis=0)[: len(samples)]


class Reverb(Recipe):
    """Audio augmentation: a seeded synthetic room (Gaussian noise decaying 60 dB over `rt60_s`) convolved
    with the clip, mixed in at `wet` at the dry clip's loudness."""

    name = "reverb"
    modality = "audio"
    settings: ReverbSettings

    def make(self, parent: Mapping[str, Any], rng: random.Random) -> Variant:
        import numpy as np

        samples, rate = _read_audio(parent)
        rt60 = self.settings.rt60_s
        times = np.arange(max(1, round(rt60 * rate))) / rate
        noise = np.random.default_rng(rng.getrandbits(64)).standard_normal(len(times))
        reverberated = convolve(samples, noise * np.exp(-_RT60_DECAY * times / rt60))
        wet_rms = float(np.sqrt(np.mean(reverberated**2)))
        if wet_rms > 0:
            reverberated *= float(np.sqrt(np.mean(samples**2))) / wet_rms
        mixed = (1 - self.settings.wet) * samples + self.settings.wet * reverberated
        return Variant(parent.get("text"), wav_bytes(mixed, rate), "wav")


# Video -----------------------------------------------------------------------------------------------


def _first_frame(parent: Mapping[str, Any]) -> Image.Image:
    import av

    with av.open(io.BytesIO(media_bytes(parent)), mode="r") as source:
        for frame in source.decode(video=0):
            return frame.to_image().convert("RGB")
    raise ValueError("the parent video has no frames")


def _even(value: float) -> int:
    return max(2, int(value) // 2 * 2)


class PanZoom(Recipe):
    """A clip from a still: the view eases (smoothstep) from the whole frame to `zoom` times closer around
    a seeded point, or from there out (a seeded choice), the zoom growing geometrically so it looks even."""

    name = "pan_zoom"
    modality = "video"
    settings: PanZoomSettings

    def make(self, parent: Mapping[str, Any], rng: random.Random) -> Variant:
        s = self.settings
        still = _decode_rgb(parent, "the parent") if s.source == "image" else _first_frame(parent)
        width, height = still.size
        scale = min(1.0, s.max_side / max(width, height))
        size = (_even(width * scale), _even(height * scale))
        zoom = s.zoom
        centre = (
            rng.uniform(width / (2 * zoom), width - width / (2 * zoom)),
            rng.uniform(height / (2 * zoom), height - height / (2 * zoom)),
        )
        zoom_out = rng.random() < 0.5
        count = max(1, round(s.seconds * s.fps))
        frames = self._frames(still, size, centre, count, zoom_out)
        meta = {
            "pan_zoom": {
                "centre": [round(centre[0] / width, 4), round(centre[1] / height, 4)],
                "direction": "out" if zoom_out else "in",
            }
        }
        return Variant(parent.get("text"), encode_mp4(frames, s.fps), "mp4", meta)

    def _frames(
        self,
        still: Image.Image,
        size: tuple[int, int],
        centre: tuple[float, float],
        count: int,
        zoom_out: bool,
    ) -> Iterator[np.ndarray]:
        import numpy as np
        from PIL import Image

        width, height = still.size
        for index in range(count):
            progress = index / (count - 1) if count > 1 else 0.0
            eased = progress * progress * (3 - 2 * progress)
            if zoom_out:
                eased = 1 - eased
            zoom = self.settings.zoom**eased
            x = width / 2 + (centre[0] - width / 2) * eased
            y = height / 2 + (centre[1] - height / 2) * eased
            half_w, half_h = width / (2 * zoom), height / (2 * zoom)
            box = (x - half_w, y - half_h, x + half_w, y + half_h)
            yield np.asarray(still.resize(size, Image.Resampling.BICUBIC, box=box))


class FrameAugment(Recipe):
    """Video augmentation: every frame mirrored (when `flip`) and colour-jittered with one draw per
    parent, at the parent's size (cut to even) and frame rate."""

    name = "frame_augment"
    modality = "video"
    settings: FrameAugmentSettings

    def make(self, parent: Mapping[str, Any], rng: random.Random) -> Outcome:
        import av

        caption: str | None = parent.get("text")
        meta: dict[str, Any] = {}
        if self.settings.flip:
            followed = follow_mirror(caption, self.settings.captions)
            if isinstance(followed, Unusable):
                return followed
            caption, meta = followed
        factors = draw_jitter(self.settings, rng)
        with av.open(io.BytesIO(media_bytes(parent)), mode="r") as source:
            stream = source.streams.video[0]
            rate = Fraction(stream.average_rate or stream.guessed_rate or 24).limit_denominator(65_535)
            data = encode_mp4(self._frames(source.decode(stream), factors), rate)
        if self.settings.jitters:
            meta = {**meta, "colour_jitter": factors}
        return Variant(caption, data, "mp4", meta)

    def _frames(self, decoded: Iterator[Any], factors: Mapping[str, float]) -> Iterator[np.ndarray]:
        import numpy as np
        from PIL import ImageOps

        for frame in decoded:
            image = frame.to_image().convert("RGB")
            if self.settings.flip:
                image = ImageOps.mirror(image)
            if self.settings.jitters:
                image = apply_jitter(image, factors)
            height, width = image.height // 2 * 2, image.width // 2 * 2
            if not (height and width):
                raise ValueError(f"a {image.width} x {image.height} frame is too small to encode")
            yield np.asarray(image)[:height, :width]
