"""The synthesized stage: the selected items of a shard plus synthetic variants that pass admission."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa

from curation_dagster.dedup.exact import INDEX_SCHEMA, ExactDedup
from curation_dagster.dedup.exact_index import ExactIndex
from curation_dagster.dedup.indexes import (
    SYNTH_INDEX,
    SYNTH_PREFIX,
    check_exact_index,
)
from curation_dagster.dedup.near_index import NearIndex
from curation_dagster.dedup.plan import media_index, media_steps, merge_key_stores
from curation_dagster.faults import crash_point
from curation_dagster.filters.base import FilterChain
from curation_dagster.filters.chain import build_chain
from curation_dagster.io.claims import ClaimJournal, roll_back_interrupted, run_lock_name
from curation_dagster.io.lake import Lake
from curation_dagster.io.records import RawRecord
from curation_dagster.io.validate import validate_record
from curation_dagster.markdown import cell
from curation_dagster.models.runtime import ModelRuntime
from curation_dagster.progress import PhaseClock, note, tracked
from curation_dagster.sampling import sample_score
from curation_dagster.schema import (
    RAW_SCHEMA,
    SYNTH_FIELDS,
    conform,
    rejected_schema,
    with_fields,
)
from curation_dagster.shard_io import (
    BATCH_ROWS,
    StageResult,
    shard_output,
    split_rows,
    stage_result,
    upstream_path,
)
from curation_dagster.spec import VersionSpec
from curation_dagster.synth.admission import MediaAdmission, NearAdmission, admit, media_admissions
from curation_dagster.synth.base import Outcome, Recipe, Unusable
from curation_dagster.synth.registry import build_recipes

_CANDIDATE_SCHEMA = with_fields(RAW_SCHEMA, SYNTH_FIELDS)
#: Where generated candidates wait for admission (`_generate`), one file per shard, removed after it.
SYNTH_CANDIDATES = "synth_candidates"
#: A staged candidate: the candidate row, its reject reason when validation refused it, the number of the
#: source batch of its parent and of the recipe that made it.
_STAGED_SCHEMA = with_fields(
    _CANDIDATE_SCHEMA,
    [
        pa.field("reject_reason", pa.string()),
        pa.field("reject_detail", pa.string()),
        pa.field("batch", pa.int64()),
        pa.field("recipe", pa.int32()),
    ],
)


def _candidate(
    recipe: Recipe, parent: dict[str, Any], outcome: Outcome, shard: str, seed_key: str
) -> dict[str, Any]:
    """One synthetic candidate row, of the recipe's modality, from its outcome for `parent`, validated like
    raw data; an unusable outcome becomes a row with its reject reason (and the recipe's output as its
    text). `meta` records the parent's uri and the key that seeded the recipe for this parent."""
    position = f"synth:{recipe.label}:{parent['id']}"
    uri = f"synth://{recipe.label}/{parent['id']}"
    meta: dict[str, Any] = {"parent_uri": parent["uri"], "seed": seed_key}
    if isinstance(outcome, Unusable):
        record = RawRecord(
            position=position,
            uri=uri,
            modality=recipe.modality,
            text=outcome.text if outcome.text is not None else parent.get("text"),
            meta=meta,
            reject_code=outcome.reason,
            reject_detail=outcome.detail[:300],
        )
    else:
        record = RawRecord(
            position=position,
            uri=uri,
            modality=recipe.modality,
            text=outcome.text,
            media=outcome.media,
            media_format=outcome.media_format,
            meta={**outcome.meta, **meta},
        )
    row = validate_record(record, shard)
    parent_ids = [parent["id"], *outcome.other_parents]
    row.update(synthetic=True, parent_ids=parent_ids, generator=recipe.generator)
    return row


def _candidates(
    recipes: list[Recipe], parents: list[dict[str, Any]], shard: str, spec: VersionSpec
) -> list[tuple[Recipe, dict[str, Any]]]:
    """Every recipe's candidates for the parents it is given (a seeded share of those of its parent
    modality), each recipe run on all its parents at once, with the whole batch as the pool that recipes
    combining two items draw from; in parent order, then recipe order."""
    settings = spec.synthesize
    scores = [sample_score(settings.seed, parent["id"]) for parent in parents]
    made: list[tuple[int, int, Recipe, dict[str, Any]]] = []
    for order, recipe in enumerate(recipes):
        fraction = settings.fraction if recipe.fraction is None else recipe.fraction
        chosen = [
            index
            for index, parent in enumerate(parents)
            if parent["modality"] == recipe.parent_modality and scores[index] < fraction
        ]
        keys = [f"{settings.seed}:{parents[index]['id']}" for index in chosen]
        outcomes = recipe.make_batch([parents[index] for index in chosen], keys, pool=parents)
        for index, key, outcome in zip(chosen, keys, outcomes, strict=True):
            made.append((index, order, recipe, _candidate(recipe, parents[index], outcome, shard, key)))
    made.sort(key=lambda entry: (entry[0], entry[1]))
    return [(recipe, row) for _, _, recipe, row in made]


