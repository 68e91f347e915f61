"""Tests for `curation_dagster/vectors/image.py`: CLIP image vectors stored once per item in the lake and
reused while the model and the media stay the same."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from curation_dagster.io.lake import Lake
from curation_dagster.models.clip import ClipEmbedder, ImageVectors
from curation_dagster.models.runtime import ModelRuntime
from curation_dagster.vectors import image as image_embeddings
from curation_dagster.vectors.image import (
    IMAGE_EMBEDDINGS,
    ImageEmbeddingStore,
    embedding_rows,
    media_hash,
    shard_image_embeddings,
    stream_image_embeddings,
)
from tests.media_fixtures import noisy_png

pytestmark = pytest.mark.usefixtures("no_network", "torch_single_thread")

TinyClip = tuple[Path, Path, Path]


class CountingEmbedder(ClipEmbedder):
    """The real embedder, counting the images it is asked to embed, and per call."""

    def __init__(self, runtime: ModelRuntime) -> None:
        super().__init__(runtime)
        self.embedded = 0
        self.calls: list[int] = []

    def embed_images(self, images: Sequence[bytes]) -> ImageVectors:
        self.embedded += len(images)
        self.calls.append(len(images))
        return super().embed_images(images)


def embedder(tiny_clip: TinyClip, weights: int = 1, batch_size: int = 2) -> CountingEmbedder:
    config, *files = tiny_clip
    return CountingEmbedder(
        ModelRuntime.local(
            "cpu", clip_arch=str(config), clip_weights=str(files[weights - 1]), batch_size=batch_size
        )
    )


def items(count: int, seed: int = 0) -> pa.Table:
    return pa.table(
        {
            "id": [f"img{index}" for index in range(count)],
            "media": [noisy_png(seed=seed + index) for index in range(count)],
            "uri": [f"landing/img{index}.png" for index in range(count)],
        }
    )


def test_first_run_computes_and_stores_every_vector(tiny_clip: TinyClip, tmp_path: Path) -> None:
    lake = Lake(tmp_path / "lake")
    clip = embedder(tiny_clip)

    result = shard_image_embeddings(lake, "v1", "s1", items(3), clip)

    assert (result.computed, result.reused) == (3, 0)
    assert result.embedded.tolist() == [True, True, True]
    np.testing.assert_allclose(
        result.vectors, clip.embed_images(items(3).column("media").to_pylist()).vectors
    )
    stored = lake.read_table(lake.path("v1", IMAGE_EMBEDDINGS, "s1"))
    assert stored.column_names == ["id", "media_hash", "model", "vector"]
    assert stored.column("id").to_pylist() == ["img0", "img1", "img2"]
    assert stored.column("media_hash").to_pylist() == [media_hash(noisy_png(seed=i)) for i in range(3)]
    assert set(stored.column("model").to_pylist()) == {clip.key}
    assert stored.schema.field("vector").type == pa.list_(pa.float32(), 24)


def test_second_run_reuses_every_vector_and_computes_nothing(tiny_clip: TinyClip, tmp_path: Path) -> None:
    lake = Lake(tmp_path / "lake")
    first = shard_image_embeddings(lake, "v1", "s1", items(3), embedder(tiny_clip))
    path = Path(lake.path("v1", IMAGE_EMBEDDINGS, "s1"))
    written = path.stat().st_mtime_ns
    again = embedder(tiny_clip)

    second = shard_image_embeddings(lake, "v1", "s1", items(3), again)

    assert (second.computed, second.reused, again.embedded) == (0, 3, 0)
    np.testing.assert_array_equal(second.vectors, first.vectors)
    assert path.stat().st_mtime_ns == written


def test_changed_media_under_the_same_id_is_embedded_again(tiny_clip: TinyClip, tmp_path: Path) -> None:
    lake = Lake(tmp_path / "lake")
    shard_image_embeddings(lake, "v1", "s1", items(3), embedder(tiny_clip))
    changed = items(3)
    changed = changed.set_column(
        1, "media", pa.array([noisy_png(seed=0), noisy_png(seed=50), noisy_png(seed=2)])
    )
    again = embedder(tiny_clip)

    result = shard_image_embeddings(lake, "v1", "s1", changed, again)

    assert (result.computed, result.reused, again.embedded) == (1, 2, 1)
    stored = lake.read_table(lake.path("v1", IMAGE_EMBEDDINGS, "s1"))
    assert stored.column("media_hash").to_pylist()[1] == media_hash(noisy_png(seed=50))


def test_another_model_recomputes_and_replaces_the_stored_vectors(
    tiny_clip: TinyClip, tmp_path: Path
) -> None:
    lake = Lake(tmp_path / "lake")
    shard_image_embeddings(lake, "v1", "s1", items(2), embedder(tiny_clip))
    other_weights = tmp_path / "other.safetensors"
    other_weights.write_bytes(tiny_clip[1].read_bytes())
    config = tmp_path / "other-arch.json"
    config.write_text(tiny_clip[0].read_text(encoding="utf-8"), encoding="utf-8")
    other = CountingEmbedder(
        ModelRuntime.local("cpu", clip_arch=str(config), clip_weights=str(other_weights))
    )

    result = shard_image_embeddings(lake, "v1", "s1", items(2), other)

    assert (result.computed, result.reused) == (2, 0)
    stored = lake.read_table(lake.path("v1", IMAGE_EMBEDDINGS, "s1"))
    assert set(stored.column("model").to_pylist()) == {other.key}
    assert other.key != embedder(tiny_clip).key


def test_items_outside_this_request_stay_stored(tiny_clip: TinyClip, tmp_path: Path) -> None:
    lake = Lake(tmp_path / "lake")
    shard_image_embeddings(lake, "v1", "s1", items(3), embedder(tiny_clip))
    shard_image_embeddings(lake, "v1", "s1", items(4).slice(3), embedder(tiny_clip))

    stored = lake.read_table(lake.path("v1", IMAGE_EMBEDDINGS, "s1"))
    assert stored.column("id").to_pylist() == ["img0", "img1", "img2", "img3"]


def test_unreadable_media_is_reported_and_not_stored(tiny_clip: TinyClip, tmp_path: Path) -> None:
    lake = Lake(tmp_path / "lake")
    table = pa.table(
        {
            "id": ["good", "broken", "gone"],
            "media": [noisy_png(seed=1), b"not an image", None],
            "uri": ["a.png", "b.png", str(tmp_path / "missing.png")],
        },
        schema=pa.schema([("id", pa.string()), ("media", pa.large_binary()), ("uri", pa.string())]),
    )

    result = shard_image_embeddings(lake, "v1", "s1", table, embedder(tiny_clip))

    assert result.embedded.tolist() == [True, False, False]
    assert result.errors[1] is not None and result.errors[1].startswith("UnidentifiedImageError")
    assert result.errors[2] is not None and result.errors[2].startswith("media unreadable: FileNotFoundError")
    assert lake.read_table(lake.path("v1", IMAGE_EMBEDDINGS, "s1")).column("id").to_pylist() == ["good"]


def test_media_behind_a_uri_is_read_from_the_file(tiny_clip: TinyClip, tmp_path: Path) -> None:
    image = tmp_path / "large.png"
    image.write_bytes(noisy_png(seed=7))
    table = pa.table(
        {"id": ["big", "inline"], "media": [None, noisy_png(seed=7)], "uri": [str(image), "x.png"]}
    )

    result = shard_image_embeddings(None, "v1", "s1", table, embedder(tiny_clip))

    np.testing.assert_allclose(result.vectors[0], result.vectors[1], atol=1e-6)
    assert result.embedded.tolist() == [True, True]


def test_a_store_embeds_each_item_once_however_often_it_is_asked(tiny_clip: TinyClip) -> None:
    clip = embedder(tiny_clip)
    store = ImageEmbeddingStore(clip)
    rows = items(3).to_pylist()

    first = store.embed(rows)
    second = store.embed(rows[1:])

    assert clip.embedded == 3
    np.testing.assert_array_equal(second.vectors, first.vectors[1:])
    assert store.finish()["image_embeddings"] == {
        "model": clip.key,
        "computed": 3,
        "reused": 0,
        "failed": 0,
        "path": None,
    }


def test_embedding_slices_are_whole_model_batches_of_about_slice_rows() -> None:
    assert [embedding_rows(size) for size in (32, 100, 1, 2048)] == [1024, 1000, 1024, 2048]


def test_batches_of_any_size_are_embedded_in_equal_slices_with_the_same_vectors_as_one_call(
    tiny_clip: TinyClip, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    table = items(7)
    whole_lake, streamed_lake = Lake(tmp_path / "whole"), Lake(tmp_path / "streamed")
    whole_clip, streamed_clip = embedder(tiny_clip), embedder(tiny_clip)
    whole = shard_image_embeddings(whole_lake, "v1", "s1", table, whole_clip)
    monkeypatch.setattr(image_embeddings, "SLICE_ROWS", 4)
    batches = [table.slice(0, 1), table.slice(1, 0), *table.slice(1, 5).to_batches(), table.slice(6, 1)]

    streamed = stream_image_embeddings(streamed_lake, "v1", "s1", batches, streamed_clip)

    assert (whole_clip.calls, streamed_clip.calls) == ([7], [4, 3])
    assert streamed.ids == whole.ids == table.column("id").to_pylist()
    np.testing.assert_array_equal(streamed.vectors, whole.vectors)
    assert streamed.embedded.all() and (streamed.computed, streamed.reused) == (7, 0)
    path = ("v1", IMAGE_EMBEDDINGS, "s1")
    assert streamed_lake.read_table(streamed_lake.path(*path)).equals(
        whole_lake.read_table(whole_lake.path(*path))
    )
