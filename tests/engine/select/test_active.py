"""Tests of curation_dagster/select/active.py: active-learning rounds in the lake, advancing only when a
person has filled in the labels, with a fake embedder that reads a point's coordinates from its text."""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pytest

from curation_dagster.errors import LabelsError, StageInputMissing
from curation_dagster.io.lake import Lake
from curation_dagster.schema import RAW_SCHEMA, conform
from curation_dagster.select.active import (
    ActiveLearning,
    current_probe,
    labels_name,
    probe_name,
    to_label_name,
)
from curation_dagster.spec import SelectSettings
from curation_dagster.vectors.text import TextEmbedder

VERSION = "al"


class CoordinateEmbedder(TextEmbedder):
    """The last two numbers of a text as its 2-d embedding: "point 0.30 0.10" is (0.3, 0.1)."""

    def __init__(self) -> None:
        super().__init__()
        self.embedded: list[str] = []

    @property
    def key(self) -> str:
        return "coordinates"

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        self.embedded.extend(texts)
        return np.asarray([[float(v) for v in re.findall(r"-?\d+\.\d+", t)[-2:]] for t in texts], np.float32)


def point(x: float, y: float = 0.0) -> str:
    return f"point {x:.2f} {y:.2f}"


#: The pool: x from -1 to 1 in steps of 0.1 (p00 .. p20), y a small wiggle.
POOL = [(f"p{n:02d}", point(-1 + n / 10, 0.01 * (n % 3))) for n in range(21)]


def write_filtered(lake: Lake, rows: list[tuple[str, str]], shard: str = "s1") -> None:
    table = pa.table(
        {
            "id": [item for item, _ in rows],
            "modality": ["text"] * len(rows),
            "text": [text for _, text in rows],
            "uri": [f"{shard}#{n}" for n in range(len(rows))],
            "shard": [shard] * len(rows),
        }
    )
    lake.write_table(lake.path(VERSION, "filtered", shard), conform(table, RAW_SCHEMA))


def write_jsonl(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return path


def settings(seeds: Path, **overrides: Any) -> SelectSettings:
    strategy: dict[str, Any] = {
        "kind": "proxy",
        "wanted_label": "pos",
        "seed_files": [str(seeds)],
        "active_learning": {"batch_size": 3},
    }
    strategy.update(overrides)
    return SelectSettings.model_validate({"strategy": strategy})


@pytest.fixture
def lake(tmp_path: Path) -> Lake:
    store = Lake(tmp_path / "lake")
    write_filtered(store, POOL)
    return store


@pytest.fixture
def seeds(tmp_path: Path) -> Path:
    """Two far examples of each class: the boundary starts at x = 0."""
    rows = [{"text": point(x), "label": "pos" if x > 0 else "neg"} for x in (-2.0, -1.5, 1.5, 2.0)]
    return write_jsonl(tmp_path / "seeds.jsonl", rows)


def rounds(lake: Lake, seeds: Path, **overrides: Any) -> ActiveLearning:
    return ActiveLearning(settings(seeds, **overrides), lake, VERSION, CoordinateEmbedder())


def folder(lake: Lake) -> Path:
    return Path(lake.root) / VERSION / "active_learning"


def exported(lake: Lake, number: int) -> list[dict[str, Any]]:
    lines = (folder(lake) / to_label_name(number)).read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines]


def label_batch(lake: Lake, number: int, rule: Any = lambda x: "pos" if x > 0.3 else "neg") -> None:
    """Fill in the exported batch as a person would (pos right of x = 0.3) and save it as the labels file."""
    rows = exported(lake, number)
    for row in rows:
        row["label"] = rule(float(row["text"].split()[1]))
    write_jsonl(folder(lake) / labels_name(number), rows)


def test_round_zero_trains_on_the_seeds_and_exports_the_items_nearest_the_boundary(
    lake: Lake, seeds: Path
) -> None:
    result = rounds(lake, seeds).run_round()

    assert result.advanced
    assert (result.current.round, result.current.labelled, result.current.pool) == (0, 4, 21)
    assert result.current.labelled_by_class == {"neg": 2, "pos": 2}
    rows = exported(lake, 1)
    assert [row["id"] for row in rows] == ["p10", "p09", "p11"]  # x = 0.0, -0.1, 0.1
    assert result.waiting_for.endswith(f"{VERSION}/active_learning/{labels_name(1)}")
    assert result.export_path == str(folder(lake) / to_label_name(1))