class _SynthesisTally:
    """Per recipe: candidates generated, admitted and rejected (by reason), and a few candidates side by
    side with their parents for the stage's metadata."""

    def __init__(self, recipes: list[Recipe], samples_per_recipe: int = 2, max_samples: int = 10) -> None:
        self.counts: dict[str, dict[str, Any]] = {
            recipe.label: {"generated": 0, "admitted": 0, "rejected": 0, "rejected_by_reason": {}}
            for recipe in recipes
        }
        self.samples: list[tuple[str, str, str, str]] = []
        self._per_recipe, self._max = samples_per_recipe, max_samples

    def add(
        self,
        made: list[tuple[Recipe, dict[str, Any]]],
        parents: list[dict[str, Any]],
        admitted: pa.Table,
        rejected: list[pa.Table],
    ) -> None:
        outcome = dict.fromkeys(admitted.column("id").to_pylist(), "admitted")
        for table in rejected:
            outcome.update(
                zip(table.column("id").to_pylist(), table.column("reject_reason").to_pylist(), strict=True)
            )
        parent_by_id = {parent["id"]: parent for parent in parents}
        for recipe, row in made:
            counts = self.counts[recipe.label]
            result = outcome[row["id"]]
            counts["generated"] += 1
            if result == "admitted":
                counts["admitted"] += 1
            else:
                counts["rejected"] += 1
                counts["rejected_by_reason"][result] = counts["rejected_by_reason"].get(result, 0) + 1
            shown = sum(sample[0] == recipe.label for sample in self.samples)
            if shown < self._per_recipe and len(self.samples) < self._max:
                parent = parent_by_id[row["parent_ids"][0]]
                self.samples.append((recipe.label, _snippet(parent), _snippet(row), str(result)))

    def markdown(self) -> str:
        if not self.samples:
            return "No synthetic candidates in this shard."
        lines = ["| recipe | parent | synthetic | outcome |", "| --- | --- | --- | --- |"]
        lines += [
            f"| {recipe} | {parent} | {synthetic} | {result} |"
            for recipe, parent, synthetic, result in self.samples
        ]
        return "\n".join(lines)


def _snippet(row: dict[str, Any]) -> str:
    """A table cell for an item: its text, or what its media is when it has none."""
    if row.get("text"):
        return cell(str(row["text"]), 120)
    media = row.get("media")
    return f"({row['modality']}, {len(media) if media else 0} bytes)"


def run_synthesize(
    spec: VersionSpec, lake: Lake, shard: str, runtime: ModelRuntime | None = None
) -> StageResult:
    """Selected real items plus synthetic variants admitted through raw validation, exact dedup, near-duplicate
    text dedup and the same filter chain. Dedup compares a variant with every real item of the version (the
    dedup indexes) and every synthetic item admitted in other shards (the synthesis indexes); a text variant
    may be a near duplicate of its parents and siblings only (`synth/admission.py`); a variant never
    removes a real item. Recipes that run a model use `runtime` (`models.text_generator`, `models.text_to_speech`,
    `models.image_generator`). Compute in parallel, claim in order: the candidates are generated with no
    lock held (into `<version>/synth_candidates/<shard>.parquet`), so shards generate at the same time;
    admission, the output and the claims hold the version's synthesis lock."""
    started = time.perf_counter()
    source = upstream_path(spec, lake, "synthesized", shard)
    recipes = [
        recipe
        for recipe in build_recipes(spec.synthesize, runtime)
        if recipe.modality in spec.modalities and recipe.parent_modality in spec.modalities
    ]
    journal = ClaimJournal(lake, spec.name, "synthesized")
    with lake.lock(spec.name, run_lock_name("synthesized", shard)):
        phases = PhaseClock()  # after the shard's run lock: compute is computing, not waiting for it
        staged = _generate(spec, lake, shard, source, recipes)
        phases.mark("compute")
        note(f"{spec.name}/synthesized[{shard}]: generated; waiting for the version's synthesis claim lock")
        with lake.lock(spec.name, SYNTH_INDEX):
            phases.mark("wait")
            roll_back_interrupted(journal, shard, lambda other: forget_synthetic_claims(spec, lake, other))
            result = _admit_and_write(spec, lake, shard, source, recipes, staged, runtime, journal, started)
            crash_point("synthesized", "after_claims", shard)
            journal.finish(shard)
            phases.mark("claim")
        lake.remove(staged)
        result.extra["index_tiers_merged"] = merge_key_stores(spec, lake, SYNTH_INDEX, SYNTH_PREFIX)
        phases.mark("merge")
    result.extra["phases"] = phases.table()
    return result


