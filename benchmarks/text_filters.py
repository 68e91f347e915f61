"""Text quality heuristics: our Gopher, C4 and FineWeb filters against datatrove's, in one process.

The corpus is real text found on this machine (what `near_dedup.py` reads, in the same order: Python's documentation, the
docstrings of the standard library, the long descriptions of the installed packages and
/usr/share/common-licenses). Each source is cut at blank lines into documents of about 20 to 1,500 words
with its formatting kept (code, bullets, tables, headers, short lines: noisy material), and the prose
paragraphs of all sources (8 words or more, mostly plain words) are grouped into clean documents of 2 to
12 paragraphs. Both sides run each filter with the same thresholds (the published defaults) on the same
documents.

For each filter the script prints the decision agreement (the share of documents both keep or both
reject), the reject rates, MB per second per core for both (UTF-8 bytes over process CPU time, one thread)
and the ratio; for C4 also the share of documents both keep whose rewritten text is identical. Then the
language filter with each engine (fastText's packaged lid.176.ftz in batches, the same model through
fasttext-predict one text at a time, py3langid; datatrove's language filter downloads its model, so it is
left out), and the chains: the four quality filters one after the other, ours sharing one `TextBatch`
against datatrove's, then ours with the language filter (en, 0.65) first, the FineWeb recipe. Every side
runs once untimed before it is timed, so word caches are warm; the last line is our quality chain on a
vocabulary that starts empty (every chunk split into words for the first time).
Then every disagreement class (our rule against datatrove's reason) with a few examples.

    python benchmarks/text_filters.py                  # 4,000 documents, a few minutes
    python benchmarks/text_filters.py --repeat 3       # each side's fastest of 3 runs (busy machine)

Needs the `bench` extra (`pip install -e .[bench]`: datatrove 0.10.1) and spaCy, which datatrove's default
English word tokenizer uses (`spacy.blank("en")`: rules only, no model download, works offline).
"""

from __future__ import annotations

import os

os.environ["OMP_NUM_THREADS"] = "1"
os.environ["OPENBLAS_NUM_THREADS"] = "1"
os.environ["MKL_NUM_THREADS"] = "1"
os.environ["NUMEXPR_NUM_THREADS"] = "1"

import argparse
import importlib.metadata
import random
import re
import sys
import sysconfig
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa

sys.path.insert(0, str(Path(__file__).resolve().parent))

from near_dedup import _DOCSTRING, Timing, _prose_paragraphs, best_of

from curation_dagster.filters import c4, language, text_batch
from curation_dagster.filters.base import Filter, FilterChain, Verdicts
from curation_dagster.filters.language import Language
from curation_dagster.filters.quality import C4Quality, FineWebQuality, GopherQuality, GopherRepetition
from curation_dagster.spec import (
    C4QualitySettings,
    FineWebQualitySettings,
    GopherQualitySettings,
    GopherRepetitionSettings,
    LanguageSettings,
)

BATCH = 1000
_BLANK_LINES = re.compile(r"\n[ \t]*\n")


@dataclass(frozen=True)
class Document:
    text: str
    source: str


def _blocks(text: str) -> list[str]:
    return [block.strip("\n") for block in _BLANK_LINES.split(text) if block.strip()]


def _cut(text: str, source: str, rng: random.Random) -> Iterator[Document]:
    """Consecutive blocks of `text` grouped into documents of a random size (log-uniform, 20 to 1,500
    words), formatting kept."""
    blocks = _blocks(text)
    index = 0
    while index < len(blocks):
        target = round(20 * 75 ** rng.random())
        group: list[str] = []
        words = 0
        while index < len(blocks) and words < target:
            group.append(blocks[index])
            words += len(blocks[index].split())
            index += 1
        yield Document("\n\n".join(group), source)


