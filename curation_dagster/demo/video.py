"""The `video/` part of the demo media folder: short H.264 clips of moving shapes with planted problems.

Frames are drawn with Pillow and encoded by `curation_dagster.media.encode_mp4`.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from curation_dagster.demo.corpus_files import corpus_strings
from curation_dagster.demo.drawings import COLORS, gradient, house
from curation_dagster.demo.formats import random_bytes
from curation_dagster.media import H264_VIDEO, encode_mp4

if TYPE_CHECKING:
    from PIL import Image

VIDEO_CAPTIONS: dict[str, str] = corpus_strings("video_captions.json")
"""The caption of every video clip, by clip name."""


@dataclass(frozen=True)
class Clip:
    """A short synthetic video: frame size, frame rate, frame count and frame drawer."""

    size: int
    fps: int
    frames: int
    draw: Callable[[int, int], Image.Image]


def _moving_circle(index: int, size: int) -> Image.Image:
    """A red circle crossing a dark blue frame from left to right."""
    from PIL import Image, ImageDraw

    image = Image.new("RGB", (size, size), COLORS["navy"])
    x = 4 + index * (size - 28) / 19
    ImageDraw.Draw(image).ellipse((x, size / 2 - 10, x + 20, size / 2 + 10), fill=COLORS["red"])
    return image


def _bouncing_square(index: int, size: int) -> Image.Image:
    """A green square bouncing up and down on white."""
    from PIL import Image, ImageDraw

    image = Image.new("RGB", (size, size), COLORS["white"])
    y = (size - 30) * abs(math.sin(index * math.pi / 9))
    ImageDraw.Draw(image).rectangle((size / 2 - 15, y, size / 2 + 15, y + 30), fill=COLORS["green"])
    return image


def _orbiting_shapes(index: int, size: int) -> Image.Image:
    """A yellow circle and a pink square orbiting the centre on black."""
    from PIL import Image, ImageDraw

    image = Image.new("RGB", (size, size), COLORS["black"])
    draw = ImageDraw.Draw(image)
    angle = index * 2 * math.pi / 24
    centre, radius = size / 2, size / 3
    x, y = centre + radius * math.cos(angle), centre + radius * math.sin(angle)
    draw.ellipse((x - 10, y - 10, x + 10, y + 10), fill=COLORS["yellow"])
    x, y = centre - radius * math.cos(angle), centre - radius * math.sin(angle)
    draw.rectangle((x - 9, y - 9, x + 9, y + 9), fill=COLORS["pink"])
    return image


def _growing_ring(index: int, size: int) -> Image.Image:
    """An orange ring growing from the centre of a grey frame."""
    from PIL import Image, ImageDraw

    image = Image.new("RGB", (size, size), COLORS["grey"])
    radius = 4 + index * 2.6
    centre = size / 2
    ImageDraw.Draw(image).ellipse(
        (centre - radius, centre - radius, centre + radius, centre + radius),
        outline=COLORS["orange"],
        width=4,
    )
    return image


def _scrolling_bars(index: int, size: int) -> Image.Image:
    """Coloured horizontal bars scrolling downwards."""
    from PIL import Image, ImageDraw

    image = Image.new("RGB", (size, size), COLORS["white"])
    draw = ImageDraw.Draw(image)
    palette = ["red", "orange", "yellow", "green", "blue", "purple"]
    bar = size // 6
    for row in range(-1, 7):
        top = row * bar + (index * 3) % (bar * len(palette))
        draw.rectangle(
            (0, top % (size + bar) - bar, size, top % (size + bar)), fill=COLORS[palette[row % len(palette)]]
        )
    return image


def _still_house(index: int, size: int) -> Image.Image:
    """The same drawing of a house in every frame: a still posing as a video."""
    return house((size, size), "white", "red").image


def _rising_bubble(index: int, size: int) -> Image.Image:
    """A white bubble rising through blue water."""
    from PIL import ImageDraw

    image = gradient((size, size), COLORS["sky blue"], COLORS["navy"])
    y = size - 16 - index * (size - 20) / 6
    ImageDraw.Draw(image).ellipse((size / 2 - 8, y, size / 2 + 8, y + 16), outline=COLORS["white"], width=3)
    return image


def video_files() -> dict[str, bytes]:
    """`video/`: short clips of moving shapes, plus a duplicate, a too-short and a corrupt clip, a still
    picture repeated for two seconds and a clip at 2 frames per second."""
    clips = {
        "moving_circle": Clip(64, 10, 20, _moving_circle),
        "bouncing_square": Clip(96, 12, 18, _bouncing_square),
        "orbiting_shapes": Clip(96, 8, 24, _orbiting_shapes),
        "growing_ring": Clip(64, 10, 10, _growing_ring),
        "scrolling_bars": Clip(96, 12, 30, _scrolling_bars),
        "flash": Clip(64, 8, 2, _moving_circle),
        "still_house": Clip(64, 10, 20, _still_house),
        "rising_bubble": Clip(64, 2, 6, _rising_bubble),
    }
    files: dict[str, bytes] = {}
    for name, clip in clips.items():
        pictures = (clip.draw(index, clip.size) for index in range(clip.frames))
        files[f"video/{name}.mp4"] = encode_mp4(pictures, clip.fps, H264_VIDEO)
        files[f"video/{name}.txt"] = VIDEO_CAPTIONS[name].encode("utf-8")
    files["video/moving_circle_copy.mp4"] = files["video/moving_circle.mp4"]
    files["video/broken_clip.mp4"] = random_bytes(41, 6000)
    return files
