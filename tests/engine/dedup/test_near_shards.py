"""Near-duplicate dedup across shards through the lake's index (curation_dagster/dedup/near.py and the
deduped stage in curation_dagster/dedup/stage.py): incremental, earliest wins, conservation."""

import random
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from curation_dagster.checks import check_conservation
from curation_dagster.dedup.minhash import word_sketches
from curation_dagster.dedup.near import settings_fingerprint, sketchless_fingerprint
from curation_dagster.dedup.near_index import NearIndex
from curation_dagster.demo import NEWS_SENTENCES
from curation_dagster.errors import SpecError
from curation_dagster.io.lake import Lake
from curation_dagster.pipeline import run_stage
from curation_dagster.spec import NearDedupSettings, VersionSpec, parse_spec
from tests.engine.dedup.text_fixtures import (
    EDIT_UNDER_BY_ESTIMATE,
    REWRITE_OVER_BY_ESTIMATE,
    edited_pair,
    word_pair_jaccard,
)
from tests.media_fixtures import write_jsonl

SENTENCES = [s for pool in NEWS_SENTENCES.values() for s in pool]


def spec(**near: Any) -> VersionSpec:
    return parse_spec({"name": "near", "modalities": ["text"], "dedup": {"near": near}})


def documents(seed: int, count: int) -> list[str]:
    rng = random.Random(seed)
    return [" ".join(rng.sample(SENTENCES, 10)) for _ in range(count)]


def edited(text: str, seed: int, rate: float = 0.08) -> str:
    rng = random.Random(seed)
    return " ".join(f"edit{chr(97 + rng.randrange(26))}" if rng.random() < rate else w for w in text.split())


@pytest.fixture
def corpus(tmp_path: Path) -> tuple[Path, list[str]]:
    """Three shards: `one` holds originals; `two` and `three` hold edited copies of some of them."""
    originals = documents(1, 12)
    landing = tmp_path / "landing"
    landing.mkdir()
    write_jsonl(landing / "one.jsonl", originals[:8])
    write_jsonl(landing / "two.jsonl", [edited(originals[0], 1), originals[8], edited(originals[1], 2)])
    write_jsonl(landing / "three.jsonl", [edited(originals[2], 3), originals[9], edited(originals[8], 4)])
    return landing, originals


def dedup(settings: VersionSpec, lake: Lake, landing: Path, shard: str) -> Any:
    run_stage(settings, lake, "raw", shard, landing / shard)
    return run_stage(settings, lake, "deduped", shard)


def table(lake: Lake, shard: str, *, rejected: bool = False) -> list[dict[str, Any]]:
    return lake.read_table(lake.path("near", "deduped", shard, rejected=rejected)).to_pylist()


def test_an_edited_copy_in_a_later_shard_is_removed_as_a_near_duplicate(corpus, tmp_path: Path) -> None:
    landing, _ = corpus
    lake = Lake(tmp_path / "lake")
    dedup(spec(), lake, landing, "one.jsonl")
    result = dedup(spec(), lake, landing, "two.jsonl")
    one_ids = [row["id"] for row in table(lake, "one.jsonl")]
    removed = table(lake, "two.jsonl", rejected=True)
    assert [row["reject_reason"] for row in removed] == ["dedup.near", "dedup.near"]
    assert [row["dup_of"] for row in removed] == [one_ids[0], one_ids[1]]
    assert all(row["dup_similarity"] >= 0.7 for row in removed)
    assert result.extra["near_duplicates_of_other_shards"] == 2
    kept_texts = [row["text"] for row in table(lake, "one.jsonl")]
    removed_texts = {row["dup_of"]: row["text"] for row in removed}
    # Each pair starts a few words before its first difference, and the difference column shows the
    # kept item's words struck through beside the removed item's in bold.
    kept_words, removed_words = kept_texts[0].split(), removed_texts[one_ids[0]].split()
    first = next(i for i, (a, b) in enumerate(zip(kept_words, removed_words, strict=False)) if a != b)
    assert " ".join(kept_words[max(0, first - 4) : first + 1]) in result.extra["example_pairs"]
    assert f"~~{kept_words[first]}" in result.extra["example_pairs"]
    assert f"**{removed_words[first]}" in result.extra["example_pairs"]
    assert check_conservation(lake, "near", "deduped", "two.jsonl", result.rows_in).passed