def _generate(spec: VersionSpec, lake: Lake, shard: str, source: str, recipes: list[Recipe]) -> str:
    """Phase one, on the shard alone: every recipe's candidates for the shard's selected items, validated
    like raw data, in `<version>/synth_candidates/<shard>.parquet` with the number of the source batch and
    of the recipe that made each; returns the file's path."""
    path = lake.path(spec.name, SYNTH_CANDIDATES, shard)
    upstream_schema = lake.schema(source)
    rows_in = lake.num_rows(source)
    with lake.atomic_writer(path, _STAGED_SCHEMA) as writer:
        batches = lake.iter_batches(source, BATCH_ROWS)
        for number, batch in enumerate(
            tracked(batches, f"{spec.name}/synthesized[{shard}] generating", rows_in)
        ):
            parents = _real_rows(pa.Table.from_batches([batch]), upstream_schema).to_pylist()
            made = _candidates(recipes, parents, shard, spec)
            staged = [{**row, "batch": number, "recipe": recipes.index(recipe)} for recipe, row in made]
            if staged:
                writer.write_table(pa.Table.from_pylist(staged, schema=_STAGED_SCHEMA))
    return path


def _staged_by_batch(lake: Lake, path: str) -> Iterator[tuple[int, list[dict[str, Any]]]]:
    """The staged candidates grouped by source batch, in order: (batch number, rows)."""
    current: int | None = None
    rows: list[dict[str, Any]] = []
    for batch in lake.iter_batches(path, BATCH_ROWS):
        for row in batch.to_pylist():
            if row["batch"] != current and rows:
                assert current is not None
                yield current, rows
                rows = []
            current = row["batch"]
            rows.append(row)
    if rows and current is not None:
        yield current, rows


def forget_synthetic_claims(spec: VersionSpec, lake: Lake, shard: str) -> None:
    """Remove a shard's synthesized output and every claim its admitted synthetic items made."""
    for rejected in (False, True):
        lake.remove(lake.path(spec.name, "synthesized", shard, rejected=rejected))
    lake.remove(lake.path(spec.name, SYNTH_INDEX, shard))
    lake.remove(lake.path(spec.name, SYNTH_CANDIDATES, shard))
    ExactIndex(lake, spec.name, prefix=SYNTH_PREFIX).remove(shard)
    NearIndex(lake, spec.name, spec.dedup.near, prefix=SYNTH_PREFIX).remove(shard)
    for step in media_steps(spec, every=True):
        media_index(lake, spec.name, step, SYNTH_PREFIX).remove(shard)


@dataclass
class _Gate:
    """What every candidate of a shard must pass, set up once: exact claims (real items of every shard,
    synthetic items of other shards and of this shard's earlier batches), near-duplicate and media
    admission, and the filter chain."""

    dedup: ExactDedup
    lookup: Callable[[list[str]], dict[str, str]]
    near: NearAdmission | None
    media: dict[str, MediaAdmission]
    chain: FilterChain
    known: dict[str, str] = field(default_factory=dict)

    def admit(self, candidates: pa.Table) -> tuple[pa.Table, list[pa.Table]]:
        """(admitted, rejected parts) of one batch of valid candidates."""
        return admit(candidates, self.known, self.lookup, self.dedup, self.near, self.media, self.chain)


def _gate(spec: VersionSpec, lake: Lake, shard: str, chain: FilterChain) -> _Gate:
    exact_index = ExactIndex(lake, spec.name)
    synthetic_exact = ExactIndex(lake, spec.name, prefix=SYNTH_PREFIX)
    check_exact_index(lake, spec.name, "", exact_index)
    check_exact_index(lake, spec.name, shard, synthetic_exact, SYNTH_INDEX)
    real_claims = exact_index.lookup(None)
    synthetic_claims = synthetic_exact.lookup(shard)

    def lookup(hashes: list[str]) -> dict[str, str]:
        """The smallest id that claimed each hash: a real item of any shard, or a synthetic item of
        another shard."""
        owners = synthetic_claims(hashes)
        for key, owner in real_claims(hashes).items():
            owners[key] = min(owner, owners.get(key, owner))
        return owners

    settings = spec.dedup.near
    near = None
    if settings.enabled:
        synthetic = NearIndex(lake, spec.name, settings, prefix=SYNTH_PREFIX).earlier(shard)
        real = NearIndex(lake, spec.name, settings).earlier(None)
        near = NearAdmission(settings, [("real", real), ("synthetic", synthetic)])
    return _Gate(ExactDedup(spec.dedup.exact), lookup, near, media_admissions(spec, lake, shard), chain)


