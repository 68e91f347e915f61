"""Tests for `curation_dagster/models/clip.py` and the CLIP loading it relies on: a tiny random open_clip
model from a custom model config, loaded from .safetensors and .pt files, nothing downloaded."""

from __future__ import annotations

import io
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from curation_dagster.errors import ModelNotConfigured
from curation_dagster.models.clip import ClipEmbedder, clip_model_key, describe_error
from curation_dagster.models.loading import clip_architecture, load_clip
from curation_dagster.models.runtime import ModelRuntime
from tests.media_fixtures import noisy_png, png_bytes
from tests.model_fixtures import TINY_CLIP

pytestmark = pytest.mark.usefixtures("no_network", "torch_single_thread")

TinyClip = tuple[Path, Path, Path]


def runtime(
    tiny_clip: TinyClip, batch_size: int = 64, weights: int = 1, dtype: str = "float32"
) -> ModelRuntime:
    config, *files = tiny_clip
    return ModelRuntime.local(
        "cpu", clip_arch=str(config), clip_weights=str(files[weights - 1]), batch_size=batch_size, dtype=dtype
    )


def images(count: int) -> list[bytes]:
    return [noisy_png(size=24 + 4 * index, seed=index) for index in range(count)]


def jpeg(size: tuple[int, int], mode: str = "RGB") -> bytes:
    buffer = io.BytesIO()
    pixels = np.random.default_rng(size[0]).integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    Image.fromarray(pixels).convert(mode).save(buffer, format="JPEG", quality=90)
    return buffer.getvalue()


def test_a_model_config_json_registers_under_its_file_name(tiny_clip: TinyClip) -> None:
    assert clip_architecture(str(tiny_clip[0])) == TINY_CLIP
    assert clip_architecture(str(tiny_clip[0])) == TINY_CLIP  # registering twice is harmless


def test_safetensors_and_pt_weights_give_the_same_model(tiny_clip: TinyClip) -> None:
    from_safetensors = ClipEmbedder(runtime(tiny_clip, weights=1)).embed_images(images(3)).vectors
    from_pt = ClipEmbedder(runtime(tiny_clip, weights=2)).embed_images(images(3)).vectors
    np.testing.assert_array_equal(from_safetensors, from_pt)


def test_loaded_weights_are_the_saved_ones(tiny_clip: TinyClip) -> None:
    import torch
    from safetensors.torch import load_file

    model, _, _ = load_clip(str(tiny_clip[0]), str(tiny_clip[1]), "cpu")

    saved = load_file(str(tiny_clip[1]))
    assert not model.training
    assert all(torch.equal(model.state_dict()[name], tensor) for name, tensor in saved.items())


def test_image_vectors_are_float32_unit_vectors_of_the_embedding_dimension(tiny_clip: TinyClip) -> None:
    result = ClipEmbedder(runtime(tiny_clip)).embed_images(images(4))

    assert result.vectors.dtype == np.float32
    assert result.vectors.shape == (4, 24)
    np.testing.assert_allclose(np.linalg.norm(result.vectors, axis=1), 1.0, atol=1e-5)
    assert result.errors == [None] * 4


def test_batches_smaller_than_the_input_give_the_same_vectors(tiny_clip: TinyClip) -> None:
    one_batch = ClipEmbedder(runtime(tiny_clip, batch_size=64)).embed_images(images(5)).vectors
    batches_of_two = ClipEmbedder(runtime(tiny_clip, batch_size=2)).embed_images(images(5)).vectors
    np.testing.assert_allclose(batches_of_two, one_batch, atol=1e-6)


