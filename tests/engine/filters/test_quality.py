"""Tests of curation_dagster/filters/quality.py: every rule just inside and just past its threshold with the
exact reject code, scores kept on rejected rows, C4's line removal, other scripts, empty, null and
enormous text. Each test sets only the rule it checks; the others are switched off."""

from __future__ import annotations

import random
import re
from itertools import pairwise
from typing import Any

import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from curation_dagster.errors import SpecError
from curation_dagster.filters import words as word_rules
from curation_dagster.filters.quality import (
    C4Quality,
    FineWebQuality,
    GopherQuality,
    GopherRepetition,
    _paragraphs,
)
from curation_dagster.filters.text_batch import TextBatch
from curation_dagster.filters.words import WORDS
from curation_dagster.spec import (
    C4QualitySettings,
    FineWebQualitySettings,
    GopherQualitySettings,
    GopherRepetitionSettings,
    parse_spec,
)


def texts(*values: str | None) -> pa.Table:
    return pa.table({"text": pa.array(values, pa.large_string())})


def gopher(**settings: Any) -> GopherQuality:
    off: dict[str, Any] = {
        "min_doc_words": None,
        "max_doc_words": None,
        "min_avg_word_length": None,
        "max_avg_word_length": None,
        "max_symbol_word_ratio": None,
        "max_bullet_lines_ratio": None,
        "max_ellipsis_lines_ratio": None,
        "max_non_alpha_words_ratio": None,
        "min_stop_words": None,
    }
    return GopherQuality(GopherQualitySettings(**{**off, **settings}))


def repetition(**settings: Any) -> GopherRepetition:
    off: dict[str, Any] = {
        "dup_line_frac": None,
        "dup_para_frac": None,
        "dup_line_char_frac": None,
        "dup_para_char_frac": None,
        "top_n_grams": (),
        "dup_n_grams": (),
    }
    return GopherRepetition(GopherRepetitionSettings(**{**off, **settings}))


def c4(**settings: Any) -> C4Quality:
    return C4Quality(C4QualitySettings(**{"min_num_sentences": 1, **settings}))


def fineweb(**settings: Any) -> FineWebQuality:
    off: dict[str, Any] = {
        "line_punct_thr": None,
        "short_line_thr": None,
        "char_duplicates_ratio": None,
        "new_line_ratio": None,
    }
    return FineWebQuality(FineWebQualitySettings(**{**off, **settings}))


PARAGRAPH = (
    "The river rises in the hills to the north of the town and flows south through wide fields. In the "
    "spring it floods the low meadows, and the farmers who work there have learned to move their animals "
    "to higher ground before the water arrives. Most years the damage is small, but the old stone bridge "
    "has been rebuilt twice."
)


# --- words --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("Hello, world!", ["Hello", ",", "world", "!"]),
        ("Don't stop.", ["Do", "n't", "stop", "."]),
        ("a well-known (rare) case", ["a", "well", "-", "known", "(", "rare", ")", "case"]),
        (
            "see https://example.com/a-b?x=1, e.g. here",
            ["see", "https://example.com/a-b?x=1", ",", "e.g.", "here"],
        ),
        ("wait... what…", ["wait", "...", "what", "…"]),
        ("Привет, мир!", ["Привет", ",", "мир", "!"]),
        ("这是一个测试。", ["这是一个测试", "。"]),
    ],
)
def test_words_split_like_the_default_english_tokenizer(text: str, words: list[str]) -> None:
    assert WORDS.split(text) == words
    assert WORDS.count(text) == len(words)


WRAPPED_WORDS = st.builds(
    lambda before, word, after: before + word + after,
    st.sampled_from(["", "", "(", '"', "'", "—", "[", "«", "$", "¿", "+", "."]),
    st.one_of(
        st.text(alphabet=st.characters(categories=("Lu", "Ll", "Lt", "Lo", "Lm")), min_size=1, max_size=6),
        st.sampled_from(["Mr", "Dr", "e.g", "dont", "cannot", "id", "a", "A", "US", "vs", "Co", "NASA", "I"]),
    ),
    st.sampled_from(["", ",", ".", ")", '"', "'", ":", ";", "!", "?", "…", "%", "+", "$", "'s", ".."]),
)


@settings(max_examples=500, deadline=None)
@given(WRAPPED_WORDS)
def test_a_word_wrapped_in_punctuation_splits_as_the_general_rules_split_it(chunk: str) -> None:
    found = word_rules.split_chunk(chunk)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(word_rules, "_wrapped_word", lambda chunk, special: None)
        expected = word_rules.split_chunk(chunk)

    assert found == expected