def labelled_sources() -> Iterator[tuple[str, str]]:
    """The texts `near_dedup._source_texts` reads, in its order, each with the name of its source."""
    import pydoc_data.topics

    topics: dict[str, str] = pydoc_data.topics.topics
    for key in sorted(topics):
        yield "pydoc", topics[key]
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    skipped = {"test", "tests", "idlelib", "site-packages"}
    for path in sorted(stdlib.rglob("*.py")):
        if not skipped & set(path.parts):
            yield "docstrings", "\n\n".join(_DOCSTRING.findall(path.read_text(errors="replace")))
    seen: set[str] = {"curation-dagster", "curation_dagster"}
    distributions = sorted(importlib.metadata.distributions(), key=lambda d: str(d.metadata["Name"]).lower())
    for distribution in distributions:
        name = str(distribution.metadata["Name"]).lower()
        if name not in seen:
            seen.add(name)
            yield "metadata", (distribution.read_text("METADATA") or "").partition("\n\n")[2]
    licenses = Path("/usr/share/common-licenses")
    if licenses.is_dir():
        for path in sorted({item.resolve() for item in licenses.iterdir() if item.is_file()}):
            yield "licenses", path.read_text(errors="replace")


def build_corpus(documents: int, seed: int) -> list[Document]:
    """Raw documents cut from every source and clean prose documents, shuffled; the first `documents`."""
    rng = random.Random(seed)
    corpus: list[Document] = []
    paragraphs: list[str] = []
    for kind, text in labelled_sources():
        corpus.extend(_cut(text, kind, rng))
        paragraphs.extend(_prose_paragraphs(text))
    index = 0
    while index < len(paragraphs):
        size = rng.randint(2, 12)
        corpus.append(Document("\n\n".join(paragraphs[index : index + size]), "prose"))
        index += size
    rng.shuffle(corpus)
    return corpus[:documents]


class WhitespaceWords:
    """Words as whitespace tokens, in place of the word splitter for `--whitespace-words`."""

    def split(self, text: str) -> list[str]:
        return text.split()

    def count(self, text: str) -> int:
        return len(text.split())

    def chunk_words(self, chunk: str) -> tuple[str, ...]:
        return (chunk,)


# ---------------------------------------------------------------------------------------------------------
# Running


@dataclass
class Side:
    """One library's run of one filter: the reason per document (None: kept) and the timing."""

    reasons: list[str | None]
    details: list[str | None]
    timing: Timing
    texts: list[str | None] | None = None


def _tables(texts: list[str]) -> list[pa.Table]:
    return [
        pa.table(
            {
                "id": [str(index) for index in range(start, min(start + BATCH, len(texts)))],
                "modality": ["text"] * len(texts[start : start + BATCH]),
                "text": pa.array(texts[start : start + BATCH], pa.large_string()),
            }
        )
        for start in range(0, len(texts), BATCH)
    ]


def run_ours(item: Filter, texts: list[str], repeat: int) -> Side:
    """Our filter on batches of `BATCH` rows, once untimed, then the fastest of `repeat` timed runs."""
    tables = _tables(texts)

    def run() -> tuple[list[str | None], list[str | None], list[Any]]:
        reasons: list[str | None] = []
        details: list[str | None] = []
        rewritten: list[Any] = []
        for table in tables:
            verdicts = item.evaluate(table)
            reasons.extend(verdicts.reasons)
            details.extend(verdicts.details)
            rewritten.extend(verdicts.rewrites.get("text", ()))
        return reasons, details, rewritten

    run()
    (reasons, details, rewritten), timing = best_of(repeat, run)
    return Side(reasons, details, timing, rewritten or None)


def run_datatrove(make: Callable[[], Any], texts: list[str], repeat: int) -> Side:
    """datatrove's filter document by document, once untimed, then the fastest of `repeat` timed runs."""
    from datatrove.data import Document as DatatroveDocument

    step = make()

    def run() -> tuple[list[str | None], list[str | None]]:
        documents = [DatatroveDocument(text=text, id=str(index)) for index, text in enumerate(texts)]
        reasons: list[str | None] = []
        for document in documents:
            result = step.filter(document)
            if result is True or (isinstance(result, tuple) and result[0]):
                reasons.append(None)
            else:
                reasons.append(result[1] if isinstance(result, tuple) else "rejected")
        return reasons, [document.text for document in documents]

    run()
    (reasons, rewritten), timing = best_of(repeat, run)
    return Side(reasons, [None] * len(reasons), timing, list(rewritten))


