"""The text filters of issue 4 together in the filtered stage (curation_dagster/filters/stage.py): the order of
the spec, rewrites seen downstream, scores kept on rejected rows, conservation and the shard metadata."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from curation_dagster.checks import check_conservation
from curation_dagster.io.lake import Lake
from curation_dagster.pipeline import run_stage
from curation_dagster.spec import parse_spec
from tests.media_fixtures import write_jsonl

PROSE = (
    "The committee published its annual report on the regional water supply this morning. According to "
    "the report, the reservoirs held more water at the end of the summer than in any of the previous five "
    "years, and the new pipeline to the northern districts is expected to be completed in the spring. "
    "The authors recommend that the council continue to invest in the maintenance of the older pumping "
    "stations, which account for most of the losses recorded over the past decade."
)
TEXTS = {
    "clean": PROSE,
    "with_email": PROSE + " Questions about the report can be sent to water.office@example.org today.",
    "german": (
        "Der Ausschuss hat heute Morgen seinen Jahresbericht über die regionale Wasserversorgung "
        "veröffentlicht. Nach dem Bericht waren die Speicher am Ende des Sommers voller als in jedem der "
        "fünf vorangegangenen Jahre, und die neue Leitung in die nördlichen Bezirke soll im Frühjahr "
        "fertig werden."
    ),
    "toxic": PROSE + " Anyone who disagrees with this report is a stupid idiot and a moron.",
    "repetitive": "\n".join(["Buy cheap watches online today."] * 30),
    "colloquial": (
        "lol ok so i totally didn't read the report haha, gonna skip it tbh!! anyone know if the pool is "
        "open tmrw?? my kids r gonna lose it if it isn't lol. btw the new pipeline thing sounds kinda cool "
        "i guess, whatever. ok bye!! :) see ya later guys, gonna grab some pizza now haha."
    ),
}
CHAIN: list[dict[str, Any]] = [
    {"kind": "text_length", "min_chars": 50, "max_chars": 20000, "min_words": 10},
    {"kind": "pii"},
    {"kind": "language", "keep": ["en"]},
    {"kind": "gopher_repetition"},
    {"kind": "toxicity", "max_score": 0.8},
    {"kind": "register", "min_formality": 0.5},
]


@pytest.fixture
def filtered(tmp_path: Path) -> tuple[Lake, Any, dict[str, dict[str, Any]]]:
    landing = tmp_path / "landing"
    landing.mkdir()
    write_jsonl(landing / "s.jsonl", list(TEXTS.values()))
    # Near dedup off: three of the texts are the same prose with one sentence added.
    dedup = {"near": {"enabled": False}}
    spec = parse_spec({"name": "t", "modalities": ["text"], "dedup": dedup, "filters": {"text": CHAIN}})
    lake = Lake(tmp_path / "lake")
    for stage in ("raw", "deduped"):
        run_stage(spec, lake, stage, "s.jsonl", landing / "s.jsonl")
    result = run_stage(spec, lake, "filtered", "s.jsonl")
    rows = lake.read_table(lake.path("t", "filtered", "s.jsonl")).to_pylist()
    rows += lake.read_table(lake.path("t", "filtered", "s.jsonl", rejected=True)).to_pylist()
    by_line = {row["uri"].rsplit("#L", 1)[1]: row for row in rows}
    by_name = {name: by_line[str(number)] for number, name in enumerate(TEXTS, start=1)}
    return lake, result, by_name


def test_each_planted_text_is_rejected_by_the_filter_meant_for_it(filtered) -> None:
    _, result, rows = filtered

    assert {name: row.get("reject_reason") for name, row in rows.items()} == {
        "clean": None,
        "with_email": None,
        "german": "filter.language.not_kept",
        "toxic": "filter.toxicity.above_threshold",
        "repetitive": "filter.gopher_repetition.duplicate_lines",
        "colloquial": "filter.register.too_colloquial",
    }
    assert result.reasons == {
        "filter.language.not_kept": 1,
        "filter.toxicity.above_threshold": 1,
        "filter.gopher_repetition.duplicate_lines": 1,
        "filter.register.too_colloquial": 1,
    }


def test_redacted_text_is_what_is_kept(filtered) -> None:
    _, _, rows = filtered

    assert rows["with_email"]["text"].endswith("can be sent to <EMAIL> today.")
    assert rows["with_email"]["pii_redacted"] == 1
    assert rows["with_email"]["pii_kinds"] == "email"
    assert rows["clean"]["pii_redacted"] == 0


def test_rejected_rows_keep_the_scores_computed_before_their_rejection(filtered) -> None:
    _, _, rows = filtered

    german, colloquial = rows["german"], rows["colloquial"]
    assert german["lang"] == "de" and german["lang_score"] > 0.9
    assert german["toxicity_score"] is None  # rejected before toxicity ran
    assert colloquial["toxicity_score"] is not None and colloquial["formality"] < 0.5
    assert rows["clean"]["formality"] >= 0.5


def test_the_stage_conserves_rows_and_reports_scores_and_examples(filtered) -> None:
    lake, result, _ = filtered

    assert check_conservation(lake, "t", "filtered", "s.jsonl", result.rows_in).passed
    assert result.rows_in == len(TEXTS) == result.rows_kept + result.rows_rejected
    assert "| `formality` |" in result.extra["score_quantiles"]
    assert result.extra["score_values"]["lang"] == {"en": 5, "de": 1}
    assert "`filter.register.too_colloquial`" in result.extra["rejected_examples"]
