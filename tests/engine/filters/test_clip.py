"""Tests for `curation_dagster/filters/clip.py`: clip_score, aesthetic and NSFW heads on a tiny random
CLIP, sharing one embedding per image, in a chain and in the filtered stage."""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pytest
import torch

from curation_dagster.errors import ModelNotConfigured
from curation_dagster.filters.chain import build_chain
from curation_dagster.filters.clip import Aesthetic, ClipScore, Nsfw, load_head
from curation_dagster.filters.context import FilterContext
from curation_dagster.io.lake import Lake
from curation_dagster.models.clip import ClipEmbedder
from curation_dagster.models.runtime import ModelRuntime
from curation_dagster.pipeline import run_stage
from curation_dagster.schema import RAW_SCHEMA
from curation_dagster.spec import (
    AestheticSettings,
    ClipScoreSettings,
    FilterSettings,
    NsfwSettings,
    parse_spec,
)
from curation_dagster.vectors.image import IMAGE_EMBEDDINGS
from tests.media_fixtures import noisy_png

pytestmark = pytest.mark.usefixtures("no_network", "torch_single_thread")

TinyClip = tuple[Path, Path, Path]
CAPTIONS = ["the cat sat on the mat .", None, "a dog ran", "  "]


def runtime(tiny_clip: TinyClip, batch_size: int = 64) -> ModelRuntime:
    config, weights, _ = tiny_clip
    return ModelRuntime.local("cpu", clip_arch=str(config), clip_weights=str(weights), batch_size=batch_size)


def image_table(count: int = 4, captions: Sequence[str | None] = CAPTIONS) -> pa.Table:
    return pa.table(
        {
            "id": [f"img{index}" for index in range(count)],
            "modality": ["image"] * count,
            "text": list(captions[:count]),
            "media": [noisy_png(seed=index) for index in range(count)],
            "uri": [f"landing/img{index}.png" for index in range(count)],
        }
    )


def vectors(tiny_clip: TinyClip, count: int = 4) -> np.ndarray:
    return ClipEmbedder(runtime(tiny_clip)).embed_images([noisy_png(seed=i) for i in range(count)]).vectors


def linear_head(path: Path, weight: np.ndarray, bias: float) -> Path:
    """A linear head (`weight` (1, d), `bias` (1,)) saved as safetensors."""
    from safetensors.numpy import save_file

    save_file(
        {"weight": weight.reshape(1, -1).astype(np.float32), "bias": np.array([bias], np.float32)}, str(path)
    )
    return path


def planted_head(
    tiny_clip: TinyClip, path: Path, planted: int, high: float = 9.0, low: float = 1.0
) -> tuple[Path, np.ndarray]:
    """A linear head that gives the planted image `high` and the other test images `low`: the least-norm
    solution of one equation per image embedding. Returns the file and those outputs."""
    found = vectors(tiny_clip).astype(np.float64)
    targets = np.full(len(found), low)
    targets[planted] = high
    weight = np.linalg.lstsq(found, targets, rcond=None)[0]
    return linear_head(path, weight, 0.0), targets


def test_clip_score_is_the_cosine_of_image_and_caption_embeddings(tiny_clip: TinyClip) -> None:
    embedder = ClipEmbedder(runtime(tiny_clip))
    expected = np.einsum(
        "nd,nd->n",
        embedder.embed_images([noisy_png(seed=0), noisy_png(seed=2)]).vectors,
        embedder.embed_texts([str(CAPTIONS[0]), str(CAPTIONS[2])]),
    )

    verdicts = ClipScore(ClipScoreSettings(min_score=-1.0), runtime(tiny_clip)).evaluate(image_table())

    scores = verdicts.scores["clip_score"]
    assert scores[0] == pytest.approx(float(expected[0]), abs=1e-6)
    assert scores[2] == pytest.approx(float(expected[1]), abs=1e-6)
    assert scores[1] is None and scores[3] is None
    assert verdicts.reasons == [None] * 4


def test_clip_score_below_min_score_is_misaligned(tiny_clip: TinyClip) -> None:
    scores = ClipScore(ClipScoreSettings(min_score=-1.0), runtime(tiny_clip)).evaluate(image_table()).scores
    cut = (scores["clip_score"][0] + scores["clip_score"][2]) / 2
    low = 0 if scores["clip_score"][0] < cut else 2

    verdicts = ClipScore(ClipScoreSettings(min_score=cut), runtime(tiny_clip)).evaluate(image_table())

    assert verdicts.reasons[low] == "filter.clip_score.misaligned"
    assert verdicts.details[low] == f"CLIP score {scores['clip_score'][low]:.3f} < {cut}"
    assert verdicts.reasons[2 - low] is None


