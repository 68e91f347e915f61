"""The demo pictures as files: the WebDataset tar `images_000.tar` and the `images/` part of the media folder.

The tar plants exact copies, re-encoded and resized near copies, tiny, blank, truncated and mislabelled
images and malformed samples among the distinct pictures.
"""

from __future__ import annotations

import io
import json
import random
from dataclasses import dataclass
from typing import TYPE_CHECKING

from curation_dagster.demo.drawings import (
    COLORS,
    Picture,
    apple_on_tablecloth,
    balloons,
    diagonal_split,
    dot_grid,
    fish,
    gradient,
    hazard_stripes,
    house,
    landscape,
    mountains,
    night_sky,
    out_of_focus,
    pie_chart,
    rings,
    sailboat,
    scattered_shapes,
    shape_on_gradient,
    skyline,
    smiley,
    striped_flag,
    traffic_light,
    tree,
)
from curation_dagster.demo.formats import tar_bytes

if TYPE_CHECKING:
    from PIL import Image


@dataclass(frozen=True)
class EncodedImage:
    """One encoded picture of the image shard, with the caption that describes it."""

    data: bytes
    extension: str
    caption: str


def _encode(image: Image.Image, extension: str, quality: int = 90) -> bytes:
    """Encode `image` as JPEG (fixed quality, 4:2:0 chroma) or as PNG (fixed compression level)."""
    buffer = io.BytesIO()
    if extension == "jpg":
        image.save(buffer, format="JPEG", quality=quality, optimize=False, subsampling=2)
    else:
        image.save(buffer, format="PNG", optimize=False, compress_level=9)
    return buffer.getvalue()


@dataclass(frozen=True)
class Pictures:
    """The drawings of the image shard (encoded, with captions) and the extra ones of the media folder."""

    distinct: list[tuple[Picture, EncodedImage]]
    media_only: list[Picture]


def demo_pictures() -> Pictures:
    """Draw and encode the distinct pictures of the tar, and draw those only in the media folder."""
    drawings: list[tuple[Picture, str]] = [
        (shape_on_gradient((224, 224), "circle", "red", "navy", "sky blue", False), "jpg"),
        (hazard_stripes((192, 128), "yellow", "black", 8), "png"),
        (landscape((256, 192), "blue", "green", "yellow"), "jpg"),
        (apple_on_tablecloth((160, 160), "green"), "png"),
        (house((200, 200), "white", "red"), "jpg"),
        (rings((240, 180), "orange", "purple", 5), "jpg"),
        (night_sky((256, 160), seed=7), "jpg"),
        (striped_flag((180, 120), "blue", "red"), "png"),
        (scattered_shapes((208, 208), seed=11), "jpg"),
        (sailboat((240, 200)), "jpg"),
        (traffic_light((120, 220), "green"), "png"),
        (shape_on_gradient((176, 240), "triangle", "yellow", "purple", "pink", True), "jpg"),
        (diagonal_split((128, 128), "navy", "sand"), "jpg"),
        (tree((192, 224), "sky blue"), "jpg"),
        (dot_grid((224, 160), "white", "navy", 24), "png"),
    ]
    media_only = [
        mountains((240, 160), "navy"),
        balloons((160, 200)),
        pie_chart((176, 176)),
        fish((224, 160)),
        smiley((144, 144), "pink"),
        skyline((256, 144), seed=5),
        shape_on_gradient((200, 200), "square", "green", "orange", "yellow", True),
        out_of_focus(scattered_shapes((224, 224), seed=3), radius=4.0),
    ]
    distinct = [
        (picture, EncodedImage(_encode(picture.image, extension), extension, picture.caption))
        for picture, extension in drawings
    ]
    return Pictures(distinct, media_only)


def _webdataset_sample(image: EncodedImage, metadata: bytes | None = None) -> dict[str, bytes]:
    """One WebDataset sample: the image, its caption and a json member (valid unless given)."""
    default = json.dumps({"source": "demo", "license": "CC0"}).encode("utf-8")
    return {image.extension: image.data, "txt": image.caption.encode("utf-8"), "json": metadata or default}


def _image_samples(pictures: Pictures) -> list[dict[str, bytes]]:
    """WebDataset samples for the tar in key order, each a map of member extension to bytes."""
    from PIL import Image

    encoded = [image for _, image in pictures.distinct]
    samples = [_webdataset_sample(image) for image in encoded[:12]]
    planted = [_webdataset_sample(encoded[index]) for index in (0, 3, 5)]
    for index in (2, 4, 8):
        picture = pictures.distinct[index][0]
        planted.append(
            _webdataset_sample(
                EncodedImage(_encode(picture.image, "jpg", quality=55), "jpg", picture.caption)
            )
        )
    for index in (1, 6, 9):
        picture, original = pictures.distinct[index]
        width, height = picture.image.size
        resized = picture.image.resize((width * 4 // 5, height * 4 // 5), Image.Resampling.LANCZOS)
        planted.append(
            _webdataset_sample(
                EncodedImage(_encode(resized, original.extension), original.extension, picture.caption)
            )
        )
    tiny_square = Image.new("RGB", (12, 12), COLORS["white"])
    tiny_square.paste(COLORS["red"], (3, 3, 9, 9))
    tiny_gradient = gradient((12, 12), COLORS["blue"], COLORS["sky blue"])
    planted += [
        _webdataset_sample(EncodedImage(_encode(tiny_square, "png"), "png", "A tiny red square on white.")),
        _webdataset_sample(EncodedImage(_encode(tiny_gradient, "jpg"), "jpg", "A tiny blue gradient.")),
        _webdataset_sample(
            EncodedImage(
                _encode(Image.new("RGB", (128, 128), COLORS["white"]), "png"), "png", "A plain white image."
            )
        ),
        _webdataset_sample(
            EncodedImage(
                _encode(Image.new("RGB", (160, 120), COLORS["grey"]), "jpg"), "jpg", "A plain grey image."
            )
        ),
        _webdataset_sample(
            EncodedImage(encoded[12].data[: len(encoded[12].data) // 2], "jpg", encoded[12].caption)
        ),
        _webdataset_sample(
            EncodedImage(
                b"This is not an image, just text saved under a .jpg name.\n", "jpg", "A photo of a cat."
            )
        ),
        _webdataset_sample(encoded[13], metadata=b'{"source": "demo", "license": '),
        {"txt": b"A photo of a lighthouse on a rocky coast at dusk."},
        _webdataset_sample(encoded[14]),
    ]
    random.Random(404).shuffle(planted)
    return samples + planted


def image_tar(pictures: Pictures) -> bytes:
    """`images_000.tar`: WebDataset samples with consecutive keys 000000, 000001, ..."""
    members: dict[str, bytes] = {}
    for key, sample in enumerate(_image_samples(pictures)):
        for extension, data in sample.items():
            members[f"{key:06d}.{extension}"] = data
    return tar_bytes(members)


def media_images(pictures: Pictures) -> dict[str, bytes]:
    """`images/`: PNG pictures with same-name captions, one out of focus, the last a byte copy of a tar
    picture."""
    files: dict[str, bytes] = {}
    for index, picture in enumerate(pictures.media_only):
        files[f"images/image_{index:03d}.png"] = _encode(picture.image, "png")
        files[f"images/image_{index:03d}.txt"] = picture.caption.encode("utf-8")
    _, copied = pictures.distinct[1]
    files[f"images/image_{len(pictures.media_only):03d}.png"] = copied.data
    files[f"images/image_{len(pictures.media_only):03d}.txt"] = copied.caption.encode("utf-8")
    return files
