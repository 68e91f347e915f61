"""Tests of curation_dagster/filters/stage.py: worker processes score a shard's batches with the same output
as the stage's own process, byte for byte, and how many the stage starts."""

from __future__ import annotations

import pydoc_data.topics
import random
import re
from pathlib import Path
from typing import Any

import pytest

import curation_dagster.filters.stage as stage
from curation_dagster.demo import generate_demo_landing
from curation_dagster.filters.chain import build_chain
from curation_dagster.filters.workers import POOL_MIN_ROWS
from curation_dagster.io.lake import Lake
from curation_dagster.io.landing import discover_partitions
from curation_dagster.pipeline import run_stage
from curation_dagster.progress import reporting_to
from curation_dagster.settings import versions_folder
from curation_dagster.shard_io import BATCH_ROWS
from curation_dagster.spec import VersionSpec, load_spec, parse_spec
from tests.media_fixtures import write_jsonl

#: The text recipe of issue 18; C4 rewrites the text of the rows it keeps.
RECIPE: list[dict[str, Any]] = [
    {"kind": "language", "keep": ["en"], "min_score": 0.65},
    {"kind": "gopher_quality"},
    {"kind": "gopher_repetition"},
    {"kind": "c4_quality"},
    {"kind": "fineweb_quality"},
]
_WORD = re.compile(r"^[A-Za-z][a-z'-]*[.,;:]?$")
GERMAN = (
    "Der Ausschuss hat heute Morgen seinen Jahresbericht über die regionale Wasserversorgung veröffentlicht. "
    "Nach dem Bericht waren die Speicher am Ende des Sommers voller als in jedem der fünf Jahre davor."
)


def sentences() -> list[str]:
    """Prose sentences of Python's own documentation (real English on every machine): words only."""
    text = " ".join(" ".join(pydoc_data.topics.topics.values()).split())
    found = re.split(r"(?<=\.) (?=[A-Z])", text)
    return [s for s in found if 6 <= len(s.split()) <= 40 and all(_WORD.match(w) for w in s.split())]


def generated_documents(count: int, seed: int = 3) -> list[str]:
    """Documents that the recipe keeps, rewrites (menu lines C4 drops) or rejects for several reasons."""
    rng = random.Random(seed)
    pool = sentences()

    def paragraph() -> str:
        return " ".join(rng.sample(pool, rng.randint(3, 6)))

    shapes = [
        lambda: "\n".join(paragraph() for _ in range(rng.randint(2, 4))),
        lambda: "Home\nAbout us\n" + "\n".join(paragraph() for _ in range(3)) + "\nContact",
        lambda: "\n".join([rng.choice(pool)] * 12),
        lambda: rng.choice(pool),
        lambda: GERMAN,
        lambda: paragraph() + " The value of {name} is set by the caller.\n" + paragraph(),
    ]
    return [rng.choice(shapes)() for _ in range(count)]


def deduped_shard(tmp_path: Path, texts: list[str], chain: list[dict[str, Any]]) -> tuple[Lake, VersionSpec]:
    """`web.jsonl` through the raw and deduped stages of a text version with `chain` (near dedup off, so
    that every generated shape reaches the filters)."""
    landing = tmp_path / "landing"
    landing.mkdir()
    write_jsonl(landing / "web.jsonl", texts)
    dedup = {"near": {"enabled": False}}
    spec = parse_spec({"name": "t", "modalities": ["text"], "dedup": dedup, "filters": {"text": chain}})
    lake = Lake(tmp_path / "lake")
    run_stage(spec, lake, "raw", "web.jsonl", landing / "web.jsonl")
    run_stage(spec, lake, "deduped", "web.jsonl")
    return lake, spec


def filtered_files(lake: Lake, spec: VersionSpec, shard: str) -> tuple[bytes, bytes]:
    kept = Path(lake.path(spec.name, "filtered", shard)).read_bytes()
    return kept, Path(lake.path(spec.name, "filtered", shard, rejected=True)).read_bytes()


def outcome(lake: Lake, spec: VersionSpec, shard: str, workers: int) -> tuple[Any, ...]:
    """The filtered stage's files and everything its result reports, run with `workers` processes."""
    result = stage.run_filter(spec, lake, shard, workers=workers)
    reported = (result.rows_in, result.rows_kept, result.rows_rejected, result.reasons, result.extra)
    return filtered_files(lake, spec, shard), reported


