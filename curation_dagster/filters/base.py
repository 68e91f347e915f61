"""The filter base class and the chain that runs filters per modality and keeps every score."""

from __future__ import annotations

import dataclasses
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from curation_dagster.filters.text_batch import TextBatch
from curation_dagster.schema import mark_rejected, rejected_schema, with_fields

_POSITION = "__position"


@dataclass
class Verdicts:
    """What a filter computed for a batch: score columns for every row, a reason for each reject, and
    the new values of any input column the filter rewrites (PII redaction, C4's line removal), which
    later filters and the kept and rejected rows see."""

    scores: dict[str, list[object]]
    reasons: list[str | None]
    details: list[str | None]
    rewrites: dict[str, list[object]] = dataclasses.field(default_factory=dict)


class Filter(ABC):
    """One filter: `evaluate` scores a batch of rows of its modality and names the rows it rejects.

    Subclasses declare their score columns and implement `evaluate`; the chain owns batching, keeping
    scores on rejected rows, and reject bookkeeping.
    """

    name: ClassVar[str]
    score_fields: ClassVar[Sequence[pa.Field]] = ()
    #: Input columns the filter may rewrite (see `Verdicts.rewrites`).
    rewrites_columns: ClassVar[Sequence[str]] = ()
    #: Whether the filter judges the `text` column; in an image, audio or video chain it then judges
    #: the captions and transcripts, and items without text pass it.
    reads_text: ClassVar[bool] = False
    needs_accelerator: ClassVar[bool] = False
    """Whether instances of the class always run a model; `uses_accelerator` decides per instance."""

    def input_columns(self) -> Sequence[str]:
        """The columns its scores derive from (the column lineage shown in the UI)."""
        return ("text",) if self.reads_text else ()

    def uses_accelerator(self) -> bool:
        """Whether this filter, with its settings, runs a model on the accelerator."""
        return self.needs_accelerator

    @abstractmethod
    def evaluate(self, table: pa.Table) -> Verdicts:
        """Scores and decisions for every row of `table` (all of this filter's modality)."""

    def code(self, rule: str) -> str:
        """The reject code of one of its rules: `filter.<name>.<rule>`, one scheme for every filter (as
        `raw.<rule>`, `dedup.<method>`, `select.<rule>` and `synth.<rule>` are for the other stages)."""
        return f"filter.{self.name}.{rule}"


#: A row's verdict: None to keep it, or the rule that rejects it and a short human detail.
Reject = tuple[str, str] | None


class RowFilter(Filter):
    """A filter that judges one row at a time; the base collects scores and reject codes for the batch.

    `columns` names the input columns `judge` reads; `judge` returns the row's scores by column name and
    its verdict.
    """

    columns: ClassVar[tuple[str, ...]] = ("text",)

    def input_columns(self) -> Sequence[str]:
        return self.columns

    @abstractmethod
    def judge(self, row: dict[str, Any]) -> tuple[dict[str, object], Reject]:
        """The scores of one row and None to keep it, or `(rule, detail)` to reject it."""

    def evaluate(self, table: pa.Table) -> Verdicts:
        names = [field.name for field in self.score_fields]
        scores: dict[str, list[object]] = {name: [] for name in names}
        reasons: list[str | None] = []
        details: list[str | None] = []
        for row in table.select(list(self.columns)).to_pylist():
            values, verdict = self.judge(row)
            for name in names:
                scores[name].append(values.get(name))
            reasons.append(None if verdict is None else self.code(verdict[0]))
            details.append(None if verdict is None else verdict[1])
        return Verdicts(scores, reasons, details)


class TextBatchFilter(Filter):
    """A text filter whose rules read a `TextBatch`: the lines, chunks and words it shares with the other
    text rules of a chain, each computed once per batch. Run alone, it makes its own batch."""

    reads_text = True

    def evaluate(self, table: pa.Table) -> Verdicts:
        return self.evaluate_batch(TextBatch(table.column("text")))

    @abstractmethod
    def evaluate_batch(self, batch: TextBatch) -> Verdicts:
        """Scores and decisions for every row of `batch`."""