def test_a_third_shard_dedups_against_both_earlier_shards_without_touching_them(
    corpus, tmp_path: Path
) -> None:
    landing, _ = corpus
    lake = Lake(tmp_path / "lake")
    dedup(spec(), lake, landing, "one.jsonl")
    dedup(spec(), lake, landing, "two.jsonl")
    before = {
        path: path.stat().st_mtime_ns
        for path in (tmp_path / "lake").rglob("*.parquet")
        if "three" not in path.name
    }
    result = dedup(spec(), lake, landing, "three.jsonl")
    removed = {row["dup_of"] for row in table(lake, "three.jsonl", rejected=True)}
    assert removed == {table(lake, "one.jsonl")[2]["id"], table(lake, "two.jsonl")[0]["id"]}
    assert result.extra["checked_against_shards"] == 2
    after = {path: path.stat().st_mtime_ns for path in before}
    assert after == before


def test_the_index_holds_band_keys_and_signatures_not_text(corpus, tmp_path: Path) -> None:
    landing, _ = corpus
    lake = Lake(tmp_path / "lake")
    dedup(spec(), lake, landing, "one.jsonl")
    index = NearIndex(lake, "near", spec().dedup.near)
    signatures = index.signatures("one.jsonl")
    assert index.keys.manifest()["shards"]["one.jsonl"]["keys"] == 8 * spec().dedup.near.bands
    assert signatures.column_names == [
        *("id", "root", "root_shard", "root_row", "sig"),
        *("words", "word_sketch", "pairs", "pair_sketch"),
    ]
    assert signatures.column("root_shard").to_pylist() == ["one.jsonl"] * 8
    assert signatures.schema.field("sig").type == pa.binary(4 * spec().dedup.near.verify_hashes)
    texts = [row["text"] for row in table(lake, "one.jsonl")]
    sketches = word_sketches(texts)
    assert signatures.column("words").to_pylist() == sketches.words.tolist()
    assert signatures.column("word_sketch").to_pylist()[3] == sketches.sketch(3).tolist()
    assert sketches.pairs is not None
    assert signatures.column("pairs").to_pylist() == sketches.pairs.words.tolist()
    assert signatures.column("pair_sketch").to_pylist()[3] == sketches.pairs.sketch(3).tolist()


def test_an_index_built_with_other_settings_is_refused_with_a_clear_error(corpus, tmp_path: Path) -> None:
    landing, _ = corpus
    lake = Lake(tmp_path / "lake")
    dedup(spec(), lake, landing, "one.jsonl")
    with pytest.raises(SpecError, match=r"other dedup\.near settings"):
        dedup(spec(ngram=4), lake, landing, "two.jsonl")


def test_items_kept_earlier_are_never_removed_when_shards_are_rerun(corpus, tmp_path: Path) -> None:
    landing, _ = corpus
    lake = Lake(tmp_path / "lake")
    for shard in ("two.jsonl", "one.jsonl", "three.jsonl"):
        dedup(spec(), lake, landing, shard)
    kept_two = [row["id"] for row in table(lake, "two.jsonl")]
    dedup(spec(), lake, landing, "two.jsonl")
    assert [row["id"] for row in table(lake, "two.jsonl")] == kept_two


@pytest.mark.parametrize("order", [("one", "two", "three"), ("three", "two", "one"), ("two", "three", "one")])
def test_whatever_the_arrival_order_each_cluster_keeps_exactly_one_item(
    corpus, tmp_path: Path, order
) -> None:
    landing, _ = corpus
    lake = Lake(tmp_path / "lake")
    for name in order:
        dedup(spec(), lake, landing, f"{name}.jsonl")
    kept = sum(len(table(lake, f"{name}.jsonl")) for name in order)
    # 8 + 3 + 3 documents in 10 clusters: originals 0..9, each with its edited copies.
    assert kept == 10


def test_the_same_arrival_order_gives_the_same_output(corpus, tmp_path: Path) -> None:
    landing, _ = corpus
    outputs = []
    for attempt in range(2):
        lake = Lake(tmp_path / f"lake{attempt}")
        for shard in ("three.jsonl", "one.jsonl", "two.jsonl"):
            dedup(spec(), lake, landing, shard)
        outputs.append([lake.read_table(lake.path("near", "deduped", s)) for s in ("one.jsonl", "two.jsonl")])
    assert all(first.equals(second) for first, second in zip(*outputs, strict=True))