def test_items_without_a_caption_pass_or_are_rejected_as_the_setting_says(tiny_clip: TinyClip) -> None:
    passing = ClipScore(ClipScoreSettings(min_score=-1.0), runtime(tiny_clip)).evaluate(image_table())
    rejecting = ClipScore(
        ClipScoreSettings(min_score=-1.0, without_caption="reject"), runtime(tiny_clip)
    ).evaluate(image_table())
    assert [passing.reasons[i] for i in (1, 3)] == [None, None]
    assert [rejecting.reasons[i] for i in (1, 3)] == ["filter.clip_score.no_caption"] * 2
    assert rejecting.reasons[0] is None


def test_an_undecodable_image_is_rejected_with_the_decode_code(tiny_clip: TinyClip) -> None:
    table = image_table(2)
    table = table.set_column(3, "media", pa.array([noisy_png(seed=0), b"broken bytes"]))

    verdicts = ClipScore(ClipScoreSettings(min_score=-1.0), runtime(tiny_clip)).evaluate(table)

    assert verdicts.reasons == [None, "filter.clip_score.decode"]
    assert verdicts.details[1] is not None and verdicts.details[1].startswith("UnidentifiedImageError")
    assert verdicts.scores["clip_score"][1] is None


def test_a_planted_image_gets_the_high_aesthetic_score_and_the_others_are_rejected(
    tiny_clip: TinyClip, tmp_path: Path
) -> None:
    head, _ = planted_head(tiny_clip, tmp_path / "aesthetic.safetensors", planted=2)
    settings = AestheticSettings(weights=str(head), min_score=5.0)

    verdicts = Aesthetic(settings, runtime(tiny_clip)).evaluate(image_table())

    assert verdicts.scores["aesthetic_score"] == pytest.approx([1.0, 1.0, 9.0, 1.0], abs=1e-3)
    assert verdicts.reasons == ["filter.aesthetic.below_threshold"] * 2 + [None] + [
        "filter.aesthetic.below_threshold"
    ]


def test_a_planted_image_is_the_one_nsfw_rejects(tiny_clip: TinyClip, tmp_path: Path) -> None:
    head, logits = planted_head(tiny_clip, tmp_path / "nsfw.safetensors", planted=1, high=4.0, low=-4.0)
    settings = NsfwSettings(weights=str(head), max_score=0.5)

    verdicts = Nsfw(settings, runtime(tiny_clip)).evaluate(image_table())

    probabilities = 1 / (1 + np.exp(-logits))
    assert probabilities[1] == pytest.approx(0.982, abs=1e-3)
    assert verdicts.scores["nsfw_score"] == pytest.approx(probabilities.tolist(), abs=1e-3)
    assert verdicts.reasons == [None, "filter.nsfw.above_threshold", None, None]
    assert verdicts.details[1] == f"NSFW probability {verdicts.scores['nsfw_score'][1]:.3f} > 0.5"


@pytest.mark.parametrize(
    ("activation", "module"), [("relu", torch.nn.ReLU), ("gelu", torch.nn.GELU), ("none", None)]
)
def test_an_mlp_head_saved_from_torch_scores_as_torch_does(
    tmp_path: Path, activation: str, module: type[torch.nn.Module] | None
) -> None:
    torch.manual_seed(3)
    layers: list[torch.nn.Module] = []
    widths = [24, 16, 12, 10, 8, 6, 1]
    for index, (inputs, outputs) in enumerate(itertools.pairwise(widths)):
        layers.append(torch.nn.Linear(inputs, outputs))
        if index < len(widths) - 2:
            layers.append(module() if module is not None else torch.nn.Identity())
    mlp = torch.nn.Sequential(*layers)  # Linear layers at 0, 2, ..., 10: "10." sorts before "2." as text
    path = tmp_path / "mlp.pt"
    torch.save(mlp.state_dict(), path)
    embeddings = np.random.default_rng(0).normal(size=(5, 24))

    head = load_head(str(path), "aesthetic.weights", activation)

    with torch.no_grad():
        expected = mlp(torch.from_numpy(embeddings).float()).numpy()[:, 0]
    assert len(head.layers) == 6
    np.testing.assert_allclose(head(embeddings), expected, atol=1e-5)


def test_a_head_with_two_outputs_is_refused(tmp_path: Path) -> None:
    from safetensors.numpy import save_file

    save_file(
        {"weight": np.zeros((2, 24), np.float32), "bias": np.zeros(2, np.float32)},
        str(tmp_path / "h.safetensors"),
    )
    with pytest.raises(
        ModelNotConfigured, match=r"nsfw\.weights: the last layer must have one output, not 2"
    ):
        load_head(str(tmp_path / "h.safetensors"), "nsfw.weights")


