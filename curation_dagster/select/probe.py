"""The proxy model of model-in-the-loop selection: a logistic-regression probe on text embeddings, the
labelled files it learns from, and the uncertainty scores that choose what a person labels next."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from curation_dagster.errors import LabelsError
from curation_dagster.vectors.text import text_hash

#: How a batch to label is chosen (`select.strategy.active_learning.by`).
BY_CHOICES = ("margin", "entropy", "learnability")


@dataclass(frozen=True)
class Labelled:
    """One labelled example: its label, its text and/or the id of an item of the lake, and where it was read
    (`file:line`)."""

    label: str
    text: str | None
    id: str | None
    source: str

    @property
    def key(self) -> str:
        """What identifies the example across files: the item id, else a hash of the text."""
        return f"id:{self.id}" if self.id else f"text:{text_hash(self.text or '')}"


@dataclass(frozen=True)
class LabelledFile:
    """A labelled file as read: the examples with a label and how many lines left the label empty."""

    items: list[Labelled]
    blank: int


def parse_labelled(content: str, name: str, *, blank_allowed: bool) -> LabelledFile:
    """The examples of a JSON Lines or CSV (`name` ends in `.csv`) file with `label` and `text` or `id`.

    A line with an empty label is counted as blank when `blank_allowed` (a round a person is filling in),
    else it is an error, as is a line with neither text nor id."""
    rows: list[tuple[int, Any]] = []
    if name.endswith(".csv"):
        reader = csv.DictReader(io.StringIO(content))
        missing = {"label"} - set(reader.fieldnames or [])
        if missing or not {"text", "id"} & set(reader.fieldnames or []):
            raise LabelsError(f"{name}: the CSV header needs label and text (or id), has {reader.fieldnames}")
        rows = [(reader.line_num, row) for row in reader]
    else:
        for number, line in enumerate(content.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                rows.append((number, json.loads(line)))
            except json.JSONDecodeError as error:
                raise LabelsError(f"{name} line {number} is not JSON: {error}") from None
    items: list[Labelled] = []
    blank = 0
    for number, row in rows:
        where = f"{name} line {number}"
        if not isinstance(row, dict):
            raise LabelsError(f"{where}: expected an object with label and text or id")
        label, text, item = row.get("label"), row.get("text"), row.get("id")
        if isinstance(label, bool) or not isinstance(label, str | int | type(None)):
            raise LabelsError(f"{where}: label must be a string, got {label!r}")
        label = "" if label is None else str(label).strip()
        text = text if isinstance(text, str) and text.strip() else None
        item = str(item) if isinstance(item, str | int) and str(item).strip() else None
        if not label:
            if not blank_allowed:
                raise LabelsError(f"{where}: the label is empty")
            blank += 1
            continue
        if text is None and item is None:
            raise LabelsError(f"{where}: give the text or the id of the labelled item")
        items.append(Labelled(label, text, item, where))
    return LabelledFile(items, blank)


def merge_labelled(*groups: Sequence[Labelled]) -> list[Labelled]:
    """The examples of every group in order, one per key: a later label of the same item replaces an
    earlier one (a person's correction of a seed, or of an earlier round)."""
    merged: dict[str, Labelled] = {}
    for group in groups:
        for item in group:
            merged.pop(item.key, None)
            merged[item.key] = item
    return list(merged.values())


@dataclass(frozen=True, eq=False)
class Probe:
    """Multinomial logistic regression on embeddings (binary: one weight row for `classes[1]`); predicts
    with numpy from its stored weights, so a saved probe scores without scikit-learn."""

    classes: tuple[str, ...]
    wanted: str
    coef: np.ndarray
    """(1, d) for two classes, else (len(classes), d)."""
    intercept: np.ndarray
    model: str = ""
    """The embedder key of the vectors it was trained on."""
    settings: tuple[tuple[str, Any], ...] = ()
    """The training settings (`regularization`, `balanced`), to tell whether a stored probe still fits."""

    @classmethod
    def fit(
        cls,
        vectors: np.ndarray,
        labels: Sequence[str],
        wanted: str,
        *,
        regularization: float = 1.0,
        balanced: bool = True,
        model: str = "",
    ) -> Probe:
        """Train on (n, d) vectors; needs two classes or more, `wanted` among them. lbfgs is deterministic."""
        from sklearn.linear_model import LogisticRegression

        classes = sorted(set(labels))
        if len(classes) < 2 or wanted not in classes:
            counts = ", ".join(f"{c} ({list(labels).count(c)})" for c in classes) or "none"
            raise LabelsError(
                f"the probe needs labelled examples of at least two classes, {wanted!r} among them; "
                f"labels so far: {counts}"
            )
        classifier = LogisticRegression(
            C=regularization, class_weight="balanced" if balanced else None, max_iter=5000, tol=1e-8
        )
        classifier.fit(np.asarray(vectors, dtype=np.float64), np.asarray(labels, dtype=object))
        settings = (("balanced", balanced), ("regularization", float(regularization)))
        return cls(
            classes=tuple(str(c) for c in classifier.classes_),
            wanted=wanted,
            coef=np.asarray(classifier.coef_, dtype=np.float64),
            intercept=np.asarray(classifier.intercept_, dtype=np.float64),
            model=model,
            settings=settings,
        )

    @property
    def dimension(self) -> int:
        return int(self.coef.shape[1])

    def probabilities(self, vectors: np.ndarray) -> np.ndarray:
        """(n, len(classes)) class probabilities, rows summing to one."""
        points = np.asarray(vectors, dtype=np.float64).reshape(-1, self.dimension)
        logits = points @ self.coef.T + self.intercept
        if len(self.classes) == 2:
            logits = np.hstack([np.zeros((len(points), 1)), logits])
        logits -= logits.max(axis=1, keepdims=True)
        exp = np.exp(logits)
        return exp / exp.sum(axis=1, keepdims=True)

    def wanted_probability(self, vectors: np.ndarray) -> np.ndarray:
        """The probability of the wanted class for each vector."""
        return self.probabilities(vectors)[:, self.classes.index(self.wanted)]

    def predict(self, vectors: np.ndarray) -> list[str]:
        """The likeliest class of each vector (ties: the first class in sorted order)."""
        return [self.classes[i] for i in self.probabilities(vectors).argmax(axis=1).tolist()]

    def accuracy(self, vectors: np.ndarray, labels: Sequence[str]) -> float:
        """Share of `labels` it predicts; NaN for none."""
        if not len(labels):
            return float("nan")
        predicted = self.predict(vectors)
        return sum(p == t for p, t in zip(predicted, labels, strict=True)) / len(labels)

    def to_json(self) -> dict[str, Any]:
        return {
            "classes": list(self.classes),
            "wanted": self.wanted,
            "coef": self.coef.tolist(),
            "intercept": self.intercept.tolist(),
            "model": self.model,
            "settings": dict(self.settings),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Probe:
        return cls(
            classes=tuple(data["classes"]),
            wanted=str(data["wanted"]),
            coef=np.asarray(data["coef"], dtype=np.float64),
            intercept=np.asarray(data["intercept"], dtype=np.float64),
            model=str(data.get("model", "")),
            settings=tuple(sorted(dict(data.get("settings", {})).items())),
        )


def cross_validated_accuracy(
    vectors: np.ndarray,
    labels: Sequence[str],
    wanted: str,
    *,
    folds: int,
    seed: int,
    regularization: float = 1.0,
    balanced: bool = True,
) -> float | None:
    """Accuracy of out-of-fold predictions under stratified k-fold (k = `folds`, fewer when a class has
    fewer labels); None when a class has fewer than two labels."""
    from sklearn.model_selection import StratifiedKFold

    names, counts = np.unique(np.asarray(labels, dtype=str), return_counts=True)
    if len(names) < 2 or counts.min() < 2:
        return None
    splitter = StratifiedKFold(n_splits=int(min(folds, counts.min())), shuffle=True, random_state=seed)
    points = np.asarray(vectors, dtype=np.float64)
    truth = np.asarray(labels, dtype=str)
    correct = 0
    for train, test in splitter.split(points, truth):
        probe = Probe.fit(
            points[train], truth[train].tolist(), wanted, regularization=regularization, balanced=balanced
        )
        correct += sum(p == t for p, t in zip(probe.predict(points[test]), truth[test].tolist(), strict=True))
    return correct / len(truth)


def margin_uncertainty(probabilities: np.ndarray) -> np.ndarray:
    """1 − (top class probability − second class probability): 1 on the decision boundary, 0 when sure."""
    ordered = np.sort(probabilities, axis=1)
    return 1.0 - (ordered[:, -1] - ordered[:, -2])


def entropy(probabilities: np.ndarray) -> np.ndarray:
    """Predictive entropy in nats."""
    clipped = np.clip(probabilities, 1e-12, 1.0)
    return -(probabilities * np.log(clipped)).sum(axis=1)


def prediction_change(current: np.ndarray, previous: np.ndarray) -> np.ndarray:
    """Total variation distance between two probes' class probabilities of the same items."""
    return 0.5 * np.abs(current - previous).sum(axis=1)


def batch_scores(by: str, current: np.ndarray, previous: np.ndarray | None) -> np.ndarray:
    """Each item's priority for labelling, higher first: margin or entropy uncertainty, or for
    `learnability` the prediction change since the previous probe (margin without one)."""
    if by == "margin" or (by == "learnability" and previous is None):
        return margin_uncertainty(current)
    if by == "entropy":
        return entropy(current)
    if by == "learnability" and previous is not None:
        return prediction_change(current, previous)
    raise ValueError(f"unknown batch choice {by!r}; one of {', '.join(BY_CHOICES)}")


def choose_batch(ids: Sequence[str], scores: np.ndarray, tiebreak: np.ndarray, size: int) -> np.ndarray:
    """Positions of the `size` items with the highest score, then the highest `tiebreak`, then by id."""
    if not len(ids):
        return np.zeros(0, dtype=np.int64)
    order = np.lexsort((np.asarray(ids, dtype=str), -np.asarray(tiebreak), -np.asarray(scores)))
    return order[:size].astype(np.int64)