def run_our_chain(items: list[Filter], texts: list[str], repeat: int, warm: bool = True) -> Side:
    """Our filters as the filtered stage runs them (`FilterChain`: a row rejected by one skips the rest,
    the text rules share one batch); per document the reject code, or None when kept. Not `warm`: the
    first run is timed, on a vocabulary that starts empty."""
    chain = FilterChain({"text": items})
    tables = _tables(texts)

    def run() -> list[str | None]:
        reasons: dict[str, str] = {}
        for table in tables:
            _, rejected = chain.run(table)
            reasons.update(
                zip(
                    rejected.column("id").to_pylist(),
                    rejected.column("reject_reason").to_pylist(),
                    strict=True,
                )
            )
        return [reasons.get(str(index)) for index in range(len(texts))]

    if warm:
        run()
    else:
        text_batch._vocabulary = text_batch.Vocabulary()
    reasons, timing = best_of(repeat, run)
    return Side(reasons, [None] * len(reasons), timing)


def run_datatrove_chain(makes: list[Callable[[], Any]], texts: list[str], repeat: int) -> Side:
    """datatrove's filters one after the other on each document (C4 rewrites the text the next one reads)."""
    from datatrove.data import Document as DatatroveDocument

    steps = [make() for make in makes]

    def run() -> list[str | None]:
        reasons: list[str | None] = []
        for index, text in enumerate(texts):
            document = DatatroveDocument(text=text, id=str(index))
            reason = None
            for step in steps:
                result = step.filter(document)
                if not (result is True or (isinstance(result, tuple) and result[0])):
                    reason = result[1] if isinstance(result, tuple) else "rejected"
                    break
            reasons.append(reason)
        return reasons

    run()
    reasons, timing = best_of(repeat, run)
    return Side(reasons, [None] * len(reasons), timing)


class TextByTextLanguage(Language):
    """The language filter with fastText run through fasttext-predict one text at a time (the engine before
    the batch engine of `curation_dagster.filters.fasttext_batch`), for comparison."""

    def evaluate(self, table: pa.Table) -> Verdicts:
        batch_model = language.batch_fasttext_model
        language.batch_fasttext_model = lambda path: None  # type: ignore[assignment]
        try:
            return super().evaluate(table)
        finally:
            language.batch_fasttext_model = batch_model


def language_filters() -> list[tuple[str, Filter]]:
    def settings(model: str) -> LanguageSettings:
        return LanguageSettings(keep=("en",), min_score=0.65, model=model)  # type: ignore[arg-type]

    return [
        ("language (fasttext)", Language(settings("fasttext"))),
        ("language (ft-predict)", TextByTextLanguage(settings("fasttext"))),
        ("language (py3langid)", Language(settings("py3langid"))),
    ]


def filters() -> list[tuple[str, Filter, Callable[[], Any]]]:
    """Ours and datatrove's of each kind, both with the spec's defaults (the published thresholds)."""
    from datatrove.pipeline.filters import C4QualityFilter as DatatroveC4
    from datatrove.pipeline.filters import FineWebQualityFilter as DatatroveFineWeb
    from datatrove.pipeline.filters import GopherQualityFilter as DatatroveGopherQuality
    from datatrove.pipeline.filters import GopherRepetitionFilter as DatatroveGopherRepetition

    gopher, repetition = GopherQualitySettings(), GopherRepetitionSettings()
    c4, fineweb = C4QualitySettings(), FineWebQualitySettings()
    return [
        (
            "gopher_quality",
            GopherQuality(gopher),
            lambda: DatatroveGopherQuality(
                min_doc_words=gopher.min_doc_words,
                max_doc_words=gopher.max_doc_words,
                min_avg_word_length=gopher.min_avg_word_length,
                max_avg_word_length=gopher.max_avg_word_length,
                max_symbol_word_ratio=gopher.max_symbol_word_ratio,
                max_bullet_lines_ratio=gopher.max_bullet_lines_ratio,
                max_ellipsis_lines_ratio=gopher.max_ellipsis_lines_ratio,
                max_non_alpha_words_ratio=gopher.max_non_alpha_words_ratio,
                min_stop_words=gopher.min_stop_words,
                stop_words=list(gopher.stop_words),
            ),
        ),
        (
            "gopher_repetition",
            GopherRepetition(repetition),
            lambda: DatatroveGopherRepetition(
                dup_line_frac=repetition.dup_line_frac,
                dup_para_frac=repetition.dup_para_frac,
                dup_line_char_frac=repetition.dup_line_char_frac,
                dup_para_char_frac=repetition.dup_para_char_frac,
                top_n_grams=repetition.top_n_grams,
                dup_n_grams=repetition.dup_n_grams,
            ),
        ),
        (
            "c4_quality",
            C4Quality(c4),
            lambda: DatatroveC4(
                split_paragraph=c4.split_paragraph,
                remove_citations=c4.remove_citations,
                filter_no_terminal_punct=c4.filter_no_terminal_punct,
                min_num_sentences=c4.min_num_sentences if c4.min_num_sentences is not None else -1,
                min_words_per_line=c4.min_words_per_line if c4.min_words_per_line is not None else -1,
                max_word_length=c4.max_word_length if c4.max_word_length is not None else -1,
                filter_lorem_ipsum=c4.filter_lorem_ipsum,
                filter_javascript=c4.filter_javascript,
                filter_curly_bracket=c4.filter_curly_bracket,
                filter_policy=c4.filter_policy,
            ),
        ),
        (
            "fineweb_quality",
            FineWebQuality(fineweb),
            lambda: DatatroveFineWeb(
                line_punct_thr=fineweb.line_punct_thr,
                line_punct_exclude_zero=fineweb.line_punct_exclude_zero,
                short_line_thr=fineweb.short_line_thr,
                short_line_length=fineweb.short_line_length,
                char_duplicates_ratio=fineweb.char_duplicates_ratio,
                new_line_ratio=fineweb.new_line_ratio,
            ),
        ),
    ]


