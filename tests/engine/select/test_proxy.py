"""Tests of curation_dagster/select/proxy.py: the `proxy` strategy ranks by a proxy model's probability of
the wanted class, under the budget and quotas; the probe, a user's sequence classifier, the spec."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pytest

from curation_dagster.errors import ModelNotConfigured, SpecError
from curation_dagster.io.lake import Lake
from curation_dagster.pipeline import run_stage
from curation_dagster.select.active import ActiveLearning, current_probe
from curation_dagster.select.base import Pool
from curation_dagster.select.probe import Probe
from curation_dagster.select.proxy import ModelProxy, ProbeProxy
from curation_dagster.select.selector import Selector, build_strategy
from curation_dagster.spec import SelectSettings, parse_spec
from curation_dagster.vectors.text import TextEmbedder
from tests.engine.select.test_selected_stage import write_filtered

#: The probe puts "pos" right of x = 0 (mirrored seeds, so the boundary runs through the origin).
PROBE = Probe.fit(
    np.array([[1.0, 0.0], [2.0, 0.0], [-1.0, 0.0], [-2.0, 0.0]]), ["pos", "pos", "neg", "neg"], "pos"
)
XS = [-0.8, 0.9, 0.1, -0.2, 0.5, 0.3]


def settings(**select: Any) -> SelectSettings:
    strategy = {"kind": "proxy", "wanted_label": "pos", "seed_files": ["unused.jsonl"]}
    strategy.update(select.pop("strategy", {}))
    return SelectSettings.model_validate({**select, "strategy": strategy})


def table_of(langs: list[str] | None = None) -> pa.Table:
    count = len(XS)
    return pa.table(
        {
            "id": [f"i{n}" for n in range(count)],
            "modality": ["text"] * count,
            "text": ["t"] * count,
            "lang": langs or ["en"] * count,
        }
    )


def vectors() -> np.ndarray:
    return np.array([[x, 0.0] for x in XS], dtype=np.float32)


def run(select: SelectSettings, table: pa.Table) -> tuple[pa.Table, pa.Table]:
    return Selector(select, ProbeProxy(select, probe=PROBE)).run(table, embeddings=vectors())


def test_ranks_by_the_probability_of_the_wanted_class_within_the_budget() -> None:
    kept, rejected = run(settings(budget=3), table_of())

    assert kept.column("id").to_pylist() == ["i1", "i4", "i5"]  # x = 0.9, 0.5, 0.3
    assert sorted(kept.column("select_rank").to_pylist()) == [1, 2, 3]
    assert set(kept.column("select_strategy").to_pylist()) == {"proxy"}
    expected = PROBE.wanted_probability(vectors())
    scores = dict(zip(kept.column("id").to_pylist(), kept.column("select_score").to_pylist(), strict=True))
    assert scores == pytest.approx({f"i{n}": expected[n] for n in (1, 4, 5)})
    assert set(rejected.column("reject_reason").to_pylist()) == {"select.budget"}
    assert rejected.column("select_score").null_count == 0  # scores kept on rejected rows


def test_quotas_take_the_most_probable_of_each_group() -> None:
    langs = ["en", "en", "en", "de", "de", "de"]  # en: x = -0.8, 0.9, 0.1; de: x = -0.2, 0.5, 0.3
    select = settings(quotas={"by": "lang", "counts": {"en": 1, "de": 2}})

    kept, rejected = run(select, table_of(langs))

    assert Counter(kept.column("select_group").to_pylist()) == {"en": 1, "de": 2}
    assert sorted(kept.column("id").to_pylist()) == ["i1", "i4", "i5"]
    assert rejected.num_rows == 3


def test_min_probability_rejects_as_threshold_with_the_probability() -> None:
    kept, rejected = run(settings(strategy={"min_probability": 0.5}), table_of())

    assert sorted(kept.column("id").to_pylist()) == ["i1", "i2", "i4", "i5"]  # x > 0
    reasons = dict(
        zip(rejected.column("id").to_pylist(), rejected.column("reject_detail").to_pylist(), strict=True)
    )
    assert set(rejected.column("reject_reason").to_pylist()) == {"select.threshold"}
    assert reasons["i0"].startswith("probability of 'pos' 0.") and reasons["i0"].endswith(
        "< min_probability 0.5"
    )


def test_items_without_an_embedding_are_refused_as_no_text() -> None:
    pool = Pool(
        [f"i{n}" for n in range(3)],
        ["text", "image", "text"],
        0,
        embeddings=np.array([[0.5, 0.0], [0.0, 0.0], [-0.5, 0.0]], dtype=np.float32),
        embedded=np.array([True, False, True]),
    )

    ranking = ProbeProxy(settings(), probe=PROBE).rank(pool, None)

    assert ranking.order.tolist() == [0, 2]
    assert ranking.excluded == {1: ("select.no_text", "the proxy model needs text")}
    assert np.isnan(ranking.scores[1])


def test_a_probe_of_other_embeddings_is_a_clear_error() -> None:
    pool = Pool(["a"], ["text"], 0, embeddings=np.zeros((1, 3), np.float32), embedded=np.ones(1, bool))

    with pytest.raises(ModelNotConfigured, match="trained on 2-dimensional embeddings"):
        ProbeProxy(settings(), probe=PROBE).rank(pool, None)


def test_metadata_reports_the_probe_and_the_mean_probabilities() -> None:
    strategy = ProbeProxy(settings(budget=2), probe=PROBE)
    pool = Pool([f"i{n}" for n in range(6)], ["text"] * 6, 0, embeddings=vectors(), embedded=np.ones(6, bool))

    stats = strategy.describe(pool, np.array([False, True, False, False, True, False]))

    probabilities = PROBE.wanted_probability(vectors())
    assert stats["proxy"] == "linear probe" and stats["probe"] == "given"
    assert stats["mean_probability_pool"] == pytest.approx(probabilities.mean(), abs=1e-6)
    assert stats["mean_probability_selected"] == pytest.approx(probabilities[[1, 4]].mean(), abs=1e-6)


def test_each_item_is_scored_once_per_run_and_afresh_in_the_next() -> None:
    scored: list[str] = []

    class CountingProbe(ProbeProxy):
        def score(self, pool: Pool) -> tuple[np.ndarray, np.ndarray]:
            scored.extend(pool.ids)
            return super().score(pool)

    select = settings(budget=2)
    selector = Selector(select, CountingProbe(select, probe=PROBE))
    first, _ = selector.run(table_of(), embeddings=vectors())
    assert sorted(scored) == sorted(table_of().column("id").to_pylist())  # rank and metadata share scores

    second, _ = selector.run(table_of(), embeddings=-vectors())  # same ids, mirrored points

    assert first.column("id").to_pylist() == ["i1", "i4"]
    assert second.column("id").to_pylist() == ["i0", "i3"]  # x = -0.8, -0.2 mirrored to the right


def test_the_spec_takes_seed_files_or_a_model_path() -> None:
    def spec(strategy: dict[str, Any]) -> None:
        parse_spec(
            {"name": "v", "select": {"strategy": {"kind": "proxy", "wanted_label": "pos", **strategy}}}
        )

    with pytest.raises(SpecError, match=r"select.strategy: .*give seed_files .* or model_path"):
        spec({})
    with pytest.raises(SpecError, match=r"\(not both\)"):
        spec({"seed_files": ["s.jsonl"], "model_path": "/m"})
    with pytest.raises(SpecError, match="eval_files measure the probe"):
        spec({"model_path": "/m", "eval_files": ["e.jsonl"]})
    with pytest.raises(SpecError, match=r"active_learning.by"):
        spec({"seed_files": ["s.jsonl"], "active_learning": {"by": "random"}})
    probe = SelectSettings.model_validate(
        {"strategy": {"kind": "proxy", "wanted_label": "pos", "seed_files": ["s.jsonl"]}}
    )
    model = SelectSettings.model_validate(
        {"strategy": {"kind": "proxy", "wanted_label": "pos", "model_path": "/m"}}
    )
    assert (probe.needs_embeddings, probe.runs_model) == (True, True)
    assert (model.needs_embeddings, model.runs_model) == (False, True)
    assert isinstance(build_strategy(probe), ProbeProxy)
    assert isinstance(build_strategy(model), ModelProxy)


@pytest.fixture(scope="module")
def classifier(tmp_path_factory: pytest.TempPathFactory, torch_single_thread: None) -> Path:
    from tests.model_fixtures import build_tiny_classifier

    return build_tiny_classifier(tmp_path_factory.mktemp("proxy") / "model", num_labels=3)


TINY_TEXTS = ["the cat sat on the mat .", "a dog ran .", "the dog sat .", "a cat ran on a mat ."]


def tiny_model_probabilities(folder: Path) -> np.ndarray:
    """The tiny classifier's class probabilities of TINY_TEXTS, computed directly with transformers."""
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    model = AutoModelForSequenceClassification.from_pretrained(folder).eval()
    tokenizer = AutoTokenizer.from_pretrained(folder)
    with torch.inference_mode():
        return model(**tokenizer(TINY_TEXTS, padding=True, return_tensors="pt")).logits.softmax(-1).numpy()


