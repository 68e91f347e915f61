"""Tests of SemDeDup on image items (curation_dagster/dedup/semantic.py, `dedup.semantic.modalities: [image]`)
with a tiny random CLIP: re-encoded copies removed within and across shards, distinct images kept, and
text and image items kept in separate embedding spaces (centroids, index folders, fingerprints)."""

from __future__ import annotations

import io
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pytest
from PIL import Image

from assets.factory import needs_accelerator
from curation_dagster.checks import check_conservation
from curation_dagster.dedup.semantic import (
    FINGERPRINT_KEY,
    IMAGE_SEMANTIC_INDEX,
    REJECT_SEMANTIC,
    SEMANTIC_INDEX,
    SEMANTIC_STATE,
    SemanticDedup,
)
from curation_dagster.errors import ModelNotConfigured, SpecError
from curation_dagster.io.lake import Lake
from curation_dagster.models.clip import ClipEmbedder, ImageVectors
from curation_dagster.models.runtime import ModelRuntime
from curation_dagster.pipeline import run_stage
from curation_dagster.shard_io import StageResult
from curation_dagster.spec import SemanticDedupSettings, VersionSpec, parse_spec
from curation_dagster.vectors import image as image_embeddings
from curation_dagster.vectors.image import IMAGE_EMBEDDINGS
from tests.media_fixtures import write_jsonl

pytestmark = pytest.mark.usefixtures("no_network", "torch_single_thread")

TinyClip = tuple[Path, Path, Path]
#: Copies score 1.0 with the tiny CLIP, distinct pictures at most about 0.95.
EPSILON = 0.005


def gradient(channel: int, fmt: str = "PNG") -> bytes:
    """A 32 x 32 two-way colour gradient; as PNG and as JPEG (quality 95) the same picture to the tiny CLIP."""
    ramp = np.linspace(0, 255, 32).astype(np.uint8)
    pixels = np.zeros((32, 32, 3), dtype=np.uint8)
    pixels[..., channel % 3] = ramp[None, :]
    pixels[..., (channel + 1) % 3] = ramp[:, None]
    return encode(pixels, fmt)


def stripes(step: int) -> bytes:
    pixels = np.zeros((32, 32, 3), dtype=np.uint8)
    pixels[:, ::step] = (255, 128, 255)
    return encode(pixels, "PNG")


def encode(pixels: np.ndarray, fmt: str) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format=fmt, **({"quality": 95} if fmt == "JPEG" else {}))
    return buffer.getvalue()


def runtime(tiny_clip: TinyClip, batch_size: int = 32) -> ModelRuntime:
    config, weights, _ = tiny_clip
    return ModelRuntime.local("cpu", clip_arch=str(config), clip_weights=str(weights), batch_size=batch_size)


def spec(modalities: list[str], **semantic: Any) -> VersionSpec:
    return parse_spec(
        {
            "name": "simg",
            "modalities": ["text", "image"],
            # perceptual hashes would find the copies first; this tests the embeddings
            "dedup": {
                "image": {"enabled": False},
                "semantic": {"modalities": modalities, "image_epsilon": EPSILON, **semantic},
            },
        }
    )


@pytest.fixture
def landing(tmp_path: Path) -> Path:
    """Shard `one`: three distinct pictures and a JPEG copy of the first; shard `two`: a JPEG copy of
    one's second picture and a new picture; shard `text.jsonl`: two texts."""
    root = tmp_path / "landing"
    for shard, files in {
        "one": {
            "a.png": gradient(0),
            "b.png": gradient(1),
            "c.png": stripes(3),
            "d.jpg": gradient(0, "JPEG"),
        },
        "two": {"a.jpg": gradient(1, "JPEG"), "b.png": stripes(5)},
    }.items():
        (root / shard).mkdir(parents=True)
        for name, data in files.items():
            (root / shard / name).write_bytes(data)
    write_jsonl(
        root / "text.jsonl",
        ["The harbour was calm at dawn and the boats were tied up.", "Wheat grows well with steady rain."],
    )
    return root


