"""Tests of curation_dagster/filters/base.py: the chain runs filters per modality and keeps scores."""

from __future__ import annotations

from typing import Any, ClassVar

import pyarrow as pa
import pytest

from curation_dagster.filters.base import Filter, FilterChain, Verdicts
from curation_dagster.filters.media import ImageSize
from curation_dagster.filters.text import Blocklist, TextLength
from curation_dagster.schema import RAW_SCHEMA, rows_to_table
from curation_dagster.spec import BlocklistSettings, ImageSizeSettings, TextLengthSettings

LENGTH = TextLength(TextLengthSettings(min_chars=5, max_chars=100, min_words=2))
BLOCK = Blocklist(BlocklistSettings(words=("spam",)))
SIZE = ImageSize(ImageSizeSettings(min_width=10, min_height=10))


def text(id_: str, value: str) -> dict[str, Any]:
    return {"id": id_, "modality": "text", "text": value, "uri": f"land#{id_}", "shard": "s"}


def image(id_: str, width: int, height: int) -> dict[str, Any]:
    return {
        "id": id_,
        "modality": "image",
        "width": width,
        "height": height,
        "uri": f"land#{id_}",
        "shard": "s",
    }


def table(*rows: dict[str, Any]) -> pa.Table:
    return rows_to_table(rows, RAW_SCHEMA)


def by_id(result: pa.Table) -> dict[str, dict[str, Any]]:
    return {row["id"]: row for row in result.to_pylist()}


def test_kept_and_rejected_rows_keep_input_order_across_modalities() -> None:
    chain = FilterChain({"text": [LENGTH], "image": [SIZE]})
    rows = table(
        text("t1", "two words"),
        image("i1", 5, 5),
        image("i2", 20, 20),
        text("t2", "no"),
        text("t3", "also fine"),
        image("i3", 1, 50),
    )

    kept, rejected = chain.run(rows)

    assert kept.column("id").to_pylist() == ["t1", "i2", "t3"]
    assert rejected.column("id").to_pylist() == ["i1", "t2", "i3"]


def test_each_modality_runs_only_its_own_filters() -> None:
    chain = FilterChain({"text": [LENGTH], "image": [SIZE]})

    kept, rejected = chain.run(table(text("t", "two words"), image("i", 20, 20)))

    assert by_id(kept)["t"]["aspect_ratio"] is None
    assert by_id(kept)["i"]["text_chars"] is None
    assert rejected.num_rows == 0


def test_rows_of_a_modality_without_filters_pass() -> None:
    chain = FilterChain({"text": [LENGTH]})

    kept, rejected = chain.run(table(image("i", 1, 1), text("t", "x")))

    assert kept.column("id").to_pylist() == ["i"]
    assert rejected.column("id").to_pylist() == ["t"]


def test_row_rejected_by_the_first_filter_keeps_its_scores_and_nulls_for_later_ones() -> None:
    chain = FilterChain({"text": [LENGTH, BLOCK]})

    _, rejected = chain.run(table(text("short", "spam")))

    row = rejected.to_pylist()[0]
    assert (row["text_chars"], row["text_words"]) == (4, 1)
    assert row["blocklist_hits"] is None
    assert row["reject_reason"] == "filter.text_length.too_short"


def test_row_rejected_by_a_later_filter_keeps_every_earlier_score() -> None:
    chain = FilterChain({"text": [LENGTH, BLOCK]})

    _, rejected = chain.run(table(text("bad", "buy spam now")))

    row = rejected.to_pylist()[0]
    assert (row["text_chars"], row["text_words"], row["blocklist_hits"]) == (12, 3, 1)
    assert row["reject_reason"] == "filter.blocklist.hit"


def test_kept_rows_carry_every_score_of_their_chain() -> None:
    chain = FilterChain({"text": [LENGTH, BLOCK]})

    kept, _ = chain.run(table(text("ok", "clean words")))

    assert {k: kept.to_pylist()[0][k] for k in ("text_chars", "text_words", "blocklist_hits")} == {
        "text_chars": 11,
        "text_words": 2,
        "blocklist_hits": 0,
    }


def test_rejected_rows_carry_stage_reason_and_detail() -> None:
    chain = FilterChain({"text": [LENGTH]})

    _, rejected = chain.run(table(text("t", "x")))

    row = rejected.to_pylist()[0]
    assert (row["reject_stage"], row["reject_reason"], row["reject_detail"]) == (
        "filtered",
        "filter.text_length.too_short",
        "1 characters < 5",
    )


