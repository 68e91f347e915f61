"""Colloquial versus formal register: a logistic regression over interpretable surface features.

The features are rates of markers that separate chat from edited prose in English, German, French and
Spanish: slang and abbreviations, contractions, emoticons and emoji, first- and second-person pronouns,
expressive punctuation, all-caps words, sentence and word length, and a Heylighen–Dewaele-style contrast
between formal function words (articles, prepositions) and deictic words (pronouns, adverbs,
interjections). The weights are fitted by `fit_register_model` on `data/register_train.jsonl` and shipped
in `data/register_weights.json` (`benchmarks/register_accuracy.py` refits them and reports accuracy).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from typing import Any, ClassVar

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from curation_dagster.errors import ModelNotConfigured
from curation_dagster.filters.base import Filter, Verdicts
from curation_dagster.spec import RegisterSettings

WEIGHTS_FILE = "register_weights.json"
TRAIN_FILE = "register_train.jsonl"
TEST_FILE = "register_test.jsonl"
L2_PENALTY = 1.0
"""Ridge penalty on the standardised weights (not the bias); fixed so that refitting is reproducible."""


def _words(text: str) -> pa.Array:
    return pa.array(sorted(set(text.split())), pa.large_string())


_SLANG = _words(
    # English chat abbreviations, reductions and interjections
    "lol lool lmao lmfao rofl omg omfg btw imo imho tbh idk idc ikr afaik fyi brb lmk smh ngl jk wtf ppl"
    " pls plz thx ty tho cuz coz bc rn asap gonna wanna gotta kinda sorta dunno lemme gimme ya yall y'all"
    " yeah yep yup nope nah u ur r yo dude bro guys ok okay cool awesome meh ugh welp aw oops yay wow hey"
    " hmm huh haha hahaha hehe xd stuff super congrats heaps pic pics"
    # German
    " boah bock alter ey jo nee ne nen nem ner naja puh krass geil mega voll echt halt nix hab grad isses"
    " kannste haste willste biste weißte glaub sorry sry kumpel mist digga leute"
    # French
    " mdr ptdr jsp jpp tkt stp bcp pk pq ouais nan ouf bah ben bon trop grave truc trucs mec genre"
    " chui chuis j'suis t'as t'es y'a faut fallait coucou salut crevé chiant délire galéré resto ciné"
    # Spanish
    " jaja jajaja jeje jejeje q k xq tb tmb porfa vale tío tía guay mola flipa coña buah uf oye holaa"
    " hola peli finde chicos pasada muertísimo"
)
_SPEAKER_AND_FAMILIAR_YOU = _words(
    # first person singular and the familiar second person, which edited prose rarely uses
    "i me my mine myself ich mich mir mein meine meinen meinem meiner du dich dir dein deine deinen deinem"
    " euch je moi me mon ma mes tu toi te ton ta tes yo mí mi mis conmigo tú tu tus te ti contigo vosotros"
    " vosotras os vuestro vuestra"
)
_WE_AND_POLITE_YOU = _words(
    # first person plural and the second person that business letters also use
    "we us our ours ourselves you your yours yourself yourselves wir uns unser unsere unseren ihr ihnen"
    " nous notre nos vous votre vos nosotros nosotras nos nuestro nuestra nuestros nuestras usted ustedes"
)
_DEICTIC = _words(
    # adverbs of place, time and stance, interjections, third-person and demonstrative pronouns
    "here there now then today yesterday tomorrow tonight just really actually totally pretty so very too"
    " still already again always never maybe probably anyway basically literally honestly seriously"
    " definitely oh ah well yes no it he she they him her them this great amazing fantastic awful crazy"
    " insane perfect"
    " hier da dort jetzt heute gestern morgen gerade eben wirklich total ganz mal schon noch wieder immer"
    " nie vielleicht eigentlich irgendwie ja nein ach na tja es er toll perfekt endlich"
    " ici là maintenant aujourd'hui demain juste vraiment très encore toujours jamais peut-être"
    " franchement bref oui hein voilà ça ce il elle ils elles on génial fou incroyable"
    " aquí ahí allí ahora hoy ayer mañana ya muy tan todavía siempre nunca quizás igual bueno pues sí eso"
    " esto él ella ellos ellas anoche genial"
)
_FORMAL_FUNCTION = _words(
    # articles and prepositions
    "the a an of in on at by for with from into upon within without between among through during under"
    " over above below across against towards throughout despite via per"
    " der die das den dem des ein eine einen einem einer eines von vom zu zum zur mit bei beim nach aus seit"
    " über unter zwischen durch gegen ohne während wegen innerhalb außerhalb im in am an auf für vor"
    " le la les un une des du de au aux à en dans par pour sur sous avec sans entre vers chez depuis"
    " pendant contre parmi lors"
    " el los las lo una unos unas del al con sin sobre hacia desde hasta durante ante bajo tras"
)
_FORMAL_MARKER = _words(
    "however therefore thus hence moreover furthermore consequently whereas accordingly notwithstanding"
    " pursuant hereby herein hereunder thereof whom whose which respectively approximately namely shall"
    " subsequently regarding"
    " jedoch daher somit folglich zudem ferner bezüglich gemäß sowie hinsichtlich aufgrund wobei welche"
    " welcher welches dessen deren hiermit"
    " cependant toutefois ainsi néanmoins notamment conformément lequel laquelle lesquels auquel dont afin"
    " selon présent"
    " asimismo obstante mediante cuyo cuya cuyos dicho dicha conforme respecto según además cual presente"
)

#: Separators between tokens: anything but letters, digits and the apostrophe (kept for contractions).
_TOKEN_SEPARATOR = r"[^\p{L}\p{N}']+"
_CONTRACTION = r"n't$|'(?:re|ve|ll|m|d)$"
_SPEAKER_ELISION = r"^(?:[jmt]|i)'"
_WE_YOU_ELISION = r"^(?:you|we)'"
_ARTICLE_ELISION = r"^(?:l|d|qu)'"
_LAUGHTER = r"^(?:(?:[hj]a){2,}h?|(?:[hj]e){2,}|l+o+l+|x+d+|m+d+r+|pt+d+r+)$"
_EMOTICON = (
    r"(?:^|[^\p{L}\p{N}:/])(?:[:;=][-o'^]?[)(\]\[DPpO3/\\|*]|[xX]D\b|<3|\^\^|\^_\^|-_-|T_T)"
    r"|[\x{1F300}-\x{1FAFF}\x{2600}-\x{27BF}]"
)
_REPEATED_PUNCTUATION = r"[!?]{2,}|\.{3,}|…"
_ELONGATION = r"a{3,}|e{3,}|i{3,}|o{3,}|u{3,}|y{3,}|h{3,}|s{4,}"
_TERMINATOR = r"[.!?…]+(?:\s|$)"
_FINAL_PUNCTUATION = r"[.!?…:;)\]\"'»”]\s*$"

FEATURES: tuple[str, ...] = (
    "slang_rate",
    "has_slang",
    "contraction_rate",
    "clitic_s_rate",
    "emoticons_per_sentence",
    "speaker_and_familiar_you_rate",
    "we_and_polite_you_rate",
    "deictic_rate",
    "formal_function_rate",
    "formal_marker_rate",
    "exclamations_per_sentence",
    "questions_per_sentence",
    "repeated_punctuation_per_sentence",
    "elongations_per_sentence",
    "all_caps_rate",
    "starts_lowercase",
    "lowercase_i",
    "no_final_punctuation",
    "log_sentence_length",
    "mean_word_length",
    "long_word_share",
    "number_share",
    "comma_rate",
)
"""The model's inputs, in the order of the shipped weights."""


