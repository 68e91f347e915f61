"""Toxicity: the largest of an English profanity classifier, per-language word lists and, optionally, a
Hugging Face classifier on the accelerator."""

from __future__ import annotations

import math
import re
import unicodedata
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import ClassVar

import pyarrow as pa

from curation_dagster.errors import SpecError
from curation_dagster.filters.base import Filter, Verdicts
from curation_dagster.filters.language import identify_languages
from curation_dagster.filters.model import TextClassifier
from curation_dagster.models.runtime import ModelRuntime
from curation_dagster.spec import TextClassifierSettings, ToxicitySettings

#: The shipped lists, `toxic_words_<lang>.txt`: one word or phrase per line, `#` starts a comment line.
WORD_LIST_FOLDER = Path(__file__).parent / "data"
#: Each whole-word hit multiplies the chance that a text is clean by 1/10 (see `word_list_score`).
HIT_WEIGHT = math.log(10)
#: A text whose language was identified with a lower probability than this counts as of unknown language.
MIN_LANGUAGE_SCORE = 0.5

_COMBINING_MARKS = re.compile("[\u0300-\u036f\u1ab0-\u1aff\u1dc0-\u1dff\u20d0-\u20ff\ufe20-\ufe2f]")
_SEPARATORS = re.compile(r"[\s\-]+")


def fold(text: str) -> str:
    """`text` case-folded, without accents and with curly apostrophes straight, so that `Crétin`, `CRETIN`
    and `cretin`, or `Scheiße` and `scheisse`, compare equal."""
    text = text.casefold().replace("\u2019", "'")
    if text.isascii():
        return text
    return _COMBINING_MARKS.sub("", unicodedata.normalize("NFKD", text))


def word_list_score(hits: int) -> float:
    """1 - exp(-ln 10 · hits): 0 for none, 0.9 for one listed word, 0.99 for two, 0.999 for three."""
    return 1.0 - math.exp(-HIT_WEIGHT * hits)


class WordList:
    """Whole-word matching of one language's words and phrases on folded text (see `fold`); a space or
    hyphen inside an entry matches any run of spaces and hyphens, so `ferme-la` finds `Ferme la`."""

    def __init__(self, entries: Iterable[str]) -> None:
        phrases = {tuple(_SEPARATORS.split(fold(entry).strip())) for entry in entries if entry.strip()}
        alternatives = "|".join(
            r"[\s\-]+".join(map(re.escape, parts)) for parts in sorted(phrases, key=len, reverse=True)
        )
        # Longest phrase first, so "fils de pute" counts once, not also as "pute".
        self._pattern = re.compile(rf"(?<!\w)(?:{alternatives})(?!\w)") if phrases else None

    @classmethod
    def read(cls, path: Path) -> WordList:
        lines = path.read_text(encoding="utf-8").splitlines()
        return cls(line for line in lines if not line.lstrip().startswith("#"))

    def matches(self, folded: str) -> list[str]:
        """Every listed word or phrase found in `folded`, in order, as it reads there (folded)."""
        if self._pattern is None:
            return []
        return [" ".join(_SEPARATORS.split(match)) for match in self._pattern.findall(folded)]


def load_word_lists(extra: Mapping[str, str]) -> dict[str, WordList]:
    """The shipped lists (en, de, fr, es), each language's extended by the file `extra` names for it."""
    entries: dict[str, list[str]] = {}
    for path in sorted(WORD_LIST_FOLDER.glob("toxic_words_*.txt")):
        entries[path.stem.removeprefix("toxic_words_")] = _entries(path)
    for lang, location in sorted(extra.items()):
        path = Path(location).expanduser()
        if not path.is_file():
            raise SpecError(
                f"toxicity.word_lists.{lang} is {location!r}, which is not a file: give a local text file "
                "with one word or phrase per line"
            )
        entries.setdefault(lang, []).extend(_entries(path))
    return {lang: WordList(words) for lang, words in entries.items()}


def _entries(path: Path) -> list[str]:
    lines = path.read_text(encoding="utf-8").splitlines()
    return [line for line in lines if line.strip() and not line.lstrip().startswith("#")]


def _unknown(lang: str | None, score: float) -> bool:
    return lang is None or score < MIN_LANGUAGE_SCORE


def classifier_scores(texts: list[str]) -> list[float]:
    """alt-profanity-check's probability that each text is profane, in one call for the batch."""
    if not texts:
        return []
    # Importing loads its vectorizer and linear SVM (shipped in the package), once per process.
    from profanity_check import predict_prob

    return [float(value) for value in predict_prob(texts)]