def test_head_layers_that_do_not_chain_are_refused(tmp_path: Path) -> None:
    from safetensors.numpy import save_file

    tensors = {"0.weight": np.zeros((8, 24), np.float32), "1.weight": np.zeros((1, 9), np.float32)}
    save_file(tensors, str(tmp_path / "h.safetensors"))
    with pytest.raises(ModelNotConfigured, match=r"1\.weight takes 9 inputs but the layer before gives 8"):
        load_head(str(tmp_path / "h.safetensors"), "aesthetic.weights")


def test_a_head_with_other_tensors_is_refused(tmp_path: Path) -> None:
    torch.save({"weight": torch.zeros(1, 24), "running_mean": torch.zeros(24)}, tmp_path / "h.pt")
    with pytest.raises(ModelNotConfigured, match="unexpected tensor 'running_mean'"):
        load_head(str(tmp_path / "h.pt"), "aesthetic.weights")


def test_a_missing_head_file_names_the_setting(tmp_path: Path) -> None:
    with pytest.raises(
        ModelNotConfigured, match=r"aesthetic\.weights is '.*absent\.safetensors', which does not exist"
    ):
        load_head(str(tmp_path / "absent.safetensors"), "aesthetic.weights")


def test_a_head_for_another_embedding_width_is_refused(tiny_clip: TinyClip, tmp_path: Path) -> None:
    head = linear_head(tmp_path / "wide.safetensors", np.zeros(768), 0.0)
    with pytest.raises(
        ModelNotConfigured, match=r"aesthetic\.weights takes 768-dimensional embeddings but .* gives 24"
    ):
        Aesthetic(AestheticSettings(weights=str(head)), runtime(tiny_clip)).evaluate(image_table())


def test_without_clip_weights_a_required_filter_names_the_setting(tmp_path: Path) -> None:
    with pytest.raises(
        ModelNotConfigured, match=r"the clip_score filter: .*models\.clip_weights.*optional: true"
    ):
        ClipScore(ClipScoreSettings(), ModelRuntime.local("cpu")).evaluate(image_table())
    with pytest.raises(ModelNotConfigured, match=r"the nsfw filter: .*models\.clip_weights"):
        Nsfw(NsfwSettings(weights=str(tmp_path / "h.pt")), None).evaluate(image_table())


def test_without_clip_weights_an_optional_filter_passes_rows_with_null_scores_and_says_so() -> None:
    context = FilterContext()
    chain = build_chain(
        FilterSettings(
            image=(ClipScoreSettings(optional=True), AestheticSettings(weights="unused.pt", optional=True))
        ),
        ModelRuntime.local("cpu"),
        context,
    )

    kept, rejected = chain.run(image_table())

    assert kept.num_rows == 4 and rejected.num_rows == 0
    assert kept.column("clip_score").null_count == 4
    assert kept.column("aesthetic_score").null_count == 4
    assert context.finish() == {
        "skipped_filters": {
            "aesthetic": "no CLIP model: models.clip_weights is not set",
            "clip_score": "no CLIP model: models.clip_weights is not set",
        }
    }