# --- Gopher quality -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("item", "text", "reason"),
    [
        (gopher(min_doc_words=3), "one two three", None),
        (gopher(min_doc_words=3), "one two -- !!", "filter.gopher_quality.too_few_words"),
        (gopher(max_doc_words=3), "one two three", None),
        (gopher(max_doc_words=3), "one two three four", "filter.gopher_quality.too_many_words"),
        (gopher(min_avg_word_length=4), "abcd efgh", None),
        (gopher(min_avg_word_length=4), "abcd efg", "filter.gopher_quality.short_mean_word_length"),
        (gopher(max_avg_word_length=4), "abcd, efgh.", None),  # punctuation is not part of a word
        (gopher(max_avg_word_length=4), "abcde efgh", "filter.gopher_quality.long_mean_word_length"),
        (gopher(max_symbol_word_ratio=0.25), "#one two three", None),  # 1 '#' in 4 words
        (gopher(max_symbol_word_ratio=0.25), "#one #two three", "filter.gopher_quality.too_many_hashes"),
        (gopher(max_symbol_word_ratio=0.25), "one two three...", None),
        (gopher(max_symbol_word_ratio=0.25), "one… two...", "filter.gopher_quality.too_many_ellipses"),
        (gopher(max_bullet_lines_ratio=0.5), "- one\n- two\nthree\nfour", None),
        (
            gopher(max_bullet_lines_ratio=0.5),
            "- one\n• two\nthree",
            "filter.gopher_quality.too_many_bullet_lines",
        ),
        (gopher(max_ellipsis_lines_ratio=0.5), "one...\ntwo", None),
        (
            gopher(max_ellipsis_lines_ratio=0.5),
            "one...\ntwo…\nthree",
            "filter.gopher_quality.too_many_ellipsis_lines",
        ),
        (gopher(max_non_alpha_words_ratio=0.8), "one two three four 5", None),
        (
            gopher(max_non_alpha_words_ratio=0.8),
            "one two three 4 5",
            "filter.gopher_quality.too_few_alphabetic_words",
        ),
        (
            gopher(max_non_alpha_words_ratio=0.8),
            "one, two, three.",
            "filter.gopher_quality.too_few_alphabetic_words",
        ),
        (gopher(min_stop_words=2), "the cat, and the dog", None),
        (
            gopher(min_stop_words=2),
            "The cat and a dog",
            "filter.gopher_quality.too_few_stop_words",
        ),  # case-sensitive
    ],
)
def test_gopher_quality_rule_at_its_threshold(item: GopherQuality, text: str, reason: str | None) -> None:
    assert item.evaluate(texts(text)).reasons == [reason]


def test_gopher_quality_keeps_real_prose_with_the_published_thresholds() -> None:
    verdicts = GopherQuality(GopherQualitySettings()).evaluate(texts(PARAGRAPH))

    assert verdicts.reasons == [None]
    assert verdicts.scores["gopher_word_count"] == [60]
    assert verdicts.scores["gopher_stop_words"] == [5]


def test_gopher_quality_reports_the_first_rule_and_keeps_every_score() -> None:
    verdicts = GopherQuality(GopherQualitySettings()).evaluate(texts("#tag #tag ..."))

    assert verdicts.reasons == ["filter.gopher_quality.too_few_words"]
    assert verdicts.details == ["2 words < 50"]
    assert {name: values[0] for name, values in verdicts.scores.items()} == {
        "gopher_word_count": 2,
        "gopher_mean_word_length": 3.0,
        "gopher_hash_ratio": 0.4,
        "gopher_ellipsis_ratio": 0.2,
        "gopher_bullet_lines_ratio": 0.0,
        "gopher_ellipsis_lines_ratio": 1.0,
        "gopher_alphabetic_words_ratio": 0.4,
        "gopher_stop_words": 0,
    }


@pytest.mark.parametrize("text", ["", None, "   \n "])
def test_gopher_quality_rejects_text_without_words_as_too_few_words(text: str | None) -> None:
    verdicts = GopherQuality(GopherQualitySettings()).evaluate(texts(text))

    assert verdicts.reasons == ["filter.gopher_quality.too_few_words"]
    assert verdicts.scores["gopher_word_count"] == [0]
    assert verdicts.scores["gopher_mean_word_length"] == [None]


def test_gopher_quality_counts_cyrillic_letters_and_stop_words_of_the_spec() -> None:
    item = gopher(min_doc_words=8, max_non_alpha_words_ratio=0.8, min_stop_words=2, stop_words=("и", "на"))
    verdicts = item.evaluate(texts("Это простой текст и он написан на русском языке для проверки"))

    assert verdicts.reasons == [None]
    assert verdicts.scores["gopher_alphabetic_words_ratio"] == [1.0]