def test_within_a_shard_the_earlier_row_wins_and_metadata_shows_pairs(tmp_path: Path) -> None:
    original = documents(2, 1)[0]
    landing = tmp_path / "landing"
    landing.mkdir()
    write_jsonl(landing / "solo.jsonl", [original, edited(original, 5), edited(original, 6)])
    lake = Lake(tmp_path / "lake")
    result = dedup(spec(), lake, landing, "solo.jsonl")
    kept = table(lake, "solo.jsonl")
    assert [row["text"] for row in kept] == [original]
    assert {row["dup_of"] for row in table(lake, "solo.jsonl", rejected=True)} == {kept[0]["id"]}
    assert result.extra["cluster_sizes"] == {"3": 1}
    assert original.split()[0] in result.extra["example_pairs"]


def test_exact_duplicates_are_removed_first_and_not_counted_as_near(tmp_path: Path) -> None:
    original = documents(3, 1)[0]
    landing = tmp_path / "landing"
    landing.mkdir()
    write_jsonl(landing / "x.jsonl", [original, original.upper(), edited(original, 7)])
    result = dedup(spec(), Lake(tmp_path / "lake"), landing, "x.jsonl")
    assert (result.extra["exact_duplicates"], result.extra["near_duplicates"]) == (1, 1)
    assert result.reasons == {"dedup.exact": 1, "dedup.near": 1}


def test_near_dedup_can_be_switched_off(corpus, tmp_path: Path) -> None:
    landing, _ = corpus
    lake = Lake(tmp_path / "lake")
    dedup(spec(enabled=False), lake, landing, "one.jsonl")
    result = dedup(spec(enabled=False), lake, landing, "two.jsonl")
    assert result.rows_rejected == 0
    index = NearIndex(lake, "near", spec().dedup.near)
    assert index.keys.shards() == []
    assert not lake.exists(index._signatures_path("two.jsonl"))


def test_the_fineweb_preset_is_available_in_a_spec() -> None:
    settings = spec(preset="fineweb").dedup.near
    assert (settings.ngram, settings.bands, settings.rows, settings.verify) == (5, 14, 8, "none")
    assert spec(preset="fineweb", bands=20).dedup.near.bands == 20


