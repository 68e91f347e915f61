"""Tests of curation_dagster/filters/toxicity.py: the demo's planted toxic posts in four languages, word
lists (whole words, case, accents, phrases), which parts apply to which language, and the model part with
a tiny random classifier."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pytest

from curation_dagster.demo import FORUM_SENTENCES, TOXIC_FORUM_TEXTS, TOXIC_NEWS_TEXTS
from curation_dagster.errors import ModelNotConfigured, SpecError
from curation_dagster.filters import toxicity as toxicity_module
from curation_dagster.filters.base import FilterChain
from curation_dagster.filters.language import Language
from curation_dagster.filters.model import TextClassifier
from curation_dagster.filters.toxicity import Toxicity, WordList, classifier_scores, fold, word_list_score
from curation_dagster.models.runtime import ModelRuntime
from curation_dagster.spec import LanguageSettings, TextClassifierSettings, ToxicitySettings
from tests.model_fixtures import build_tiny_classifier

pytestmark = pytest.mark.usefixtures("no_network")

DEFAULT = Toxicity(ToxicitySettings())
TINY_VOCABULARY_TEXTS = [
    "the cat sat on the mat .",
    "a dog ran",
    "a cat sat on a dog . the dog ran on the mat .",
]


def texts(
    *values: str | None, lang: list[str | None] | None = None, lang_score: list[float] | None = None
) -> pa.Table:
    columns: dict[str, pa.Array] = {"text": pa.array(values, pa.large_string())}
    if lang is not None:
        columns["lang"] = pa.array(lang, pa.string())
    if lang_score is not None:
        columns["lang_score"] = pa.array(lang_score, pa.float64())
    return pa.table(columns)


@pytest.fixture(scope="module")
def classifier_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_classifier(tmp_path_factory.mktemp("models") / "classifier", num_labels=2)


def test_the_demo_toxic_posts_in_four_languages_are_rejected() -> None:
    planted = [text for language in sorted(TOXIC_FORUM_TEXTS) for text in TOXIC_FORUM_TEXTS[language]]

    verdicts = DEFAULT.evaluate(texts(*planted, *TOXIC_NEWS_TEXTS))

    assert verdicts.reasons == ["filter.toxicity.above_threshold"] * (len(planted) + len(TOXIC_NEWS_TEXTS))
    sources = verdicts.scores["toxicity_source"]
    assert sources[:6] == ["words:de", "words:de", "classifier", "classifier", "words:es", "words:es"]
    assert sources[6:8] == ["words:fr", "words:fr"]


def test_the_demo_clean_forum_sentences_are_kept_one_by_one_and_joined() -> None:
    sentences = [sentence for language in sorted(FORUM_SENTENCES) for sentence in FORUM_SENTENCES[language]]
    posts = [
        " ".join(FORUM_SENTENCES[language][start : start + 3])
        for language in sorted(FORUM_SENTENCES)
        for start in range(0, 24, 3)
    ]

    verdicts = DEFAULT.evaluate(texts(*sentences, *posts))

    assert verdicts.reasons == [None] * (len(sentences) + len(posts))
    assert max(verdicts.scores["toxicity_score"]) < 0.8  # type: ignore[type-var]


def test_a_word_list_reject_names_the_list_and_the_words_found() -> None:
    verdicts = DEFAULT.evaluate(texts("T'es vraiment un crétin, tes messages sont nuls."))

    assert verdicts.scores == {"toxicity_score": [pytest.approx(0.9)], "toxicity_source": ["words:fr"]}
    assert verdicts.details == ["toxicity 0.900 > 0.8 (words:fr: cretin)"]


def test_one_listed_word_scores_above_the_default_threshold_and_more_score_higher() -> None:
    assert word_list_score(0) == 0.0
    assert word_list_score(1) == pytest.approx(0.9)
    assert word_list_score(2) == pytest.approx(0.99)
    assert ToxicitySettings().max_score < word_list_score(1)


def test_word_lists_match_whole_words_only() -> None:
    words = WordList(["idiot", "con"])

    assert words.matches(fold("Idiot! You IDIOT, idiotic idiots, con, contact, bacon")) == [
        "idiot",
        "idiot",
        "con",
    ]


def test_word_lists_ignore_case_and_accents_on_both_sides() -> None:
    words = WordList(["crétin", "Scheiße", "cabron"])

    found = words.matches(fold("CRETIN, Crétin, crétin, SCHEISSE, scheiße, Cabrón"))

    assert found == ["cretin", "cretin", "cretin", "scheisse", "scheisse", "cabron"]


def test_phrases_match_across_whitespace_and_hyphens_and_count_once() -> None:
    words = WordList(["fils de pute", "pute", "ferme-la"])

    found = words.matches(fold("Fils  de\npute ! Ferme la. FERME-LA. fils-de-pute"))

    assert found == ["fils de pute", "ferme la", "ferme la", "fils de pute"]


def test_the_lang_column_chooses_the_word_list_and_skips_identification() -> None:
    table = texts("Du bist ein connard", "Du bist ein connard", lang=["de", "fr"], lang_score=[0.99, 0.99])

    verdicts = DEFAULT.evaluate(table)

    assert verdicts.scores["toxicity_score"] == [0.0, pytest.approx(0.9)]
    assert verdicts.scores["toxicity_source"] == [None, "words:fr"]
    assert verdicts.reasons == [None, "filter.toxicity.above_threshold"]


def test_the_english_classifier_is_skipped_for_confident_other_languages() -> None:
    # alt-profanity-check alone scores this clean German sentence 0.85.
    sentence = "Puh, die Prüfung war echt schwerer als gedacht."
    assert classifier_scores([sentence])[0] > 0.8

    verdicts = DEFAULT.evaluate(texts(sentence))

    assert verdicts.scores == {"toxicity_score": [0.0], "toxicity_source": [None]}
    assert verdicts.reasons == [None]


def test_an_uncertain_language_also_gets_the_english_classifier_and_list() -> None:
    table = texts("Du wanker", "Du wanker", lang=["de", "de"], lang_score=[0.99, 0.3])

    verdicts = DEFAULT.evaluate(table)

    assert verdicts.reasons == [None, "filter.toxicity.above_threshold"]
    assert verdicts.scores["toxicity_source"] == [None, "classifier"]


def test_empty_and_null_text_are_scored_and_kept() -> None:
    verdicts = DEFAULT.evaluate(texts(None, "", "   "))

    assert verdicts.reasons == [None, None, None]
    assert all(0.0 <= score < 0.2 for score in verdicts.scores["toxicity_score"])  # type: ignore[operator]


def test_an_insult_at_the_end_of_an_enormous_text_is_found() -> None:
    clean = "Wir haben am Wochenende mit den Kindern einen langen Spaziergang im Wald gemacht. " * 20_000
    verdicts = DEFAULT.evaluate(texts(clean, clean + "Du Vollidiot."))

    assert verdicts.reasons == [None, "filter.toxicity.above_threshold"]
    assert verdicts.scores["toxicity_source"] == [None, "words:de"]


def test_extra_word_lists_add_a_language_and_extend_a_shipped_one(tmp_path: Path) -> None:
    italian = tmp_path / "it.txt"
    italian.write_text("# Italian\nstronzo\n", encoding="utf-8")
    german = tmp_path / "de.txt"
    german.write_text("Knalltüte\n", encoding="utf-8")
    toxicity = Toxicity(ToxicitySettings(word_lists={"it": str(italian), "de": str(german)}))
    table = texts(
        "Sei uno stronzo", "Du Knalltüte", "Du Vollidiot", lang=["it", "de", "de"], lang_score=[1.0] * 3
    )

    verdicts = toxicity.evaluate(table)

    assert verdicts.scores["toxicity_source"] == ["words:it", "words:de", "words:de"]
    assert verdicts.reasons == ["filter.toxicity.above_threshold"] * 3
    assert DEFAULT.evaluate(table).reasons == [None, None, "filter.toxicity.above_threshold"]


def test_a_missing_word_list_file_is_a_spec_error_naming_the_setting(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match=r"toxicity\.word_lists\.it is '.*missing\.txt', which is not a file"):
        Toxicity(ToxicitySettings(word_lists={"it": str(tmp_path / "missing.txt")}))


def test_the_model_part_scores_with_the_configured_label(classifier_folder: Path) -> None:
    runtime = ModelRuntime.local("cpu", text_classifier=str(classifier_folder), batch_size=2)
    table = texts(*TINY_VOCABULARY_TEXTS)
    classifier = classifier_scores(TINY_VOCABULARY_TEXTS)
    sources: list[object] = []

    for label in (0, 1):
        toxicity = Toxicity(
            ToxicitySettings(use_model=True, label_index=label, max_tokens=16, max_score=1.0), runtime
        )
        model = TextClassifier(TextClassifierSettings(label_index=label, max_tokens=16), runtime).scores(
            TINY_VOCABULARY_TEXTS
        )

        verdicts = toxicity.evaluate(table)

        assert verdicts.scores["toxicity_score"] == [
            max(pair) for pair in zip(classifier, model, strict=True)
        ]
        expected = ["model" if m > c else "classifier" for c, m in zip(classifier, model, strict=True)]
        assert verdicts.scores["toxicity_source"] == expected
        sources += expected
    assert "model" in sources  # a two-label model gives one of its two labels at least 0.5 per text


def test_only_the_model_part_needs_the_accelerator() -> None:
    assert Toxicity(ToxicitySettings(use_model=True)).uses_accelerator()
    assert not DEFAULT.uses_accelerator()


def test_the_model_part_without_a_runtime_says_what_it_needs() -> None:
    with pytest.raises(ModelNotConfigured, match="ModelRuntime"):
        Toxicity(ToxicitySettings(use_model=True)).evaluate(texts("hello there"))


def test_the_model_part_without_a_model_path_names_the_setting() -> None:
    toxicity = Toxicity(ToxicitySettings(use_model=True), ModelRuntime.local("cpu"))

    with pytest.raises(ModelNotConfigured, match=r"models\.text_classifier"):
        toxicity.evaluate(texts("hello there"))


def test_after_the_language_filter_in_a_chain_toxicity_reads_its_lang_column(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    identified: list[list[str]] = []
    monkeypatch.setattr(toxicity_module, "identify_languages", lambda items: identified.append(items) or [])
    chain = FilterChain({"text": [Language(LanguageSettings(keep=("de", "fr"))), DEFAULT]})
    table = pa.table(
        {
            "id": ["de", "fr", "en"],
            "modality": ["text"] * 3,
            "text": pa.array(
                [FORUM_SENTENCES["de"][0], TOXIC_FORUM_TEXTS["fr"][1], FORUM_SENTENCES["en"][0]],
                pa.large_string(),
            ),
        }
    )

    kept, rejected = chain.run(table)

    assert identified == [[]]
    assert kept.column("id").to_pylist() == ["de"]
    assert kept.column("lang").to_pylist() == ["de"]
    assert kept.column("toxicity_score").to_pylist() == [0.0]
    assert rejected.column("id").to_pylist() == ["fr", "en"]
    assert rejected.column("reject_reason").to_pylist() == [
        "filter.toxicity.above_threshold",
        "filter.language.not_kept",
    ]
    assert rejected.column("toxicity_source").to_pylist() == ["words:fr", None]


def test_importing_the_module_loads_no_model() -> None:
    code = (
        "import sys, curation_dagster.filters.toxicity; "
        "print(sorted({'profanity_check', 'sklearn', 'py3langid', 'torch'} & set(sys.modules)))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)

    assert result.stdout.strip() == "[]"