def test_gopher_quality_counts_a_cjk_run_without_spaces_as_one_word() -> None:
    verdicts = GopherQuality(GopherQualitySettings()).evaluate(texts("这是一个测试。我们今天在北京。"))

    assert verdicts.reasons == ["filter.gopher_quality.too_few_words"]
    assert verdicts.scores["gopher_word_count"] == [1]


# --- Gopher repetition --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("item", "text", "reason"),
    [
        (repetition(dup_para_frac=0.3), "one a\n\ntwo b\n\nthree c\n\none a", None),  # 1 of 4
        (
            repetition(dup_para_frac=0.3),
            "one a\n\ntwo b\n\none a",
            "filter.gopher_repetition.duplicate_paragraphs",
        ),
        (repetition(dup_para_char_frac=0.2), "abcd\n\n" + "z" * 8 + "\n\nabcd", None),  # 4 of 20
        (
            repetition(dup_para_char_frac=0.2),
            "abcd\n\n" + "z" * 7 + "\n\nabcd",
            "filter.gopher_repetition.duplicate_paragraph_chars",
        ),
        (repetition(dup_line_frac=0.3), "one\ntwo\nthree\none", None),
        (repetition(dup_line_frac=0.3), "one\ntwo\none", "filter.gopher_repetition.duplicate_lines"),
        (repetition(dup_line_char_frac=0.2), "abcd\n" + "z" * 10 + "\nabcd", None),  # 4 of 20
        (
            repetition(dup_line_char_frac=0.2),
            "abcd\n" + "z" * 9 + "\nabcd",
            "filter.gopher_repetition.duplicate_line_chars",
        ),
        (repetition(top_n_grams=((2, 0.5),)), "ab cd ab cd efghijkl", None),  # "ab cd" twice: 10 of 20
        (repetition(top_n_grams=((2, 0.5),)), "ab cd ab cd efghijk", "filter.gopher_repetition.top_2_gram"),
        (repetition(dup_n_grams=((5, 0.25),)), "aa b c d e aa b c d e   ", None),  # 6 of 24 characters
        (
            repetition(dup_n_grams=((5, 0.25),)),
            "aa b c d e aa b c d e  ",
            "filter.gopher_repetition.duplicate_5_grams",
        ),
    ],
)
def test_gopher_repetition_rule_at_its_threshold(
    item: GopherRepetition, text: str, reason: str | None
) -> None:
    assert item.evaluate(texts(text)).reasons == [reason]


@settings(max_examples=300, deadline=None)
@given(st.lists(st.text(alphabet="\n \tab\r", max_size=14), min_size=1, max_size=5))
def test_gopher_repetition_paragraphs_are_the_stripped_text_split_at_newline_runs(values: list[str]) -> None:
    rows, paragraphs = _paragraphs(TextBatch(pa.array(values, pa.large_string())))

    found = [paragraphs.to_pylist()[start:stop] for start, stop in pairwise(rows.offsets.tolist())]
    assert found == [re.split(r"\n{2,}", value.strip()) for value in values]


def test_gopher_repetition_jumps_past_a_repeated_ngram() -> None:
    # Seven equal words: the 5-gram at 1 repeats the one at 0, then the scan jumps past the end.
    verdicts = repetition(dup_n_grams=((5, 1.0),)).evaluate(texts("aa aa aa aa aa aa aa"))

    assert verdicts.scores["gopher_dup_5_gram_char_ratio"] == [10 / 20]


def test_gopher_repetition_compares_ngrams_word_by_word() -> None:
    verdicts = repetition(dup_n_grams=((5, 0.0),)).evaluate(texts("ab c x y z a bc x y z"))

    assert verdicts.reasons == [None]
    assert verdicts.scores["gopher_dup_5_gram_char_ratio"] == [0.0]


def test_gopher_repetition_top_ngram_of_unique_words_is_the_first() -> None:
    verdicts = repetition(top_n_grams=((3, 1.0),)).evaluate(texts("alpha beta gamma delta"))

    assert verdicts.scores["gopher_top_3_gram_char_ratio"] == [len("alpha beta gamma") / 22]


def test_gopher_repetition_keeps_every_score_of_a_rejected_row() -> None:
    verdicts = GopherRepetition(GopherRepetitionSettings()).evaluate(texts("same line\nsame line\nother"))

    assert verdicts.reasons == ["filter.gopher_repetition.duplicate_lines"]
    assert verdicts.details == ["0.3333 of lines repeat > 0.3"]
    assert all(values[0] is not None for values in verdicts.scores.values())
    assert verdicts.scores["gopher_top_2_gram_char_ratio"] == [(len("same line") * 2) / 25]