def counting(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The number of images each `ClipEmbedder.embed_images` call is given."""
    calls: list[int] = []
    real = ClipEmbedder.embed_images

    def embed_images(self: ClipEmbedder, images: Any) -> Any:
        calls.append(len(images))
        return real(self, images)

    monkeypatch.setattr(ClipEmbedder, "embed_images", embed_images)
    return calls


def three_filters(tmp_path: Path, tiny_clip: TinyClip, aesthetic_min: float = -100.0) -> FilterSettings:
    head, _ = planted_head(tiny_clip, tmp_path / "head.safetensors", planted=0)
    return FilterSettings(
        image=(
            ClipScoreSettings(min_score=-1.0),
            AestheticSettings(weights=str(head), min_score=aesthetic_min),
            NsfwSettings(weights=str(head), max_score=1.0),
        )
    )


def test_the_three_filters_embed_each_image_once(
    tiny_clip: TinyClip, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spec = three_filters(tmp_path, tiny_clip)
    calls = counting(monkeypatch)

    kept, rejected = build_chain(spec, runtime(tiny_clip)).run(image_table())

    assert calls == [4]
    assert kept.num_rows == 4 and rejected.num_rows == 0
    for column in ("aesthetic_score", "nsfw_score"):
        assert kept.column(column).null_count == 0


def test_chain_results_do_not_depend_on_the_batch_size(tiny_clip: TinyClip, tmp_path: Path) -> None:
    spec = three_filters(tmp_path, tiny_clip, aesthetic_min=5.0)
    large, large_rejected = build_chain(spec, runtime(tiny_clip, batch_size=64)).run(image_table())
    small, small_rejected = build_chain(spec, runtime(tiny_clip, batch_size=1)).run(image_table())

    assert small.column("id").to_pylist() == large.column("id").to_pylist() == ["img0"]
    assert (
        small_rejected.column("reject_reason").to_pylist()
        == large_rejected.column("reject_reason").to_pylist()
    )
    for column in ("clip_score", "aesthetic_score", "nsfw_score"):
        np.testing.assert_allclose(
            np.array(small_rejected.column(column).to_pylist(), dtype=float),
            np.array(large_rejected.column(column).to_pylist(), dtype=float),
            atol=1e-6,
        )


def test_a_chain_with_a_clip_filter_needs_the_accelerator() -> None:
    assert build_chain(FilterSettings(image=(ClipScoreSettings(optional=True),))).needs_accelerator
    assert build_chain(FilterSettings(image=(NsfwSettings(weights="nsfw.safetensors"),))).needs_accelerator


def test_the_spec_reads_clip_filters_and_requires_head_weights() -> None:
    spec = parse_spec(
        {
            "name": "clip",
            "filters": {
                "image": [
                    {"kind": "clip_score", "min_score": 0.3, "without_caption": "reject"},
                    {"kind": "aesthetic", "weights": "/heads/aesthetic.safetensors", "optional": True},
                    {"kind": "nsfw", "weights": "/heads/nsfw.safetensors", "max_score": 0.2},
                ]
            },
        }
    )
    assert [item.kind for item in spec.filters.image] == ["clip_score", "aesthetic", "nsfw"]
    with pytest.raises(Exception, match=r"filters\.image\.0\.weights"):
        parse_spec({"name": "clip", "filters": {"image": [{"kind": "aesthetic"}]}})


def write_deduped_shard(lake: Lake, version: str, shard: str, table: pa.Table) -> None:
    """A deduped-stage shard file holding `table`'s images, as the filtered stage reads it."""
    rows = table.num_rows
    full = pa.table(
        {
            "id": table.column("id"),
            "modality": table.column("modality"),
            "text": pa.array(table.column("text").to_pylist(), pa.large_string()),
            "media": pa.array(table.column("media").to_pylist(), pa.large_binary()),
            "uri": table.column("uri"),
            "shard": [shard] * rows,
            "meta": ["{}"] * rows,
        }
    )
    extra = [field for field in RAW_SCHEMA if field.name not in full.column_names]
    for field in extra:
        full = full.append_column(field, pa.nulls(rows, field.type))
    lake.write_table(lake.path(version, "deduped", shard), full.select(RAW_SCHEMA.names).cast(RAW_SCHEMA))


def test_the_filtered_stage_stores_embeddings_once_and_reuses_them_on_a_rerun(
    tiny_clip: TinyClip, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    lake = Lake(tmp_path / "lake")
    head, _ = planted_head(tiny_clip, tmp_path / "head.safetensors", planted=0)
    spec = parse_spec(
        {
            "name": "pics",
            "modalities": ["image"],
            "filters": {
                "image": [
                    {"kind": "clip_score", "min_score": -1.0},
                    {"kind": "aesthetic", "weights": str(head), "min_score": 5.0},
                ]
            },
        }
    )
    write_deduped_shard(lake, "pics", "s1", image_table())
    calls = counting(monkeypatch)

    first = run_stage(spec, lake, "filtered", "s1", runtime=runtime(tiny_clip, batch_size=3))
    second = run_stage(spec, lake, "filtered", "s1", runtime=runtime(tiny_clip, batch_size=3))

    assert calls == [4]
    assert first.extra["image_embeddings"]["computed"] == 4
    assert second.extra["image_embeddings"] | {"path": None} == {
        "model": ClipEmbedder(runtime(tiny_clip)).key,
        "computed": 0,
        "reused": 4,
        "failed": 0,
        "path": None,
    }
    assert (second.rows_kept, second.rows_rejected) == (1, 3)
    assert second.reasons == {"filter.aesthetic.below_threshold": 3}
    stored = lake.read_table(lake.path("pics", IMAGE_EMBEDDINGS, "s1"))
    assert stored.column("id").to_pylist() == ["img0", "img1", "img2", "img3"]
    assert "skipped_filters" not in second.extra


def test_the_filtered_stage_records_skipped_optional_filters(tmp_path: Path) -> None:
    lake = Lake(tmp_path / "lake")
    spec = parse_spec(
        {
            "name": "pics",
            "modalities": ["image"],
            "filters": {"image": [{"kind": "clip_score", "optional": True}]},
        }
    )
    write_deduped_shard(lake, "pics", "s1", image_table())

    result = run_stage(spec, lake, "filtered", "s1", runtime=ModelRuntime.local("cpu"))

    assert result.rows_kept == 4
    assert result.extra["skipped_filters"] == {"clip_score": "no CLIP model: models.clip_weights is not set"}
    assert not lake.exists(lake.path("pics", IMAGE_EMBEDDINGS, "s1"))
