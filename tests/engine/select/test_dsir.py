"""Tests of curation_dagster/select/dsir.py: hashed n-gram features and importance resampling."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from curation_dagster.errors import SpecError
from curation_dagster.select.base import Pool
from curation_dagster.select.dsir import DSIR, NgramHasher, kl_divergence
from curation_dagster.select.selector import Selector
from curation_dagster.spec import SelectSettings

COOKING = [
    "stir the onions in butter until soft then add garlic and simmer the sauce",
    "bake the bread in a hot oven and brush the crust with butter",
    "whisk the eggs with sugar and fold in the flour for a light sponge cake",
    "simmer the tomato sauce with basil and season with salt and pepper",
    "roast the chicken with lemon garlic and thyme until the skin is golden",
]
FINANCE = [
    "the central bank raised interest rates to curb inflation in the bond market",
    "shares fell as investors sold stocks after the quarterly earnings report",
    "the fund manager rebalanced the portfolio toward government bonds and cash",
    "currency traders watched the exchange rate as the dollar gained against the euro",
    "the company issued new equity to pay down debt and improve its credit rating",
]


def pool_table() -> pa.Table:
    """40 cooking and 40 finance documents: each template with a numbered variation."""
    texts = [f"{text} step {n}" for n in range(8) for text in COOKING + FINANCE]
    return pa.table(
        {"id": [f"d{n:03d}" for n in range(len(texts))], "modality": ["text"] * len(texts), "text": texts}
    )


@pytest.fixture
def target(tmp_path: Path) -> Path:
    path = tmp_path / "target.jsonl"
    lines = [json.dumps({"text": text.replace("the", "a")}) for text in COOKING]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def dsir_settings(target: Path, seed: int = 0, budget: int = 20) -> SelectSettings:
    return SelectSettings.model_validate(
        {"seed": seed, "budget": budget, "strategy": {"kind": "dsir", "target_files": [str(target)]}}
    )


def test_features_are_unigram_and_bigram_buckets_that_hash_alike_everywhere() -> None:
    one, two = NgramHasher(1000), NgramHasher(1000)

    features = one.features("Red apple red")

    assert len(features) == 3 + 2
    assert features.tolist() == two.features("red APPLE, red!").tolist()
    assert features[0] == features[2]  # "red" twice
    assert all(0 <= bucket < 1000 for bucket in features)


def test_kl_divergence_is_zero_for_equal_distributions_and_positive_otherwise() -> None:
    p = np.array([0.5, 0.25, 0.25])

    assert kl_divergence(p, p) == 0
    assert kl_divergence(p, np.array([0.25, 0.25, 0.5])) > 0


def random_documents(vocabulary: list[str], count: int, rng: np.random.Generator) -> list[str]:
    return [" ".join(rng.choice(vocabulary, 12)) for _ in range(count)]


def test_selection_moves_toward_the_target_and_reduces_kl(tmp_path: Path) -> None:
    # Target: texts over vocabulary A. Pool: half over A, half over B (ids a..., b...). Budget 20.
    rng = np.random.default_rng(0)
    apples, bonds = [f"apple{i}" for i in range(30)], [f"bond{i}" for i in range(30)]
    (tmp_path / "target.txt").write_text("\n".join(random_documents(apples, 30, rng)), encoding="utf-8")
    texts = random_documents(apples, 50, rng) + random_documents(bonds, 50, rng)
    ids = [f"a{n:02d}" for n in range(50)] + [f"b{n:02d}" for n in range(50)]
    strategy = DSIR(dsir_settings(tmp_path / "target.txt"))
    pool = Pool(ids=ids, modalities=["text"] * 100, seed=0, texts=texts)

    ranking = strategy.rank(pool, 20)
    selected = np.zeros(100, dtype=bool)
    selected[ranking.order[:20]] = True
    stats = strategy.describe(pool, selected)

    assert all(ids[p].startswith("a") for p in ranking.order[:20])
    assert stats["kl_target_to_selected"] < stats["kl_target_to_random"]
    assert stats["kl_reduction"] == pytest.approx(
        stats["kl_target_to_random"] - stats["kl_target_to_selected"]
    )
    assert stats["kl_reduction"] > 0


def test_same_seed_gives_the_same_selection_of_the_budget(target: Path) -> None:
    table = pool_table()

    once, rejected = Selector(dsir_settings(target, seed=1)).run(table)
    again, _ = Selector(dsir_settings(target, seed=1)).run(table)

    assert once.column("id").to_pylist() == again.column("id").to_pylist()
    assert (once.num_rows, rejected.num_rows) == (20, 60)
    assert set(rejected.column("reject_reason").to_pylist()) == {"select.budget"}


def test_items_without_text_are_rejected_as_no_text(target: Path) -> None:
    table = pa.table({"id": ["a", "b"], "modality": ["text", "image"], "text": [COOKING[0], None]})

    kept, rejected = Selector(dsir_settings(target)).run(table)

    assert kept.column("id").to_pylist() == ["a"]
    assert rejected.column("reject_reason").to_pylist() == ["select.no_text"]


def test_missing_target_file_is_a_spec_error_naming_the_setting(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match=r"^select\.strategy\.target_files: .*gone\.jsonl does not exist"):
        Selector(dsir_settings(tmp_path / "gone.jsonl")).run(pool_table())


def test_plain_text_targets_are_one_document_per_line(tmp_path: Path) -> None:
    path = tmp_path / "target.txt"
    path.write_text("\n".join(FINANCE) + "\n\n", encoding="utf-8")

    kept, _ = Selector(dsir_settings(path, budget=10)).run(pool_table())

    assert all(text.split(" step")[0] in FINANCE for text in kept.column("text").to_pylist())