def test_text_batches_smaller_than_the_input_give_the_same_vectors(tiny_clip: TinyClip) -> None:
    texts = ["the cat sat on the mat .", "a dog ran", "the dog", "a cat sat on a dog . the dog ran ."]
    one_batch = ClipEmbedder(runtime(tiny_clip, batch_size=64)).embed_texts(texts)
    batches_of_three = ClipEmbedder(runtime(tiny_clip, batch_size=3)).embed_texts(texts)

    assert one_batch.shape == (4, 24)
    np.testing.assert_allclose(np.linalg.norm(one_batch, axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(batches_of_three, one_batch, atol=1e-6)
    assert not np.allclose(one_batch[0], one_batch[1])


def test_an_undecodable_image_is_reported_and_the_others_are_embedded(tiny_clip: TinyClip) -> None:
    embedder = ClipEmbedder(runtime(tiny_clip, batch_size=2))
    good = images(3)

    result = embedder.embed_images([good[0], b"not an image", good[1], good[2]])

    assert result.errors[1] is not None and result.errors[1].startswith("UnidentifiedImageError")
    assert "0x" not in result.errors[1]
    assert [error is None for error in result.errors] == [True, False, True, True]
    np.testing.assert_array_equal(result.vectors[1], np.zeros(24, np.float32))
    np.testing.assert_allclose(result.vectors[[0, 2, 3]], embedder.embed_images(good).vectors, atol=1e-6)


def test_a_batch_of_only_undecodable_images_gives_zero_rows_of_the_right_width(tiny_clip: TinyClip) -> None:
    result = ClipEmbedder(runtime(tiny_clip)).embed_images([b"junk", b""])
    assert result.vectors.shape == (2, 24)
    assert all(error is not None for error in result.errors)


def test_greyscale_palette_and_large_jpeg_images_are_preprocessed_to_the_input_size(
    tiny_clip: TinyClip,
) -> None:
    grey = io.BytesIO()
    Image.new("L", (40, 30), 128).save(grey, format="PNG")
    palette = io.BytesIO()
    Image.new("RGB", (20, 50), (0, 90, 200)).convert("P").save(palette, format="GIF")

    result = ClipEmbedder(runtime(tiny_clip)).embed_images(
        [grey.getvalue(), palette.getvalue(), jpeg((640, 480)), jpeg((64, 64), "L"), png_bytes((3, 3))]
    )

    assert result.errors == [None] * 5
    np.testing.assert_allclose(np.linalg.norm(result.vectors, axis=1), 1.0, atol=1e-5)


def test_half_precision_setting_is_ignored_on_the_cpu(tiny_clip: TinyClip) -> None:
    full = ClipEmbedder(runtime(tiny_clip)).embed_images(images(2)).vectors
    half = ClipEmbedder(runtime(tiny_clip, dtype="float16")).embed_images(images(2)).vectors
    np.testing.assert_array_equal(full, half)


def test_the_model_loads_once_per_runtime(tiny_clip: TinyClip) -> None:
    shared = runtime(tiny_clip)
    ClipEmbedder(shared).embed_images(images(1))
    model = shared.clip()[0]
    ClipEmbedder(shared).embed_texts(["a cat"])
    assert shared.clip()[0] is model


def test_model_key_names_the_architecture_and_changes_with_the_weights(
    tiny_clip: TinyClip, tmp_path: Path
) -> None:
    config, safetensors_file, _ = tiny_clip
    copy = tmp_path / "copy.safetensors"
    shutil.copy(safetensors_file, copy)
    changed = tmp_path / "changed.safetensors"
    changed.write_bytes(safetensors_file.read_bytes()[:-1] + b"\x00")

    key = clip_model_key(str(config), str(safetensors_file))

    assert key.startswith(f"{TINY_CLIP}#")
    assert clip_model_key(str(config), str(copy)) == key  # the content, not the path, identifies weights
    assert clip_model_key(str(config), str(changed)) != key
    assert clip_model_key("ViT-B-32", str(copy)).startswith("ViT-B-32@")


def test_without_weights_the_runtime_names_the_settings() -> None:
    with pytest.raises(
        ModelNotConfigured, match=r"models\.clip_weights \(CURATION_CLIP_WEIGHTS\).*models\.clip_arch"
    ):
        ClipEmbedder(ModelRuntime.local("cpu")).embed_images(images(1))


def test_weights_with_another_suffix_are_refused(tiny_clip: TinyClip, tmp_path: Path) -> None:
    odd = tmp_path / "weights.ckpt"
    odd.write_bytes(b"")
    with pytest.raises(
        ModelNotConfigured, match=r"models\.clip_weights is '.*weights\.ckpt'; use a \.safetensors"
    ):
        load_clip(str(tiny_clip[0]), str(odd), "cpu")


def test_weights_of_another_architecture_name_both_settings(tiny_clip: TinyClip, tmp_path: Path) -> None:
    from safetensors.torch import load_file, save_file

    state = load_file(str(tiny_clip[1]))
    state.pop("logit_scale")
    partial = tmp_path / "partial.safetensors"
    save_file(state, str(partial))

    with pytest.raises(
        ModelNotConfigured,
        match=r"models\.clip_weights '.*partial\.safetensors' does not fit models\.clip_arch '.*curation-tiny-clip\.json'",
    ):
        load_clip(str(tiny_clip[0]), str(partial), "cpu")


def test_a_model_config_without_the_towers_is_refused(tmp_path: Path) -> None:
    config = tmp_path / "half-a-model.json"
    config.write_text(json.dumps({"embed_dim": 8, "vision_cfg": {}}), encoding="utf-8")
    with pytest.raises(
        ModelNotConfigured, match=r"models\.clip_arch .* needs embed_dim, vision_cfg, text_cfg"
    ):
        clip_architecture(str(config))


def test_a_missing_model_config_names_the_setting(tmp_path: Path) -> None:
    with pytest.raises(
        ModelNotConfigured, match=r"models\.clip_arch is '.*absent\.json', which does not exist"
    ):
        clip_architecture(str(tmp_path / "absent.json"))


def test_a_model_config_may_not_take_a_built_in_name(tiny_clip: TinyClip, tmp_path: Path) -> None:
    clash = tmp_path / "ViT-B-32.json"
    shutil.copy(tiny_clip[0], clash)
    with pytest.raises(ModelNotConfigured, match="another architecture named 'ViT-B-32'; rename the file"):
        clip_architecture(str(clash))


def test_a_tokenizer_that_would_be_downloaded_is_refused(tiny_clip: TinyClip, tmp_path: Path) -> None:
    config = json.loads(tiny_clip[0].read_text(encoding="utf-8"))
    config["text_cfg"]["hf_tokenizer_name"] = "bert-base-uncased"
    remote = tmp_path / "remote-tokenizer-clip.json"
    remote.write_text(json.dumps(config), encoding="utf-8")
    with pytest.raises(ModelNotConfigured, match=r"text_cfg\.hf_tokenizer_name .* must be a local folder"):
        clip_architecture(str(remote))


def test_error_descriptions_leave_out_object_addresses() -> None:
    error = OSError("cannot identify image file <_io.BytesIO object at 0x7f3a2c1d5e40>")
    assert describe_error(error) == "OSError: cannot identify image file"


def test_a_built_in_architecture_with_a_hub_tokenizer_is_refused() -> None:
    with pytest.raises(
        ModelNotConfigured, match=r"'xlm-roberta-base-ViT-B-32' sets text_cfg\.hf_tokenizer_name"
    ):
        clip_architecture("xlm-roberta-base-ViT-B-32")