def _admit_and_write(
    spec: VersionSpec,
    lake: Lake,
    shard: str,
    source: str,
    recipes: list[Recipe],
    staged: str,
    runtime: ModelRuntime | None,
    journal: ClaimJournal,
    started: float,
) -> StageResult:
    """Phase two, under the version's synthesis lock: the real items and every staged candidate through
    admission, written to the stage's output, then the admitted candidates' claims."""
    chain = build_chain(spec.filters, runtime)
    upstream_schema = lake.schema(source)
    schema = with_fields(chain.output_schema(upstream_schema), SYNTH_FIELDS)
    gate = _gate(spec, lake, shard, chain)
    rows_in = lake.num_rows(source)
    generated = 0
    claims: list[pa.Table] = [INDEX_SCHEMA.empty_table()]
    tally = _SynthesisTally(recipes)
    candidates = _staged_by_batch(lake, staged)
    pending = next(candidates, None)
    journal.begin(shard)
    with shard_output(lake, spec.name, "synthesized", shard, schema) as output:
        batches = lake.iter_batches(source, BATCH_ROWS)
        for number, batch in enumerate(
            tracked(batches, f"{spec.name}/synthesized[{shard}] admitting", rows_in)
        ):
            real = _real_rows(pa.Table.from_batches([batch]), upstream_schema)
            output.write(real, rejected_schema(schema).empty_table())
            made: list[tuple[Recipe, dict[str, Any]]] = []
            if pending is not None and pending[0] == number:
                made = [(recipes[row.pop("recipe")], _without_batch(row)) for row in pending[1]]
                pending = next(candidates, None)
            rows = [row for _, row in made]
            generated += len(rows)
            valid, invalid = split_rows(rows, _CANDIDATE_SCHEMA, "synthesized")
            admitted, turned_down = gate.admit(valid)
            output.write(admitted, invalid)
            for part in turned_down:
                output.write(schema.empty_table(), part)
            tally.add(made, real.to_pylist(), admitted, [invalid, *turned_down])
            claims.append(admitted.select(["content_hash", "id", "shard", "modality"]).cast(INDEX_SCHEMA))
    crash_point("synthesized", "after_output", shard)
    _write_claims(spec, lake, shard, pa.concat_tables(claims), gate)
    synthetic_kept = output.kept - rows_in
    return stage_result(
        spec,
        lake,
        "synthesized",
        shard,
        rows_in + generated,
        output,
        started,
        real_items=rows_in,
        synthetic_generated=generated,
        synthetic_admitted=synthetic_kept,
        synthetic_rejected=generated - synthetic_kept,
        synthetic_by_recipe=tally.counts,
        synthetic_samples=tally.markdown(),
    )


def _without_batch(row: dict[str, Any]) -> dict[str, Any]:
    row.pop("batch", None)
    return row


def _real_rows(batch: pa.Table, upstream_schema: pa.Schema) -> pa.Table:
    """Selected items as rows of the synthesized stage: not synthetic, no parents."""
    real = conform(batch, with_fields(upstream_schema, SYNTH_FIELDS))
    real = real.set_column(
        real.schema.get_field_index("synthetic"),
        SYNTH_FIELDS[0],
        pa.array([False] * real.num_rows, pa.bool_()),
    )
    return real.set_column(
        real.schema.get_field_index("parent_ids"),
        SYNTH_FIELDS[1],
        pa.array([[] for _ in range(real.num_rows)], pa.list_(pa.string())),
    )


def _write_claims(spec: VersionSpec, lake: Lake, shard: str, claims: pa.Table, gate: _Gate) -> None:
    """The shard's admitted synthetic items in every synthesis index (`forget_synthetic_claims` removes
    them): content hashes, near-duplicate signatures and media hashes."""
    lake.write_table(lake.path(spec.name, SYNTH_INDEX, shard), claims)
    hashes, ids = claims.column("content_hash").to_pylist(), claims.column("id").to_pylist()
    # Each store is merged after the lock (`merge_key_stores`).
    ExactIndex(lake, spec.name, prefix=SYNTH_PREFIX).write(shard, hashes, ids, merge=False)
    synthetic_index = NearIndex(lake, spec.name, spec.dedup.near, prefix=SYNTH_PREFIX)
    near_outcome = gate.near.outcome(shard) if gate.near is not None else None
    if near_outcome is not None:
        synthetic_index.write(shard, near_outcome, merge=False)
    else:
        synthetic_index.remove(shard)
    for step in media_steps(spec, every=True):
        step_admission = gate.media.get(step.index)
        hashes = step_admission.index() if step_admission is not None else None
        index = media_index(lake, spec.name, step, SYNTH_PREFIX)
        if hashes is not None:
            index.write(shard, hashes, merge=False)
        else:
            index.remove(shard)