def register_features(texts: pa.Array | pa.ChunkedArray) -> tuple[np.ndarray, np.ndarray]:
    """The feature matrix (one row per text, columns as `FEATURES`) and the number of words per text.

    Computed with Arrow kernels over the whole batch; a null text counts as empty.
    """
    text = pc.fill_null(pc.cast(texts, pa.large_string()), "")
    if isinstance(text, pa.ChunkedArray):
        text = text.combine_chunks()
    text = pc.replace_substring(text, "’", "'")
    rows = len(text)
    tokens = pc.split_pattern_regex(text, _TOKEN_SEPARATOR)
    parents = pc.list_parent_indices(tokens).to_numpy()
    flat = pc.utf8_trim(pc.list_flatten(tokens), "'")
    lower = pc.utf8_lower(flat)

    def per_text(mask: Any) -> np.ndarray:
        values = np.asarray(mask.to_numpy(zero_copy_only=False), dtype=np.float64)
        return np.bincount(parents, weights=values, minlength=rows)[:rows]

    def matches(pattern: str, values: Any = lower) -> np.ndarray:
        return per_text(pc.match_substring_regex(values, pattern))

    def counts(pattern: str) -> np.ndarray:
        return np.asarray(pc.count_substring_regex(text, pattern).to_numpy(), dtype=np.float64)

    lengths = pc.utf8_length(flat)
    is_word = pc.match_substring_regex(flat, r"\p{L}")
    words = per_text(is_word)
    numbers = matches(r"^\p{N}+$")
    word_chars = per_text(pc.if_else(is_word, lengths, 0))
    long_words = per_text(pc.and_(is_word, pc.greater_equal(lengths, 8)))
    all_caps = per_text(pc.and_(pc.utf8_is_upper(flat), pc.greater_equal(lengths, 2)))
    slang = per_text(pc.is_in(lower, value_set=_SLANG)) + matches(_LAUGHTER)
    speaker = per_text(pc.is_in(lower, value_set=_SPEAKER_AND_FAMILIAR_YOU)) + matches(_SPEAKER_ELISION)
    we_you = per_text(pc.is_in(lower, value_set=_WE_AND_POLITE_YOU)) + matches(_WE_YOU_ELISION)
    function = per_text(pc.is_in(lower, value_set=_FORMAL_FUNCTION)) + matches(_ARTICLE_ELISION)
    final = np.asarray(pc.match_substring_regex(text, _FINAL_PUNCTUATION).to_numpy(zero_copy_only=False))
    no_final = np.where(final | (words == 0), 0.0, 1.0)
    sentences = np.maximum(1.0, counts(_TERMINATOR) + no_final)
    per_word = np.maximum(words, 1.0)
    columns = {
        "slang_rate": slang / per_word,
        "has_slang": (slang > 0).astype(np.float64),
        "contraction_rate": matches(_CONTRACTION) / per_word,
        "clitic_s_rate": matches(r"'s$") / per_word,
        "emoticons_per_sentence": counts(_EMOTICON) / sentences,
        "speaker_and_familiar_you_rate": speaker / per_word,
        "we_and_polite_you_rate": we_you / per_word,
        "deictic_rate": per_text(pc.is_in(lower, value_set=_DEICTIC)) / per_word,
        "formal_function_rate": function / per_word,
        "formal_marker_rate": per_text(pc.is_in(lower, value_set=_FORMAL_MARKER)) / per_word,
        "exclamations_per_sentence": counts("!") / sentences,
        "questions_per_sentence": counts(r"\?") / sentences,
        "repeated_punctuation_per_sentence": counts(_REPEATED_PUNCTUATION) / sentences,
        "elongations_per_sentence": counts(_ELONGATION) / sentences,
        "all_caps_rate": all_caps / per_word,
        "starts_lowercase": counts(r"^\s*\p{Ll}"),
        "lowercase_i": (matches(r"^i(?:'|$)", flat) > 0).astype(np.float64),
        "no_final_punctuation": no_final,
        "log_sentence_length": np.log1p(words / sentences),
        "mean_word_length": word_chars / per_word,
        "long_word_share": long_words / per_word,
        "number_share": numbers / np.maximum(words + numbers, 1.0),
        "comma_rate": counts(",") / per_word,
    }
    return np.column_stack([columns[name] for name in FEATURES]), words