def test_rejected_rows_name_the_stage_the_chain_runs_in() -> None:
    chain = FilterChain({"text": [LENGTH]})

    _, rejected = chain.run(table(text("t", "x")), stage="synthesized")

    assert rejected.column("reject_stage").to_pylist() == ["synthesized"]


def test_kept_rows_have_the_output_schema_and_rejected_rows_add_reject_columns() -> None:
    chain = FilterChain({"text": [LENGTH, BLOCK], "image": [SIZE]})

    kept, rejected = chain.run(table(text("a", "x"), text("b", "two words")))

    assert kept.schema == chain.output_schema(RAW_SCHEMA)
    assert rejected.schema.names == [
        *chain.output_schema(RAW_SCHEMA).names,
        "reject_stage",
        "reject_reason",
        "reject_detail",
    ]


def test_empty_input_gives_empty_outputs_with_every_column() -> None:
    chain = FilterChain({"text": [LENGTH]})

    kept, rejected = chain.run(table())

    assert (kept.num_rows, rejected.num_rows) == (0, 0)
    assert "text_chars" in kept.column_names
    assert "reject_reason" in rejected.column_names


def test_score_fields_are_the_union_of_every_filter_without_repeats() -> None:
    chain = FilterChain({"text": [LENGTH, BLOCK], "video": [SIZE], "image": [SIZE]})

    assert [field.name for field in chain.score_fields] == [
        "text_chars",
        "text_words",
        "blocklist_hits",
        "aspect_ratio",
    ]


class _NeedsModel(Filter):
    name = "needs_model"
    needs_accelerator: ClassVar[bool] = True

    def evaluate(self, table: pa.Table) -> Verdicts:
        return Verdicts({}, [None] * table.num_rows, [None] * table.num_rows)


def test_chain_needs_the_accelerator_when_any_filter_does() -> None:
    assert FilterChain({"text": [LENGTH], "image": [_NeedsModel()]}).needs_accelerator
    assert not FilterChain({"text": [LENGTH], "image": [SIZE]}).needs_accelerator


def test_filter_codes_are_prefixed_with_filter_and_its_name() -> None:
    assert _NeedsModel().code("gpu_busy") == "filter.needs_model.gpu_busy"


def test_a_text_filter_in_an_image_chain_judges_captions_and_passes_images_without_one() -> None:
    chain = FilterChain({"image": [SIZE, BLOCK]})
    captioned = {**image("spam_caption", 20, 20), "text": "buy spam now"}
    clean = {**image("clean_caption", 20, 20), "text": "a red square"}
    rows = table(captioned, clean, image("no_caption", 20, 20), {**image("empty", 20, 20), "text": ""})

    kept, rejected = chain.run(rows)

    assert kept.column("id").to_pylist() == ["clean_caption", "no_caption", "empty"]
    assert by_id(rejected)["spam_caption"]["reject_reason"] == "filter.blocklist.hit"
    assert by_id(kept)["clean_caption"]["blocklist_hits"] == 0
    assert by_id(kept)["no_caption"]["blocklist_hits"] is None


class _Redactor(Filter):
    name = "redactor"
    rewrites_columns: ClassVar = ("text",)
    reads_text = True

    def evaluate(self, table: pa.Table) -> Verdicts:
        texts = [value.replace("secret", "<X>") for value in table.column("text").to_pylist()]
        return Verdicts({}, [None] * table.num_rows, [None] * table.num_rows, {"text": texts})


def test_a_rewrite_is_what_later_filters_and_the_output_see() -> None:
    chain = FilterChain({"text": [_Redactor(), Blocklist(BlocklistSettings(words=("secret",)))]})

    kept, rejected = chain.run(table(text("t1", "my secret plan")))

    assert kept.column("text").to_pylist() == ["my <X> plan"]
    assert rejected.num_rows == 0


def test_a_filter_may_only_rewrite_columns_it_declares() -> None:
    class Sneaky(_Redactor):
        rewrites_columns: ClassVar = ()

    with pytest.raises(ValueError, match="does not declare"):
        FilterChain({"text": [Sneaky()]}).run(table(text("t1", "my secret plan")))