def test_gopher_repetition_keeps_real_prose_with_the_published_thresholds() -> None:
    assert GopherRepetition(GopherRepetitionSettings()).evaluate(texts(PARAGRAPH)).reasons == [None]


@pytest.mark.parametrize("text", ["", None])
def test_gopher_repetition_rejects_missing_text_as_empty(text: str | None) -> None:
    verdicts = GopherRepetition(GopherRepetitionSettings()).evaluate(texts(text))

    assert verdicts.reasons == ["filter.gopher_repetition.empty"]


def test_gopher_repetition_refuses_ngram_sizes_it_has_no_score_column_for() -> None:
    spec = {"name": "v", "filters": {"text": [{"kind": "gopher_repetition", "top_n_grams": [[5, 0.1]]}]}}
    with pytest.raises(SpecError, match="top_n_grams: n = 5"):
        parse_spec(spec)


# --- C4 -----------------------------------------------------------------------------------------------


def test_c4_removes_the_lines_the_rules_name_and_counts_them() -> None:
    text = "\n".join(
        [
            "This first line is kept as it is.",
            "no terminal punctuation here",
            "Too short.",
            "A line that trails off...",
            "Enable javascript to see this page.",
            "This site uses cookies to work well.",
            "A line with a citation mark.[1]",
            "  The last line is kept too!  ",
        ]
    )
    verdicts = c4(min_num_sentences=3).evaluate(texts(text))

    assert verdicts.reasons == [None]
    assert verdicts.rewrites["text"] == [
        "This first line is kept as it is.\nA line with a citation mark.\nThe last line is kept too!"
    ]
    assert verdicts.scores == {"c4_lines_removed": [5], "c4_sentences": [3]}


def test_c4_removes_a_line_with_an_overlong_word() -> None:
    verdicts = c4(max_word_length=5).evaluate(texts("Short words only here.\nOne longer wordy line."))

    assert verdicts.rewrites["text"] == ["Short words only here."]
    assert verdicts.scores["c4_lines_removed"] == [1]


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("One sentence here. Two sentences here.\nThe third one is here.", None),
        ("One sentence here.\nThe second one is here.", "filter.c4_quality.too_few_sentences"),
        (
            "Some text about lorem ipsum dolor.\nAnother line. And more. And more.",
            "filter.c4_quality.lorem_ipsum",
        ),
        (
            "A kept line with a { bracket.\nAnother line. And more. And more.",
            "filter.c4_quality.curly_bracket",
        ),
        # The document rules look only at lines that survive the line rules.
        ("lorem ipsum without punctuation\nOne. Two. Three.", None),
        ("Our javascript { code is here.\nOne. Two. Three.", None),
    ],
)
def test_c4_document_rule(text: str, reason: str | None) -> None:
    assert c4(min_num_sentences=3).evaluate(texts(text)).reasons == [reason]


def test_c4_keeps_the_original_text_of_a_rejected_row() -> None:
    text = "Only one sentence is here.\nno punctuation"
    verdicts = c4(min_num_sentences=2).evaluate(texts(text))

    assert verdicts.reasons == ["filter.c4_quality.too_few_sentences"]
    assert verdicts.details == ["1 sentences < 2"]
    assert verdicts.rewrites["text"] == [text]
    assert verdicts.scores == {"c4_lines_removed": [1], "c4_sentences": [1]}


def test_c4_splits_sentences_after_terminals_in_any_script() -> None:
    verdicts = c4(min_num_sentences=1, min_words_per_line=1).evaluate(
        texts("Это первое. Это второе!", '第一句。第二句。"', "Dr. Smith arrived, e.g. today.")
    )

    assert verdicts.scores["c4_sentences"] == [2, 1, 1]


def test_c4_without_split_paragraph_filters_sentences_and_joins_them_with_spaces() -> None:
    verdicts = c4(split_paragraph=False, min_num_sentences=2).evaluate(
        texts("The first sentence is fine. The second one is too!\nthe third has no end")
    )

    assert verdicts.reasons == [None]
    assert verdicts.rewrites["text"] == ["The first sentence is fine. The second one is too!"]
    assert verdicts.scores == {"c4_lines_removed": [1], "c4_sentences": [2]}


@pytest.mark.parametrize("text", ["", None])
def test_c4_rejects_missing_text_as_too_few_sentences_and_leaves_it(text: str | None) -> None:
    verdicts = C4Quality(C4QualitySettings()).evaluate(texts(text))

    assert verdicts.reasons == ["filter.c4_quality.too_few_sentences"]
    assert verdicts.rewrites["text"] == [text]