def scores_by_id(*tables: pa.Table) -> dict[str, float]:
    out: dict[str, float] = {}
    for table in tables:
        out.update(zip(table.column("id").to_pylist(), table.column("select_score").to_pylist(), strict=True))
    return out


def model_settings(folder: Path, wanted: str, budget: int | None = None) -> SelectSettings:
    strategy = {"kind": "proxy", "wanted_label": wanted, "model_path": str(folder)}
    return SelectSettings.model_validate({"budget": budget, "strategy": strategy})


@pytest.mark.usefixtures("no_network")
@pytest.mark.parametrize(("wanted", "column"), [("LABEL_2", 2), ("1", 1)])
def test_a_user_sequence_classifier_ranks_by_its_probability_of_the_wanted_label(
    classifier: Path, wanted: str, column: int
) -> None:
    table = pa.table({"id": list("abcd"), "modality": ["text"] * 4, "text": TINY_TEXTS})

    kept, rejected = Selector(model_settings(classifier, wanted, budget=2)).run(table)

    expected = tiny_model_probabilities(classifier)[:, column]
    top_two = sorted("abcd", key=lambda item: -expected["abcd".index(item)])[:2]
    assert sorted(kept.column("id").to_pylist()) == sorted(top_two)
    scores = scores_by_id(kept, rejected)
    assert [scores[item] for item in "abcd"] == pytest.approx(expected.tolist(), abs=1e-5)