def dedup(
    version: VersionSpec, lake: Lake, landing: Path, shard: str, tiny_clip: TinyClip, batch_size: int = 32
) -> StageResult:
    run_stage(version, lake, "raw", shard, landing / shard)
    return run_stage(version, lake, "deduped", shard, runtime=runtime(tiny_clip, batch_size))


def uris(lake: Lake, shard: str, *, rejected: bool = False) -> dict[str, dict[str, Any]]:
    rows = lake.read_table(lake.path("simg", "deduped", shard, rejected=rejected)).to_pylist()
    return {Path(row["uri"]).name: row for row in rows}


def test_reencoded_images_are_removed_within_and_across_shards_and_distinct_images_kept(
    landing: Path, tmp_path: Path, tiny_clip: TinyClip
) -> None:
    lake = Lake(tmp_path / "lake")

    one = dedup(spec(["image"]), lake, landing, "one", tiny_clip)
    two = dedup(spec(["image"]), lake, landing, "two", tiny_clip)

    kept_one, gone_one = uris(lake, "one"), uris(lake, "one", rejected=True)
    assert set(kept_one) == {"a.png", "b.png", "c.png"}
    assert set(gone_one) == {"d.jpg"}
    assert gone_one["d.jpg"]["reject_reason"] == REJECT_SEMANTIC
    assert gone_one["d.jpg"]["dup_of"] == kept_one["a.png"]["id"]
    assert gone_one["d.jpg"]["dup_similarity"] >= 1 - EPSILON
    kept_two, gone_two = uris(lake, "two"), uris(lake, "two", rejected=True)
    assert set(kept_two) == {"b.png"}
    assert gone_two["a.jpg"]["dup_of"] == kept_one["b.png"]["id"]
    assert (one.extra["semantic_duplicates"], two.extra["semantic_duplicates_of_other_shards"]) == (1, 1)
    assert one.extra["image_semantic_dedup"]["centroids"] == "fitted on this shard"
    assert two.extra["image_semantic_dedup"]["centroids"] == "reused"
    assert "semantic_dedup" not in one.extra  # no text part
    for shard, result in (("one", one), ("two", two)):
        assert check_conservation(lake, "simg", "deduped", shard, result.rows_in).passed


def test_text_and_image_items_get_their_own_centroids_index_folders_and_fingerprints(
    landing: Path, tmp_path: Path, tiny_clip: TinyClip
) -> None:
    lake = Lake(tmp_path / "lake")
    both = spec(["text", "image"])

    texts = dedup(both, lake, landing, "text.jsonl", tiny_clip)
    images = dedup(both, lake, landing, "one", tiny_clip)

    assert texts.extra["semantic_duplicates_by_modality"] == {"text": 0, "image": 0}
    assert images.extra["semantic_duplicates_by_modality"] == {"text": 0, "image": 1}
    states = lake.list_shards("simg", SEMANTIC_STATE)
    assert sorted(name.split("_kmeans_")[0] for name in states) == ["image", "text"]
    assert lake.list_shards("simg", SEMANTIC_INDEX) == ["text.jsonl"]
    assert lake.list_shards("simg", IMAGE_SEMANTIC_INDEX) == ["one"]
    text_index = lake.schema(lake.path("simg", SEMANTIC_INDEX, "text.jsonl"))
    image_index = lake.schema(lake.path("simg", IMAGE_SEMANTIC_INDEX, "one"))
    assert text_index.metadata[FINGERPRINT_KEY] != image_index.metadata[FINGERPRINT_KEY]
    assert (text_index.field("vector").type.list_size, image_index.field("vector").type.list_size) == (
        384,
        24,
    )

    dedup(spec(["text"]), lake, landing, "one", tiny_clip)

    assert lake.list_shards("simg", IMAGE_SEMANTIC_INDEX) == []


