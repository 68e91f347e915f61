"""Tests of curation_dagster/filters/fasttext_batch.py: the batch engine gives fasttext-predict's label for every
text and its probability to within float32 rounding, on sentences in many scripts, real text and generated
text (labels, end-of-line words, NUL bytes); a word's vector is the same whether the word is new or seen
before, and after the word table starts again; files it does not read are left to fasttext-predict."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from curation_dagster.filters import fasttext_batch
from curation_dagster.filters.fasttext_batch import BatchFastText, _fnv1a
from curation_dagster.filters.language import packaged_fasttext_path
from tests.engine.filters.test_language import SENTENCES
from tests.engine.filters.text_strategies import DOCUMENTS, real_texts

#: fastText computes in float32; the batch engine adds the same vectors in another order.
TOLERANCE = 1e-5
#: Words fastText reads in a special way: labels (left out), its end of line (ends the text), NUL (a space).
SPECIAL = ["__label__en", "__label__", "</s>", "\0", "<", ">", "</s>x", "x__label__de"]
TEXTS = st.lists(
    st.one_of(
        DOCUMENTS,
        st.lists(st.sampled_from([*SPECIAL, "Haus", "house", "maison", " ", "\t"])).map(" ".join),
    ),
    min_size=1,
    max_size=6,
)


@pytest.fixture(scope="module")
def reference() -> Any:
    import fasttext

    return fasttext.load_model(packaged_fasttext_path())


@pytest.fixture
def model() -> BatchFastText:
    loaded = BatchFastText.load(packaged_fasttext_path())
    assert loaded is not None
    return loaded


def assert_like_fasttext_predict(model: BatchFastText, reference: Any, texts: list[str]) -> None:
    labels, probabilities = model.predict(pa.array(texts, pa.large_string()))
    for text, label, probability in zip(texts, labels, probabilities, strict=True):
        (expected_label,), (expected,) = reference.predict(text.replace("\n", " "), k=1)
        assert (label, probability) == (expected_label, pytest.approx(expected, abs=TOLERANCE)), text


def test_sentences_in_many_languages_get_fasttext_predicts_labels(
    model: BatchFastText, reference: Any
) -> None:
    assert_like_fasttext_predict(model, reference, list(SENTENCES))


def test_real_text_gets_fasttext_predicts_labels(model: BatchFastText, reference: Any) -> None:
    assert_like_fasttext_predict(model, reference, real_texts())


@settings(max_examples=300, deadline=None)
@given(TEXTS)
def test_generated_text_gets_fasttext_predicts_labels(reference: Any, texts: list[str]) -> None:
    loaded = BatchFastText.load(packaged_fasttext_path())
    assert loaded is not None

    assert_like_fasttext_predict(loaded, reference, texts)


def test_a_written_end_of_line_word_ends_the_text(model: BatchFastText) -> None:
    german = "Der Zug nach Hamburg fährt heute eine Stunde später ab"
    english = "The committee will publish its final report next spring"

    labels, probabilities = model.predict(pa.array([f"{german} </s> {english}", german]))

    assert labels == ["__label__de", "__label__de"]
    assert probabilities[0] == probabilities[1]


def test_labels_written_in_the_text_are_left_out(model: BatchFastText) -> None:
    german = "Der Zug nach Hamburg fährt heute eine Stunde später ab"

    labels, probabilities = model.predict(pa.array([f"__label__en {german} __label__fr", german]))

    assert labels == ["__label__de", "__label__de"]
    assert probabilities[0] == probabilities[1]


def test_a_word_scores_the_same_new_and_seen_before(model: BatchFastText) -> None:
    texts = pa.array(list(SENTENCES))

    first = model.predict(texts)
    again = model.predict(texts)

    assert first == again


def test_the_word_table_starts_again_past_its_limit_and_scores_the_same(
    model: BatchFastText, monkeypatch: pytest.MonkeyPatch
) -> None:
    texts = pa.array(list(SENTENCES))
    expected = model.predict(texts)
    small = BatchFastText.load(packaged_fasttext_path())
    assert small is not None
    monkeypatch.setattr(fasttext_batch, "WORD_LIMIT", 20)

    found = [small.predict(texts.slice(start, 2)) for start in range(0, len(texts), 2)]

    assert len(small._table.rows) < 60
    assert [label for labels, _ in found for label in labels] == expected[0]
    assert [score for _, scores in found for score in scores] == expected[1]


def test_fnv1a_takes_each_byte_as_a_signed_char() -> None:
    def fasttext_hash(data: bytes) -> int:
        value = 2166136261
        for byte in data:
            value = ((value ^ (byte - 256 if byte > 127 else byte)) & 0xFFFFFFFF) * 16777619 & 0xFFFFFFFF
        return value

    pieces = [b"<ha", b"us>", "\xe4\u20ac".encode(), "😀".encode(), b"a"]
    data = b"".join(pieces)
    starts = [sum(map(len, pieces[:index])) for index in range(len(pieces))]
    stops = [start + len(piece) for start, piece in zip(starts, pieces, strict=True)]

    hashes = _fnv1a(np.frombuffer(data, np.uint8), np.array(starts), np.array(stops))

    assert hashes.tolist() == [fasttext_hash(piece) for piece in pieces]


def test_a_file_that_is_not_a_fasttext_model_is_not_read(tmp_path: Path) -> None:
    path = tmp_path / "model.ftz"
    path.write_bytes(b"stand-in" * 20)

    assert BatchFastText.load(str(path)) is None


def test_a_model_with_another_loss_is_left_to_fasttext_predict(tmp_path: Path) -> None:
    data = bytearray(Path(packaged_fasttext_path()).read_bytes())
    data[8 + 6 * 4 : 8 + 7 * 4] = (3).to_bytes(4, "little")  # the loss: softmax instead of hierarchical
    path = tmp_path / "softmax.ftz"
    path.write_bytes(bytes(data))

    assert BatchFastText.load(str(path)) is None
