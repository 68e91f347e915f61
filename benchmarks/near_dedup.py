"""Near dedup: curation_dagster's MinHash against datasketch and rensa, on the same texts in one process.

The corpus is made from real English found on this machine: Python's own documentation
(`pydoc_data.topics`), docstrings of the standard library, the long descriptions of the installed
packages (`*.dist-info/METADATA`) and `/usr/share/common-licenses`. It is split into sentences and into
documents of about 100 to 600 words (groups of consecutive paragraphs); documents repeated exactly, or
sharing half their words with an earlier one, are dropped so that the ground truth is clean. Past the
real documents, new ones are drawn from the same sentences. A share of the corpus are planted variants of
earlier documents (words replaced, inserted or deleted at 5% and 10%, words replaced at 20%, a sentence
moved, a header or footer line added, case, punctuation and line-wrapping changes), the duplicates that
must be found; rewrites, words replaced at 30% and 40%, which must be kept; and hard negatives, a block of
one document's sentences followed by a block of another's (word-set Jaccard 0.30 to 0.45 with the closer
of the two), which must never be removed.

For each library the script prints recall and precision against the plant (removing a rewrite costs
precision), the share removed per kind of variant, hard negatives and rewrites removed,
documents and megabytes per second per core from raw text to signatures (normalising and shingling
included) and for the whole dedup, and the ratios. The references use the same shingles, number of
hashes, bands and threshold as our settings: datasketch `MinHash` + `MinHashLSH` (query, then insert, in
corpus order) and rensa as its README shows (`RMinHash` batch signatures, `RMinHashLSH` and
`RMinHashDeduplicator`). Every library runs on one thread: the thread variables of OpenMP, OpenBLAS, MKL,
numexpr and Rayon are set to 1 before numpy or rensa is imported, and the per-core rates divide by the CPU
time of the process, which counts every thread.

    python benchmarks/near_dedup.py                       # 20,000 documents, about 2½ minutes
    python benchmarks/near_dedup.py --documents 100000    # datasketch on the first 20,000 only
    python benchmarks/near_dedup.py --repeat 2            # each step's fastest of 2 runs (busy machine)
    python benchmarks/near_dedup.py --scaling             # then ours alone on 10k, 100k and 1M documents
    python benchmarks/near_dedup.py --only-scaling        # ours alone on 10k, 100k and 1M documents
    python benchmarks/near_dedup.py --ours-only           # decisions and our rates, no references

Needs the `bench` extra: `pip install -e .[bench]` (datasketch 2.0.0, rensa 0.5.0).
"""

from __future__ import annotations

import os

# Before numpy and rensa are imported, so that no library runs on more threads than the others.
os.environ["OMP_NUM_THREADS"] = "1"
os.environ["OPENBLAS_NUM_THREADS"] = "1"
os.environ["MKL_NUM_THREADS"] = "1"
os.environ["NUMEXPR_NUM_THREADS"] = "1"
os.environ["RAYON_NUM_THREADS"] = "1"

import argparse
import functools
import gc
import importlib.metadata
import multiprocessing
import random
import re
import resource
import statistics
import string
import sys
import sysconfig
import time
import unicodedata
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from curation_dagster.dedup.minhash import near_duplicates, signatures
from curation_dagster.spec import NearDedupSettings

Result = TypeVar("Result")

#: Edits that change words, at the rate given; the other kinds change no word or add one short line.
WORD_EDITS = frozenset({"replace", "insert", "delete", "mixed"})
#: Every kind of planted variant, each drawn equally often.
EDITS: tuple[tuple[str, float], ...] = (
    ("replace", 0.05),
    ("replace", 0.10),
    ("insert", 0.05),
    ("insert", 0.10),
    ("delete", 0.05),
    ("delete", 0.10),
    ("mixed", 0.05),
    ("mixed", 0.10),
    ("sentence moved", 0.0),
    ("footer", 0.0),
    ("header", 0.0),
    ("case, punctuation, wrap", 0.0),
)
#: Word replacements around the cut between an edited copy and a rewrite (issue 16): at 20% of the words
#: still a duplicate, from `REWRITTEN_RATE` on a different document that must be kept.
GREY_ZONE_EDITS: tuple[tuple[str, float], ...] = (("replace", 0.20), ("replace", 0.30), ("replace", 0.40))
#: Word edits at this rate or more make a rewrite, not a near duplicate.
REWRITTEN_RATE = 0.30
#: The kinds this script plants; the other benchmarks that build this corpus plant `EDITS` alone.
PLANTED = EDITS + GREY_ZONE_EDITS
FOOTERS = (
    "Copyright {year} {Word} {Word} Ltd. All rights reserved.",
    "This page was last updated on {month} {day}, {year}. Share it with a friend.",
    "Posted by {word} in {Word} on {month} {day}, {year}. {number} comments.",
    "Read more articles about {word} and {word} on our website.",
)
HEADERS = (
    "Home > {Word} > {Word} > {Word}",
    "Skip to main content | Menu | Search | Sign in",
    "{Word} {Word} | Published {month} {day}, {year} | {number} min read",
)
MONTHS = ("January", "March", "April", "June", "August", "October", "November", "December")
BREAK = "\n\n"
MIN_WORDS, MAX_WORDS = 100, 600
#: Longer sentences are dropped: two short documents sharing one by chance would share half their words.
MAX_SENTENCE_WORDS = 40
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[\"'(\[]?[A-Z0-9])")
_WORD_LIKE = re.compile(r"^[(\"'\[]*[A-Za-z][A-Za-z'\-]*[.,;:!?)\"'\]]*$")
_DOCSTRING = re.compile(r'^\s*[rRuU]?"""(.*?)"""', re.S | re.M)
_PUNCTUATION = re.compile(r"[^\w\s]+")
_DIGITS = re.compile(r"\d")
_COMMA = re.compile(r",(?= )")
_FULL_STOP = re.compile(r"\.(?=\s)")
_PLACEHOLDER = re.compile(r"\{(\w+)\}")


# ---------------------------------------------------------------------------------------------- corpus


@dataclass(frozen=True)
class Plant:
    """A planted near duplicate: the document it copies and how it was changed."""

    original: int
    kind: str
    rate: float

    @property
    def label(self) -> str:
        return f"{self.kind} {self.rate:.0%}" if self.kind in WORD_EDITS else self.kind

    @property
    def duplicate(self) -> bool:
        """Whether the variant must be removed; a rewrite (`REWRITTEN_RATE` or more) must be kept."""
        return not (self.kind in WORD_EDITS and self.rate >= REWRITTEN_RATE - 1e-9)


@dataclass(frozen=True)
class HardNegative:
    """A block of one earlier document's sentences then one of another's; not a duplicate of either.
    `word_jaccard` is its word-set Jaccard with the closer of the two."""

    first: int
    second: int
    word_jaccard: float


