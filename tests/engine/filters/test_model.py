"""Tests for `curation_dagster/filters/model.py`: a real (tiny, random) classifier scores text in batches."""

from pathlib import Path

import pyarrow as pa
import pytest

from curation_dagster.errors import ModelNotConfigured
from curation_dagster.filters.chain import build_chain
from curation_dagster.filters.model import TextClassifier
from curation_dagster.models.runtime import ModelRuntime
from curation_dagster.spec import FilterSettings, TextClassifierSettings
from tests.model_fixtures import build_tiny_classifier

pytestmark = pytest.mark.usefixtures("no_network")

TEXTS = ["the cat sat on the mat .", "a dog ran", "the mat", "a cat sat on a dog . the dog ran on the mat ."]


@pytest.fixture(scope="module")
def classifier_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_classifier(tmp_path_factory.mktemp("models") / "classifier", num_labels=2)


def runtime(folder: Path, batch_size: int = 2) -> ModelRuntime:
    return ModelRuntime.local("cpu", text_classifier=str(folder), batch_size=batch_size)


def test_scores_are_probabilities_in_input_order_whatever_the_batching(classifier_folder: Path) -> None:
    batched = TextClassifier(TextClassifierSettings(), runtime(classifier_folder, batch_size=3)).scores(TEXTS)
    one_by_one = [
        TextClassifier(TextClassifierSettings(), runtime(classifier_folder, batch_size=1)).scores([text])[0]
        for text in TEXTS
    ]
    assert all(0.0 <= score <= 1.0 for score in batched)
    assert batched == pytest.approx(one_by_one, abs=1e-5)


def test_scores_are_the_same_on_every_run(classifier_folder: Path) -> None:
    first = TextClassifier(TextClassifierSettings(), runtime(classifier_folder)).scores(TEXTS)
    second = TextClassifier(TextClassifierSettings(), runtime(classifier_folder)).scores(TEXTS)
    assert first == second


def test_a_score_above_max_score_rejects_and_keeps_the_score(classifier_folder: Path) -> None:
    table = pa.table({"text": TEXTS})
    strict = TextClassifier(TextClassifierSettings(max_score=0.0), runtime(classifier_folder)).evaluate(table)
    assert strict.reasons == ["filter.text_classifier.above_threshold"] * len(TEXTS)
    assert all(isinstance(score, float) for score in strict.scores["text_classifier_score"])
    lenient = TextClassifier(TextClassifierSettings(max_score=1.0), runtime(classifier_folder)).evaluate(
        table
    )
    assert lenient.reasons == [None] * len(TEXTS)


def test_the_model_is_loaded_once_per_runtime(classifier_folder: Path) -> None:
    shared = runtime(classifier_folder)
    TextClassifier(TextClassifierSettings(), shared).scores(TEXTS[:1])
    model = shared.sequence_classifier()[0]
    TextClassifier(TextClassifierSettings(), shared).scores(TEXTS[1:])
    assert shared.sequence_classifier()[0] is model


def test_without_a_runtime_the_filter_says_what_it_needs() -> None:
    with pytest.raises(ModelNotConfigured, match="ModelRuntime"):
        TextClassifier(TextClassifierSettings()).scores(["text"])


def test_without_a_model_path_the_error_names_the_setting() -> None:
    with pytest.raises(ModelNotConfigured, match=r"models\.text_classifier"):
        TextClassifier(TextClassifierSettings(), ModelRuntime.local("cpu")).scores(["text"])


def test_a_label_index_the_model_does_not_have_is_a_configuration_error(classifier_folder: Path) -> None:
    with pytest.raises(ModelNotConfigured, match="label_index is 5 but the model has 2 labels"):
        TextClassifier(TextClassifierSettings(label_index=5), runtime(classifier_folder)).scores(TEXTS)


def test_a_chain_with_the_classifier_needs_the_accelerator_and_one_without_does_not() -> None:
    with_model = FilterSettings(text=(TextClassifierSettings(),))
    assert build_chain(with_model).needs_accelerator
    assert not build_chain(FilterSettings()).needs_accelerator