def test_a_copy_in_a_late_shard_is_found_through_merged_tiers_of_the_index(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("curation_dagster.dedup.keystore.FANOUT", 2)
    originals = documents(5, 12)
    landing = tmp_path / "landing"
    landing.mkdir()
    lake = Lake(tmp_path / "lake")
    for number in range(6):
        write_jsonl(landing / f"s{number}.jsonl", originals[2 * number : 2 * number + 2])
        dedup(spec(), lake, landing, f"s{number}.jsonl")
    manifest = NearIndex(lake, "near", spec().dedup.near).keys.manifest()
    assert {tier["level"] for tier in manifest["tiers"]} == {2, 1}  # s0-s3 merged twice, s4-s5 once
    write_jsonl(
        landing / "late.jsonl", [edited(originals[1], 9), edited(originals[10], 8), originals[0] + " x"]
    )
    dedup(spec(), lake, landing, "late.jsonl")
    removed = {row["dup_of"] for row in table(lake, "late.jsonl", rejected=True)}
    expected = {
        table(lake, "s0.jsonl")[0]["id"],
        table(lake, "s0.jsonl")[1]["id"],
        table(lake, "s5.jsonl")[0]["id"],
    }
    assert removed == expected


def test_an_index_written_without_word_sketches_is_refused_with_what_to_do(
    corpus, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The index of an earlier release carries the fingerprint of its settings without sketches."""
    before = NearDedupSettings(bands=42, rows=3)  # that release's default bands
    assert sketchless_fingerprint(before) == "d2b5309feaffb858"  # what that release wrote
    assert settings_fingerprint(NearDedupSettings()) != sketchless_fingerprint(NearDedupSettings())
    landing, _ = corpus
    lake = Lake(tmp_path / "lake")
    with monkeypatch.context() as patched:
        patched.setattr("curation_dagster.dedup.near_index.settings_fingerprint", sketchless_fingerprint)
        patched.setattr("curation_dagster.dedup.near_index.sketchless_fingerprint", lambda settings: "")
        dedup(spec(), lake, landing, "one.jsonl")
    with pytest.raises(SpecError, match=r"without the word sketches .* delete it"):
        dedup(spec(), lake, landing, "two.jsonl")


def grey_zone_corpus(tmp_path: Path) -> Path:
    """Shard `one` holds two originals; shard `two` a fifth-edited copy of the first whose word-set estimate
    is under 0.67 and a quarter-rewritten copy of the second whose estimate is over it: word pairs keep
    the rewrite and remove the edit."""
    edit_original, edit = edited_pair(*EDIT_UNDER_BY_ESTIMATE)
    rewrite_original, rewrite = edited_pair(*REWRITE_OVER_BY_ESTIMATE)
    landing = tmp_path / "landing"
    landing.mkdir()
    write_jsonl(landing / "one.jsonl", [edit_original, rewrite_original])
    write_jsonl(landing / "two.jsonl", [edit, rewrite])
    return landing


def test_grey_zone_pairs_across_shards_are_decided_on_the_earlier_shards_sketches(tmp_path: Path) -> None:
    landing = grey_zone_corpus(tmp_path)
    lake = Lake(tmp_path / "lake")
    dedup(spec(), lake, landing, "one.jsonl")
    result = dedup(spec(), lake, landing, "two.jsonl")
    originals = table(lake, "one.jsonl")
    edit, rewrite = edited_pair(*EDIT_UNDER_BY_ESTIMATE)[1], edited_pair(*REWRITE_OVER_BY_ESTIMATE)[1]
    removed = table(lake, "two.jsonl", rejected=True)
    assert [(row["text"], row["dup_of"], row["dup_measure"]) for row in removed] == [
        (edit, originals[0]["id"], "exact_word_pairs")
    ]
    assert removed[0]["dup_similarity"] == pytest.approx(word_pair_jaccard(originals[0]["text"], edit))
    assert "exact_word_pairs" in removed[0]["reject_detail"]
    assert [row["text"] for row in table(lake, "two.jsonl")] == [rewrite]
    assert result.extra["near_duplicates_by_measure"] == {"exact_word_pairs": 1}


def test_the_metadata_counts_near_misses_and_shows_them_beside_their_closest_item(tmp_path: Path) -> None:
    landing = grey_zone_corpus(tmp_path)
    lake = Lake(tmp_path / "lake")
    dedup(spec(), lake, landing, "one.jsonl")
    result = dedup(spec(), lake, landing, "two.jsonl")
    rewrite_original, rewrite = edited_pair(*REWRITE_OVER_BY_ESTIMATE)
    assert result.extra["near_misses"] == 1
    examples = result.extra["near_miss_examples"]
    assert " ".join(rewrite.split()[:6]) in examples
    assert " ".join(rewrite_original.split()[:6]) in examples
    assert f"{word_pair_jaccard(rewrite_original, rewrite):.2f} | exact_word_pairs" in examples
    assert "closest item under the cut (words 0.5, word pairs 0.41)" in examples


def test_every_removed_row_names_the_measure_of_its_similarity(tmp_path: Path) -> None:
    original = documents(4, 1)[0]
    landing = tmp_path / "landing"
    landing.mkdir()
    write_jsonl(landing / "x.jsonl", [original, original.upper(), edited(original, 7, 0.02)])
    dedup(spec(), Lake(tmp_path / "lake"), landing, "x.jsonl")
    rows = table(Lake(tmp_path / "lake"), "x.jsonl", rejected=True)
    assert [(row["reject_reason"], row["dup_measure"]) for row in rows] == [
        ("dedup.exact", "exact_content"),
        ("dedup.near", "exact_word_pairs"),  # clearly over the word cut: the word pairs decide
    ]
    assert table(Lake(tmp_path / "lake"), "x.jsonl")[0]["dup_measure"] is None


def test_an_index_from_before_the_key_store_is_refused_with_what_to_do(corpus, tmp_path: Path) -> None:
    landing, _ = corpus
    lake = Lake(tmp_path / "lake")
    old = pa.table({"id": ["x"], "root": ["x"], "sig": [b"\0" * 4]})
    lake.write_table(lake.path("near", "near_signatures", "one.jsonl"), old)
    with pytest.raises(SpecError, match="earlier release"):
        dedup(spec(), lake, landing, "two.jsonl")


def test_a_look_up_in_runs_of_a_few_probes_decides_as_one_look_up(
    corpus, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A large shard's band keys are looked up a few million at a time; the decisions are the same."""
    landing, _ = corpus
    outcomes = {}
    for name, probes in (("whole", 10**9), ("runs", 7)):
        monkeypatch.setattr("curation_dagster.dedup.near_index.LOOKUP_PROBES", probes)
        lake = Lake(tmp_path / name)
        for shard in ("one.jsonl", "two.jsonl", "three.jsonl"):
            dedup(spec(), lake, landing, shard)
        outcomes[name] = [
            (row["id"], row["dup_of"], row["dup_similarity"], row["dup_measure"])
            for shard in ("two.jsonl", "three.jsonl")
            for row in table(lake, shard, rejected=True)
        ]
    assert len(outcomes["whole"]) == 4
    assert outcomes["runs"] == outcomes["whole"]
