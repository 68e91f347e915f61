"""Distinct natural-looking pictures and the changes users still call the same picture, made in code.

A scene is a sky gradient over a ridge of 1/f noise, a 1/f colour field, or a linear or radial gradient
with texture (natural images have a power spectrum near 1/f²), plus a few shapes, sometimes blurred; each
seed gives a different scene. `changes` makes the copies users count as near duplicates. Shared by the
tests and `benchmarks/image_dedup.py`.
"""

from __future__ import annotations

import io
from collections.abc import Callable

import numpy as np
from PIL import Image, ImageDraw, ImageEnhance, ImageFilter, ImageFont, ImageOps


def _pink_noise(rng: np.random.Generator, height: int, width: int, beta: float) -> np.ndarray:
    fy = np.fft.fftfreq(height)[:, None]
    fx = np.fft.rfftfreq(width)[None, :]
    frequency = np.sqrt(fx**2 + fy**2)
    frequency[0, 0] = 1.0
    spectrum = (rng.normal(size=frequency.shape) + 1j * rng.normal(size=frequency.shape)) / frequency ** (
        beta / 2
    )
    spectrum[0, 0] = 0
    field = np.fft.irfft2(spectrum, s=(height, width))
    return (field - field.mean()) / (field.std() + 1e-9)


def scene(seed: int, size: tuple[int, int] | None = None) -> Image.Image:
    """A distinct RGB scene for each seed, 320-640 x 240-480 pixels unless `size` is given."""
    rng = np.random.default_rng(seed)
    width, height = size or (int(rng.integers(320, 640)), int(rng.integers(240, 480)))
    kind = int(rng.integers(0, 4))
    y = np.linspace(0, 1, height)[:, None, None]
    x = np.linspace(0, 1, width)[None, :, None]
    first, second = rng.uniform(0, 255, 3), rng.uniform(0, 255, 3)
    if kind == 0:  # sky over a ridge
        pixels = first * (1 - y) + second * y + 0 * x
        ridge = rng.uniform(0.3, 0.7) + 0.15 * _pink_noise(rng, 1, width, 2.0)[0] * rng.uniform(0.3, 1)
        ground = np.arange(height)[:, None] / height > ridge[None, :]
        texture = _pink_noise(rng, height, width, rng.uniform(1.5, 2.5))[..., None] * rng.uniform(10, 40)
        pixels = np.where(ground[..., None], rng.uniform(0, 255, 3) + texture, pixels)
    elif kind == 1:  # a 1/f colour field
        channels = [_pink_noise(rng, height, width, rng.uniform(1.8, 2.6)) for _ in range(3)]
        pixels = np.stack(channels, -1) * rng.uniform(30, 60) + rng.uniform(60, 190, 3)
    elif kind == 2:  # a horizontal gradient with texture
        texture = _pink_noise(rng, height, width, 2.2)[..., None] * rng.uniform(10, 40)
        pixels = first * (1 - x) + second * x + 0 * y + texture
    else:  # a radial gradient with texture
        radius = np.sqrt((x - rng.uniform(0.2, 0.8)) ** 2 + (y - rng.uniform(0.2, 0.8)) ** 2)
        pixels = first * (1 - radius) + second * radius + _pink_noise(rng, height, width, 2.0)[..., None] * 25
    image = Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8), "RGB")
    draw = ImageDraw.Draw(image)
    for _ in range(int(rng.integers(1, 8))):
        cx, cy = rng.uniform(0, width), rng.uniform(0, height)
        extent = rng.uniform(0.05, 0.35) * min(width, height)
        colour = tuple(int(value) for value in rng.uniform(0, 255, 3))
        shape = int(rng.integers(0, 4))
        if shape == 0:
            draw.ellipse((cx - extent, cy - extent * rng.uniform(0.5, 1.5), cx + extent, cy + extent), colour)
        elif shape == 1:
            draw.rectangle(
                (
                    cx - extent,
                    cy - extent,
                    cx + extent * rng.uniform(0.5, 2),
                    cy + extent * rng.uniform(0.3, 1),
                ),
                colour,
            )
        elif shape == 2:
            angles = np.sort(rng.uniform(0, 2 * np.pi, 5))
            draw.polygon([(cx + extent * np.cos(a), cy + extent * np.sin(a)) for a in angles], colour)
        else:
            end = (rng.uniform(0, width), rng.uniform(0, height))
            draw.line((cx, cy, *end), fill=colour, width=int(rng.integers(2, 12)))
    if rng.random() < 0.5:
        image = image.filter(ImageFilter.GaussianBlur(rng.uniform(0.5, 2)))
    return image


