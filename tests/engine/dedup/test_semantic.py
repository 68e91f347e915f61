"""Tests of curation_dagster/dedup/semantic.py (SemDeDup) and of the deduped stage running it: planted
paraphrases that MinHash misses, cross-shard removal through the lake's index, the keep rules, centroids
fitted once per version, determinism and conservation."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pytest

from curation_dagster.checks import check_conservation
from curation_dagster.dedup import semantic
from curation_dagster.dedup.semantic import (
    FINGERPRINT_KEY,
    REJECT_SEMANTIC,
    SEMANTIC_INDEX,
    SEMANTIC_STATE,
    EarlierVectors,
    SemanticDedup,
    TextVectors,
    version_centroids,
)
from curation_dagster.errors import SpecError
from curation_dagster.io.lake import Lake
from curation_dagster.pipeline import run_stage
from curation_dagster.sampling import sample_score
from curation_dagster.shard_io import StageResult
from curation_dagster.spec import EmbeddingSettings, SemanticDedupSettings, VersionSpec, parse_spec
from curation_dagster.vectors.text import EMBEDDINGS, TextEmbedder, shard_embeddings
from tests.media_fixtures import write_jsonl

pytestmark = pytest.mark.usefixtures("no_network")

# Paraphrase pairs that all-MiniLM-L6-v2 puts at cosine 0.96-0.99 but that share few or no word 3-grams.
FROG = (
    "Scientists discovered a new species of frog in the rainforest of Ecuador.",
    "A new frog species was discovered by scientists in Ecuador's rainforest.",
)
CAPITAL = ("What is the capital city of Australia?", "Which city is Australia's capital?")
PASSWORD = ("How do I reset my password if I forgot it?", "I forgot my password, how can I reset it?")
WATER = (
    "Children should drink plenty of water during hot summer days.",
    "On hot days in summer, kids need to drink lots of water.",
)
# Same topic as a planted item, yet no duplicate (cosine 0.49-0.62), and unrelated texts.
LOOKALIKES = [
    "Which river is the longest in Australia?",
    "How do I reset my router?",
    "The city council rejected the proposal to build a new stadium downtown.",
    "The city council approved the new budget for public parks on Tuesday evening.",
]
UNRELATED = [
    "The recipe calls for two cups of flour and a pinch of salt.",
    "Our team lost the football match after a late penalty.",
    "The new phone has a larger screen and a faster processor.",
]
SHARD_ONE = [
    FROG[0],
    CAPITAL[0],
    UNRELATED[0],
    FROG[1],
    PASSWORD[0],
    LOOKALIKES[2],
    WATER[0],
    LOOKALIKES[0],
    PASSWORD[1],
    LOOKALIKES[3],
    CAPITAL[1],
    LOOKALIKES[1],
]
SHARD_TWO = [WATER[1], UNRELATED[1], UNRELATED[2]]


# --- the engine, on vectors given directly ---------------------------------------------------------------


def unit(*degrees: float) -> np.ndarray:
    """Unit vectors in the plane of the first two axes of R^4, at these angles from the first axis."""
    radians = np.radians(np.asarray(degrees, dtype=np.float64))
    points = np.zeros((len(degrees), 4), dtype=np.float32)
    points[:, 0], points[:, 1] = np.cos(radians), np.sin(radians)
    return points


AXIS = unit(0.0)


def semantic_settings(**values: Any) -> SemanticDedupSettings:
    return SemanticDedupSettings.model_validate(values)


def removed(outcome: semantic.SemanticOutcome) -> dict[str, str]:
    return {item: decision.dup_of for item, decision in outcome.removed.items()}


def test_an_item_within_epsilon_of_a_kept_item_is_removed_and_points_to_it() -> None:
    outcome = SemanticDedup(semantic_settings(epsilon=0.07)).decide(["a", "b", "c"], unit(10, 60, 12), AXIS)

    assert removed(outcome) == {"c": "a"}
    assert outcome.removed["c"].similarity == pytest.approx(np.cos(np.radians(2)), abs=1e-5)
    assert outcome.kept.tolist() == [True, True, False]


def test_the_threshold_is_one_minus_epsilon_inclusive() -> None:
    just_in = float(np.degrees(np.arccos(0.9305)))
    just_out = float(np.degrees(np.arccos(0.9295)))
    dedup = SemanticDedup(semantic_settings(epsilon=0.07))

    assert removed(dedup.decide(["a", "b"], unit(0, just_in), AXIS)) == {"b": "a"}
    assert removed(dedup.decide(["a", "b"], unit(0, just_out), AXIS)) == {}


#: Degrees between two unit vectors at cosine 0.95: a duplicate under text's 0.93, not under images' 0.97.
AT_095 = float(np.degrees(np.arccos(0.95)))


def test_images_are_compared_with_image_epsilon_and_text_with_epsilon() -> None:
    dedup = SemanticDedup(semantic_settings())

    assert (dedup.threshold("text"), dedup.threshold("image")) == (pytest.approx(0.93), pytest.approx(0.97))
    assert removed(dedup.decide(["a", "b"], unit(0, AT_095), AXIS)) == {"b": "a"}
    assert removed(dedup.decide(["a", "b"], unit(0, AT_095), AXIS, modality="image")) == {}


def test_image_epsilon_alone_decides_images_and_epsilon_alone_text() -> None:
    loose_images = SemanticDedup(semantic_settings(image_epsilon=0.07, epsilon=0.01))
    loose_text = SemanticDedup(semantic_settings(image_epsilon=0.01, epsilon=0.2))

    assert removed(loose_images.decide(["a", "b"], unit(0, AT_095), AXIS, modality="image")) == {"b": "a"}
    assert removed(loose_images.decide(["a", "b"], unit(0, AT_095), AXIS)) == {}
    assert removed(loose_text.decide(["a", "b"], unit(0, AT_095), AXIS, modality="image")) == {}
    assert removed(loose_text.decide(["a", "b"], unit(0, AT_095), AXIS)) == {"b": "a"}


def test_run_on_a_table_with_given_vectors_uses_the_modalitys_epsilon() -> None:
    table = pa.table({"id": ["a", "b"], "modality": ["image", "image"], "media": [b"x", b"y"]})
    dedup = SemanticDedup(semantic_settings())

    kept_as_images, _ = dedup.run(table, unit(0, AT_095), modality="image")
    kept_as_text, rejected_as_text = dedup.run(table, unit(0, AT_095))

    assert kept_as_images.column("id").to_pylist() == ["a", "b"]
    assert kept_as_text.column("id").to_pylist() == ["a"]
    assert rejected_as_text.column("dup_similarity").to_pylist() == [pytest.approx(0.95, abs=1e-6)]


def test_specs_without_image_epsilon_still_parse_and_get_the_papers_value() -> None:
    settings = parse_spec({"name": "v", "dedup": {"semantic": {"epsilon": 0.1}}}).dedup.semantic

    assert (settings.epsilon, settings.image_epsilon) == (0.1, 0.03)
    assert (settings.epsilon_of("text"), settings.epsilon_of("image")) == (0.1, 0.03)
    with pytest.raises(SpecError, match=r"dedup\.semantic\.image_epsilon"):
        parse_spec({"name": "v", "dedup": {"semantic": {"image_epsilon": 1.5}}})


def test_an_item_is_compared_with_kept_items_only() -> None:
    # b is within 0.95 of a and is removed; c is within 0.95 of b only, so it stays.
    outcome = SemanticDedup(semantic_settings(epsilon=0.07)).decide(["a", "b", "c"], unit(0, 18, 36), AXIS)

    assert removed(outcome) == {"b": "a"}


@pytest.mark.parametrize(
    ("keep", "kept"),
    [("earliest", "mid"), ("nearest_centroid", "near"), ("farthest_centroid", "far")],
)
def test_the_keep_rule_chooses_which_duplicate_of_a_shard_survives(keep: str, kept: str) -> None:
    ids = ["mid", "far", "near"]  # 8, 13 and 3 degrees from the centroid: all within 10 degrees of each other

    outcome = SemanticDedup(semantic_settings(keep=keep)).decide(ids, unit(8, 13, 3), AXIS)

    assert removed(outcome) == {item: kept for item in ids if item != kept}


def test_items_of_earlier_shards_win_over_the_keep_rule_and_count_as_cross_shard() -> None:
    def earlier(cluster: int) -> EarlierVectors:
        return EarlierVectors(["old"], unit(5), ["one.jsonl"])

    outcome = SemanticDedup(semantic_settings(keep="nearest_centroid")).decide(
        ["near", "mid", "other"], unit(3, 8, 70), AXIS, earlier
    )

    assert removed(outcome) == {"near": "old", "mid": "old"}
    assert {decision.shard for decision in outcome.removed.values()} == {"one.jsonl"}
    assert outcome.cross_shard == 2


def test_items_are_compared_within_their_cluster_only() -> None:
    points = unit(44, 46)  # cosine 0.9994, either side of the boundary between the two centroids

    split = SemanticDedup(semantic_settings()).decide(["a", "b"], points, unit(0, 90))
    together = SemanticDedup(semantic_settings()).decide(["a", "b"], points, unit(45))

    assert removed(split) == {}
    assert split.clusters.tolist() == [0, 1]
    assert removed(together) == {"b": "a"}


def reference(
    ids: list[str],
    points: np.ndarray,
    centroids: np.ndarray,
    keep: str,
    threshold: float,
    earlier: dict[int, EarlierVectors],
) -> dict[str, str]:
    """SemDeDup one item at a time, as the docstrings describe it, without blocks or chunks."""
    clusters = np.argmin(((points[:, None, :] - centroids[None]) ** 2).sum(axis=2), axis=1)
    out: dict[str, str] = {}
    for cluster in sorted(set(clusters.tolist())):
        rows = [row for row in range(len(ids)) if clusters[row] == cluster]
        centre = centroids[cluster] / np.linalg.norm(centroids[cluster])
        if keep != "earliest":
            sign = -1 if keep == "nearest_centroid" else 1
            rows.sort(key=lambda row: (sign * float(points[row] @ centre), row))
        old = earlier.get(cluster, EarlierVectors.none())
        kept: list[int] = []
        for row in rows:
            to_old = [float(points[row] @ vector) for vector in old.vectors]
            if to_old and max(to_old) >= threshold:
                out[ids[row]] = old.ids[int(np.argmax(to_old))]
                continue
            to_kept = [float(points[row] @ points[other]) for other in kept]
            if to_kept and max(to_kept) >= threshold:
                out[ids[row]] = ids[kept[int(np.argmax(to_kept))]]
            else:
                kept.append(row)
    return out


@pytest.mark.parametrize("keep", ["earliest", "nearest_centroid", "farthest_centroid"])
def test_blocked_decisions_equal_one_item_at_a_time(keep: str, monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(7)
    bases = rng.normal(size=(12, 16))
    points = np.vstack([bases + 0.12 * rng.normal(size=bases.shape) for _ in range(4)]).astype(np.float32)
    points /= np.linalg.norm(points, axis=1, keepdims=True)
    ids = [f"x{n:02d}" for n in range(len(points))]
    centroids = points[[0, 5, 9]]
    old = {0: EarlierVectors(["e0", "e1", "e2", "e3"], points[[12, 24, 3, 40]], ["one"] * 4)}
    monkeypatch.setattr(semantic, "_BLOCK", 5)
    monkeypatch.setattr(semantic, "_CHUNK", 3)

    outcome = SemanticDedup(semantic_settings(keep=keep, epsilon=0.1)).decide(
        ids, points, centroids, lambda cluster: old.get(cluster, EarlierVectors.none())
    )

    expected = reference(ids, points, centroids, keep, 0.9, old)
    assert len(expected) > 10
    assert removed(outcome) == expected


def test_centroids_are_fitted_on_a_seeded_sample_with_ten_items_per_cluster_at_least() -> None:
    points = np.random.default_rng(3).normal(size=(25, 4)).astype(np.float32)
    ids = [f"x{n:02d}" for n in range(25)]
    source = TextVectors(EmbeddingSettings())

    every, _ = version_centroids(None, "", semantic_settings(), source, ids, points)
    sampled, _ = version_centroids(None, "", semantic_settings(sample_size=12), source, ids, points)

    assert (len(every), len(sampled)) == (2, 1)  # not one cluster per item: 25 // 10 and 12 // 10
    chosen = sorted(range(25), key=lambda row: (sample_score(0, ids[row]), ids[row]))[:12]
    assert np.allclose(sampled[0], points[chosen].mean(axis=0), atol=1e-5)


def test_the_index_holds_the_kept_items_sorted_by_cluster() -> None:
    ids = ["a", "b", "c", "d"]
    outcome = SemanticDedup(semantic_settings()).decide(ids, unit(80, 10, 81, 11), unit(0, 90))

    index = outcome.index(ids, unit(80, 10, 81, 11), "fp")

    assert index.column("id").to_pylist() == ["b", "a"]
    assert index.column("cluster").to_pylist() == [0, 1]
    assert index.schema.metadata[FINGERPRINT_KEY] == b"fp"


def test_run_on_a_table_returns_kept_and_rejected_rows_with_the_reason() -> None:
    table = pa.table({"id": ["a", "b", "c", "d"], "modality": ["text"] * 4, "text": ["w"] * 4})

    kept, rejected = SemanticDedup(semantic_settings()).run(table, unit(0, 2, 50, 52))

    assert kept.column("id").to_pylist() == ["a", "c"]
    assert rejected.column("id").to_pylist() == ["b", "d"]
    assert rejected.column("reject_reason").to_pylist() == [REJECT_SEMANTIC] * 2
    assert rejected.column("dup_of").to_pylist() == ["a", "c"]
    assert "cosine similarity 0.999" in rejected.column("reject_detail")[0].as_py()


def test_semantic_dedup_is_off_unless_its_section_is_given() -> None:
    assert not parse_spec({"name": "v"}).dedup.semantic.enabled
    assert parse_spec({"name": "v", "dedup": {"semantic": {}}}).dedup.semantic.enabled
    assert not parse_spec({"name": "v", "dedup": {"semantic": {"enabled": False}}}).dedup.semantic.enabled
    with pytest.raises(SpecError, match=r"dedup\.semantic\.keep"):
        parse_spec({"name": "v", "dedup": {"semantic": {"keep": "random"}}})


# --- the deduped stage, with the packaged all-MiniLM-L6-v2 --------------------------------------------------


def spec(**values: Any) -> VersionSpec:
    return parse_spec({"name": "sem", "modalities": ["text"], "dedup": {"semantic": values}})


@pytest.fixture
def landing(tmp_path: Path) -> Path:
    folder = tmp_path / "landing"
    folder.mkdir()
    write_jsonl(folder / "one.jsonl", SHARD_ONE)
    write_jsonl(folder / "two.jsonl", SHARD_TWO)
    return folder


def dedup(version: VersionSpec, lake: Lake, landing: Path, shard: str) -> StageResult:
    run_stage(version, lake, "raw", shard, landing / shard)
    return run_stage(version, lake, "deduped", shard)


def rows(lake: Lake, shard: str, *, rejected: bool = False) -> list[dict[str, Any]]:
    return lake.read_table(lake.path("sem", "deduped", shard, rejected=rejected)).to_pylist()


def ids_by_text(lake: Lake, shard: str) -> dict[str, str]:
    table = lake.read_table(lake.path("sem", "raw", shard))
    return dict(zip(table.column("text").to_pylist(), table.column("id").to_pylist(), strict=True))


@pytest.mark.usefixtures("torch_single_thread")
def test_paraphrases_that_minhash_misses_are_removed_as_semantic_duplicates(
    landing: Path, tmp_path: Path
) -> None:
    without = dedup(
        parse_spec({"name": "sem", "modalities": ["text"]}), Lake(tmp_path / "plain"), landing, "one.jsonl"
    )
    lake = Lake(tmp_path / "lake")

    result = dedup(spec(), lake, landing, "one.jsonl")

    assert without.rows_rejected == 0  # exact and near dedup keep every paraphrase
    ids = ids_by_text(lake, "one.jsonl")
    gone = {row["text"]: row for row in rows(lake, "one.jsonl", rejected=True)}
    assert set(gone) == {FROG[1], PASSWORD[1], CAPITAL[1]}
    for original, paraphrase in (FROG, PASSWORD, CAPITAL):
        assert gone[paraphrase]["reject_reason"] == REJECT_SEMANTIC
        assert gone[paraphrase]["dup_of"] == ids[original]
        assert gone[paraphrase]["dup_similarity"] >= 0.93
    assert {row["text"] for row in rows(lake, "one.jsonl")} == set(SHARD_ONE) - set(gone)
    assert result.extra["semantic_duplicates"] == 3
    assert result.extra["semantic_duplicates_of_other_shards"] == 0
    assert result.extra["semantic_clusters_touched"] == 1
    assert FROG[1] in result.extra["semantic_example_pairs"]
    assert check_conservation(lake, "sem", "deduped", "one.jsonl", result.rows_in).passed


@pytest.mark.usefixtures("torch_single_thread")
def test_a_later_shards_paraphrase_is_removed_and_the_earlier_shard_is_untouched(
    landing: Path, tmp_path: Path
) -> None:
    lake = Lake(tmp_path / "lake")
    dedup(spec(), lake, landing, "one.jsonl")
    before = {
        path: Path(lake.url(lake.path("sem", folder, "one.jsonl"))).read_bytes()
        for path, folder in (("kept", "deduped"), ("index", SEMANTIC_INDEX))
    }

    result = dedup(spec(), lake, landing, "two.jsonl")

    gone = rows(lake, "two.jsonl", rejected=True)
    assert [(row["text"], row["dup_of"]) for row in gone] == [
        (WATER[1], ids_by_text(lake, "one.jsonl")[WATER[0]])
    ]
    assert [row["text"] for row in rows(lake, "two.jsonl")] == SHARD_TWO[1:]
    assert result.extra["semantic_duplicates_of_other_shards"] == 1
    assert WATER[0] in result.extra["semantic_example_pairs"]  # the kept text, read from shard one
    assert before == {
        path: Path(lake.url(lake.path("sem", folder, "one.jsonl"))).read_bytes()
        for path, folder in (("kept", "deduped"), ("index", SEMANTIC_INDEX))
    }
    assert check_conservation(lake, "sem", "deduped", "two.jsonl", result.rows_in).passed


@pytest.mark.usefixtures("torch_single_thread")
def test_centroids_are_fitted_once_per_version_and_reused_by_later_shards(
    landing: Path, tmp_path: Path
) -> None:
    lake = Lake(tmp_path / "lake")
    first = dedup(spec(), lake, landing, "one.jsonl")
    [state] = lake.list_shards("sem", SEMANTIC_STATE)
    centroids = Path(lake.url(lake.path("sem", SEMANTIC_STATE, state))).read_bytes()

    second = dedup(spec(), lake, landing, "two.jsonl")

    assert first.extra["semantic_dedup"]["centroids"] == "fitted on this shard"
    assert second.extra["semantic_dedup"]["centroids"] == "reused"
    assert lake.list_shards("sem", SEMANTIC_STATE) == [state]
    assert Path(lake.url(lake.path("sem", SEMANTIC_STATE, state))).read_bytes() == centroids


@pytest.mark.usefixtures("torch_single_thread")
def test_running_a_shard_again_gives_the_same_rows_and_reuses_its_embeddings(
    landing: Path, tmp_path: Path
) -> None:
    lake = Lake(tmp_path / "lake")
    dedup(spec(), lake, landing, "one.jsonl")
    kept, rejected = rows(lake, "one.jsonl"), rows(lake, "one.jsonl", rejected=True)
    dedup(spec(), lake, landing, "two.jsonl")

    again = run_stage(spec(), lake, "deduped", "one.jsonl")

    assert (rows(lake, "one.jsonl"), rows(lake, "one.jsonl", rejected=True)) == (kept, rejected)
    assert again.extra["semantic_dedup"]["embeddings"]["computed"] == 0
    assert again.extra["semantic_dedup"]["embeddings"]["reused"] == len(SHARD_ONE)


class _MustNotEmbed(TextEmbedder):
    def embed(self, texts: Any) -> np.ndarray:
        raise AssertionError(f"embedded {len(texts)} texts again")


@pytest.mark.usefixtures("torch_single_thread")
def test_selection_reuses_the_vectors_semantic_dedup_stored(landing: Path, tmp_path: Path) -> None:
    lake = Lake(tmp_path / "lake")
    dedup(spec(), lake, landing, "one.jsonl")
    kept = lake.read_table(lake.path("sem", "deduped", "one.jsonl"))

    vectors = shard_embeddings(
        lake,
        "sem",
        "one.jsonl",
        kept.column("id").to_pylist(),
        kept.column("text").to_pylist(),
        _MustNotEmbed(),
    )

    assert lake.exists(lake.path("sem", EMBEDDINGS, "one.jsonl"))
    assert (vectors.computed, vectors.reused) == (0, kept.num_rows)


@pytest.mark.usefixtures("torch_single_thread")
def test_an_index_built_with_other_clustering_is_refused_and_turning_it_off_removes_the_index(
    landing: Path, tmp_path: Path
) -> None:
    lake = Lake(tmp_path / "lake")
    dedup(spec(), lake, landing, "one.jsonl")
    run_stage(spec(), lake, "raw", "two.jsonl", landing / "two.jsonl")

    with pytest.raises(SpecError, match=SEMANTIC_INDEX):
        run_stage(spec(clusters=7), lake, "deduped", "two.jsonl")
    off = run_stage(spec(enabled=False), lake, "deduped", "one.jsonl")

    assert not lake.exists(lake.path("sem", SEMANTIC_INDEX, "one.jsonl"))
    assert off.rows_rejected == 0
    assert "semantic_duplicates" not in off.extra