class Toxicity(Filter):
    """`toxicity_score` in [0, 1] is the largest of these parts, and `toxicity_source` names it:

    - `classifier`: alt-profanity-check's probability, for English text and text of unknown language only
      (it is trained on English: clean German sentences reach 0.85 with it);
    - `words:<lang>`: `word_list_score` of the whole-word hits of the item's language's list. The lists
      hold only words that insult, swear or slur in themselves, so one hit scores 0.9, above the default
      0.8, as the classifier scores a lone English insult (0.99999 for "idiot"); two score 0.99;
    - `model`: the `models.text_classifier` model's probability of `label_index`, when `use_model`.

    The item's language is its `lang` column, when a language filter ran earlier in the chain, or else
    identified here with py3langid. Unidentified or identified with probability below 0.5, it counts as
    unknown and the English list applies besides its own. Text in a language without a list, identified
    with confidence, scores 0 unless the model runs. Above `max_score` is `filter.toxicity.above_threshold`.
    """

    name = "toxicity"
    reads_text = True
    score_fields: ClassVar = [
        pa.field("toxicity_score", pa.float64()),
        pa.field("toxicity_source", pa.string()),
    ]

    def __init__(self, settings: ToxicitySettings, runtime: ModelRuntime | None = None) -> None:
        self.settings = settings
        self.word_lists = load_word_lists(settings.word_lists)
        model_settings = TextClassifierSettings(
            label_index=settings.label_index, max_tokens=settings.max_tokens
        )
        self.model = TextClassifier(model_settings, runtime) if settings.use_model else None

    def uses_accelerator(self) -> bool:
        return self.settings.use_model

    def evaluate(self, table: pa.Table) -> Verdicts:
        texts = [text or "" for text in table.column("text").to_pylist()]
        languages = self._languages(table, texts)
        english = [_unknown(lang, score) or lang == "en" for lang, score in languages]
        classified = iter(
            classifier_scores([text for text, is_en in zip(texts, english, strict=True) if is_en])
        )
        modelled = self.model.scores(texts) if self.model is not None else [None] * len(texts)
        scores: dict[str, list[object]] = {"toxicity_score": [], "toxicity_source": []}
        reasons: list[str | None] = []
        details: list[str | None] = []
        for text, (lang, lang_score), is_en, model in zip(texts, languages, english, modelled, strict=True):
            parts = self._parts(text, lang, lang_score, next(classified) if is_en else None, model)
            score, source, evidence = max(parts, key=lambda part: part[0], default=(0.0, "", ""))
            scores["toxicity_score"].append(score)
            scores["toxicity_source"].append(source if score > 0 else None)
            rejected = score > self.settings.max_score
            said = f"{source}: {evidence}" if evidence else source
            reasons.append(self.code("above_threshold") if rejected else None)
            details.append(f"toxicity {score:.3f} > {self.settings.max_score} ({said})" if rejected else None)
        return Verdicts(scores, reasons, details)

    def _parts(
        self, text: str, lang: str | None, lang_score: float, classifier: float | None, model: float | None
    ) -> list[tuple[float, str, str]]:
        """(score, source, evidence) for each part that applies to one text."""
        parts = [] if classifier is None else [(classifier, "classifier", "")]
        unknown = _unknown(lang, lang_score)
        lists = sorted(code for code in self.word_lists if code == lang or (unknown and code == "en"))
        folded = fold(text) if lists else ""
        for code in lists:
            found = self.word_lists[code].matches(folded)
            parts.append((word_list_score(len(found)), f"words:{code}", ", ".join(dict.fromkeys(found))))
        if model is not None:
            parts.append((model, "model", ""))
        return parts

    def _languages(self, table: pa.Table, texts: list[str]) -> list[tuple[str | None, float]]:
        """Each row's language and its probability: the `lang` and `lang_score` columns where set, else
        identified here."""
        rows = table.num_rows
        given = table.column("lang").to_pylist() if "lang" in table.column_names else [None] * rows
        given_scores = (
            table.column("lang_score").to_pylist() if "lang_score" in table.column_names else [None] * rows
        )
        missing = [index for index, lang in enumerate(given) if lang is None]
        found = dict(zip(missing, identify_languages([texts[index] for index in missing]), strict=True))
        languages: list[tuple[str | None, float]] = []
        for index, lang in enumerate(given):
            if lang is None:
                lang, score = found[index]
            else:
                score = 1.0 if given_scores[index] is None else given_scores[index]
            languages.append((lang, 0.0 if score is None else float(score)))
        return languages
