"""The batch quality filters (curation_dagster/filters/quality.py and c4.py, reading a shared `TextBatch`)
against the per-filter code they replaced (quality_reference.py, one row at a time, each filter splitting
its own text): the same scores, reject codes, details and rewritten text on real and adversarial text, run
alone or in a chain that shares one batch between them."""

from __future__ import annotations

from typing import Any

import pyarrow as pa
import pytest
from hypothesis import given, settings

from curation_dagster.filters import quality
from curation_dagster.filters.base import Filter, FilterChain
from curation_dagster.filters.text import TextLength
from curation_dagster.spec import (
    C4QualitySettings,
    FineWebQualitySettings,
    GopherQualitySettings,
    GopherRepetitionSettings,
    TextLengthSettings,
)
from tests.engine.filters import quality_reference as reference
from tests.engine.filters.text_strategies import BATCHES, real_texts

#: (filter name, settings): the published defaults, and looser ones under which short texts reach the
#: later rules.
SETTINGS: list[tuple[str, Any]] = [
    ("GopherQuality", GopherQualitySettings()),
    ("GopherQuality", GopherQualitySettings(min_doc_words=1, max_doc_words=40, min_stop_words=1)),
    ("GopherRepetition", GopherRepetitionSettings()),
    (
        "GopherRepetition",
        GopherRepetitionSettings(dup_line_frac=0.9, dup_para_frac=0.9, top_n_grams=((3, 0.5),)),
    ),
    ("C4Quality", C4QualitySettings()),
    ("C4Quality", C4QualitySettings(min_num_sentences=1, min_words_per_line=1, max_word_length=8)),
    ("C4Quality", C4QualitySettings(split_paragraph=False, min_num_sentences=2)),
    (
        "C4Quality",
        C4QualitySettings(remove_citations=False, filter_no_terminal_punct=False, min_num_sentences=1),
    ),
    ("FineWebQuality", FineWebQualitySettings()),
    ("FineWebQuality", FineWebQualitySettings(line_punct_exclude_zero=True, short_line_length=5)),
]
IDS = [f"{name}-{index}" for index, (name, _) in enumerate(SETTINGS)]


def table_of(values: list[str | None]) -> pa.Table:
    return pa.table({"text": pa.array(values, pa.large_string())})


def assert_same_verdicts(name: str, filter_settings: Any, values: list[str | None]) -> None:
    table = table_of(values)
    expected = getattr(reference, name)(filter_settings).evaluate(table)
    found = getattr(quality, name)(filter_settings).evaluate(table)

    assert found.reasons == expected.reasons
    assert found.details == expected.details
    assert found.scores == expected.scores
    assert found.rewrites == expected.rewrites


@pytest.mark.parametrize(("name", "filter_settings"), SETTINGS, ids=IDS)
def test_real_text_gets_the_verdicts_of_the_per_filter_code(name: str, filter_settings: Any) -> None:
    assert_same_verdicts(name, filter_settings, [*real_texts(), None, ""])


@pytest.mark.parametrize(("name", "filter_settings"), SETTINGS, ids=IDS)
@settings(max_examples=150, deadline=None)
@given(values=BATCHES)
def test_adversarial_text_gets_the_verdicts_of_the_per_filter_code(
    name: str, filter_settings: Any, values: list[str | None]
) -> None:
    assert_same_verdicts(name, filter_settings, values)


@pytest.mark.parametrize(
    "text",
    [
        " ".join(f"w{index % 5000}." for index in range(200_000)),  # one line of 1.3 MB
        ("The same sentence comes back. " * 40 + "\n") * 30,
        "\n".join(["- item", "• item", "...", "…"] * 50),
        "   \n\t\r\n \u3000 \x0b",
    ],
    ids=["one-huge-line", "repeated", "bullets-and-ellipses", "whitespace-only"],
)
def test_extreme_text_gets_the_verdicts_of_the_per_filter_code(text: str) -> None:
    for name, filter_settings in SETTINGS:
        assert_same_verdicts(name, filter_settings, [text])


def chain(module: Any) -> FilterChain:
    """The FineWeb quality recipe with a filter between that shares nothing and rejects some rows, so the
    shared batch is narrowed, and C4 rewriting the text, so the next filter starts a new one."""
    items: list[Filter] = [
        module.GopherQuality(GopherQualitySettings(min_doc_words=3, min_stop_words=1)),
        TextLength(TextLengthSettings(min_chars=30, min_words=1)),
        module.GopherRepetition(GopherRepetitionSettings()),
        module.C4Quality(C4QualitySettings(min_num_sentences=1, min_words_per_line=2)),
        module.FineWebQuality(FineWebQualitySettings()),
    ]
    return FilterChain({"text": items})


def assert_same_chain_output(values: list[str | None]) -> None:
    table = pa.table(
        {
            "id": [str(index) for index in range(len(values))],
            "modality": ["text"] * len(values),
            "text": pa.array(values, pa.large_string()),
        }
    )
    expected_kept, expected_rejected = chain(reference).run(table)
    kept, rejected = chain(quality).run(table)

    assert kept.equals(expected_kept)
    assert rejected.equals(expected_rejected)


def test_a_chain_sharing_one_batch_keeps_and_rejects_real_text_as_the_per_filter_code() -> None:
    assert_same_chain_output([*real_texts(), None])


@settings(max_examples=150, deadline=None)
@given(values=BATCHES)
def test_a_chain_sharing_one_batch_keeps_and_rejects_adversarial_text_as_the_per_filter_code(
    values: list[str | None],
) -> None:
    assert_same_chain_output(values)
