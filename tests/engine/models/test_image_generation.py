"""Tests of curation_dagster/models/image_generation.py: loading a user's image model from a local Python
entry point or TorchScript file, batching, and turning what it returns into PNG images."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image

from curation_dagster.errors import ModelNotConfigured
from curation_dagster.models.image_generation import generate_images, image_png, load_image_generator
from tests.generator_fixtures import write_image_generator, write_torchscript_generator

pytestmark = [
    pytest.mark.usefixtures("no_network"),
    pytest.mark.filterwarnings("ignore:`torch.jit.*` is deprecated:FutureWarning"),
]


@pytest.fixture
def painter(tmp_path: Path) -> Path:
    return write_image_generator(tmp_path / "models")


def calls(painter: Path) -> list[dict[str, Any]]:
    log = painter.with_suffix(".calls.jsonl")
    return [json.loads(line) for line in log.read_text(encoding="utf-8").splitlines()]


def decoded(png: bytes | str) -> np.ndarray:
    assert isinstance(png, bytes), png
    with Image.open(io.BytesIO(png)) as image:
        assert image.format == "PNG"
        return np.asarray(image)


def test_an_entry_point_makes_one_png_per_prompt(painter: Path) -> None:
    generator = load_image_generator(f"{painter}:generate", "cpu")

    images = generate_images(generator, ["a red fox", "an owl in the snow"], [1, 2])

    assert [decoded(image).shape for image in images] == [(8, 9, 3), (8, 18, 3)]
    assert generator.location == f"{painter}:generate"


def test_prompts_reach_the_generator_in_batches_with_their_seeds_and_the_device(painter: Path) -> None:
    generator = load_image_generator(f"{painter}:generate", "cpu")

    generate_images(generator, ["p1", "p2", "p3", "p4", "p5"], [10, 20, 30, 40, 50], batch_size=2)

    assert calls(painter) == [
        {"prompts": ["p1", "p2"], "seeds": [10, 20], "device": "cpu"},
        {"prompts": ["p3", "p4"], "seeds": [30, 40], "device": "cpu"},
        {"prompts": ["p5"], "seeds": [50], "device": "cpu"},
    ]


def test_the_same_seed_gives_the_same_image_in_any_batch(painter: Path) -> None:
    generator = load_image_generator(f"{painter}:generate", "cpu")

    batched = generate_images(generator, ["same prompt", "other", "same prompt"], [7, 8, 9], batch_size=3)
    alone = generate_images(generator, ["same prompt"], [7])

    assert batched[0] == alone[0]
    assert batched[0] != batched[2]


def test_a_torchscript_generator_returns_a_batch_tensor_of_channels_first_images(tmp_path: Path) -> None:
    path = write_torchscript_generator(tmp_path / "painter.pt")
    generator = load_image_generator(str(path), "cpu")

    images = generate_images(generator, ["one", "two"], [51, 300])

    assert [decoded(image).shape for image in images] == [(4, 6, 3), (4, 6, 3)]
    assert decoded(images[0])[0, 0].tolist() == [51, 51, 51]
    assert decoded(images[1])[0, 0].tolist() == [44, 44, 44]


def test_output_that_is_not_an_image_says_why_for_that_prompt_only(painter: Path) -> None:
    generator = load_image_generator(f"{painter}:not_images", "cpu")

    first, second = generate_images(generator, ["a", "b"], [1, 2])

    assert first == "the generator returned a str, not an image, array or tensor"
    assert decoded(second).tolist() == [[128] * 4] * 4


def test_a_wrong_number_of_images_fails_every_prompt_of_the_batch(painter: Path) -> None:
    generator = load_image_generator(f"{painter}:too_few", "cpu")

    assert (
        generate_images(generator, ["a", "b"], [1, 2])
        == ["the generator returned 0 images for 2 prompts"] * 2
    )


def test_image_png_accepts_arrays_tensors_images_and_encoded_bytes() -> None:
    grey = np.full((3, 5), 200, np.uint8)
    channels_first = torch.zeros(3, 2, 5)
    channels_first[0] = 1.0
    encoded = io.BytesIO()
    Image.new("RGB", (2, 2), (1, 2, 3)).save(encoded, format="JPEG")

    assert decoded(image_png(grey)).shape == (3, 5)
    assert decoded(image_png(channels_first))[1, 3].tolist() == [255, 0, 0]
    assert decoded(image_png(Image.new("P", (3, 3)))).shape == (3, 3, 3)
    assert decoded(image_png(encoded.getvalue())).shape == (2, 2, 3)


@pytest.mark.parametrize(
    ("output", "message"),
    [
        (np.full((4, 4, 3), np.nan), "NaN or infinite"),
        (np.zeros((2, 3, 5)), r"shape \(2, 3, 5\)"),
        (np.full((2, 2), 300, np.int32), "outside 0-255"),
        (b"not an image", "bytes that are not an image"),
    ],
)
def test_image_png_refuses_what_is_not_an_image(output: Any, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        image_png(output)


@pytest.mark.parametrize(
    ("location", "message"),
    [
        ("", r"set models\.image_generator to a local `path/to/file\.py:function` entry point"),
        ("{dir}/absent.py:generate", r"models\.image_generator is .*absent\.py.* does not exist"),
        ("{painter}", r"name the function as well, as path/to/file\.py:function"),
        ("{painter}:paint", r"painter\.py has no function 'paint'"),
        ("{dir}/broken.py:generate", r"importing .*broken\.py failed: ZeroDivisionError"),
        ("{dir}/notes.txt", r"torch\.jit\.load cannot read"),
    ],
)
def test_a_bad_location_is_model_not_configured_naming_the_setting(
    painter: Path, location: str, message: str
) -> None:
    folder = painter.parent
    (folder / "broken.py").write_text("RATIO = 1 / 0\n", encoding="utf-8")
    (folder / "notes.txt").write_text("not a model\n", encoding="utf-8")

    with pytest.raises(ModelNotConfigured, match=message):
        load_image_generator(location.format(dir=folder, painter=painter), "cpu")