class FilterChain:
    """Runs an ordered list of filters per modality; a row rejected by one filter skips the rest."""

    def __init__(self, chains: dict[str, Sequence[Filter]]) -> None:
        self.chains = chains

    @property
    def score_fields(self) -> list[pa.Field]:
        seen: dict[str, pa.Field] = {}
        for chain in self.chains.values():
            for item in chain:
                for field in item.score_fields:
                    seen.setdefault(field.name, field)
        return list(seen.values())

    @property
    def needs_accelerator(self) -> bool:
        """Whether any filter runs a model, so the stage belongs in the GPU pool."""
        return any(item.uses_accelerator() for chain in self.chains.values() for item in chain)

    def output_schema(self, input_schema: pa.Schema) -> pa.Schema:
        return with_fields(input_schema, self.score_fields)

    def run(self, table: pa.Table, stage: str = "filtered") -> tuple[pa.Table, pa.Table]:
        """Split `table` into (kept, rejected), both with every score column of the chain."""
        schema = self.output_schema(table.schema)
        table = _add_null_columns(table, schema).append_column(
            _POSITION, pa.array(range(table.num_rows), pa.int64())
        )
        kept_parts: list[pa.Table] = []
        rejected_parts: list[pa.Table] = []
        modality = table.column("modality")
        for name in sorted(set(modality.to_pylist())):
            alive = table.filter(pc.equal(modality, name))
            shared: TextBatch | None = None
            for item in self.chains.get(name, ()):
                if alive.num_rows == 0:
                    break
                if item.reads_text and name != "text":
                    # A text filter in a media chain judges captions and transcripts; items without
                    # one pass it untouched.
                    has_text = pc.fill_null(pc.greater(pc.utf8_length(alive.column("text")), 0), False)
                    judged, rejected, _ = self._apply(item, alive.filter(has_text), schema, stage, None)
                    alive = pa.concat_tables([judged, alive.filter(pc.invert(has_text))])
                else:
                    alive, rejected, shared = self._apply(item, alive, schema, stage, shared)
                if rejected is not None:
                    rejected_parts.append(rejected)
            kept_parts.append(alive)
        kept = _in_input_order(kept_parts, schema)
        rejected = _in_input_order(rejected_parts, rejected_schema(schema))
        return kept, rejected

    @staticmethod
    def _apply(
        item: Filter, alive: pa.Table, schema: pa.Schema, stage: str, shared: TextBatch | None
    ) -> tuple[pa.Table, pa.Table | None, TextBatch | None]:
        """One filter on the rows still alive: rewrites and scores written, then (kept, rejected or None,
        the text statistics of the kept rows for the next filter, or None once the text was rewritten).
        `shared` holds what earlier text rules computed from the same rows' text."""
        if alive.num_rows == 0:
            return alive, None, shared
        if isinstance(item, TextBatchFilter):
            shared = shared if shared is not None else TextBatch(alive.column("text"))
            verdicts = item.evaluate_batch(shared)
        else:
            verdicts = item.evaluate(alive)
        if "text" in verdicts.rewrites:
            shared = None
        for column, values in verdicts.rewrites.items():
            if column not in item.rewrites_columns:
                raise ValueError(f"filter {item.name} rewrote {column}, which it does not declare")
            field = alive.schema.field(column)
            alive = alive.set_column(
                alive.schema.get_field_index(column), field, pa.array(values, field.type)
            )
        for column, values in verdicts.scores.items():
            field = schema.field(column)
            alive = alive.set_column(
                alive.schema.get_field_index(column), field, pa.array(values, field.type)
            )
        rejected_flags = np.array([reason is not None for reason in verdicts.reasons], np.bool_)
        if not rejected_flags.any():
            return alive, None, shared
        is_rejected = pa.array(rejected_flags)
        reasons = [reason for reason in verdicts.reasons if reason is not None]
        details = [d for r, d in zip(verdicts.reasons, verdicts.details, strict=True) if r is not None]
        rejected = mark_rejected(alive.filter(is_rejected), stage, reasons, details)
        if shared is not None:
            shared = shared.subset(np.flatnonzero(~rejected_flags))
        return alive.filter(pc.invert(is_rejected)), rejected, shared


def _add_null_columns(table: pa.Table, schema: pa.Schema) -> pa.Table:
    for field in schema:
        if field.name not in table.column_names:
            table = table.append_column(field, pa.nulls(table.num_rows, field.type))
    return table.select(schema.names)


def _in_input_order(parts: list[pa.Table], schema: pa.Schema) -> pa.Table:
    if not parts:
        return schema.empty_table()
    joined = pa.concat_tables(parts).sort_by(_POSITION)
    return joined.drop_columns([_POSITION]).select(schema.names).cast(schema)