def test_the_exported_file_has_id_text_probability_and_an_empty_label(lake: Lake, seeds: Path) -> None:
    result = rounds(lake, seeds).run_round()

    first = exported(lake, 1)[0]
    assert list(first) == ["id", "shard", "text", "probability", "predicted", "priority", "label"]
    assert (first["id"], first["shard"], first["text"], first["label"]) == ("p10", "s1", point(0.0, 0.01), "")
    expected = result.probe.wanted_probability(np.array([[0.0, 0.01]]))[0]
    assert first["probability"] == pytest.approx(expected, abs=1e-6)
    assert first["predicted"] == ("pos" if expected > 0.5 else "neg")


def test_without_labels_a_round_does_not_advance_and_writes_nothing(lake: Lake, seeds: Path) -> None:
    learning = rounds(lake, seeds)
    learning.run_round()
    before = {path.name: path.read_bytes() for path in folder(lake).iterdir()}

    again = learning.run_round()

    assert not again.advanced
    assert [record.round for record in again.history] == [0]
    assert {path.name: path.read_bytes() for path in folder(lake).iterdir()} == before


def test_a_labels_file_with_only_blank_labels_does_not_advance(lake: Lake, seeds: Path) -> None:
    learning = rounds(lake, seeds)
    learning.run_round()
    write_jsonl(folder(lake) / labels_name(1), exported(lake, 1))

    again = learning.run_round()

    assert not again.advanced
    assert again.blank == 3


def test_filled_labels_advance_the_round_and_the_probe_learns_them(lake: Lake, seeds: Path) -> None:
    learning = rounds(lake, seeds)
    zero = learning.run_round()
    label_batch(lake, 1)

    one = learning.run_round()

    assert one.advanced
    assert [(r.round, r.labelled, r.new_labels) for r in one.history] == [(0, 4, 0), (1, 7, 3)]
    assert one.current.pool == 18  # the three labelled items left the pool
    assert not {row["id"] for row in exported(lake, 2)} & {"p09", "p10", "p11"}
    # The three new labels are all neg (x <= 0.1 < 0.3): the boundary moves right.
    at_small_x = np.array([[0.1, 0.0]])
    assert one.probe.wanted_probability(at_small_x)[0] < zero.probe.wanted_probability(at_small_x)[0]
    assert (folder(lake) / probe_name(1)).is_file()
    assert "| 1 | 7 | 3 |" in one.markdown()


def test_a_round_embeds_only_texts_it_has_not_seen(lake: Lake, seeds: Path) -> None:
    embedder = CoordinateEmbedder()
    learning = ActiveLearning(settings(seeds), lake, VERSION, embedder)
    learning.run_round()
    assert len(embedder.embedded) == 4 + 21  # the seeds, then the pool
    label_batch(lake, 1)
    embedder.embedded.clear()

    learning.run_round()

    assert sorted(embedder.embedded) == sorted(row["text"] for row in exported(lake, 1))


def test_items_exported_but_left_unlabelled_are_not_offered_again(lake: Lake, seeds: Path) -> None:
    learning = rounds(lake, seeds)
    learning.run_round()
    rows = exported(lake, 1)
    rows[0]["label"] = "neg"
    write_jsonl(folder(lake) / labels_name(1), rows)

    one = learning.run_round()

    assert (one.current.new_labels, one.blank) == (1, 2)
    assert one.current.pool == 18
    assert not {row["id"] for row in exported(lake, 2)} & {row["id"] for row in rows}


def test_a_label_outside_the_seed_classes_is_an_error_naming_the_line(lake: Lake, seeds: Path) -> None:
    learning = rounds(lake, seeds)
    learning.run_round()
    label_batch(lake, 1, rule=lambda x: "positive")

    with pytest.raises(LabelsError, match=r"round_1.labels.jsonl line 1: label 'positive' is not one of"):
        learning.run_round()


def test_rounds_are_deterministic(tmp_path: Path, seeds: Path) -> None:
    contents = []
    for name in ("one", "two"):
        lake = Lake(tmp_path / name)
        write_filtered(lake, POOL)
        learning = rounds(lake, seeds)
        learning.run_round()
        label_batch(lake, 1)
        learning.run_round()
        contents.append({path.name: path.read_bytes() for path in folder(lake).iterdir()})

    assert contents[0] == contents[1]
    assert set(contents[0]) == {
        "state.json",
        "labelled_embeddings.parquet",
        probe_name(0),
        probe_name(1),
        to_label_name(1),
        labels_name(1),
        to_label_name(2),
    }