def test_workers_write_the_demo_text_shards_byte_for_byte_as_one_process(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    landing = tmp_path / "landing"
    generate_demo_landing(landing)
    found = discover_partitions(landing)
    lake = Lake(tmp_path / "lake")
    # Batches of 16 rows: each demo text shard is several batches, spread over the workers.
    monkeypatch.setattr(stage, "BATCH_ROWS", 16)
    for version in ("demo", "text_formal"):
        spec = load_spec(versions_folder() / f"{version}.yaml")
        for shard in ("news_en.jsonl", "forum_multilang.jsonl.gz"):
            run_stage(spec, lake, "raw", shard, found[shard].path)
            run_stage(spec, lake, "deduped", shard)

            alone = outcome(lake, spec, shard, workers=1)
            pooled = outcome(lake, spec, shard, workers=3)

            assert pooled == alone
            assert alone[1][2] > 0  # rows rejected


def test_workers_write_a_generated_shard_byte_for_byte_as_one_process(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    lake, spec = deduped_shard(tmp_path, generated_documents(150), RECIPE)
    monkeypatch.setattr(stage, "BATCH_ROWS", 8)

    alone = outcome(lake, spec, "web.jsonl", workers=1)
    kept = lake.read_table(lake.path("t", "filtered", "web.jsonl")).to_pylist()
    pooled = outcome(lake, spec, "web.jsonl", workers=3)

    assert pooled == alone
    reasons = alone[1][3]
    assert {
        "filter.language.not_kept",
        "filter.gopher_quality.too_few_words",
        "filter.c4_quality.curly_bracket",
    } <= set(reasons)
    assert any(reason.startswith("filter.gopher_repetition.") for reason in reasons)
    rewritten = [row for row in kept if row["c4_lines_removed"]]
    assert rewritten and all(not row["text"].startswith("Home") for row in rewritten)


def test_curation_workers_sets_how_many_processes_the_stage_starts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    lake, spec = deduped_shard(tmp_path, generated_documents(20), RECIPE[:2])
    monkeypatch.setattr(stage, "BATCH_ROWS", 4)
    monkeypatch.setenv("CURATION_WORKERS", "2")
    lines: list[str] = []

    with reporting_to(lines.append):
        run_stage(spec, lake, "filtered", "web.jsonl")

    assert "t/filtered[web.jsonl]: scoring in 2 worker processes" in lines


def test_a_small_shard_is_scored_in_the_stage_process_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CURATION_WORKERS", raising=False)
    monkeypatch.setattr(stage, "available_cores", lambda: 8)
    chain = build_chain(parse_spec({"name": "t", "filters": {"text": RECIPE}}).filters)

    assert stage.worker_count(None, POOL_MIN_ROWS - 1, chain) == 1


def test_a_large_shard_uses_every_core_the_process_may_run_on(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CURATION_WORKERS", raising=False)
    monkeypatch.setattr(stage, "available_cores", lambda: 8)
    chain = build_chain(parse_spec({"name": "t", "filters": {"text": RECIPE}}).filters)

    assert stage.worker_count(None, POOL_MIN_ROWS, chain) == 8


def test_the_setting_overrides_the_default_and_the_argument_overrides_the_setting(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(stage, "available_cores", lambda: 8)
    monkeypatch.setenv("CURATION_WORKERS", "1")
    chain = build_chain(parse_spec({"name": "t", "filters": {"text": RECIPE}}).filters)

    assert stage.worker_count(None, 100 * BATCH_ROWS, chain) == 1
    assert stage.worker_count(3, 100 * BATCH_ROWS, chain) == 3


def test_no_more_workers_start_than_the_shard_has_batches() -> None:
    chain = build_chain(parse_spec({"name": "t", "filters": {"text": RECIPE}}).filters)

    assert stage.worker_count(8, 2 * BATCH_ROWS, chain) == 2
    assert stage.worker_count(8, 0, chain) == 1


def test_a_chain_with_a_clip_filter_is_scored_in_the_stage_process() -> None:
    filters = {"text": RECIPE, "image": [{"kind": "clip_score", "optional": True}]}
    chain = build_chain(parse_spec({"name": "t", "filters": filters}).filters)

    assert stage.worker_count(4, 100 * BATCH_ROWS, chain) == 1