@dataclass
class Corpus:
    """The texts in corpus order and the ground truth: planted variants and hard negatives by position."""

    texts: list[str]
    plants: dict[int, Plant]
    negatives: dict[int, HardNegative]
    real_documents: int
    recombined_documents: int
    sentences: int

    def megabytes(self, documents: int | None = None) -> float:
        """UTF-8 megabytes of the first `documents` texts (all by default)."""
        return sum(len(text.encode("utf-8")) for text in self.texts[:documents]) / 1e6


def _source_texts() -> Iterator[str]:
    """Real English on this machine, in a fixed order."""
    import pydoc_data.topics

    topics: dict[str, str] = pydoc_data.topics.topics
    for key in sorted(topics):
        yield topics[key]
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    skipped = {"test", "tests", "idlelib", "site-packages"}
    for path in sorted(stdlib.rglob("*.py")):
        if not skipped & set(path.parts):
            yield "\n\n".join(_DOCSTRING.findall(path.read_text(errors="replace")))
    seen: set[str] = {"curation-dagster", "curation_dagster"}  # our own README changes with this file
    distributions = sorted(importlib.metadata.distributions(), key=lambda d: str(d.metadata["Name"]).lower())
    for distribution in distributions:
        name = str(distribution.metadata["Name"]).lower()
        if name not in seen:
            seen.add(name)
            # The long description is the body of METADATA, after the headers and a blank line.
            yield (distribution.read_text("METADATA") or "").partition("\n\n")[2]
    licenses = Path("/usr/share/common-licenses")
    if licenses.is_dir():
        for path in sorted({item.resolve() for item in licenses.iterdir() if item.is_file()}):
            yield path.read_text(errors="replace")


def _prose_paragraphs(text: str) -> Iterator[str]:
    """Paragraphs of prose (at least 8 words, 80% of them plain words), whitespace collapsed."""
    for paragraph in re.split(r"\n\s*\n", text):
        words = paragraph.split()
        if len(words) >= 8 and sum(bool(_WORD_LIKE.match(word)) for word in words) >= 0.8 * len(words):
            yield " ".join(words)


@functools.cache
def _combining_marks() -> dict[int, None]:
    """A `str.translate` table deleting every character of non-zero combining class (the accents
    that NFKD splits off, in every script)."""
    return {code: None for code in range(sys.maxunicode + 1) if unicodedata.combining(chr(code))}


@functools.cache
def _ascii_table(casefold: bool, strip_punctuation: bool, replace_digits: bool) -> dict[int, str]:
    """One `str.translate` table doing, on ASCII text, what the three rules do on any text."""
    table: dict[int, str] = {}
    if casefold:
        table.update({ord(letter): letter.lower() for letter in string.ascii_uppercase})
    if strip_punctuation:
        table.update({ord(mark): " " for mark in string.punctuation if mark != "_"})
    if replace_digits:
        table.update({ord(digit): "0" for digit in string.digits})
    return table


def normalize(text: str, settings: NearDedupSettings) -> str:
    """The references' normaliser, following the settings: accents dropped after NFKD, case folded,
    punctuation made whitespace, digits made 0. ASCII text takes one `str.translate`."""
    rules = settings.normalize
    casefold = getattr(rules, "casefold", True)
    strip_punctuation = getattr(rules, "strip_punctuation", True)
    replace_digits = getattr(rules, "replace_digits", False)
    if getattr(rules, "strip_accents", False) and not text.isascii():
        text = unicodedata.normalize("NFKD", text).translate(_combining_marks())
    if text.isascii():
        return text.translate(_ascii_table(casefold, strip_punctuation, replace_digits))
    if casefold:
        text = text.casefold()
    if strip_punctuation:
        text = _PUNCTUATION.sub(" ", text)
    if replace_digits:
        text = _DIGITS.sub("0", text)
    return text


def word_set(text: str) -> set[str]:
    """The users' notion of a document's words: lower-cased, punctuation dropped."""
    return set(_PUNCTUATION.sub(" ", text.casefold()).split())


def jaccard(first: set[str], second: set[str]) -> float:
    """Size of the intersection over size of the union."""
    return len(first & second) / max(len(first | second), 1)