def test_a_shard_embedded_two_images_at_a_time_gives_the_same_decisions_and_vectors_as_one_batch(
    landing: Path, tmp_path: Path, tiny_clip: TinyClip, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[int] = []
    media_read_whole: list[str] = []
    embed_images, read_table = ClipEmbedder.embed_images, Lake.read_table

    def counted(self: ClipEmbedder, images: Sequence[bytes]) -> ImageVectors:
        calls.append(len(images))
        return embed_images(self, images)

    def watched(self: Lake, path: str, columns: list[str] | None = None) -> pa.Table:
        if "/raw/" in path and (columns is None or "media" in columns):
            media_read_whole.append(path)
        return read_table(self, path, columns)

    monkeypatch.setattr(ClipEmbedder, "embed_images", counted)
    monkeypatch.setattr(Lake, "read_table", watched)
    lakes = {"whole": Lake(tmp_path / "whole"), "streamed": Lake(tmp_path / "streamed")}
    # the same model batches of two either way, so the vectors can be compared bit for bit
    dedup(spec(["image"]), lakes["whole"], landing, "one", tiny_clip, batch_size=2)
    whole_calls = calls[:]
    calls.clear()
    monkeypatch.setattr(image_embeddings, "SLICE_ROWS", 2)
    dedup(spec(["image"]), lakes["streamed"], landing, "one", tiny_clip, batch_size=2)

    assert (whole_calls, calls) == ([4], [2, 2])
    assert media_read_whole == []
    tables = {
        name: [
            lake.read_table(lake.path("simg", "deduped", "one", rejected=True)),
            *(lake.read_table(lake.path("simg", folder, "one")) for folder in ("deduped", IMAGE_EMBEDDINGS)),
            lake.read_table(lake.path("simg", IMAGE_SEMANTIC_INDEX, "one")),
        ]
        for name, lake in lakes.items()
    }
    assert tables["streamed"][0].column("reject_reason").to_pylist() == [REJECT_SEMANTIC]
    for streamed, whole in zip(tables["streamed"], tables["whole"], strict=True):
        assert streamed.equals(whole)


def test_image_semantic_dedup_without_clip_weights_names_the_setting_to_configure(
    landing: Path, tmp_path: Path
) -> None:
    lake = Lake(tmp_path / "lake")
    version = spec(["image"])
    run_stage(version, lake, "raw", "one", landing / "one")

    assert needs_accelerator(version, "deduped")
    with pytest.raises(
        ModelNotConfigured, match=r"dedup\.semantic\.modalities: image .*models\.clip_weights"
    ):
        run_stage(version, lake, "deduped", "one")


def test_run_on_a_table_of_images_removes_the_copy(tiny_clip: TinyClip) -> None:
    table = pa.table(
        {
            "id": ["a", "b", "c", "t"],
            "modality": ["image", "image", "image", "text"],
            "text": [None, None, None, "a caption-less text row is not an image"],
            "media": pa.array([gradient(2), stripes(3), gradient(2, "JPEG"), None], pa.large_binary()),
        }
    )

    kept, rejected = SemanticDedup(SemanticDedupSettings(image_epsilon=EPSILON)).run(
        table, runtime=runtime(tiny_clip), modality="image"
    )

    assert kept.column("id").to_pylist() == ["a", "b", "t"]
    assert rejected.select(["id", "dup_of", "reject_reason"]).to_pylist() == [
        {"id": "c", "dup_of": "a", "reject_reason": REJECT_SEMANTIC}
    ]


def test_semantic_modalities_are_text_by_default_and_listed_once() -> None:
    assert parse_spec({"name": "v", "dedup": {"semantic": {}}}).dedup.semantic.modalities == ("text",)
    with pytest.raises(SpecError, match=r"dedup\.semantic\.modalities"):
        parse_spec({"name": "v", "dedup": {"semantic": {"modalities": ["audio"]}}})
    with pytest.raises(SpecError, match=r"dedup\.semantic\.modalities"):
        parse_spec({"name": "v", "dedup": {"semantic": {"modalities": ["image", "image"]}}})
