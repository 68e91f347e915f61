"""Tests of curation_dagster/select/selector.py with `select.image_embeddings: clip`: image items ranked on
their CLIP image vectors, each embedding space planned on its own (pools, centroids, earlier selections),
and the selected stage reusing the vectors kept in the lake."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pytest
from PIL import Image

from curation_dagster.errors import ModelNotConfigured, SpecError
from curation_dagster.io.lake import Lake
from curation_dagster.models.runtime import ModelRuntime
from curation_dagster.pipeline import run_stage
from curation_dagster.schema import RAW_SCHEMA, conform
from curation_dagster.select.base import REJECT_BUDGET, REJECT_CLUSTER_CAP, REJECT_NO_TEXT
from curation_dagster.select.selector import Selector
from curation_dagster.select.state import SELECT_STATE
from curation_dagster.spec import SelectSettings, parse_spec
from curation_dagster.vectors.image import IMAGE_EMBEDDINGS

TinyClip = tuple[Path, Path, Path]


def settings(**values: Any) -> SelectSettings:
    return SelectSettings.model_validate({"image_embeddings": "clip", **values})


def table(modalities: list[str]) -> pa.Table:
    return pa.table(
        {
            "id": [f"i{n}" for n in range(len(modalities))],
            "modality": modalities,
            "text": [f"caption {n}" for n in range(len(modalities))],
            "media": pa.array([None] * len(modalities), pa.large_binary()),
        }
    )


def by_id(rows: pa.Table) -> dict[str, dict[str, Any]]:
    return {row["id"]: row for row in rows.to_pylist()}


# Two tight pairs of image vectors far apart: a spread-out pick takes one of each pair.
PAIRS = np.array([[1.0, 0.0], [0.999, 0.045], [0.0, 1.0], [0.045, 0.999]], dtype=np.float32)


def test_k_center_on_image_vectors_takes_one_image_of_each_pair_under_the_budget() -> None:
    selector = Selector(settings(budget=2, strategy="k_center"))

    selected, rejected = selector.run(table(["image"] * 4), image_embeddings=PAIRS)

    chosen = set(selected.column("id").to_pylist())
    assert len(chosen) == 2
    assert len(chosen & {"i0", "i1"}) == 1 and len(chosen & {"i2", "i3"}) == 1
    assert set(rejected.column("reject_reason").to_pylist()) == {REJECT_BUDGET}


def test_text_and_image_items_are_ranked_each_in_their_own_space() -> None:
    # Text vectors (3-d) and image vectors (2-d) never meet: each space gets half of the budget and
    # one item of each of its two pairs; the text vectors of image rows are ignored, and vice versa.
    modalities = ["text", "image"] * 4
    text = np.zeros((8, 3), dtype=np.float32)
    text[[0, 2, 4, 6]] = [[1, 0, 0], [0.999, 0.045, 0], [0, 0, 1], [0, 0.045, 0.999]]
    text[[1, 3, 5, 7]] = [1, 0, 0]  # must not matter: image rows use the image vectors
    images = np.zeros((8, 2), dtype=np.float32)
    images[[1, 3, 5, 7]] = PAIRS
    selector = Selector(settings(budget=4, strategy="k_center"))

    selected, _ = selector.run(table(modalities), embeddings=text, image_embeddings=images)

    chosen = set(selected.column("id").to_pylist())
    assert len(chosen & {"i0", "i2"}) == 1 and len(chosen & {"i4", "i6"}) == 1
    assert len(chosen & {"i1", "i3"}) == 1 and len(chosen & {"i5", "i7"}) == 1


def test_cluster_balanced_numbers_image_clusters_after_the_text_clusters() -> None:
    modalities = ["text"] * 4 + ["image"] * 4
    text = np.zeros((8, 2), dtype=np.float32)
    text[:4] = PAIRS
    images = np.zeros((8, 2), dtype=np.float32)
    images[4:] = PAIRS
    strategy = {"kind": "cluster_balanced", "clusters": 2, "per_cluster_cap": 1}
    selector = Selector(settings(strategy=strategy))

    selected, rejected = selector.run(table(modalities), embeddings=text, image_embeddings=images)

    rows = by_id(selected) | by_id(rejected)
    text_clusters = {rows[f"i{n}"]["select_cluster"] for n in range(4)}
    image_clusters = {rows[f"i{n}"]["select_cluster"] for n in range(4, 8)}
    assert text_clusters == {0, 1} and image_clusters == {2, 3}
    assert {rows["i0"]["select_cluster"]} == {rows["i1"]["select_cluster"]}
    assert {rows["i4"]["select_cluster"]} == {rows["i5"]["select_cluster"]}
    assert selected.num_rows == 4  # one per cluster of each space
    assert set(rejected.column("reject_reason").to_pylist()) == {REJECT_CLUSTER_CAP}


def test_clip_image_embeddings_apply_to_k_center_and_cluster_balanced_only() -> None:
    with pytest.raises(SpecError, match=r"select: .*image_embeddings: clip applies to k_center"):
        parse_spec({"name": "v", "select": {"image_embeddings": "clip", "strategy": "sample"}})
    assert parse_spec({"name": "v"}).select.image_embeddings == "caption"


# --- the selected stage, with a tiny CLIP ---------------------------------------------------------------


def gradient(channel: int, fmt: str = "PNG") -> bytes:
    """A 32 x 32 two-way colour gradient; the same picture as PNG and as JPEG (quality 95) gets the same
    tiny-CLIP vector to within 1e-4, other channels clearly another."""
    ramp = np.linspace(0, 255, 32).astype(np.uint8)
    pixels = np.zeros((32, 32, 3), dtype=np.uint8)
    pixels[..., channel % 3] = ramp[None, :]
    pixels[..., (channel + 1) % 3] = ramp[:, None]
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format=fmt, **({"quality": 95} if fmt == "JPEG" else {}))
    return buffer.getvalue()


def stripes(step: int) -> bytes:
    pixels = np.zeros((32, 32, 3), dtype=np.uint8)
    pixels[:, ::step] = (255, 128, 255)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


def write_filtered_images(
    lake: Lake, shard: str, images: list[bytes], texts: tuple[str, ...] = ()
) -> list[str]:
    """A filtered shard of image items (then text items): the ids of the images."""
    ids = [f"{shard}-{n}" for n in range(len(images) + len(texts))]
    rows = pa.table(
        {
            "id": ids,
            "modality": ["image"] * len(images) + ["text"] * len(texts),
            "text": [None] * len(images) + list(texts),
            "media": pa.array(images + [None] * len(texts), pa.large_binary()),
            "uri": [f"{shard}/{n}.png" for n in range(len(ids))],
            "shard": [shard] * len(ids),
        }
    )
    lake.write_table(lake.path("img", "filtered", shard), conform(rows, RAW_SCHEMA))
    return ids[: len(images)]


def clip_runtime(tiny_clip: TinyClip) -> ModelRuntime:
    config, weights, _ = tiny_clip
    return ModelRuntime.local("cpu", clip_arch=str(config), clip_weights=str(weights))


@pytest.mark.usefixtures("no_network", "torch_single_thread")
def test_a_later_shard_skips_the_copy_of_an_image_an_earlier_shard_selected(
    tiny_clip: TinyClip, tmp_path: Path
) -> None:
    spec = parse_spec(
        {"name": "img", "select": {"budget": 3, "strategy": "k_center", "image_embeddings": "clip"}}
    )
    lake = Lake(tmp_path / "lake")
    [first] = write_filtered_images(lake, "one", [gradient(0)], ("A quiet harbour at dawn.",))
    copy, other = write_filtered_images(lake, "two", [gradient(0, "JPEG"), stripes(4)])

    one = run_stage(spec, lake, "selected", "one", runtime=clip_runtime(tiny_clip))
    two = run_stage(spec, lake, "selected", "two", runtime=clip_runtime(tiny_clip))
    again = run_stage(spec, lake, "selected", "two", runtime=clip_runtime(tiny_clip))

    assert one.rows_kept == 2 and two.rows_kept == 1
    assert lake.read_table(lake.path("img", "selected", "two")).column("id").to_pylist() == [other]
    [skipped] = lake.read_table(lake.path("img", "selected", "two", rejected=True)).to_pylist()
    assert (skipped["id"], skipped["reject_reason"]) == (copy, REJECT_BUDGET)
    assert two.extra["embeddings"]["image"]["computed"] == 2
    assert (again.extra["embeddings"]["image"]["computed"], again.extra["embeddings"]["image"]["reused"]) == (
        0,
        2,
    )
    stored = lake.read_table(lake.path("img", IMAGE_EMBEDDINGS, "one"))
    assert stored.column("id").to_pylist() == [first]


@pytest.mark.usefixtures("no_network", "torch_single_thread")
def test_cluster_balanced_keeps_image_centroids_apart_from_text_centroids(
    tiny_clip: TinyClip, tmp_path: Path
) -> None:
    spec = parse_spec(
        {
            "name": "img",
            "select": {
                "strategy": {"kind": "cluster_balanced", "clusters": 2},
                "image_embeddings": "clip",
            },
        }
    )
    lake = Lake(tmp_path / "lake")
    write_filtered_images(lake, "one", [gradient(0), gradient(1), stripes(3), stripes(5)])

    result = run_stage(spec, lake, "selected", "one", runtime=clip_runtime(tiny_clip))

    assert result.rows_kept == 4
    [state] = lake.list_shards("img", SELECT_STATE)
    assert state.startswith("image_kmeans_")
    clusters = lake.read_table(lake.path("img", "selected", "one")).column("select_cluster").to_pylist()
    assert set(clusters) <= {2, 3}


def test_clip_selection_without_clip_weights_names_the_setting_to_configure(tmp_path: Path) -> None:
    spec = parse_spec(
        {"name": "img", "select": {"budget": 1, "strategy": "k_center", "image_embeddings": "clip"}}
    )
    lake = Lake(tmp_path / "lake")
    write_filtered_images(lake, "one", [gradient(0)])

    with pytest.raises(ModelNotConfigured, match=r"select\.image_embeddings: clip .*models\.clip_weights"):
        run_stage(spec, lake, "selected", "one")


@pytest.mark.usefixtures("no_network", "torch_single_thread")
def test_an_image_that_cannot_be_decoded_is_refused_as_no_text_with_the_reason(tiny_clip: TinyClip) -> None:
    rows = table(["image"] * 3).set_column(
        3, "media", pa.array([gradient(0), b"not an image", stripes(4)], pa.large_binary())
    )
    selector = Selector(settings(budget=3, strategy="k_center"))

    selected, rejected = selector.run(rows, runtime=clip_runtime(tiny_clip))

    assert selected.column("id").to_pylist() == ["i0", "i2"]
    [refused] = rejected.to_pylist()
    assert (refused["id"], refused["reject_reason"]) == ("i1", REJECT_NO_TEXT)
    assert refused["reject_detail"] == (
        "k_center needs a CLIP image embedding (the image could not be read or decoded)"
    )


def test_every_strategy_kind_the_spec_accepts_has_a_class_and_no_class_is_unreachable() -> None:
    from curation_dagster.select.selector import STRATEGIES
    from curation_dagster.spec import STRATEGY_SETTINGS
    from curation_dagster.spec.base import kind_of

    assert [kind_of(settings) for settings in STRATEGY_SETTINGS] == list(STRATEGIES)
