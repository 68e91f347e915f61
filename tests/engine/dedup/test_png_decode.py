"""Tests for `curation_dagster/dedup/png_decode.py`: the PNGs kornia-rs decodes give exactly Pillow's
pixels and hashes, and every other PNG (or a broken one) is left to Pillow."""

import io

import numpy as np
import pytest
from PIL import Image, PngImagePlugin
from sklearn.datasets import load_sample_image

from curation_dagster.dedup import perceptual
from curation_dagster.dedup.perceptual import ImageHasher, _reduced
from curation_dagster.dedup.png_decode import reduced_png


def photograph() -> Image.Image:
    """A real photograph that ships with scikit-learn (427 x 640)."""
    return Image.fromarray(load_sample_image("china.jpg"))


def png(image: Image.Image, **options: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "PNG", **options)
    return buffer.getvalue()


def pillow_path(data: bytes, side: int) -> np.ndarray:
    with Image.open(io.BytesIO(data)) as opened:
        return np.asarray(_reduced(opened, side))


def with_gamma(image: Image.Image) -> bytes:
    info = PngImagePlugin.PngInfo()
    info.add(b"gAMA", (45455).to_bytes(4, "big"))
    return png(image, pnginfo=info)


@pytest.mark.parametrize("side", [64, 200, 500])
@pytest.mark.parametrize(
    "make",
    [
        lambda: png(photograph()),
        lambda: png(photograph().convert("L")),
        lambda: png(photograph(), optimize=True),
        lambda: with_gamma(photograph()),
    ],
    ids=["rgb", "grey", "optimized", "gamma"],
)
def test_grey_and_rgb_pngs_decode_to_pillows_pixels(make: object, side: int) -> None:
    data = make()  # type: ignore[operator]
    fast = reduced_png(data, side)
    assert fast is not None and fast.mode == "RGB"
    assert np.array_equal(np.asarray(fast), pillow_path(data, side))


@pytest.mark.parametrize(
    "make",
    [
        lambda: png(photograph().convert("RGBA")),
        lambda: png(photograph().convert("P")),
        lambda: png(photograph().convert("LA")),
        lambda: png(photograph().convert("I;16")),
        lambda: png(photograph(), transparency=(0, 0, 0)),
        lambda: png(photograph())[:2000],
        lambda: b"\x89PNG\r\n\x1a\n" + b"\x00" * 40,
        lambda: photograph().tobytes()[:100],
    ],
    ids=["rgba", "palette", "grey-alpha", "16-bit", "transparent-colour", "truncated", "no-ihdr", "not-png"],
)
def test_every_other_png_is_left_to_pillow(make: object) -> None:
    assert reduced_png(make(), 64) is None  # type: ignore[operator]


def test_a_broken_png_is_still_worded_by_pillow() -> None:
    hashes = ImageHasher().hash_many([png(photograph())[:5000]])
    assert not hashes.usable[0]
    assert (hashes.errors[0] or "").startswith("cannot decode")


def test_hashes_through_the_fast_path_equal_pillows(monkeypatch: pytest.MonkeyPatch) -> None:
    images = [png(photograph()), png(photograph().convert("L")), png(photograph().resize((320, 213)))]
    decoded: list[bool] = []

    def counted(data: bytes, side: int) -> object:
        image = reduced_png(data, side)
        decoded.append(image is not None)
        return image

    with monkeypatch.context() as patch:
        patch.setattr(perceptual, "reduced_png", counted)
        fast = ImageHasher().hash_many(images)
    assert decoded == [True, True, True]  # every picture took the fast path
    monkeypatch.setattr(perceptual, "reduced_png", lambda data, side: None)
    slow = ImageHasher().hash_many(images)
    assert fast.usable.all()
    assert np.array_equal(fast.hashes, slow.hashes)
    assert np.array_equal(fast.colours, slow.colours)