def test_accuracy_is_held_out_when_an_evaluation_file_is_given(
    lake: Lake, seeds: Path, tmp_path: Path
) -> None:
    # Truth: pos right of x = 0.3. The seeds put the boundary at 0, so items at 0.1 and 0.2 are wrong.
    truth = [{"text": point(x), "label": "pos" if x > 0.3 else "neg"} for x in (-0.5, 0.1, 0.2, 0.5, 0.9)]
    evaluation = write_jsonl(tmp_path / "eval.jsonl", truth)

    result = rounds(lake, seeds, eval_files=[str(evaluation)]).run_round()

    assert result.current.eval_accuracy == pytest.approx(3 / 5)
    assert result.current.accuracy == result.current.eval_accuracy
    assert result.current.accuracy_source.startswith("held-out")
    assert result.current.cv_accuracy == 1.0  # the seeds themselves are separable


def test_accuracy_is_cross_validated_without_an_evaluation_file(tmp_path: Path) -> None:
    lake = Lake(tmp_path / "lake")
    write_filtered(lake, POOL)
    one_each = write_jsonl(
        tmp_path / "seeds.jsonl",
        [{"text": point(-1.0), "label": "neg"}, {"text": point(1.0), "label": "pos"}],
    )

    result = rounds(lake, one_each).run_round()

    assert result.current.accuracy is None
    assert result.current.accuracy_source.startswith("not measurable yet")


def test_seed_given_by_id_takes_its_text_from_the_filtered_stage(lake: Lake, tmp_path: Path) -> None:
    rows = [{"id": "p00", "label": "neg"}, {"id": "p20", "label": "pos"}]
    far = [{"text": point(-2.0), "label": "neg"}, {"text": point(2.0), "label": "pos"}]
    by_id = write_jsonl(tmp_path / "seeds.jsonl", [*rows, *far])

    result = rounds(lake, by_id).run_round()

    assert result.current.labelled == 4
    assert result.current.pool == 19  # p00 and p20 are labelled already


def test_a_seed_id_missing_from_the_filtered_stage_is_an_error_naming_the_line(
    lake: Lake, tmp_path: Path
) -> None:
    far = [{"text": point(-2.0), "label": "neg"}, {"text": point(2.0), "label": "pos"}]
    missing = write_jsonl(tmp_path / "seeds.jsonl", [*far, {"id": "nope", "label": "neg"}])

    with pytest.raises(LabelsError, match=r"seeds.jsonl line 3: id 'nope' has no text here"):
        rounds(lake, missing).run_round()


def test_learnability_picks_the_items_whose_prediction_moved_most(lake: Lake, seeds: Path) -> None:
    learning = rounds(lake, seeds, active_learning={"batch_size": 3, "by": "learnability"})
    zero = learning.run_round()
    assert zero.current.by == "learnability (margin: no previous probe)"
    label_batch(lake, 1)

    one = learning.run_round()

    assert one.current.by == "learnability"
    offered = [(item, text) for item, text in POOL if item not in {"p09", "p10", "p11"}]
    vectors = CoordinateEmbedder().embed([text for _, text in offered])
    change = np.abs(one.probe.wanted_probability(vectors) - zero.probe.wanted_probability(vectors))
    expected = [offered[p][0] for p in np.argsort(-change, kind="stable")[:3]]
    assert [row["id"] for row in exported(lake, 2)] == expected


def test_the_pool_leaves_out_items_failing_where(tmp_path: Path, seeds: Path) -> None:
    lake = Lake(tmp_path / "lake")
    write_filtered(lake, POOL)
    learning = ActiveLearning(
        SelectSettings.model_validate({**settings(seeds).model_dump(), "where": "id >= 'p15'"}),
        lake,
        VERSION,
        CoordinateEmbedder(),
    )

    pool = learning.pool()

    assert pool.ids == ["p15", "p16", "p17", "p18", "p19", "p20"]
    assert pool.vectors.shape == (6, 2)


def test_a_round_before_the_filtered_stage_fails_naming_it(tmp_path: Path, seeds: Path) -> None:
    with pytest.raises(StageInputMissing, match="al/filtered"):
        rounds(Lake(tmp_path / "empty"), seeds).run_round()


def test_selection_uses_the_latest_round_or_trains_from_the_seeds(lake: Lake, seeds: Path) -> None:
    select = settings(seeds)

    before, origin = current_probe(select, lake, VERSION, CoordinateEmbedder())
    assert origin == "trained at selection time on 4 labels (no active-learning round yet)"

    learning = ActiveLearning(select, lake, VERSION, CoordinateEmbedder())
    learning.run_round()
    label_batch(lake, 1)
    one = learning.run_round()
    after, origin = current_probe(select, lake, VERSION, CoordinateEmbedder())

    assert origin == "active-learning round 1 (7 labels)"
    assert after.to_json() == one.probe.to_json()
    changed, origin = current_probe(settings(seeds, regularization=2.0), lake, VERSION, CoordinateEmbedder())
    assert origin == "trained at selection time on 7 labels (rounds 1-1)"
    assert changed.settings != after.settings
    assert before.to_json() != after.to_json()
