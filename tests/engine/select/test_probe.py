"""Tests of curation_dagster/select/probe.py: the logistic-regression probe, the labelled files it learns
from and the uncertainty scores that choose what to label next."""

from __future__ import annotations

import json

import numpy as np
import pytest

from curation_dagster.errors import LabelsError
from curation_dagster.select.probe import (
    Labelled,
    Probe,
    batch_scores,
    choose_batch,
    cross_validated_accuracy,
    entropy,
    margin_uncertainty,
    merge_labelled,
    parse_labelled,
    prediction_change,
)

# Two classes split by the y axis: "pos" right of it, "neg" left, mirrored so the boundary is x = 0.
SEPARABLE = np.array([[1.0, 0.2], [1.0, -0.2], [2.0, 0.0], [-1.0, 0.2], [-1.0, -0.2], [-2.0, 0.0]])
SEPARABLE_LABELS = ["pos", "pos", "pos", "neg", "neg", "neg"]


def test_probe_on_separable_embeddings_puts_the_boundary_between_the_classes() -> None:
    probe = Probe.fit(SEPARABLE, SEPARABLE_LABELS, "pos")

    right, middle, left = probe.wanted_probability(np.array([[1.5, 0.0], [0.0, 0.0], [-1.5, 0.0]]))
    assert probe.classes == ("neg", "pos")
    assert right > 0.75 and left < 0.25
    assert middle == pytest.approx(0.5, abs=1e-6)  # mirrored data: the boundary runs through the origin
    assert right == pytest.approx(1 - left, abs=1e-6)
    assert probe.accuracy(SEPARABLE, SEPARABLE_LABELS) == 1.0
    assert probe.predict(np.array([[3.0, 1.0]])) == ["pos"]


@pytest.mark.parametrize("classes", [2, 3])
def test_numpy_probabilities_match_scikit_learn(classes: int) -> None:
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(0)
    points = rng.normal(size=(60, 5))
    labels = [f"c{n % classes}" for n in range(60)]
    points[:, 0] += [n % classes for n in range(60)]

    probe = Probe.fit(points, labels, "c1", balanced=False, regularization=0.5)
    reference = LogisticRegression(C=0.5, max_iter=5000, tol=1e-8).fit(points, labels)

    assert np.allclose(probe.probabilities(points), reference.predict_proba(points), atol=1e-9)
    assert np.allclose(probe.probabilities(points).sum(axis=1), 1.0)


def test_a_saved_probe_predicts_exactly_as_before() -> None:
    probe = Probe.fit(SEPARABLE, SEPARABLE_LABELS, "pos", model="m@256")

    restored = Probe.from_json(json.loads(json.dumps(probe.to_json())))

    assert restored.classes == probe.classes and restored.model == "m@256"
    assert restored.settings == probe.settings
    assert np.array_equal(restored.probabilities(SEPARABLE), probe.probabilities(SEPARABLE))


def test_fitting_is_deterministic() -> None:
    first = Probe.fit(SEPARABLE, SEPARABLE_LABELS, "pos")
    second = Probe.fit(SEPARABLE, SEPARABLE_LABELS, "pos")

    assert first.to_json() == second.to_json()


def test_the_probe_needs_two_classes_including_the_wanted_one() -> None:
    with pytest.raises(
        LabelsError, match=r"at least two classes, 'pos' among them; labels so far: neg \(3\)"
    ):
        Probe.fit(SEPARABLE[3:], SEPARABLE_LABELS[3:], "pos")
    with pytest.raises(LabelsError, match="'formal' among them"):
        Probe.fit(SEPARABLE, SEPARABLE_LABELS, "formal")


def test_margin_picks_the_items_nearest_the_boundary() -> None:
    probe = Probe.fit(SEPARABLE, SEPARABLE_LABELS, "pos")
    xs = [-0.9, -0.5, -0.05, 0.1, 0.4, 0.8]
    pool = np.array([[x, 0.0] for x in xs])
    ids = [f"x{n}" for n in range(len(xs))]

    current = probe.probabilities(pool)
    chosen = choose_batch(ids, batch_scores("margin", current, None), margin_uncertainty(current), 2)

    assert [xs[p] for p in chosen] == [-0.05, 0.1]


def test_entropy_picks_the_nearest_too_with_two_classes() -> None:
    probe = Probe.fit(SEPARABLE, SEPARABLE_LABELS, "pos")
    xs = [-0.9, 0.3, -0.05, 0.8]
    current = probe.probabilities(np.array([[x, 0.0] for x in xs]))

    chosen = choose_batch(
        list("abcd"), batch_scores("entropy", current, None), margin_uncertainty(current), 2
    )

    assert [xs[p] for p in chosen] == [-0.05, 0.3]


