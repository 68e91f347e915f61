"""The drawings of the demo pictures: shapes, scenes and patterns in named colours, each with a caption.

Every drawer is deterministic (seeded where it scatters things), so the same call draws the same pixels.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from PIL import Image

Color = tuple[int, int, int]

COLORS: dict[str, Color] = {
    "red": (214, 39, 40),
    "orange": (255, 127, 14),
    "yellow": (240, 210, 40),
    "green": (44, 160, 44),
    "dark green": (20, 90, 30),
    "sky blue": (135, 200, 235),
    "blue": (31, 90, 200),
    "navy": (15, 25, 80),
    "purple": (128, 60, 170),
    "pink": (240, 130, 190),
    "brown": (120, 75, 35),
    "white": (250, 250, 250),
    "light grey": (210, 210, 210),
    "grey": (128, 128, 128),
    "black": (10, 10, 10),
    "sand": (230, 205, 150),
}
"""Named colours used in drawings and their captions."""


@dataclass(frozen=True)
class Picture:
    """A drawn picture before encoding, with its caption."""

    image: Image.Image
    caption: str


def gradient(size: tuple[int, int], start: Color, end: Color, horizontal: bool = False) -> Image.Image:
    """A linear two-colour gradient, top to bottom or left to right."""
    import numpy as np
    from PIL import Image

    width, height = size
    steps = np.linspace(0.0, 1.0, width if horizontal else height)[:, None]
    line = (1.0 - steps) * np.array(start, dtype=float) + steps * np.array(end, dtype=float)
    grid = line[None, :, :] if horizontal else line[:, None, :]
    pixels = np.broadcast_to(grid, (height, width, 3)).round().astype(np.uint8)
    return Image.fromarray(pixels, "RGB")


def shape_on_gradient(
    size: tuple[int, int], shape: str, color: str, top: str, bottom: str, horizontal: bool
) -> Picture:
    """One large shape, left of centre, on a gradient background."""
    from PIL import ImageDraw

    image = gradient(size, COLORS[top], COLORS[bottom], horizontal)
    draw = ImageDraw.Draw(image)
    width, height = size
    side = 0.6 * min(size)
    box = (width * 0.1, height * 0.3, width * 0.1 + side, height * 0.3 + side)
    if shape == "circle":
        draw.ellipse(box, fill=COLORS[color])
    elif shape == "square":
        draw.rectangle(box, fill=COLORS[color])
    else:
        draw.polygon(
            [(box[0], box[3]), ((box[0] + box[2]) / 2, box[1]), (box[2], box[3])], fill=COLORS[color]
        )
    direction = "left to right" if horizontal else "top to bottom"
    return Picture(image, f"A large {color} {shape} on a gradient from {top} to {bottom}, {direction}.")


def hazard_stripes(size: tuple[int, int], first: str, second: str, count: int) -> Picture:
    """Diagonal warning stripes of two alternating colours."""
    from PIL import Image, ImageDraw

    image = Image.new("RGB", size, COLORS[first])
    draw = ImageDraw.Draw(image)
    width, height = size
    span = (width + height) / count
    for index in range(0, count, 2):
        start = index * span
        draw.polygon(
            [(start, 0), (start + span, 0), (start + span - height, height), (start - height, height)],
            fill=COLORS[second],
        )
    return Picture(image, f"Diagonal {first} and {second} warning stripes.")


def apple_on_tablecloth(size: tuple[int, int], cloth: str) -> Picture:
    """A red apple on a checked tablecloth in front of a plain wall."""
    from PIL import Image, ImageDraw

    image = Image.new("RGB", size, COLORS["sand"])
    draw = ImageDraw.Draw(image)
    width, height = size
    cells, top = 6, height * 0.45
    cell_width, cell_height = width / cells, (height - top) / 3
    for row in range(3):
        for column in range(cells):
            color = COLORS[cloth] if (row + column) % 2 else COLORS["white"]
            left, upper = column * cell_width, top + row * cell_height
            draw.rectangle((left, upper, left + cell_width, upper + cell_height), fill=color)
    draw.ellipse((width * 0.52, height * 0.3, width * 0.86, height * 0.64), fill=COLORS["red"])
    draw.rectangle((width * 0.68, height * 0.22, width * 0.7, height * 0.32), fill=COLORS["brown"])
    draw.ellipse((width * 0.7, height * 0.2, width * 0.8, height * 0.26), fill=COLORS["green"])
    return Picture(image, f"A red apple on a {cloth} and white checked tablecloth.")


def rings(size: tuple[int, int], first: str, second: str, count: int) -> Picture:
    """Concentric rings of two alternating colours."""
    from PIL import Image, ImageDraw

    image = Image.new("RGB", size, COLORS[second])
    draw = ImageDraw.Draw(image)
    centre_x, centre_y = size[0] * 0.6, size[1] * 0.45
    largest = max(size) * 0.7
    for index in range(count):
        radius = largest * (count - index) / count
        color = COLORS[first] if index % 2 == 0 else COLORS[second]
        draw.ellipse((centre_x - radius, centre_y - radius, centre_x + radius, centre_y + radius), fill=color)
    return Picture(image, f"Concentric {first} and {second} rings, slightly off centre.")


def landscape(size: tuple[int, int], sky: str, hills: str, sun: str) -> Picture:
    """Sun above rolling hills under a sky gradient."""
    from PIL import ImageDraw

    image = gradient(size, COLORS[sky], COLORS["white"])
    draw = ImageDraw.Draw(image)
    width, height = size
    draw.ellipse((width * 0.65, height * 0.1, width * 0.9, height * 0.1 + width * 0.25), fill=COLORS[sun])
    draw.ellipse((-width * 0.3, height * 0.55, width * 0.7, height * 1.5), fill=COLORS[hills])
    draw.ellipse((width * 0.35, height * 0.65, width * 1.4, height * 1.6), fill=COLORS["dark green"])
    return Picture(image, f"A {sun} sun above {hills} hills under a {sky} sky.")


def house(size: tuple[int, int], wall: str, roof: str) -> Picture:
    """A small house with a pitched roof and a door, on grass under a blue sky."""
    from PIL import Image, ImageDraw

    image = Image.new("RGB", size, COLORS["sky blue"])
    draw = ImageDraw.Draw(image)
    width, height = size
    draw.rectangle((0, height * 0.75, width, height), fill=COLORS["green"])
    draw.rectangle((width * 0.25, height * 0.45, width * 0.75, height * 0.8), fill=COLORS[wall])
    draw.polygon(
        [(width * 0.18, height * 0.47), (width * 0.5, height * 0.18), (width * 0.82, height * 0.47)],
        fill=COLORS[roof],
    )
    draw.rectangle((width * 0.44, height * 0.6, width * 0.56, height * 0.8), fill=COLORS["brown"])
    return Picture(image, f"A small {wall} house with a {roof} roof on green grass.")


def tree(size: tuple[int, int], background: str) -> Picture:
    """A single tree with a round crown."""
    from PIL import Image, ImageDraw

    image = Image.new("RGB", size, COLORS[background])
    draw = ImageDraw.Draw(image)
    width, height = size
    draw.rectangle((width * 0.45, height * 0.5, width * 0.55, height * 0.95), fill=COLORS["brown"])
    draw.ellipse((width * 0.2, height * 0.08, width * 0.8, height * 0.62), fill=COLORS["dark green"])
    return Picture(image, f"A single tree with a round dark green crown against a {background} background.")


def night_sky(size: tuple[int, int], seed: int) -> Picture:
    """A crescent moon and scattered stars on a dark sky."""
    from PIL import Image, ImageDraw

    rng = random.Random(seed)
    image = Image.new("RGB", size, COLORS["navy"])
    draw = ImageDraw.Draw(image)
    width, height = size
    for _ in range(60):
        x, y = rng.uniform(0, width), rng.uniform(0, height)
        draw.ellipse((x, y, x + 2, y + 2), fill=COLORS["white"])
    draw.ellipse(
        (width * 0.15, height * 0.15, width * 0.5, height * 0.15 + width * 0.35), fill=COLORS["yellow"]
    )
    draw.ellipse((width * 0.24, height * 0.1, width * 0.59, height * 0.1 + width * 0.35), fill=COLORS["navy"])
    return Picture(image, "A yellow crescent moon and small white stars in a dark night sky.")


def striped_flag(size: tuple[int, int], canton: str, stripe: str) -> Picture:
    """A flag with horizontal stripes and a coloured canton holding white dots."""
    from PIL import Image, ImageDraw

    image = Image.new("RGB", size, COLORS["white"])
    draw = ImageDraw.Draw(image)
    width, height = size
    band = height / 7
    for index in range(0, 7, 2):
        draw.rectangle((0, index * band, width, (index + 1) * band - 1), fill=COLORS[stripe])
    draw.rectangle((0, 0, width * 0.45, band * 4 - 1), fill=COLORS[canton])
    for row in range(3):
        for column in range(4):
            x, y = width * (0.06 + 0.1 * column), band * (0.7 + 1.2 * row)
            draw.ellipse((x - 3, y - 3, x + 3, y + 3), fill=COLORS["white"])
    return Picture(image, f"A flag with {stripe} and white stripes and a {canton} corner with white dots.")


def mountains(size: tuple[int, int], sky: str) -> Picture:
    """Snow-capped mountains under an evening sky."""
    from PIL import ImageDraw

    image = gradient(size, COLORS[sky], COLORS["pink"])
    draw = ImageDraw.Draw(image)
    width, height = size
    for left, peak, right, tip in ((-0.2, 0.3, 0.8, 0.2), (0.35, 0.7, 1.2, 0.35)):
        base, top = (width * left, height), (width * peak, height * tip)
        draw.polygon([base, top, (width * right, height)], fill=COLORS["grey"])
        snow = 0.18
        draw.polygon(
            [
                top,
                (top[0] - (top[0] - base[0]) * snow, top[1] + (height - top[1]) * snow),
                (top[0] + (width * right - top[0]) * snow, top[1] + (height - top[1]) * snow),
            ],
            fill=COLORS["white"],
        )
    return Picture(image, f"Two snow-capped grey mountains under a {sky} and pink evening sky.")


def balloons(size: tuple[int, int]) -> Picture:
    """Three balloons on strings against the sky."""
    from PIL import Image, ImageDraw

    image = Image.new("RGB", size, COLORS["sky blue"])
    draw = ImageDraw.Draw(image)
    width, height = size
    for x, y, color in ((0.25, 0.3, "red"), (0.5, 0.18, "yellow"), (0.72, 0.36, "purple")):
        cx, cy = width * x, height * y
        draw.line((cx, cy + height * 0.14, width * 0.5, height * 0.95), fill=COLORS["black"], width=1)
        draw.ellipse(
            (cx - width * 0.11, cy - height * 0.14, cx + width * 0.11, cy + height * 0.14), fill=COLORS[color]
        )
    return Picture(image, "Red, yellow and purple balloons on strings against a light blue sky.")


def pie_chart(size: tuple[int, int]) -> Picture:
    """A pie chart with four slices on white."""
    from PIL import Image, ImageDraw

    image = Image.new("RGB", size, COLORS["white"])
    draw = ImageDraw.Draw(image)
    width, height = size
    box = (width * 0.1, height * 0.1, width * 0.9, height * 0.9)
    start = 0.0
    for share, color in ((0.4, "blue"), (0.25, "orange"), (0.2, "green"), (0.15, "red")):
        draw.pieslice(box, start, start + 360 * share, fill=COLORS[color])
        start += 360 * share
    return Picture(image, "A pie chart with blue, orange, green and red slices on a white background.")


def fish(size: tuple[int, int]) -> Picture:
    """An orange fish and bubbles in blue water."""
    from PIL import ImageDraw

    image = gradient(size, COLORS["sky blue"], COLORS["navy"])
    draw = ImageDraw.Draw(image)
    width, height = size
    draw.ellipse((width * 0.3, height * 0.4, width * 0.75, height * 0.65), fill=COLORS["orange"])
    draw.polygon(
        [(width * 0.32, height * 0.52), (width * 0.12, height * 0.38), (width * 0.12, height * 0.66)],
        fill=COLORS["orange"],
    )
    draw.ellipse((width * 0.64, height * 0.46, width * 0.68, height * 0.5), fill=COLORS["black"])
    for x, y, radius in ((0.8, 0.35, 4), (0.84, 0.25, 6), (0.79, 0.14, 5)):
        draw.ellipse(
            (width * x - radius, height * y - radius, width * x + radius, height * y + radius),
            outline=COLORS["white"],
            width=2,
        )
    return Picture(image, "An orange fish swimming in deep blue water with a few bubbles.")


def smiley(size: tuple[int, int], background: str) -> Picture:
    """A yellow smiley face."""
    from PIL import Image, ImageDraw

    image = Image.new("RGB", size, COLORS[background])
    draw = ImageDraw.Draw(image)
    width, height = size
    draw.ellipse((width * 0.15, height * 0.15, width * 0.85, height * 0.85), fill=COLORS["yellow"])
    draw.ellipse((width * 0.33, height * 0.35, width * 0.42, height * 0.47), fill=COLORS["black"])
    draw.ellipse((width * 0.58, height * 0.35, width * 0.67, height * 0.47), fill=COLORS["black"])
    draw.arc((width * 0.3, height * 0.35, width * 0.7, height * 0.7), 20, 160, fill=COLORS["black"], width=4)
    return Picture(image, f"A yellow smiley face on a {background} background.")


def skyline(size: tuple[int, int], seed: int) -> Picture:
    """A city skyline of dark buildings with lit windows at dusk."""
    from PIL import ImageDraw

    rng = random.Random(seed)
    image = gradient(size, COLORS["navy"], COLORS["orange"])
    draw = ImageDraw.Draw(image)
    width, height = size
    x = 0.0
    while x < width:
        building_width = rng.uniform(0.1, 0.2) * width
        top = rng.uniform(0.3, 0.7) * height
        draw.rectangle((x, top, x + building_width - 2, height), fill=COLORS["black"])
        for wy in range(int(top) + 6, height - 6, 10):
            for wx in range(int(x) + 4, int(x + building_width) - 6, 8):
                if rng.random() < 0.4:
                    draw.rectangle((wx, wy, wx + 3, wy + 4), fill=COLORS["yellow"])
        x += building_width
    return Picture(image, "A city skyline of dark buildings with lit windows against an orange dusk sky.")


def scattered_shapes(size: tuple[int, int], seed: int) -> Picture:
    """Several circles and squares in assorted colours at random places."""
    from PIL import Image, ImageDraw

    rng = random.Random(seed)
    image = Image.new("RGB", size, COLORS["light grey"])
    draw = ImageDraw.Draw(image)
    width, height = size
    palette = ["red", "blue", "green", "orange", "purple"]
    for index in range(6):
        radius = rng.uniform(0.08, 0.16) * width
        x, y = rng.uniform(radius, width - radius), rng.uniform(radius, height - radius)
        box = (x - radius, y - radius, x + radius, y + radius)
        color = COLORS[palette[index % len(palette)]]
        (draw.ellipse if index % 2 == 0 else draw.rectangle)(box, fill=color)
    return Picture(image, "Three circles and three squares in assorted colours on a light grey background.")


def sailboat(size: tuple[int, int]) -> Picture:
    """A sailboat on the sea below a pale sky."""
    from PIL import ImageDraw

    image = gradient(size, COLORS["sky blue"], COLORS["white"])
    draw = ImageDraw.Draw(image)
    width, height = size
    draw.rectangle((0, height * 0.62, width, height), fill=COLORS["blue"])
    draw.polygon(
        [
            (width * 0.25, height * 0.62),
            (width * 0.75, height * 0.62),
            (width * 0.65, height * 0.74),
            (width * 0.35, height * 0.74),
        ],
        fill=COLORS["brown"],
    )
    draw.polygon(
        [(width * 0.5, height * 0.15), (width * 0.5, height * 0.58), (width * 0.78, height * 0.58)],
        fill=COLORS["white"],
    )
    draw.polygon(
        [(width * 0.47, height * 0.22), (width * 0.47, height * 0.58), (width * 0.28, height * 0.58)],
        fill=COLORS["red"],
    )
    return Picture(image, "A sailboat with a white and a red sail on a blue sea.")


def traffic_light(size: tuple[int, int], lit: str) -> Picture:
    """A traffic light with one lamp lit."""
    from PIL import Image, ImageDraw

    image = Image.new("RGB", size, COLORS["light grey"])
    draw = ImageDraw.Draw(image)
    width, height = size
    draw.rectangle((width * 0.35, height * 0.05, width * 0.65, height * 0.8), fill=COLORS["black"])
    draw.rectangle((width * 0.47, height * 0.8, width * 0.53, height), fill=COLORS["grey"])
    for index, name in enumerate(("red", "yellow", "green")):
        top = height * (0.09 + index * 0.24)
        fill = COLORS[name] if name == lit else COLORS["grey"]
        draw.ellipse((width * 0.4, top, width * 0.6, top + height * 0.19), fill=fill)
    return Picture(image, f"A traffic light showing {lit} on a light grey background.")


def diagonal_split(size: tuple[int, int], first: str, second: str) -> Picture:
    """An image split diagonally into two colours."""
    from PIL import Image, ImageDraw

    image = Image.new("RGB", size, COLORS[first])
    draw = ImageDraw.Draw(image)
    width, height = size
    draw.polygon([(width, 0), (width, height), (0, height)], fill=COLORS[second])
    return Picture(image, f"A square split diagonally into a {first} upper half and a {second} lower half.")


def dot_grid(size: tuple[int, int], dots: str, background: str, spacing: int) -> Picture:
    """A regular grid of dots."""
    from PIL import Image, ImageDraw

    image = Image.new("RGB", size, COLORS[background])
    draw = ImageDraw.Draw(image)
    radius = spacing / 4
    for y in range(spacing // 2, size[1], spacing):
        for x in range(spacing // 2, size[0], spacing):
            draw.ellipse((x - radius, y - radius, x + radius, y + radius), fill=COLORS[dots])
    return Picture(image, f"A grid of small {dots} dots on a {background} background.")


def out_of_focus(picture: Picture, radius: float) -> Picture:
    """`picture` under a Gaussian blur, for the blur filter to find."""
    from PIL import ImageFilter

    caption = picture.caption[0].lower() + picture.caption[1:]
    return Picture(picture.image.filter(ImageFilter.GaussianBlur(radius)), f"A blurry picture of {caption}")