class CorpusBuilder:
    """Real documents and their sentences, and the generator of a corpus of any size from them."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self.numbers = np.random.default_rng(seed)
        self.sentences: list[str] = []
        by_key: dict[str, int] = {}
        documents: list[np.ndarray] = []
        for text in _source_texts():
            documents.extend(self._group(text, by_key))
        self.lengths = np.array([len(sentence.split()) for sentence in self.sentences], dtype=np.int64)
        self.sentence_words = [frozenset(word_set(sentence)) for sentence in self.sentences]
        self.real = self._distinct(documents)
        used = np.unique(np.concatenate(self.real))
        self.pool = used[used >= 0]
        self.vocabulary = [word for index in self.pool.tolist() for word in self.sentences[index].split()]
        self._recombined = self._recombine()

    def _group(self, text: str, by_key: dict[str, int]) -> Iterator[np.ndarray]:
        """Consecutive paragraphs grouped into documents of MIN_WORDS to about MAX_WORDS words; each
        document is its sentence numbers with -1 between paragraphs."""
        current: list[int] = []
        words = 0
        target = self.rng.randint(MIN_WORDS, MAX_WORDS)
        for paragraph in _prose_paragraphs(text):
            ids = []
            for sentence in _SENTENCE_END.split(paragraph):
                tokens = sentence.split()
                plain = sum(bool(_WORD_LIKE.match(token)) for token in tokens)
                if 3 <= len(tokens) <= MAX_SENTENCE_WORDS and plain >= 0.7 * len(tokens):
                    key = " ".join(sentence.casefold().split())
                    if key not in by_key:
                        by_key[key] = len(self.sentences)
                        self.sentences.append(sentence)
                    ids.append(by_key[key])
            size = sum(len(self.sentences[index].split()) for index in ids)
            if not ids:
                continue
            if current and words + size > MAX_WORDS and words >= MIN_WORDS:
                yield np.array(current[:-1], dtype=np.int32)
                current, words, target = [], 0, self.rng.randint(MIN_WORDS, MAX_WORDS)
            current += [*ids, -1]
            words += size
            if words >= target:
                yield np.array(current[:-1], dtype=np.int32)
                current, words, target = [], 0, self.rng.randint(MIN_WORDS, MAX_WORDS)
        if words >= MIN_WORDS:
            yield np.array(current[:-1], dtype=np.int32)

    def _distinct(self, documents: list[np.ndarray]) -> list[np.ndarray]:
        """Documents without exact repeats and without any pair of word-set Jaccard >= 0.5 (the later
        one goes), by a sparse document-word matrix product."""
        from scipy import sparse

        unique = list({tuple(document.tolist()): document for document in documents}.values())
        sets = [self.words(document) for document in unique]
        vocabulary: dict[str, int] = {}
        rows = np.repeat(np.arange(len(sets)), [len(words) for words in sets])
        columns = [vocabulary.setdefault(word, len(vocabulary)) for words in sets for word in words]
        matrix = sparse.csr_matrix(
            (np.ones(len(columns), np.float32), (rows, columns)), shape=(len(sets), len(vocabulary))
        )
        common = (matrix @ matrix.T).toarray()
        sizes = np.array([len(words) for words in sets], dtype=np.float32)
        similarity = common / (sizes[:, None] + sizes[None, :] - common)
        kept = np.zeros(len(unique), dtype=bool)
        for index in range(len(unique)):
            kept[index] = not (similarity[index, :index][kept[:index]] >= 0.5).any()
        return [document for document, keep in zip(unique, kept, strict=True) if keep]

    def render(self, document: np.ndarray) -> str:
        """The text of a document: its sentences joined by spaces, paragraphs by a blank line."""
        sentences = self.sentences
        return " ".join([BREAK if index < 0 else sentences[index] for index in document.tolist()]).replace(
            f" {BREAK} ", BREAK
        )

    def words(self, document: np.ndarray) -> set[str]:
        """`word_set` of the rendered document, as the union of its sentences' word sets."""
        sentence_words = self.sentence_words
        return set().union(*(sentence_words[index] for index in document.tolist() if index >= 0))

    def tokens(self, document: np.ndarray) -> list[str]:
        """The document's words in order, with BREAK between paragraphs."""
        sentences = self.sentences
        return " ".join([BREAK if index < 0 else sentences[index] for index in document.tolist()]).split(" ")

    def _recombine(self, batch: int = 4096, draws: int = 128) -> Iterator[np.ndarray]:
        """New documents: random sentences of the real ones up to a length drawn from MIN_WORDS to
        MAX_WORDS, in paragraphs of 2 to 6 sentences; drawn for many documents at once."""
        while True:
            ids = self.pool[self.numbers.integers(0, len(self.pool), (batch, draws))]
            targets = self.numbers.integers(MIN_WORDS, MAX_WORDS + 1, batch)
            counts = (np.cumsum(self.lengths[ids], axis=1) < targets[:, None]).sum(axis=1) + 1
            breaks = np.cumsum(self.numbers.integers(2, 7, (batch, draws // 2)), axis=1)
            for row, count, ends in zip(ids, counts.tolist(), breaks, strict=True):
                document = row[:count].tolist()
                for end in reversed(ends[ends < count].tolist()):
                    document.insert(end, -1)
                yield np.array(document, dtype=np.int32)

    def variant(self, document: np.ndarray, kind: str, rate: float) -> tuple[str, float]:
        """The changed text and the share of its words that changed (the nominal rate for word edits)."""
        rng = self.rng
        if kind == "sentence moved":
            ids = document.tolist()
            positions = [index for index, sentence in enumerate(ids) if sentence >= 0]
            moved = ids.pop(rng.choice(positions))
            positions = [index for index, sentence in enumerate(ids) if sentence >= 0]
            ids.insert(rng.choice([*positions, len(ids)]), moved)
            return self.render(np.array(ids, dtype=np.int32)), 0.0
        tokens = self.tokens(document)
        words = len(tokens) - tokens.count(BREAK)
        if kind in WORD_EDITS:
            operations = ("replace", "insert", "delete") if kind == "mixed" else (kind,)
            self._edit_words(tokens, max(1, round(rate * words)), operations)
            if kind == "mixed":
                return self._change_surface(tokens, wrap=rng.random() < 0.5), rate
            return _join(tokens), rate
        if kind in {"footer", "header"}:
            line = self._boilerplate(FOOTERS if kind == "footer" else HEADERS).split(" ")
            tokens = [*tokens, BREAK, *line] if kind == "footer" else [*line, BREAK, *tokens]
            return _join(tokens), len(line) / words
        return self._change_surface(tokens, wrap=True), 0.0

    def _edit_words(self, tokens: list[str], count: int, operations: tuple[str, ...]) -> None:
        """Replace, insert or delete `count` words at distinct random places, in place."""
        rng, vocabulary = self.rng, self.vocabulary
        positions = [index for index, token in enumerate(tokens) if token != BREAK]
        for position in sorted(rng.sample(positions, min(count, len(positions))), reverse=True):
            operation = rng.choice(operations)
            word = vocabulary[rng.randrange(len(vocabulary))]
            if operation == "delete":
                del tokens[position]
            elif operation == "insert":
                tokens.insert(position, word)
            else:
                while word.casefold() == tokens[position].casefold():
                    word = vocabulary[rng.randrange(len(vocabulary))]
                tokens[position] = word

    def _change_surface(self, tokens: list[str], wrap: bool) -> str:
        """Case, punctuation and line-wrapping changes that leave every word as it was: a sixth of the
        words upper- or lower-cased, half the commas dropped, some full stops made "!", curly quotes,
        and lines wrapped at 50 to 90 characters."""
        rng = self.rng
        tokens = list(tokens)
        positions = [index for index, token in enumerate(tokens) if token != BREAK]
        for position in rng.sample(positions, len(positions) // 6):
            tokens[position] = tokens[position].upper() if rng.random() < 0.5 else tokens[position].lower()
        text = _COMMA.sub(lambda match: "" if rng.random() < 0.5 else ",", _join(tokens))
        text = _FULL_STOP.sub(lambda match: "!" if rng.random() < 0.3 else ".", text)
        text = text.replace("'", "\u2019").replace('"', "\u201d")
        if not wrap:
            return text
        line = re.compile(rf"(.{{{rng.randint(50, 90)}}}\S*) ")
        return BREAK.join(line.sub("\\1\n", paragraph) for paragraph in text.split(BREAK))

    def _boilerplate(self, templates: tuple[str, ...]) -> str:
        """A header or footer line, each placeholder filled on its own."""
        rng, vocabulary = self.rng, self.vocabulary

        def fill(match: re.Match[str]) -> str:
            name = match.group(1)
            if name in {"word", "Word"}:
                word = vocabulary[rng.randrange(len(vocabulary))].strip(".,;:()[]`*\"'").lower() or "news"
                return word.capitalize() if name == "Word" else word
            return {
                "year": lambda: str(rng.randint(1995, 2025)),
                "month": lambda: rng.choice(MONTHS),
                "day": lambda: str(rng.randint(1, 28)),
                "number": lambda: str(rng.randint(2, 40)),
            }[name]()

        return _PLACEHOLDER.sub(fill, rng.choice(templates))

    def hard_negative(self, first: np.ndarray, second: np.ndarray) -> tuple[str, float] | None:
        """A block of a quarter to two fifths of `first`'s words then one of `second`'s, whose word-set
        Jaccard with the closer of the two is 0.30 to 0.45; None when no try lands there."""
        first_words, second_words = self.words(first), self.words(second)
        first_ids, second_ids = first[first >= 0], second[second >= 0]
        for _ in range(6):
            head = self._block(first_ids, self.rng.uniform(0.25, 0.4))
            tail = self._block(second_ids, self.rng.uniform(0.25, 0.4))
            document = np.concatenate((head, [-1], tail)).astype(np.int32)
            words = self.words(document)
            closest = max(jaccard(words, first_words), jaccard(words, second_words))
            if 0.30 <= closest <= 0.45:
                return self.render(document), closest
        return None

    def _block(self, ids: np.ndarray, share: float) -> np.ndarray:
        """Consecutive sentences (wrapping around) from a random start, holding `share` of the words."""
        rolled = np.roll(ids, -self.rng.randrange(len(ids)))
        lengths = np.cumsum(self.lengths[rolled])
        return rolled[: int(np.searchsorted(lengths, share * lengths[-1])) + 1]

    def corpus(
        self,
        documents: int,
        variant_share: float,
        negative_share: float,
        kinds: Sequence[tuple[str, float]] = EDITS,
    ) -> Corpus:
        """`documents` texts in corpus order: new documents (real ones spread over the corpus, then
        recombined), planted variants of earlier new documents (each of `kinds` drawn equally) and hard
        negatives of unused pairs."""
        rng = self.rng
        real = list(self.real)
        rng.shuffle(real)
        new_expected = max(documents * (1 - variant_share - negative_share), 1)
        real_share = min(1.0, len(real) / new_expected)
        texts: list[str] = []
        plants: dict[int, Plant] = {}
        negatives: dict[int, HardNegative] = {}
        new: list[tuple[int, np.ndarray]] = []
        unused: list[int] = []
        real_used = recombined = 0
        while len(texts) < documents:
            roll = rng.random()
            if roll < variant_share and new:
                original, structure = rng.choice(new)
                kind, nominal = rng.choice(kinds)
                text, rate = self.variant(structure, kind, nominal)
                plants[len(texts)] = Plant(original, kind, rate)
                texts.append(text)
                continue
            if roll < variant_share + negative_share and len(unused) >= 2:
                first, second = (unused.pop(rng.randrange(len(unused))) for _ in range(2))
                made = self.hard_negative(new[first][1], new[second][1])
                if made is not None:
                    negatives[len(texts)] = HardNegative(new[first][0], new[second][0], made[1])
                    texts.append(made[0])
                    continue
            if real and rng.random() < real_share:
                structure = real.pop()
                real_used += 1
            else:
                structure = next(self._recombined)
                recombined += 1
            unused.append(len(new))
            new.append((len(texts), structure))
            texts.append(self.render(structure))
        return Corpus(texts, plants, negatives, real_used, recombined, len(self.pool))


def _join(tokens: list[str]) -> str:
    return " ".join(tokens).replace(f" {BREAK} ", BREAK)


# ------------------------------------------------------------------------------------------- libraries


@dataclass(frozen=True)
class Timing:
    """Wall-clock and process CPU seconds (the CPU time counts every thread of the process)."""

    wall: float
    cpu: float

    def per_core(self, amount: float) -> float:
        """`amount` (documents or MB) per CPU second."""
        return amount / max(self.cpu, 1e-9)


def fastest(timings: Sequence[Timing]) -> Timing:
    """The run that took the least CPU time: the one least disturbed by other work on the machine."""
    return min(timings, key=lambda timing: timing.cpu)


def best_of(repeat: int, function: Callable[[], Result]) -> tuple[Result, Timing]:
    """`function` run `repeat` times: its last result and the fastest run's timing."""
    runs = [timed(function) for _ in range(max(repeat, 1))]
    return runs[-1][0], fastest([timing for _, timing in runs])


def timed(function: Callable[[], Result]) -> tuple[Result, Timing]:
    """Run `function` once with the cyclic garbage collector paused (as `timeit` does), so that a
    collection triggered by earlier allocations is not charged to whichever library runs next."""
    gc.collect()
    gc.disable()
    try:
        wall, cpu = time.perf_counter(), time.process_time()
        result = function()
        return result, Timing(time.perf_counter() - wall, time.process_time() - cpu)
    finally:
        gc.enable()


def shingles(text: str, settings: NearDedupSettings) -> list[str]:
    """The references' shingles, cut like the settings say: word or character n-grams of the normalised
    text; a document shorter than one n-gram is a single shingle."""
    normalised = normalize(text, settings)
    size = settings.ngram
    if settings.shingle == "words":
        units = normalised.split()
        if len(units) < size:
            return [" ".join(units)] if units else []
        return list(map(" ".join, zip(*(units[offset:] for offset in range(size)), strict=False)))
    joined = " ".join(normalised.split())
    if len(joined) < size:
        return [joined] if joined else []
    return [joined[start : start + size] for start in range(len(joined) - size + 1)]


def batches(texts: Sequence[str], size: int = 1000) -> Iterator[Sequence[str]]:
    """Consecutive slices of `size` texts, which bound the shingles held at once."""
    for start in range(0, len(texts), size):
        yield texts[start : start + size]


@dataclass
class Run:
    """One library's decisions on (a prefix of) the corpus, and its timings."""

    method: str
    documents: int
    signature: Timing
    dedup: Timing
    dup_of: list[int | None]
    note: str = ""


def run_ours(texts: list[str], settings: NearDedupSettings, repeat: int) -> Run:
    """`signatures` and `near_duplicates` on every text, after a small warm-up."""
    signatures(texts[:200], settings)
    near_duplicates(texts[:200], settings)
    _, signature_time = best_of(repeat, lambda: signatures(texts, settings))
    dup_of, dedup_time = best_of(repeat, lambda: near_duplicates(texts, settings))
    return Run("curation_dagster", len(texts), signature_time, dedup_time, dup_of)


def _datasketch_signatures(texts: Sequence[str], settings: NearDedupSettings) -> list[Any]:
    """One datasketch `MinHash` per text, fed all its shingles in one `update_batch`."""
    from datasketch import MinHash

    minhashes = []
    for text in texts:
        minhash = MinHash(num_perm=settings.num_perm, seed=settings.seed)
        minhash.update_batch([shingle.encode("utf-8") for shingle in shingles(text, settings)])
        minhashes.append(minhash)
    return minhashes


def run_datasketch(texts: list[str], settings: NearDedupSettings, repeat: int) -> Run:
    """MinHash per document, then MinHashLSH with our bands and rows: query, then insert, in order."""
    from datasketch import MinHashLSH

    def dedup() -> tuple[list[int | None], Timing]:
        minhashes, signature_time = timed(lambda: _datasketch_signatures(texts, settings))
        index = MinHashLSH(
            threshold=settings.threshold, num_perm=settings.num_perm, params=(settings.bands, settings.rows)
        )
        dup_of: list[int | None] = []
        for position, minhash in enumerate(minhashes):
            found = index.query(minhash)
            dup_of.append(min(found) if found else None)
            index.insert(position, minhash)
        return dup_of, signature_time

    _datasketch_signatures(texts[:200], settings)
    runs = [timed(dedup) for _ in range(max(repeat, 1))]
    dup_of = runs[-1][0][0]
    signature_time = fastest([signature for (_, signature), _ in runs])
    dedup_time = fastest([whole for _, whole in runs])
    return Run("datasketch", len(texts), signature_time, dedup_time, dup_of)


def _rensa_matrix(texts: Sequence[str], settings: NearDedupSettings) -> list[Any]:
    """rensa digest matrices of the texts, 1,000 documents per call."""
    from rensa import RMinHash

    return [
        RMinHash.digest_matrix_from_token_sets(
            [shingles(text, settings) for text in batch], settings.num_perm, settings.seed
        )
        for batch in batches(texts)
    ]


def _rensa_minhashes(texts: Sequence[str], settings: NearDedupSettings) -> list[Any]:
    """One `RMinHash` per text, made 1,000 documents per call."""
    from rensa import RMinHash

    return [
        minhash
        for batch in batches(texts)
        for minhash in RMinHash.from_token_sets(
            [shingles(text, settings) for text in batch], settings.num_perm, settings.seed
        )
    ]


def run_rensa_lsh(texts: list[str], settings: NearDedupSettings, repeat: int) -> Run:
    """Signatures: rensa's batch digest matrix, its fastest full-set path. Dedup: `RMinHash` objects in
    batches, then `RMinHashLSH` with our bands: query, then insert, in order (datasketch's rule)."""
    from rensa import RMinHashLSH

    def dedup() -> list[int | None]:
        index = RMinHashLSH(settings.threshold, settings.num_perm, settings.bands)
        dup_of: list[int | None] = []
        for position, minhash in enumerate(_rensa_minhashes(texts, settings)):
            found = index.query(minhash)
            dup_of.append(min(found) if found else None)
            index.insert(position, minhash)
        return dup_of

    _rensa_matrix(texts[:200], settings)
    _rensa_minhashes(texts[:200], settings)
    _, signature_time = best_of(repeat, lambda: _rensa_matrix(texts, settings))
    dup_of, dedup_time = best_of(repeat, dedup)
    return Run("rensa lsh", len(texts), signature_time, dedup_time, dup_of)


def run_rensa_deduplicator(
    texts: list[str], settings: NearDedupSettings, signature_time: Timing, repeat: int
) -> Run:
    """The README's `RMinHashDeduplicator` with LSH on our bands: a candidate is a duplicate when its
    estimated shingle Jaccard reaches the threshold. It does not say which document it duplicates."""
    from rensa import RMinHashDeduplicator

    def dedup() -> list[int | None]:
        deduplicator = RMinHashDeduplicator(
            threshold=settings.threshold,
            num_perm=settings.num_perm,
            use_lsh=True,
            num_bands=settings.bands,
            seed=settings.seed,
        )
        keep: list[bool] = []
        for start in range(0, len(texts), 1000):
            keep += deduplicator.add_pairs(
                (str(start + offset), shingles(text, settings))
                for offset, text in enumerate(texts[start : start + 1000])
            )
        return [None if kept else -1 for kept in keep]

    dup_of, dedup_time = best_of(repeat, dedup)
    return Run("rensa dedup", len(texts), signature_time, dedup_time, dup_of, note="verifies shingle J")


# --------------------------------------------------------------------------------------------- quality


@dataclass
class Quality:
    """Removals against the ground truth, overall and per kind of edit (removed, planted). Planted rewrites
    (word edits at `REWRITTEN_RATE` or more) are not duplicates: removing one costs precision."""

    removed: int
    recall: float
    precision: float
    negatives_removed: int
    negatives: int
    rewrites_removed: int = 0
    rewrites: int = 0
    found_by_label: dict[str, tuple[int, int]] = field(default_factory=dict)


def evaluate(dup_of: Sequence[int | None], corpus: Corpus) -> Quality:
    """Decisions on the first `len(dup_of)` documents against the plant: removed = `dup_of` not None."""
    documents = len(dup_of)
    removed = {index for index, target in enumerate(dup_of) if target is not None}
    planted = {index for index in corpus.plants if index < documents}
    duplicates = {index for index in planted if corpus.plants[index].duplicate}
    negatives = {index for index in corpus.negatives if index < documents}
    hits = removed & duplicates
    by_label: dict[str, tuple[int, int]] = {}
    for index in planted:
        label = corpus.plants[index].label
        found, total = by_label.get(label, (0, 0))
        by_label[label] = (found + (index in removed), total + 1)
    return Quality(
        removed=len(removed),
        recall=len(hits) / max(len(duplicates), 1),
        precision=len(hits) / max(len(removed), 1),
        negatives_removed=len(removed & negatives),
        negatives=len(negatives),
        rewrites_removed=len(removed & (planted - duplicates)),
        rewrites=len(planted - duplicates),
        found_by_label=by_label,
    )


def pair_similarities(
    corpus: Corpus, settings: NearDedupSettings, first: int, second: int
) -> tuple[float, float]:
    """True word-set Jaccard and true shingle Jaccard (under the settings) of two documents."""
    a, b = corpus.texts[first], corpus.texts[second]
    return jaccard(word_set(a), word_set(b)), jaccard(set(shingles(a, settings)), set(shingles(b, settings)))


# ------------------------------------------------------------------------------------------- reporting


def describe(settings: NearDedupSettings) -> str:
    """The settings in one line."""
    unit = "word" if settings.shingle == "words" else "char"
    check = "none" if settings.verify == "none" else f"{settings.verify}>={settings.min_similarity:g}"
    if settings.verify == "word_jaccard" and settings.pair_sketch and settings.min_pair_similarity:
        check += f" and word_pairs>={settings.min_pair_similarity:g}"
    return (
        f"{settings.ngram}-{unit} shingles, {settings.bands}x{settings.rows}={settings.num_perm} hashes, "
        f"threshold {settings.threshold:.3f}, verify {check}"
    )


def print_runs(runs: list[Run], corpus: Corpus) -> None:
    """One row per library: decisions against the ground truth, then rates per core."""
    header = (
        f"{'method':<17}{'docs':>9}{'removed':>9}{'recall':>8}{'precis.':>8}{'hard neg':>10}{'rewrites':>10}"
        f"{'sig docs/s':>12}{'sig MB/s':>10}{'dedup docs/s':>14}{'dedup MB/s':>12}{'cpu/wall':>10}"
    )
    print(header)
    print("-" * len(header))
    for run in runs:
        quality = evaluate(run.dup_of, corpus)
        megabytes = corpus.megabytes(run.documents)
        signature_rate = run.signature.per_core(run.documents)
        dedup_rate = run.dedup.per_core(run.documents)
        print(
            f"{run.method:<17}{run.documents:>9,}{quality.removed:>9,}{quality.recall:>8.4f}{quality.precision:>8.4f}"
            f"{f'{quality.negatives_removed}/{quality.negatives}':>10}"
            f"{f'{quality.rewrites_removed}/{quality.rewrites}':>10}{signature_rate:>12,.0f}"
            f"{run.signature.per_core(megabytes):>10.2f}{dedup_rate:>14,.0f}{run.dedup.per_core(megabytes):>12.2f}"
            f"{run.dedup.cpu / max(run.dedup.wall, 1e-9):>10.2f}{'  ' + run.note if run.note else ''}"
        )


def print_ratios(runs: list[Run]) -> None:
    """Our rates over each reference's (the README deduplicator shares rensa's signatures)."""
    ours = runs[0]
    for other in runs[1:]:
        if other.method == "rensa dedup":
            continue
        signature = ours.signature.per_core(ours.documents) / other.signature.per_core(other.documents)
        dedup = ours.dedup.per_core(ours.documents) / other.dedup.per_core(other.documents)
        print(f"ours / {other.method}: signatures {signature:.2f}x, whole dedup {dedup:.2f}x (per core)")


def print_by_kind(corpus: Corpus, runs: list[Run], settings: NearDedupSettings) -> None:
    """The share removed per edit kind for every method (recall for duplicates; for rewrites, which must
    be kept, the share wrongly removed), with the true similarities of the planted pairs."""
    qualities = [evaluate(run.dup_of, corpus) for run in runs]
    similarities: dict[str, list[tuple[float, float]]] = {}
    sample = [index for index in corpus.plants if index < runs[-1].documents][:3000]
    for index in sample:
        plant = corpus.plants[index]
        similarities.setdefault(plant.label, []).append(
            pair_similarities(corpus, settings, plant.original, index)
        )
    names = "".join(f"{run.method:>18}" for run in runs)
    print(f"{'edit (share removed)':<26}{'planted':>8}{'word J':>8}{'p1-p99':>11}{'shingle J':>10}{names}")
    rewrites = {plant.label for plant in corpus.plants.values() if not plant.duplicate}
    labels = sorted({label for quality in qualities for label in quality.found_by_label})
    for label in labels:
        pairs = similarities.get(label, [(float("nan"), float("nan"))])
        words = sorted(pair[0] for pair in pairs)
        low, high = words[int(0.01 * (len(words) - 1))], words[int(0.99 * (len(words) - 1))]
        shingle = statistics.median(pair[1] for pair in pairs)
        cells = ""
        for quality in qualities:
            found, total = quality.found_by_label.get(label, (0, 0))
            cells += f"{found / max(total, 1):>18.3f}"
        total = qualities[0].found_by_label.get(label, (0, 0))[1]
        name = f"{label} (keep)" if label in rewrites else label
        print(
            f"{name:<26}{total:>8}{statistics.median(words):>8.2f}{f'{low:.2f}-{high:.2f}':>11}"
            f"{shingle:>10.2f}{cells}"
        )
    print(
        "(word J, shingle J: median true Jaccard of variant and original, p1-p99 the word J of the middle 98%; "
        "shingles as these settings cut them; (keep): a rewrite, whose share removed should be 0)"
    )


def print_mistakes(corpus: Corpus, run: Run, settings: NearDedupSettings, examples: int = 3) -> None:
    """Our false positives (rewrites included) and misses, with the true similarities that explain them."""
    removed = [index for index, target in enumerate(run.dup_of) if target is not None]
    duplicates = {index for index, plant in corpus.plants.items() if plant.duplicate}
    wrong = [index for index in removed if index not in duplicates]
    missed = [index for index in duplicates if index < run.documents and run.dup_of[index] is None]
    print(
        f"{run.method}: {len(wrong)} removed that are not planted duplicates, {len(missed)} duplicates kept"
    )
    for index in wrong[:examples]:
        target = run.dup_of[index]
        assert target is not None
        words, shingle = pair_similarities(corpus, settings, target, index)
        kind = "hard negative" if index in corpus.negatives else "new document"
        if index in corpus.plants:
            kind = f"{corpus.plants[index].label} of {corpus.plants[index].original}"
        print(
            f"  removed {index} ({kind}) as a duplicate of {target}: word J {words:.2f}, shingle J {shingle:.2f}"
        )
        print(f"    {corpus.texts[index][:110]!r}")
        print(f"    {corpus.texts[target][:110]!r}")
    if missed:
        pairs = [
            pair_similarities(corpus, settings, corpus.plants[index].original, index)
            for index in missed[:500]
        ]
        kinds: dict[str, int] = {}
        for index in missed:
            kinds[corpus.plants[index].label] = kinds.get(corpus.plants[index].label, 0) + 1
        worst = sorted(kinds.items(), key=lambda item: -item[1])[:4]
        print(
            f"  missed: median word J {statistics.median(p[0] for p in pairs):.2f}, "
            f"median shingle J {statistics.median(p[1] for p in pairs):.2f}; most by kind: "
            + ", ".join(f"{label} {count}" for label, count in worst)
        )
        for index in missed[:examples]:
            plant = corpus.plants[index]
            words, shingle = pair_similarities(corpus, settings, plant.original, index)
            print(
                f"  kept {index} ({plant.label} of {plant.original}): word J {words:.2f}, shingle J {shingle:.2f}"
            )


def print_corpus(corpus: Corpus) -> None:
    """What the corpus holds: sizes, sources, planted variants and hard negatives."""
    megabytes = corpus.megabytes()
    jaccards = [negative.word_jaccard for negative in corpus.negatives.values()]
    words = [len(text.split()) for text in corpus.texts[:5000]]
    print(
        f"corpus: {len(corpus.texts):,} documents, {megabytes:.1f} MB, {statistics.mean(words):.0f} words on "
        f"average; {corpus.real_documents:,} real documents and {corpus.recombined_documents:,} recombined "
        f"from {corpus.sentences:,} distinct sentences"
    )
    if jaccards:
        print(
            f"planted: {len(corpus.plants):,} variants ({len({p.label for p in corpus.plants.values()})} kinds, "
            f"{sum(not p.duplicate for p in corpus.plants.values()):,} of them rewrites), {len(corpus.negatives):,} "
            f"hard negatives (word-set Jaccard with the closer source {min(jaccards):.2f} to {max(jaccards):.2f}, "
            f"median {statistics.median(jaccards):.2f})"
        )


def fineweb_settings() -> NearDedupSettings:
    """The engine's FineWeb preset (5-word shingles, 14 x 8 hashes, no check)."""
    preset = getattr(NearDedupSettings, "preset_settings", None)
    return preset("fineweb") if callable(preset) else NearDedupSettings(preset="fineweb")


def compare(
    corpus: Corpus,
    settings: NearDedupSettings,
    label: str,
    datasketch_documents: int,
    repeat: int,
    references: bool = True,
) -> list[Run]:
    """Every library (ours alone without `references`) on the corpus with these settings; prints the
    table and the throughput ratios."""
    texts = corpus.texts
    print(f"\n== {label}: {describe(settings)}")
    runs = [run_ours(texts, settings, repeat)]
    if not references:
        print_runs(runs, corpus)
        return runs
    prefix = texts[:datasketch_documents]
    datasketch = run_datasketch(prefix, settings, repeat)
    if len(prefix) < len(texts):
        datasketch.note = f"first {len(prefix):,} documents only"
    runs.append(datasketch)
    rensa = run_rensa_lsh(texts, settings, repeat)
    runs.append(rensa)
    runs.append(run_rensa_deduplicator(texts, settings, rensa.signature, repeat))
    print_runs(runs, corpus)
    print_ratios(runs)
    return runs


def print_goals(runs: list[Run], corpus: Corpus, label: str) -> None:
    """The issue's goals, met or not, against the references run with the same settings."""
    ours, datasketch, rensa = runs[0], runs[1], runs[2]
    quality = evaluate(ours.dup_of, corpus)
    references = [evaluate(run.dup_of, corpus) for run in runs[1:]]
    signature = ours.signature.per_core(ours.documents)
    checks = {
        "recall >= every reference": quality.recall >= max(reference.recall for reference in references),
        "precision >= every reference": quality.precision
        >= max(reference.precision for reference in references),
        "no hard negative removed": quality.negatives_removed == 0,
        "signatures >= 10x datasketch": signature >= 10 * datasketch.signature.per_core(datasketch.documents),
        "signatures > rensa": signature > rensa.signature.per_core(rensa.documents),
    }
    print(
        f"goals ({label}, same shingles for all): "
        + "; ".join(f"{name}: {'yes' if met else 'NO'}" for name, met in checks.items())
    )


def print_grey_zone_goals(run: Run, corpus: Corpus, label: str) -> None:
    """Issue 16's goals: 20% of the words replaced still removed, rewrites (30% and more) never, and
    precision at least 0.999 over every removal."""
    quality = evaluate(run.dup_of, corpus)
    found, total = quality.found_by_label.get("replace 20%", (0, 0))
    shares = {
        "replace 20% removed >= 0.99": (found / max(total, 1), found / max(total, 1) >= 0.99),
        "rewrites removed == 0": (quality.rewrites_removed, quality.rewrites_removed == 0),
        "precision >= 0.999": (quality.precision, quality.precision >= 0.999),
    }
    print(
        f"grey-zone goals ({label}): "
        + "; ".join(f"{name}: {value:.4g} {'yes' if met else 'NO'}" for name, (value, met) in shares.items())
    )


# --------------------------------------------------------------------------------------------- scaling


@dataclass(frozen=True)
class Scale:
    """Our timings on one corpus size, or the step that ran out of memory."""

    megabytes: float
    corpus_rss: float
    peak_rss: float
    signature: Timing | None = None
    dedup: Timing | None = None
    quality: Quality | None = None
    failed: str = ""


def _limit_memory(share: float = 0.8) -> float:
    """Cap this process's address space (the soft limit) at its present size plus `share` of the memory
    now available, so that running out raises MemoryError here instead of waking the kernel's OOM
    killer. Returns the cap in MB (0 where /proc is missing)."""
    try:
        meminfo = Path("/proc/meminfo").read_text()
        status = Path("/proc/self/status").read_text()
    except OSError:
        return 0.0
    available_kb = int(meminfo.split("MemAvailable:")[1].split()[0])
    present_kb = int(status.split("VmSize:")[1].split()[0])
    cap = (present_kb + share * available_kb) * 1024
    _, hard = resource.getrlimit(resource.RLIMIT_AS)
    if hard != resource.RLIM_INFINITY:
        cap = min(cap, hard)
    resource.setrlimit(resource.RLIMIT_AS, (int(cap), hard))
    return cap / 1e6


def _peak_rss_mb() -> float:
    """This process's peak resident memory. VmHWM, because ru_maxrss keeps the parent's peak across the
    exec that starts a spawned process."""
    try:
        return int(Path("/proc/self/status").read_text().split("VmHWM:")[1].split()[0]) / 1024
    except (OSError, IndexError):
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _scale_once(documents: int, seed: int, settings: dict[str, Any]) -> Scale:
    """In a fresh process: build the corpus, time our signatures and whole dedup, note peak memory."""
    spec = NearDedupSettings.model_validate(settings)
    corpus = CorpusBuilder(seed).corpus(documents, 0.2, 0.05, PLANTED)
    megabytes = corpus.megabytes()
    corpus_rss = _peak_rss_mb()
    cap = _limit_memory()
    step = "signatures"
    out_of_memory = False
    try:
        _, signature_time = timed(lambda: signatures(corpus.texts, spec))
        step = "near_duplicates"
        dup_of, dedup_time = timed(lambda: near_duplicates(corpus.texts, spec))
    except MemoryError:
        out_of_memory = True  # reported below, once the traceback no longer holds the step's arrays
    peak_rss = _peak_rss_mb()
    resource.setrlimit(resource.RLIMIT_AS, (resource.getrlimit(resource.RLIMIT_AS)[1],) * 2)
    if out_of_memory:
        return Scale(megabytes, corpus_rss, peak_rss, failed=f"{step}: MemoryError at the {cap:,.0f} MB cap")
    return Scale(megabytes, corpus_rss, peak_rss, signature_time, dedup_time, evaluate(dup_of, corpus))


def scaling(sizes: list[int], seed: int, settings: NearDedupSettings, label: str) -> None:
    """Ours alone on growing corpora, each in a fresh process so that sizes do not share memory."""
    print(f"\n== scaling, ours with {label}: {describe(settings)}")
    print(
        f"{'docs':>10}{'MB':>8}{'sig s':>9}{'sig s/1k':>10}{'dedup s':>9}{'dedup s/1k':>12}{'recall':>8}"
        f"{'precis.':>8}{'hard neg':>10}{'RSS MB':>18}"
    )
    context = multiprocessing.get_context("spawn")
    for documents in sizes:
        with ProcessPoolExecutor(max_workers=1, mp_context=context) as pool:
            job = pool.submit(_scale_once, documents, seed, settings.model_dump(exclude={"preset"}))
            try:
                scale = job.result()
            except BrokenProcessPool:
                print(f"{documents:>10,}  the process died (killed, most likely out of memory)")
                continue
        memory = f"{scale.corpus_rss:,.0f} -> {scale.peak_rss:,.0f}"
        if scale.signature is None or scale.dedup is None or scale.quality is None:
            print(f"{documents:>10,}{scale.megabytes:>8.0f}  {scale.failed}{memory:>18}")
            continue
        quality = scale.quality
        print(
            f"{documents:>10,}{scale.megabytes:>8.0f}{scale.signature.cpu:>9.1f}"
            f"{scale.signature.cpu / documents * 1000:>10.3f}{scale.dedup.cpu:>9.1f}"
            f"{scale.dedup.cpu / documents * 1000:>12.3f}{quality.recall:>8.4f}{quality.precision:>8.4f}"
            f"{f'{quality.negatives_removed}/{quality.negatives}':>10}{memory:>18}"
        )
    print("(CPU seconds, each size in a fresh process; RSS: after building the corpus -> peak)")


class IndexCosts:
    """CPU seconds spent in the cross-shard index during one deduped run: the near-dup lookup, the
    near-dup index write (with any merge of its tiers), and the exact-duplicate lookup."""

    def __init__(self) -> None:
        from curation_dagster.dedup.exact_index import ExactIndex
        from curation_dagster.dedup.near_index import NearIndex

        self.seconds = {"near lookup": 0.0, "near write": 0.0, "exact lookup": 0.0}
        earlier, write, exact = NearIndex.earlier, NearIndex.write, ExactIndex.lookup

        def metered(name: str, function: Callable[..., Any]) -> Callable[..., Any]:
            def run(*args: Any, **kwargs: Any) -> Any:
                started = time.process_time()
                try:
                    return function(*args, **kwargs)
                finally:
                    self.seconds[name] += time.process_time() - started

            return run

        NearIndex.earlier = lambda index, *args: metered("near lookup", earlier(index, *args))  # type: ignore[method-assign]
        NearIndex.write = metered("near write", write)  # type: ignore[method-assign]
        ExactIndex.lookup = lambda index, *args: metered("exact lookup", exact(index, *args))  # type: ignore[method-assign]

    def take(self) -> dict[str, float]:
        taken = dict(self.seconds)
        self.seconds.update(dict.fromkeys(self.seconds, 0.0))
        return taken


def incremental(shards: int, per_shard: int, seed: int, settings: NearDedupSettings) -> None:
    """The deduped stage shard by shard in a fresh lake, as the pipeline runs it: the cost of adding
    shard N as the index of earlier shards grows, and the decisions against the plant."""
    import json
    import tempfile

    from curation_dagster.dedup.near_index import NearIndex
    from curation_dagster.io.lake import Lake
    from curation_dagster.pipeline import run_stage
    from curation_dagster.spec import parse_spec

    corpus = CorpusBuilder(seed).corpus(shards * per_shard, 0.2, 0.05, PLANTED)
    spec = parse_spec(
        {
            "name": "bench",
            "modalities": ["text"],
            "dedup": {"near": settings.model_dump(exclude={"preset"})},
        }
    )
    print(f"\n== incremental, ours with the project defaults: {shards} shards of {per_shard:,} documents")
    print(
        f"{'shard':>6}{'index keys before':>19}{'deduped cpu s':>15}{'wall s':>8}{'s/1k docs':>11}{'removed':>9}"
        f"{'near lookup':>13}{'near write':>12}{'exact lookup':>14}"
    )
    costs = IndexCosts()
    dup_of: list[int | None] = [None] * len(corpus.texts)
    first = None
    with tempfile.TemporaryDirectory() as root:
        landing = Path(root) / "landing"
        landing.mkdir()
        lake = Lake(Path(root) / "lake")
        for number in range(shards):
            name = f"shard_{number:04d}.jsonl"
            start = number * per_shard
            texts = corpus.texts[start : start + per_shard]
            lines = (json.dumps({"text": text, "doc": start + row}) + "\n" for row, text in enumerate(texts))
            (landing / name).write_text("".join(lines), "utf-8")
            index_rows = sum(
                entry["keys"]
                for entry in NearIndex(lake, "bench", spec.dedup.near).keys.manifest()["shards"].values()
            )
            run_stage(spec, lake, "raw", name, landing / name)
            costs.take()
            _, timing = timed(lambda: run_stage(spec, lake, "deduped", name))  # noqa: B023
            rejected = lake.read_table(lake.path("bench", "deduped", name, rejected=True)).to_pylist()
            for row in rejected:
                if row.get("reject_reason", "").startswith("dedup"):
                    dup_of[json.loads(row["meta"])["doc"]] = -1
            per_k = timing.cpu / len(texts) * 1000
            first = first or per_k
            spent = costs.take()
            print(
                f"{number + 1:>6}{index_rows:>19,}{timing.cpu:>15.2f}{timing.wall:>8.2f}{per_k:>11.3f}"
                f"{len(rejected):>9,}{spent['near lookup']:>13.3f}{spent['near write']:>12.3f}"
                f"{spent['exact lookup']:>14.3f}"
            )
    quality = evaluate(dup_of, corpus)
    print(
        f"last shard / first shard, CPU per document: {per_k / first:.2f}; recall {quality.recall:.4f}, "
        f"precision {quality.precision:.4f}, hard negatives removed {quality.negatives_removed}/"
        f"{quality.negatives} (all shards, exact + near)"
    )


# ------------------------------------------------------------------------------------------------ main


def main() -> None:
    """Build the corpus, compare the libraries under both settings, optionally time the scaling."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--documents", type=int, default=20_000)
    parser.add_argument("--variant-share", type=float, default=0.2, help="share of planted near duplicates")
    parser.add_argument("--negative-share", type=float, default=0.05, help="share of hard negatives")
    parser.add_argument(
        "--datasketch-documents", type=int, default=20_000, help="datasketch runs on this prefix"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--repeat", type=int, default=1, help="time every step this many times and keep the fastest run"
    )
    parser.add_argument("--scaling", action="store_true", help="also time ours on 10k, 100k and 1M documents")
    parser.add_argument("--scaling-sizes", default="10000,100000,1000000")
    parser.add_argument("--only-scaling", action="store_true", help="skip the comparison")
    parser.add_argument(
        "--ours-only", action="store_true", help="skip datasketch and rensa (decisions and our rates only)"
    )
    parser.add_argument(
        "--incremental",
        default=None,
        metavar="SHARDSxDOCS",
        help="only run the deduped stage shard by shard in a fresh lake, e.g. 20x5000",
    )
    args = parser.parse_args()
    sizes = [int(size) for size in args.scaling_sizes.split(",")]
    if args.incremental:
        count, per_shard = (int(part) for part in args.incremental.lower().split("x"))
        incremental(count, per_shard, args.seed, NearDedupSettings())
        return
    if args.only_scaling:
        scaling(sizes, args.seed, NearDedupSettings(), "project defaults")
        return

    started = time.perf_counter()
    corpus = CorpusBuilder(args.seed).corpus(args.documents, args.variant_share, args.negative_share, PLANTED)
    print_corpus(corpus)
    print(f"(built in {time.perf_counter() - started:.1f} s)")
    print(
        "threads: 1 per library (OMP, OPENBLAS, MKL, NUMEXPR and RAYON_NUM_THREADS set to 1 before import); "
        f"rates are per core: documents or MB / process CPU seconds, fastest of {args.repeat} run(s); "
        f"machine: {os.cpu_count()} cores"
    )
    fineweb, defaults = fineweb_settings(), NearDedupSettings()
    references = not args.ours_only
    fineweb_runs = compare(
        corpus, fineweb, "FineWeb preset", args.datasketch_documents, args.repeat, references
    )
    if references:
        print_goals(fineweb_runs, corpus, "FineWeb preset")
    default_runs = compare(
        corpus, defaults, "project defaults", args.datasketch_documents, args.repeat, references
    )
    if references:
        print_goals(default_runs, corpus, "project defaults")
        print("(references have no word-set check: with these settings they see LSH candidates only)")
    print_grey_zone_goals(default_runs[0], corpus, "project defaults")

    if references:
        _, shingle_time = timed(lambda: [shingles(text, fineweb) for text in corpus.texts])
        print(
            f"\nthe references' shared Python normalising + shingling alone (FineWeb): "
            f"{shingle_time.per_core(len(corpus.texts)):,.0f} docs/s per core"
        )
    print("\nshare removed by edit, FineWeb settings")
    print_by_kind(corpus, fineweb_runs, fineweb)
    print("\nshare removed by edit, project defaults")
    print_by_kind(corpus, default_runs, defaults)
    print()
    print_mistakes(corpus, fineweb_runs[0], fineweb)
    print_mistakes(corpus, default_runs[0], defaults)
    if args.scaling:
        scaling(sizes, args.seed, defaults, "project defaults")


if __name__ == "__main__":
    main()