# ---------------------------------------------------------------------------------------------------------
# Report


def _rule(code: str | None) -> str:
    return "kept" if code is None else code.rsplit(".", 1)[-1]


def _excerpt(text: str, size: int = 110) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= size else flat[: size - 1] + "…"


def report(
    name: str, corpus: list[Document], ours: Side, theirs: Side, examples: int
) -> tuple[float, float, list[str]]:
    total = len(corpus)
    megabytes = sum(len(document.text.encode()) for document in corpus) / 1e6
    agree = sum((a is None) == (b is None) for a, b in zip(ours.reasons, theirs.reasons, strict=True))
    rejected_ours = sum(reason is not None for reason in ours.reasons)
    rejected_theirs = sum(reason is not None for reason in theirs.reasons)
    speed_ours, speed_theirs = ours.timing.per_core(megabytes), theirs.timing.per_core(megabytes)
    print(
        f"{name:<22} {agree / total:>9.4f}  {rejected_ours / total:>6.1%} / {rejected_theirs / total:<6.1%}"
        f"  {speed_ours:>9.1f}  {speed_theirs:>9.2f}  {speed_ours / speed_theirs:>6.1f}x"
    )
    lines: list[str] = []
    classes: dict[tuple[str, str], list[int]] = defaultdict(list)
    for index, (a, b) in enumerate(zip(ours.reasons, theirs.reasons, strict=True)):
        if (a is None) != (b is None):
            classes[_rule(a), b or "kept"].append(index)
    lines.append(f"{name}: {total - agree} disagreements in {len(classes)} classes (ours -> datatrove)")
    by_source: dict[str, list[bool]] = defaultdict(list)
    for document, reason in zip(corpus, ours.reasons, strict=True):
        by_source[document.source].append(reason is not None)
    lines.append(
        "  ours rejects by source: "
        + ", ".join(f"{source} {sum(flags) / len(flags):.0%}" for source, flags in sorted(by_source.items()))
    )
    for (rule, reason), indexes in sorted(classes.items(), key=lambda item: -len(item[1])):
        sources = Counter(corpus[index].source for index in indexes)
        lines.append(
            f"  {rule} -> {reason}: {len(indexes)} ({', '.join(f'{k} {v}' for k, v in sources.items())})"
        )
        for index in indexes[:examples]:
            detail = ours.details[index] or "kept"
            lines.append(f"    #{index} ours: {detail} | {_excerpt(corpus[index].text)!r}")
    both_rejected = [
        index
        for index, (a, b) in enumerate(zip(ours.reasons, theirs.reasons, strict=True))
        if a is not None and b is not None
    ]
    if both_rejected:
        pairs = Counter((_rule(ours.reasons[index]), theirs.reasons[index]) for index in both_rejected)
        lines.append(f"  both reject, first rule by pair: {dict(pairs.most_common())}")
    if ours.texts is not None and theirs.texts is not None:
        both_kept = [
            index
            for index, (a, b) in enumerate(zip(ours.reasons, theirs.reasons, strict=True))
            if a is None and b is None
        ]
        same = sum(ours.texts[index] == theirs.texts[index] for index in both_kept)
        lines.append(f"  rewritten text identical on {same} of {len(both_kept)} documents both keep")
    return agree / total, speed_ours / speed_theirs, lines


