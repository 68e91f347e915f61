"""Near-duplicate admission of synthetic text (curation_dagster/synth/admission.py): a variant may resemble
its parents and siblings, never another item of the version, real or synthetic, nor a candidate that was
not admitted."""

from pathlib import Path

import pyarrow as pa

from curation_dagster.dedup.exact import ExactDedup
from curation_dagster.dedup.near_index import NearIndex
from curation_dagster.filters.chain import build_chain
from curation_dagster.io.lake import Lake
from curation_dagster.io.records import RawRecord
from curation_dagster.io.validate import validate_record
from curation_dagster.schema import RAW_SCHEMA, SYNTH_FIELDS, with_fields
from curation_dagster.spec import BlocklistSettings, ExactDedupSettings, FilterSettings, NearDedupSettings
from curation_dagster.synth.admission import NearAdmission, admit
from tests.engine.dedup.test_near_shards import dedup, documents, edited, spec, table
from tests.media_fixtures import write_jsonl

SETTINGS = NearDedupSettings()
ORIGINAL, OTHER, UNRELATED = documents(11, 3)


def test_a_variant_may_resemble_its_parent_but_not_another_real_item(tmp_path: Path) -> None:
    landing = tmp_path / "landing"
    landing.mkdir()
    write_jsonl(landing / "one.jsonl", [ORIGINAL, OTHER])
    lake = Lake(tmp_path / "lake")
    dedup(spec(), lake, landing, "one.jsonl")
    original, other = (row["id"] for row in table(lake, "one.jsonl"))
    admission = NearAdmission(SETTINGS, [("real", NearIndex(lake, "near", SETTINGS).earlier(None))])

    decisions = admission.check(
        ["c1", "c2", "c3", "c4"],
        [edited(ORIGINAL, 1), edited(OTHER, 2), edited(OTHER, 3), UNRELATED],
        [[original], [original], [other], []],
    )

    assert list(decisions) == ["c2"]
    assert (decisions["c2"].dup_of, decisions["c2"].shard) == (other, "real")
    assert decisions["c2"].similarity >= SETTINGS.min_similarity


def test_siblings_are_admitted_and_another_familys_lookalike_is_not() -> None:
    admission = NearAdmission(SETTINGS, [])
    decisions = admission.check(
        ["s1", "s2", "s3"],
        [edited(ORIGINAL, 1), edited(ORIGINAL, 2), edited(ORIGINAL, 3)],
        [["p"], ["p"], ["q"]],
    )
    assert list(decisions) == ["s3"]
    assert decisions["s3"].dup_of in {"s1", "s2"} and decisions["s3"].shard == ""
    later = admission.check(["s4"], [edited(ORIGINAL, 4)], [["r"]])  # a later batch of the same shard
    assert set(later) == {"s4"}


def test_synthetic_items_admitted_in_an_earlier_shard_reject_lookalikes(tmp_path: Path) -> None:
    index = NearIndex(Lake(tmp_path / "lake"), "v", SETTINGS, prefix="synth_")
    first = NearAdmission(SETTINGS, [("synthetic", index.earlier("one"))])
    assert first.check(["x1", "x2"], [edited(ORIGINAL, 1), UNRELATED], [["p"], ["u"]]) == {}
    outcome = first.outcome("one")
    assert outcome is not None
    index.write("one", outcome)

    second = NearAdmission(SETTINGS, [("synthetic", index.earlier("two"))])
    decisions = second.check(["y1", "y2"], [edited(ORIGINAL, 2), OTHER], [["q"], ["o"]])

    assert {item: decision.dup_of for item, decision in decisions.items()} == {"y1": "x1"}
    again = NearAdmission(SETTINGS, [("synthetic", index.earlier("one"))])  # shard one run again
    assert again.check(["x1"], [edited(ORIGINAL, 1)], [["p"]]) == {}


def candidates(texts: list[str], parents: list[str], first: int = 0) -> pa.Table:
    """Valid synthetic text candidates of shard `one`, one per text and parent."""
    rows = []
    for position, (text, parent) in enumerate(zip(texts, parents, strict=True), start=first):
        row = validate_record(RawRecord(f"c{position}", f"synth://test/{position}", "text", text), "one")
        row.update(synthetic=True, parent_ids=[parent], generator="test")
        rows.append(row)
    return pa.Table.from_pylist(rows, schema=with_fields(RAW_SCHEMA, SYNTH_FIELDS))


def through_admission(
    table: pa.Table, admission: NearAdmission, blocked_word: str
) -> tuple[list[str], dict[str, tuple[str, str | None]]]:
    """The ids `admit` admits from `table` (nothing claimed in other shards, a blocklist as the filters),
    and each rejected id's reason and `dup_of`."""
    chain = build_chain(FilterSettings(text=(BlocklistSettings(words=(blocked_word,)),)))
    admitted, rejected = admit(
        table, {}, lambda hashes: {}, ExactDedup(ExactDedupSettings()), admission, {}, chain
    )
    verdicts = {
        row["id"]: (row["reject_reason"], row["dup_of"]) for part in rejected for row in part.to_pylist()
    }
    return admitted.column("id").to_pylist(), verdicts


def test_a_candidate_the_filters_turn_down_is_no_ones_near_duplicate() -> None:
    admission = NearAdmission(SETTINGS, [])
    batch = candidates([f"{edited(ORIGINAL, 1)} forbidden", edited(ORIGINAL, 2)], ["p", "q"])
    blocked, lookalike = batch.column("id").to_pylist()

    assert through_admission(batch, admission, "forbidden") == (
        [lookalike],
        {blocked: ("filter.blocklist.hit", None)},
    )
    outcome = admission.outcome("one")  # what the shard's synthetic near index gets
    assert outcome is not None and outcome.signatures.column("id").to_pylist() == [lookalike]
    later = candidates([edited(ORIGINAL, 3)], ["r"], first=2)
    assert through_admission(later, admission, "forbidden") == (
        [],
        {later.column("id")[0].as_py(): ("dedup.near", lookalike)},
    )