def encode(image: Image.Image, image_format: str = "JPEG", **options: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, image_format, **options)
    return buffer.getvalue()


def jpeg(image: Image.Image, quality: int = 90) -> bytes:
    return encode(image, "JPEG", quality=quality)


def crop(image: Image.Image, keep: float, at_x: float, at_y: float) -> Image.Image:
    """Keep `keep` of each side; `at_x`, `at_y` place the window (0 left/top, 1 right/bottom)."""
    width, height = image.size
    crop_width, crop_height = int(width * keep), int(height * keep)
    left, top = int((width - crop_width) * at_x), int((height - crop_height) * at_y)
    return image.crop((left, top, left + crop_width, top + crop_height))


def watermark(image: Image.Image) -> Image.Image:
    """A semi-transparent text mark in the lower right corner."""
    layer = Image.new("RGBA", image.size, (0, 0, 0, 0))
    font = ImageFont.load_default(size=max(12, image.height // 12))
    ImageDraw.Draw(layer).text(
        (int(image.width * 0.62), int(image.height * 0.86)), "© stock", fill=(255, 255, 255, 170), font=font
    )
    return Image.alpha_composite(image.convert("RGBA"), layer).convert("RGB")


def caption(image: Image.Image) -> Image.Image:
    """Outlined white caption text across the bottom, as on a meme."""
    copy = image.copy()
    font = ImageFont.load_default(size=max(10, image.height // 14))
    ImageDraw.Draw(copy).text(
        (int(image.width * 0.05), int(image.height * 0.85)),
        "When you finally see it",
        fill=(255, 255, 255),
        font=font,
        stroke_width=2,
        stroke_fill=(0, 0, 0),
    )
    return copy


#: Each change users count as the same picture, from the original to the encoded copy.
CHANGES: dict[str, Callable[[Image.Image], bytes]] = {
    "reencode_q20": lambda image: jpeg(image, 20),
    "resize_half": lambda image: jpeg(image.resize((image.width // 2, image.height // 2))),
    "upscale": lambda image: jpeg(image.resize((image.width * 3 // 2, image.height * 3 // 2))),
    "crop90_centre": lambda image: jpeg(crop(image, 0.9, 0.5, 0.5)),
    "crop90_corner": lambda image: jpeg(crop(image, 0.9, 1.0, 0.0)),
    "crop90_offset": lambda image: jpeg(crop(image, 0.9, 0.3, 0.8)),
    "brighter": lambda image: jpeg(ImageEnhance.Brightness(image).enhance(1.3)),
    "darker": lambda image: jpeg(ImageEnhance.Brightness(image).enhance(0.7)),
    "contrast": lambda image: jpeg(ImageEnhance.Contrast(image).enhance(0.6)),
    "watermark": lambda image: jpeg(watermark(image)),
    "caption": lambda image: jpeg(caption(image)),
    "png": lambda image: encode(image, "PNG"),
    "webp": lambda image: encode(image, "WEBP", quality=80),
    "mirror": lambda image: jpeg(ImageOps.mirror(image)),
    "rotate_5": lambda image: jpeg(image.rotate(5, Image.Resampling.BICUBIC)),
    "rotate_minus_4": lambda image: jpeg(image.rotate(-4, Image.Resampling.BICUBIC)),
    "brighter_by_25_levels": lambda image: jpeg(image.point(lambda value: min(255, value + 25))),
}


def photo_tiles(side: int = 160) -> list[Image.Image]:
    """Non-overlapping tiles of the photographs that ship with scikit-learn (a temple and a flower)."""
    from sklearn.datasets import load_sample_images

    tiles = []
    for pixels in load_sample_images().images:
        photo = Image.fromarray(pixels)
        for left in range(0, photo.width - side + 1, side):
            for top in range(0, photo.height - side + 1, side):
                tiles.append(photo.crop((left, top, left + side, top + side)))
    return tiles
