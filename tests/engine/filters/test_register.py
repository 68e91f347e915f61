"""Tests of curation_dagster/filters/register.py: formality scores, reject codes at the bounds, and the
shipped weights (held-out accuracy, reproducible refit)."""

from __future__ import annotations

import json
import re
from importlib import resources

import numpy as np
import pyarrow as pa
import pytest

from curation_dagster.errors import ModelNotConfigured
from curation_dagster.filters.base import FilterChain
from curation_dagster.filters.register import (
    FEATURES,
    TEST_FILE,
    TRAIN_FILE,
    WEIGHTS_FILE,
    Register,
    RegisterModel,
    fit_register_model,
    read_register_examples,
    shipped_register_model,
)
from curation_dagster.spec import RegisterSettings

FORMAL_EN = "The commission shall submit its final report to the board no later than 30 September."
FORMAL_DE = "Die Kommission legt dem Vorstand ihren Abschlussbericht spätestens am 30. September vor."
COLLOQUIAL_EN = "lol ngl that party was kinda wild, u shoulda come 😂"
COLLOQUIAL_DE = "Haha, hab gestern voll verpennt und den Bus verpasst lol"
HELD_OUT_ACCURACY = 0.94
"""Accuracy at 0.5 that the shipped weights reach on register_test.jsonl (measured: 0.949)."""


def texts(*values: str | None) -> pa.Table:
    return pa.table({"text": pa.array(values, pa.large_string())})


def formality(text: str) -> float:
    (score,) = Register(RegisterSettings()).evaluate(texts(text)).scores["formality"]
    assert isinstance(score, float)
    return score


@pytest.mark.parametrize("text", [FORMAL_EN, FORMAL_DE])
def test_clearly_formal_text_scores_near_one(text: str) -> None:
    assert formality(text) > 0.95


@pytest.mark.parametrize("text", [COLLOQUIAL_EN, COLLOQUIAL_DE])
def test_clearly_colloquial_text_scores_near_zero(text: str) -> None:
    assert formality(text) < 0.05


def test_without_bounds_it_only_tags() -> None:
    verdicts = Register(RegisterSettings()).evaluate(texts(FORMAL_EN, COLLOQUIAL_EN))

    assert verdicts.reasons == [None, None]
    assert all(isinstance(score, float) for score in verdicts.scores["formality"])


def test_below_min_formality_is_too_colloquial_and_keeps_its_score() -> None:
    verdicts = Register(RegisterSettings(min_formality=0.5)).evaluate(texts(COLLOQUIAL_EN, FORMAL_EN))

    assert verdicts.reasons == ["filter.register.too_colloquial", None]
    (score, _) = verdicts.scores["formality"]
    assert verdicts.details[0] == f"formality {score:.3f} is below the minimum 0.5"


def test_above_max_formality_is_too_formal() -> None:
    verdicts = Register(RegisterSettings(max_formality=0.5)).evaluate(texts(COLLOQUIAL_EN, FORMAL_EN))

    assert verdicts.reasons == [None, "filter.register.too_formal"]
    assert verdicts.details[1] == f"formality {verdicts.scores['formality'][1]:.3f} is above the maximum 0.5"


def test_bounds_are_inclusive() -> None:
    score = formality(FORMAL_DE)
    at_bounds = Register(RegisterSettings(min_formality=score, max_formality=score))
    just_above = Register(RegisterSettings(min_formality=float(np.nextafter(score, 1.0))))
    just_below = Register(RegisterSettings(max_formality=float(np.nextafter(score, 0.0))))

    assert at_bounds.evaluate(texts(FORMAL_DE)).reasons == [None]
    assert just_above.evaluate(texts(FORMAL_DE)).reasons == ["filter.register.too_colloquial"]
    assert just_below.evaluate(texts(FORMAL_DE)).reasons == ["filter.register.too_formal"]


def test_text_without_words_scores_null_and_is_kept() -> None:
    strict = Register(RegisterSettings(min_formality=0.9, max_formality=0.95))

    verdicts = strict.evaluate(texts(None, "", "   ", "?! :)", "12 34"))

    assert verdicts.scores["formality"] == [None] * 5
    assert verdicts.reasons == [None] * 5


def test_scores_do_not_depend_on_the_batch() -> None:
    batch = [FORMAL_EN, COLLOQUIAL_DE, None, COLLOQUIAL_EN]
    chunked = pa.table({"text": pa.chunked_array([batch[:1], batch[1:]], pa.large_string())})

    together = Register(RegisterSettings()).evaluate(chunked).scores["formality"]
    alone = [Register(RegisterSettings()).evaluate(texts(text)).scores["formality"][0] for text in batch]

    assert [score is None for score in together] == [score is None for score in alone]
    assert [score for score in together if score is not None] == pytest.approx(
        [score for score in alone if score is not None], rel=1e-12
    )


def test_in_a_chain_the_rejected_row_carries_its_code_and_score() -> None:
    chain = FilterChain({"text": [Register(RegisterSettings(min_formality=0.5))]})
    table = pa.table(
        {"modality": ["text", "text"], "text": pa.array([FORMAL_EN, COLLOQUIAL_EN], pa.large_string())}
    )

    kept, rejected = chain.run(table)

    assert kept["text"].to_pylist() == [FORMAL_EN]
    assert rejected["reject_reason"].to_pylist() == ["filter.register.too_colloquial"]
    assert rejected["formality"][0].as_py() < 0.5


def test_shipped_weights_reach_the_stated_held_out_accuracy() -> None:
    test_texts, formal = read_register_examples(TEST_FILE)

    predicted = shipped_register_model().formality(pa.array(test_texts, pa.large_string())) >= 0.5

    assert len(test_texts) >= 150
    assert np.mean(predicted == np.asarray(formal)) >= HELD_OUT_ACCURACY


def test_refitting_on_the_training_set_reproduces_the_shipped_weights() -> None:
    train_texts, formal = read_register_examples(TRAIN_FILE)
    shipped = json.loads((resources.files("curation_dagster.filters") / "data" / WEIGHTS_FILE).read_text())

    refit = fit_register_model(train_texts, formal).to_json()

    assert refit["features"] == shipped["features"] == list(FEATURES)
    for key in ("mean", "scale", "weights", "bias"):
        np.testing.assert_allclose(np.asarray(refit[key], float), shipped[key], rtol=0, atol=1e-9)


def test_held_out_items_are_not_near_copies_of_training_items() -> None:
    def words(text: str) -> set[str]:
        return set(re.findall(r"\w+", text.casefold()))

    train = [words(text) for text in read_register_examples(TRAIN_FILE)[0]]
    test = [words(text) for text in read_register_examples(TEST_FILE)[0]]

    closest = max(len(a & b) / len(a | b) for a in test for b in train)

    assert closest < 0.5


def test_weights_fitted_on_other_features_are_refused_with_the_fix() -> None:
    with pytest.raises(ModelNotConfigured, match=r"register_accuracy\.py"):
        RegisterModel.from_json(
            {"features": ["slang_rate"], "mean": [0], "scale": [1], "weights": [1], "bias": 0}
        )
