"""Tests of curation_dagster/io/claims.py: pending marks of a claiming stage."""

from __future__ import annotations

from pathlib import Path

import pytest

from curation_dagster.errors import StageInputMissing
from curation_dagster.io.claims import ClaimJournal, roll_back_interrupted, run_lock_name
from curation_dagster.io.lake import Lake


@pytest.fixture
def journal(tmp_path: Path) -> ClaimJournal:
    return ClaimJournal(Lake(tmp_path / "lake"), "v", "deduped")


def test_a_new_journal_has_nothing_pending(journal: ClaimJournal) -> None:
    assert journal.pending() == []
    assert not journal.is_pending("a.jsonl")


def test_begin_marks_the_shard_pending_until_finish(journal: ClaimJournal) -> None:
    journal.begin("b.jsonl")
    journal.begin("a.jsonl")
    assert journal.pending() == ["a.jsonl", "b.jsonl"]

    journal.finish("a.jsonl")

    assert journal.pending() == ["b.jsonl"]
    assert journal.is_pending("b.jsonl") and not journal.is_pending("a.jsonl")


def test_finish_of_a_shard_not_pending_is_harmless(journal: ClaimJournal) -> None:
    journal.finish("a.jsonl")
    assert journal.pending() == []


def test_a_pending_shard_is_refused_as_input_with_what_to_do(journal: ClaimJournal) -> None:
    journal.begin("a.jsonl")
    with pytest.raises(StageInputMissing, match=r"v/deduped for shard 'a\.jsonl'.*materialize v/deduped"):
        journal.require_complete("a.jsonl")
    journal.require_complete("b.jsonl")


def test_any_pending_shard_is_refused_by_a_reader_of_every_shard(journal: ClaimJournal) -> None:
    journal.require_none_pending()
    journal.begin("a.jsonl")
    with pytest.raises(StageInputMissing, match=r"shards a\.jsonl"):
        journal.require_none_pending()


def test_journals_of_two_stages_are_apart(tmp_path: Path) -> None:
    lake = Lake(tmp_path / "lake")
    ClaimJournal(lake, "v", "deduped").begin("a.jsonl")
    assert ClaimJournal(lake, "v", "synthesized").pending() == []


def test_a_dead_run_s_mark_is_rolled_back_by_the_next_claimer(journal: ClaimJournal) -> None:
    journal.begin("b.jsonl")
    forgotten: list[str] = []

    assert roll_back_interrupted(journal, "a.jsonl", forgotten.append) == ["b.jsonl"]
    assert forgotten == ["b.jsonl"] and journal.pending() == []


def test_a_live_run_s_mark_is_left_alone(journal: ClaimJournal) -> None:
    journal.begin("b.jsonl")
    forgotten: list[str] = []
    with journal.lake.lock("v", run_lock_name("deduped", "b.jsonl")):
        assert roll_back_interrupted(journal, "a.jsonl", forgotten.append) == []
    assert forgotten == [] and journal.pending() == ["b.jsonl"]


def test_a_run_that_finishes_between_the_listing_and_the_lock_check_is_not_rolled_back(
    tmp_path: Path,
) -> None:
    writer = ClaimJournal(Lake(tmp_path / "lake"), "v", "deduped")
    writer.begin("b.jsonl")

    class FinishesBeforeTheLockCheck(Lake):
        def is_locked(self, version: str, name: str) -> bool:
            writer.finish("b.jsonl")  # run b clears its mark, then lets go of its run lock
            return False

    racing = ClaimJournal(FinishesBeforeTheLockCheck(tmp_path / "lake"), "v", "deduped")
    forgotten: list[str] = []

    assert roll_back_interrupted(racing, "a.jsonl", forgotten.append) == []
    assert forgotten == []
