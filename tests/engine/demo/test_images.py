"""Tests for the demo pictures: the WebDataset tar and the media folder's images, with every planted case."""

from __future__ import annotations

import io
import itertools
import json
import tarfile
from pathlib import Path

import imagehash
from PIL import Image


def _tar_samples(path: Path) -> dict[str, dict[str, bytes]]:
    """The WebDataset samples of a tar: key to extension to bytes."""
    samples: dict[str, dict[str, bytes]] = {}
    with tarfile.open(path) as archive:
        for member in archive.getmembers():
            key, extension = member.name.split(".", 1)
            extracted = archive.extractfile(member)
            assert extracted is not None
            samples.setdefault(key, {})[extension] = extracted.read()
    return samples


def _is_single_colour(image: Image.Image) -> bool:
    """True when every pixel of `image` has the same colour."""
    return image.convert("RGB").getcolors(maxcolors=1) is not None


def _decodes(data: bytes) -> bool:
    """True when Pillow can fully decode `data`."""
    try:
        with Image.open(io.BytesIO(data)) as image:
            image.load()
    except (OSError, Image.UnidentifiedImageError):
        return False
    return True


def test_image_tar_keys_are_consecutive_and_members_carry_no_timestamps(landing: Path) -> None:
    with tarfile.open(landing / "images_000.tar") as archive:
        members = archive.getmembers()
    assert all(member.mtime == 0 and member.uid == 0 and member.gid == 0 for member in members)
    assert [member.name for member in members] == sorted(member.name for member in members)
    keys = sorted({member.name.split(".", 1)[0] for member in members})
    assert keys == [f"{index:06d}" for index in range(len(keys))]


def test_image_tar_plants_undecodable_and_malformed_samples(landing: Path) -> None:
    samples = _tar_samples(landing / "images_000.tar")
    images = [
        data for sample in samples.values() if (data := sample.get("jpg", sample.get("png"))) is not None
    ]
    broken = [data for data in images if not _decodes(data)]
    assert len(images) - len(broken) >= 25
    assert len(broken) == 2
    assert sum(data.startswith(b"\xff\xd8") for data in broken) == 1
    assert sum(set(sample) == {"txt"} for sample in samples.values()) == 1
    invalid_json = 0
    for sample in samples.values():
        if "json" in sample:
            try:
                json.loads(sample["json"])
            except json.JSONDecodeError:
                invalid_json += 1
    assert invalid_json == 1


def test_image_tar_plants_exact_duplicates_tiny_and_blank_images(landing: Path) -> None:
    samples = _tar_samples(landing / "images_000.tar")
    images = [sample.get("jpg", sample.get("png")) for sample in samples.values()]
    payloads = [data for data in images if data is not None]
    assert len(payloads) - len(set(payloads)) == 3
    sizes, blanks = [], 0
    for data in payloads:
        if _decodes(data):
            with Image.open(io.BytesIO(data)) as image:
                sizes.append(image.size)
                blanks += _is_single_colour(image)
    assert sizes.count((12, 12)) == 2
    assert blanks == 2


def test_image_tar_near_copies_are_perceptually_close_and_distinct_pictures_are_not(landing: Path) -> None:
    by_caption: dict[str, list[imagehash.ImageHash]] = {}
    for sample in _tar_samples(landing / "images_000.tar").values():
        data = sample.get("jpg", sample.get("png"))
        if data is None or not _decodes(data):
            continue
        with Image.open(io.BytesIO(data)) as image:
            if min(image.size) < 32 or _is_single_colour(image):
                continue
            by_caption.setdefault(sample["txt"].decode(), []).append(imagehash.phash(image))
    copies = [group for group in by_caption.values() if len(group) > 1]
    assert len(copies) == 9
    assert max(first - second for group in copies for first, second in itertools.combinations(group, 2)) <= 4
    originals = [group[0] for group in by_caption.values()]
    assert min(first - second for first, second in itertools.combinations(originals, 2)) >= 10


def test_media_images_have_captions_and_one_byte_copy_of_a_tar_image(landing: Path) -> None:
    folder = landing / "media_001" / "images"
    pngs = sorted(folder.glob("*.png"))
    assert len(pngs) == 9
    assert all(png.with_suffix(".txt").exists() for png in pngs)
    tar_images = {
        data for sample in _tar_samples(landing / "images_000.tar").values() for data in sample.values()
    }
    assert sum(png.read_bytes() in tar_images for png in pngs) == 1