def print_alone(name: str, corpus: list[Document], ours: Side) -> None:
    """A row for a filter or chain with no datatrove counterpart here."""
    megabytes = sum(len(document.text.encode()) for document in corpus) / 1e6
    rejected = sum(reason is not None for reason in ours.reasons) / len(corpus)
    print(
        f"{name:<22} {'-':>9}  {rejected:>6.1%} / {'-':<6}  {ours.timing.per_core(megabytes):>9.1f}  {'-':>9}"
    )


def use_whitespace_words() -> None:
    """Our filters take whitespace tokens as words (`--whitespace-words`)."""
    text_batch.split_chunk = lambda chunk: (chunk,)  # type: ignore[assignment]
    c4.WORDS = WhitespaceWords()  # type: ignore[assignment]
    text_batch._vocabulary = text_batch.Vocabulary()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--documents", type=int, default=4000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--repeat", type=int, default=1, help="each side's fastest of this many runs")
    parser.add_argument("--examples", type=int, default=3, help="examples printed per disagreement class")
    parser.add_argument(
        "--whitespace-words",
        action="store_true",
        help="our filters take whitespace tokens as words (to measure what datatrove's words change)",
    )
    args = parser.parse_args()
    if args.whitespace_words:
        use_whitespace_words()

    corpus = build_corpus(args.documents, args.seed)
    texts = [document.text for document in corpus]
    sources = Counter(document.source for document in corpus)
    megabytes = sum(len(text.encode()) for text in texts) / 1e6
    print(
        f"corpus: {len(corpus):,} documents, {megabytes:.1f} MB ("
        + ", ".join(f"{kind} {count:,}" for kind, count in sources.most_common())
        + ")"
    )
    print(f"{'filter':<22} {'agreement':>9}  {'rejected ours / datatrove':<25}  {'ours MB/s':>9}  "
          f"{'datatrove':>9}  {'ratio':>7}")  # fmt: skip
    notes: list[str] = []
    results: list[tuple[str, float, float]] = []
    cold = (
        None
        if args.whitespace_words
        else run_our_chain([item for _, item, _ in filters()], texts, 1, warm=False)
    )
    for name, ours_filter, make in filters():
        theirs = run_datatrove(make, texts, args.repeat)
        ours = run_ours(ours_filter, texts, args.repeat)
        agreement, ratio, lines = report(name, corpus, ours, theirs, args.examples)
        results.append((name, agreement, ratio))
        notes.extend(lines)
    for name, identifier in language_filters():
        print_alone(name, corpus, run_ours(identifier, texts, args.repeat))
    quality_chain = run_our_chain([item for _, item, _ in filters()], texts, args.repeat)
    theirs = run_datatrove_chain([make for _, _, make in filters()], texts, args.repeat)
    agreement, _, lines = report("chain: 4 quality", corpus, quality_chain, theirs, args.examples)
    results.append(("chain", agreement, 0.0))
    notes.extend(lines)
    recipe = [language_filters()[0][1], *(item for _, item, _ in filters())]
    print_alone("chain: language + 4", corpus, run_our_chain(recipe, texts, args.repeat))
    if cold is not None:
        print_alone("chain: 4, cold words", corpus, cold)
    print(
        "(MB/s: UTF-8 megabytes per second per core, process CPU time, one thread, after one untimed run; "
        "'cold words': our first run of the chain, every chunk split into words for the first time)"
    )
    agreement_met = all(agreement >= 0.99 for _, agreement, _ in results)
    print(f"goal agreement >= 0.99 per filter and chain: {'met' if agreement_met else 'NOT met'}")
    print()
    print("\n".join(notes))


if __name__ == "__main__":
    main()