@dataclass(frozen=True)
class RegisterModel:
    """Standardisation and logistic-regression weights over `FEATURES`; `formality` is P(formal)."""

    mean: np.ndarray
    scale: np.ndarray
    weights: np.ndarray
    bias: float

    def formality(self, texts: pa.Array | pa.ChunkedArray) -> np.ndarray:
        """P(formal) per text, NaN where a text has no words."""
        features, words = register_features(texts)
        logits = ((features - self.mean) / self.scale) @ self.weights + self.bias
        return np.where(words > 0, 1.0 / (1.0 + np.exp(-logits)), np.nan)

    def to_json(self) -> dict[str, object]:
        return {
            "features": list(FEATURES),
            "mean": self.mean.tolist(),
            "scale": self.scale.tolist(),
            "weights": self.weights.tolist(),
            "bias": self.bias,
            "l2_penalty": L2_PENALTY,
            "trained_on": TRAIN_FILE,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> RegisterModel:
        if tuple(data.get("features", ())) != FEATURES:
            raise ModelNotConfigured(
                f"{WEIGHTS_FILE} was fitted on other features than register.FEATURES: refit it with "
                "`python benchmarks/register_accuracy.py`"
            )
        return cls(
            np.asarray(data["mean"], np.float64),
            np.asarray(data["scale"], np.float64),
            np.asarray(data["weights"], np.float64),
            float(data["bias"]),
        )


def fit_register_model(texts: Sequence[str], formal: Sequence[bool]) -> RegisterModel:
    """L2-penalised logistic regression fitted by Newton's method to convergence, so the same data
    always gives the same weights (no random start, no early stopping)."""
    features, _ = register_features(pa.array(texts, pa.large_string()))
    mean = features.mean(axis=0)
    scale = features.std(axis=0)
    scale[scale == 0] = 1.0
    x = np.column_stack([(features - mean) / scale, np.ones(len(texts))])
    y = np.asarray(formal, np.float64)
    penalty = np.full(x.shape[1], L2_PENALTY)
    penalty[-1] = 0.0
    theta = np.zeros(x.shape[1])
    for _ in range(100):
        p = 1.0 / (1.0 + np.exp(-(x @ theta)))
        gradient = x.T @ (p - y) + penalty * theta
        hessian = (x * (p * (1 - p))[:, None]).T @ x + np.diag(penalty)
        step = np.linalg.solve(hessian, gradient)
        theta -= step
        if np.abs(step).max() < 1e-12:
            break
    return RegisterModel(mean, scale, theta[:-1], float(theta[-1]))


def read_register_examples(name: str) -> tuple[list[str], list[bool]]:
    """Texts and labels (True = formal) of a shipped labelled file, `TRAIN_FILE` or `TEST_FILE`."""
    lines = (resources.files("curation_dagster.filters") / "data" / name).read_text("utf-8").splitlines()
    items = [json.loads(line) for line in lines if line.strip()]
    return [item["text"] for item in items], [item["label"] == "formal" for item in items]


@lru_cache(maxsize=1)
def shipped_register_model() -> RegisterModel:
    """The shipped weights, read once per process."""
    path = resources.files("curation_dagster.filters") / "data" / WEIGHTS_FILE
    return RegisterModel.from_json(json.loads(path.read_text("utf-8")))


class Register(Filter):
    """Scores `formality` in [0, 1] (1 = formal) and rejects outside `[min_formality, max_formality]`;
    text without words gets a null score and is kept."""

    name = "register"
    reads_text = True
    score_fields: ClassVar = [pa.field("formality", pa.float64())]

    def __init__(self, settings: RegisterSettings) -> None:
        self.settings = settings

    def evaluate(self, table: pa.Table) -> Verdicts:
        low, high = self.settings.min_formality, self.settings.max_formality
        formality = shipped_register_model().formality(table["text"])
        scores: list[object] = [None if np.isnan(value) else float(value) for value in formality]
        reasons: list[str | None] = []
        details: list[str | None] = []
        for score in formality:
            if low is not None and score < low:
                reasons.append(self.code("too_colloquial"))
                details.append(f"formality {score:.3f} is below the minimum {low}")
            elif high is not None and score > high:
                reasons.append(self.code("too_formal"))
                details.append(f"formality {score:.3f} is above the maximum {high}")
            else:
                reasons.append(None)
                details.append(None)
        return Verdicts({"formality": scores}, reasons, details)