def test_margin_and_entropy_differ_on_three_classes_as_defined() -> None:
    # A: torn between two classes (margin 0). B: spread over three (margin 0.1, but higher entropy).
    probabilities = np.array([[0.5, 0.5, 0.0], [0.4, 0.3, 0.3]])

    assert margin_uncertainty(probabilities).tolist() == pytest.approx([1.0, 0.9])
    assert entropy(probabilities).tolist() == pytest.approx([np.log(2), 1.0889], abs=1e-4)
    assert batch_scores("margin", probabilities, None).argmax() == 0
    assert batch_scores("entropy", probabilities, None).argmax() == 1


def test_learnability_is_the_prediction_change_and_falls_back_to_margin() -> None:
    previous = np.array([[0.9, 0.1], [0.5, 0.5], [0.2, 0.8]])
    current = np.array([[0.3, 0.7], [0.5, 0.5], [0.25, 0.75]])

    assert prediction_change(current, previous).tolist() == pytest.approx([0.6, 0.0, 0.05])
    assert batch_scores("learnability", current, previous).argmax() == 0
    assert np.array_equal(batch_scores("learnability", current, None), margin_uncertainty(current))


def test_ties_are_broken_by_the_second_score_then_by_id() -> None:
    scores = np.array([1.0, 1.0, 1.0, 0.5])
    tiebreak = np.array([0.2, 0.2, 0.9, 1.0])

    assert choose_batch(["b", "a", "c", "d"], scores, tiebreak, 3).tolist() == [2, 1, 0]


def test_jsonl_and_csv_labels_read_alike() -> None:
    jsonl = '{"text": "Dear Sir", "label": "formal"}\n\n{"id": "s1-4", "label": "colloquial"}\n'
    csv = "id,text,label\n,Dear Sir,formal\ns1-4,,colloquial\n"

    from_jsonl = parse_labelled(jsonl, "seeds.jsonl", blank_allowed=False).items
    from_csv = parse_labelled(csv, "seeds.csv", blank_allowed=False).items

    expected = [("formal", "Dear Sir", None), ("colloquial", None, "s1-4")]
    assert [(i.label, i.text, i.id) for i in from_jsonl] == expected
    assert [(i.label, i.text, i.id) for i in from_csv] == expected
    assert from_jsonl[1].source == "seeds.jsonl line 3"


def test_blank_labels_are_counted_in_a_round_and_refused_in_seeds() -> None:
    content = '{"id": "a", "text": "x", "label": ""}\n{"id": "b", "text": "y", "label": "pos"}\n'

    parsed = parse_labelled(content, "round_1.labels.jsonl", blank_allowed=True)

    assert (len(parsed.items), parsed.blank) == (1, 1)
    with pytest.raises(LabelsError, match=r"seeds.jsonl line 1: the label is empty"):
        parse_labelled(content, "seeds.jsonl", blank_allowed=False)


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("{not json", "line 1 is not JSON"),
        ('{"label": "pos"}', "line 1: give the text or the id"),
        ('{"text": "x", "label": ["pos"]}', "line 1: label must be a string"),
        ('["x", "pos"]', "line 1: expected an object"),
    ],
)
def test_a_bad_line_is_an_error_naming_it(line: str, message: str) -> None:
    with pytest.raises(LabelsError, match=message):
        parse_labelled(line + "\n", "f.jsonl", blank_allowed=True)


def test_a_csv_without_a_label_column_is_refused() -> None:
    with pytest.raises(LabelsError, match="needs label and text"):
        parse_labelled("text,class\nhello,pos\n", "seeds.csv", blank_allowed=False)


def test_a_later_label_of_the_same_item_replaces_the_earlier() -> None:
    seeds = [Labelled("pos", "a text", None, "s:1"), Labelled("neg", None, "i7", "s:2")]
    later = [Labelled("neg", "a text", None, "r:1"), Labelled("pos", "other", "i7", "r:2")]

    merged = merge_labelled(seeds, later)

    assert [(i.label, i.source) for i in merged] == [("neg", "r:1"), ("pos", "r:2")]


def test_cross_validation_needs_two_labels_per_class_and_is_seeded() -> None:
    assert cross_validated_accuracy(SEPARABLE[[0, 3]], ["pos", "neg"], "pos", folds=5, seed=0) is None

    first = cross_validated_accuracy(SEPARABLE, SEPARABLE_LABELS, "pos", folds=5, seed=3)

    assert first == 1.0
    assert first == cross_validated_accuracy(SEPARABLE, SEPARABLE_LABELS, "pos", folds=5, seed=3)
