"""The samples an asset's metadata shows (assets/metadata.py): text cut to a cell, images as thumbnails
(a clip's first frame) the UI can show without reaching the lake, unreadable media as an empty preview rather than an error."""

from __future__ import annotations

import base64
import io
import re
from pathlib import Path

import numpy as np
import pyarrow as pa
from PIL import Image

from assets.metadata import THUMBNAIL_PIXELS, kept_samples_markdown
from curation_dagster.io.lake import Lake
from curation_dagster.media import encode_mp4


def png(width: int, height: int) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), (200, 40, 40)).save(buffer, format="PNG")
    return buffer.getvalue()


def test_image_samples_carry_a_small_jpeg_thumbnail_and_text_samples_none(tmp_path: Path) -> None:
    lake = Lake(tmp_path / "lake")
    path = lake.path("v", "filtered", "s")
    lake.write_table(
        path,
        pa.table(
            {
                "id": ["a", "b", "c"],
                "modality": ["image", "text", "image"],
                "text": ["a red square", "some | text", None],
                "media": pa.array([png(400, 200), None, b"not an image"], pa.large_binary()),
                "uri": ["land/x#1", "land/y#1", "land/z#1"],
            }
        ),
    )

    lines = kept_samples_markdown(lake, lake.url(path)).splitlines()

    assert lines[0] == "| id | modality | text or uri | preview |"
    found = re.search(r"!\[thumbnail\]\(data:image/jpeg;base64,([A-Za-z0-9+/=]+)\)", lines[2])
    assert found is not None
    with Image.open(io.BytesIO(base64.b64decode(found.group(1)))) as thumbnail:
        assert thumbnail.format == "JPEG"
        assert thumbnail.size == (THUMBNAIL_PIXELS, THUMBNAIL_PIXELS // 2)
    assert lines[3] == "| `b` | text | some \\| text |  |"
    assert lines[4] == "| `c` | image | land/z#1 |  |"  # undecodable: no preview, no error


def test_a_clip_sample_shows_its_first_frame_and_an_unreadable_clip_nothing(tmp_path: Path) -> None:
    first = np.zeros((64, 128, 3), np.uint8)
    first[:, :64] = (250, 250, 250)  # the left half white in the first frame only
    clip = encode_mp4([first, np.zeros((64, 128, 3), np.uint8)], fps=4)
    lake = Lake(tmp_path / "lake")
    path = lake.path("v", "filtered", "s")
    lake.write_table(
        path,
        pa.table(
            {
                "id": ["a", "b"],
                "modality": ["video", "video"],
                "text": ["a clip", "broken"],
                "media": pa.array([clip, b"not a clip"], pa.large_binary()),
                "uri": ["land/x#1", "land/y#1"],
            }
        ),
    )

    lines = kept_samples_markdown(lake, lake.url(path)).splitlines()

    found = re.search(r"!\[thumbnail\]\(data:image/jpeg;base64,([A-Za-z0-9+/=]+)\)", lines[2])
    assert found is not None
    with Image.open(io.BytesIO(base64.b64decode(found.group(1)))) as thumbnail:
        assert thumbnail.size == (THUMBNAIL_PIXELS, THUMBNAIL_PIXELS // 2)
        pixels = np.asarray(thumbnail.convert("L"), dtype=np.float64)
    assert (
        pixels[:, : THUMBNAIL_PIXELS // 2 - 4].mean()
        > 200
        > 40
        > pixels[:, THUMBNAIL_PIXELS // 2 + 4 :].mean()
    )
    assert lines[3] == "| `b` | video | broken |  |"