@pytest.mark.usefixtures("no_network")
def test_a_wanted_label_the_model_lacks_names_its_labels(classifier: Path) -> None:
    table = pa.table({"id": ["a"], "modality": ["text"], "text": ["the cat"]})

    with pytest.raises(ModelNotConfigured, match=r"'toxic' is not a label of .*LABEL_0, LABEL_1, LABEL_2"):
        Selector(model_settings(classifier, "toxic")).run(table)


FORMAL = [
    "The committee will convene on Monday to review the annual budget.",
    "Please find enclosed the signed contract for your records.",
    "The board approved the proposed amendments to the regulations.",
]
CASUAL = [
    "lol that party was sooo fun, see ya tmrw",
    "omg my cat just knocked my coffee over haha",
    "gonna grab some pizza, u want some?",
]


@pytest.mark.usefixtures("no_network", "torch_single_thread")
def test_the_selected_stage_ranks_with_the_probe_of_the_latest_round(tmp_path: Path) -> None:
    seeds = tmp_path / "seeds.jsonl"
    rows = [
        {"text": "We hereby acknowledge receipt of your formal application.", "label": "formal"},
        {"text": "The minister delivered a statement to parliament this afternoon.", "label": "formal"},
        {"text": "haha dude that was awesome lol", "label": "casual"},
        {"text": "yo whats up, wanna hang out later?", "label": "casual"},
    ]
    seeds.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    spec = parse_spec(
        {
            "name": "sel",
            "modalities": ["text"],
            "select": {
                "budget": 3,
                "strategy": {"kind": "proxy", "wanted_label": "formal", "seed_files": [str(seeds)]},
            },
        }
    )
    lake = Lake(tmp_path / "lake")
    write_filtered(lake, "sel", "one", [(text, "en", 0.5) for text in FORMAL + CASUAL])

    before = run_stage(spec, lake, "selected", "one")
    ActiveLearning(spec.select, lake, "sel").run_round()
    after = run_stage(spec, lake, "selected", "one")

    assert (
        before.extra["strategy_stats"]["probe"]
        == "trained at selection time on 4 labels (no active-learning round yet)"
    )
    assert after.extra["strategy_stats"]["probe"] == "active-learning round 0 (4 labels)"
    assert after.extra["embeddings"]["reused"] == 6  # the round embedded the pool already
    kept = lake.read_table(lake.path("sel", "selected", "one"))
    assert sorted(kept.column("text").to_pylist()) == sorted(FORMAL)
    probe, _ = current_probe(spec.select, lake, "sel", TextEmbedder())
    expected = probe.wanted_probability(TextEmbedder().embed(kept.column("text").to_pylist()))
    assert kept.column("select_score").to_pylist() == pytest.approx(expected.tolist(), abs=1e-5)