# --- FineWeb ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("item", "text", "reason"),
    [
        (fineweb(line_punct_thr=0.5), "one two.\nthree four", None),
        (
            fineweb(line_punct_thr=0.5),
            "one two.\nthree\nfour",
            "filter.fineweb_quality.too_few_punctuated_lines",
        ),
        (fineweb(line_punct_thr=0.5, line_punct_exclude_zero=True), "one\ntwo", None),
        (fineweb(line_punct_thr=0.5), "一二三。\n四五六", None),
        (fineweb(short_line_thr=0.5, short_line_length=5), "abcde\nabcdef", None),
        (
            fineweb(short_line_thr=0.5, short_line_length=5),
            "abcde\nabcd\nabcdef",
            "filter.fineweb_quality.too_many_short_lines",
        ),
        (fineweb(char_duplicates_ratio=0.2), "abcd\nabcd\n" + "z" * 12, None),  # 4 of 20
        (
            fineweb(char_duplicates_ratio=0.2),
            "abcd\nabcd\n" + "z" * 11,
            "filter.fineweb_quality.duplicate_line_chars",
        ),
        (fineweb(new_line_ratio=0.5), "one\ntwo\nthree four", None),  # 2 newlines, 4 words
        (fineweb(new_line_ratio=0.5), "one\ntwo\nthree", "filter.fineweb_quality.too_many_newlines"),
        (fineweb(new_line_ratio=0.5), "one,\ntwo\nthree", None),  # the comma is a word
    ],
)
def test_fineweb_rule_at_its_threshold(item: FineWebQuality, text: str, reason: str | None) -> None:
    assert item.evaluate(texts(text)).reasons == [reason]


def test_fineweb_keeps_every_score_of_a_rejected_row() -> None:
    verdicts = FineWebQuality(FineWebQualitySettings()).evaluate(texts("a list\nof short\nitems"))

    assert verdicts.reasons == ["filter.fineweb_quality.too_few_punctuated_lines"]
    assert verdicts.details == ["0 of lines end in punctuation < 0.12"]
    assert verdicts.scores == {
        "fineweb_line_punct_ratio": [0.0],
        "fineweb_short_line_ratio": [1.0],
        "fineweb_char_dup_ratio": [0.0],
        "fineweb_newline_ratio": [2 / 5],
    }


def test_fineweb_keeps_real_prose_with_the_published_thresholds() -> None:
    assert FineWebQuality(FineWebQualitySettings()).evaluate(texts(PARAGRAPH)).reasons == [None]


@pytest.mark.parametrize("text", ["", None, "\n  \n"])
def test_fineweb_rejects_text_without_a_non_blank_line_as_empty(text: str | None) -> None:
    verdicts = FineWebQuality(FineWebQualitySettings()).evaluate(texts(text))

    assert verdicts.reasons == ["filter.fineweb_quality.empty"]
    assert verdicts.scores["fineweb_line_punct_ratio"] == [None]


# --- every filter -------------------------------------------------------------------------------------


def test_every_filter_handles_a_five_megabyte_text() -> None:
    rng = random.Random(0)
    lines = [" ".join(f"word{rng.randrange(2_000)}" for _ in range(12)) + " ." for _ in range(50_000)]
    big = "\n".join(lines)
    table = texts(big)

    assert len(big) > 5_000_000
    assert GopherQuality(GopherQualitySettings()).evaluate(table).reasons == [
        "filter.gopher_quality.too_many_words"
    ]
    assert GopherRepetition(GopherRepetitionSettings()).evaluate(table).reasons == [None]
    c4_verdicts = C4Quality(C4QualitySettings()).evaluate(table)
    assert c4_verdicts.reasons == [None]
    assert c4_verdicts.scores == {"c4_lines_removed": [0], "c4_sentences": [50_000]}
    assert FineWebQuality(FineWebQualitySettings()).evaluate(table).reasons == [None]


def test_every_filter_scores_each_row_of_a_batch() -> None:
    table = texts(PARAGRAPH + "\nThe council met on Monday. It agreed to repair the road.", None, "short")
    for item in (
        GopherQuality(GopherQualitySettings()),
        GopherRepetition(GopherRepetitionSettings()),
        C4Quality(C4QualitySettings()),
        FineWebQuality(FineWebQualitySettings()),
    ):
        verdicts = item.evaluate(table)
        assert set(verdicts.scores) == {field.name for field in item.score_fields}
        assert all(len(values) == 3 for values in verdicts.scores.values())
        assert verdicts.reasons[0] is None
        assert verdicts.reasons[1] is not None
