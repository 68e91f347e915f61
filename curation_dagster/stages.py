"""The five stages of a dataset version as records: the one list that the asset factory, `run_stage`,
`code_version`, the CLI, the report and the lineage read. Data only: the stages' runners live in their
families (`io/stage.py`, `dedup/stage.py`, `filters/stage.py`, `select/stage.py`, `synth/stage.py`) and
`pipeline.run_stage` dispatches to them by name.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final


@dataclass(frozen=True)
class Stage:
    """What a stage is, whatever runs it."""

    name: str
    upstream: str | None
    """The stage whose kept rows it reads, per shard; None for the raw stage, which reads a landing shard."""
    engine_version: str
    """Bumped when the stage's code changes its output for the same settings (part of `code_version`)."""
    description: str
    """What the stage does, as the asset's description in the UI."""
    kinds: frozenset[str]
    """The asset's kinds in the UI (at most three shown)."""
    claims: bool
    """Whether its output comes with claims in the version's indexes (the selection ledger's budget, for
    the selected stage), written under a claim journal, so a run that stops half-way is rolled back (see
    `io/claims.py`)."""


STAGE_RECORDS: Final = (
    Stage(
        "raw",
        None,
        "1",
        "The landing shard parsed into the item contract: every line, row, member or file is an item or a "
        "rejected row with a raw.* code and its location.",
        frozenset({"python", "parquet"}),
        claims=False,
    ),
    Stage(
        "deduped",
        "raw",
        "1",
        "Exact, near-duplicate (MinHash text, perceptual image, video and audio fingerprints) and, when on, "
        "semantic duplicates removed across every shard of the version; the earliest claim wins.",
        frozenset({"python", "duckdb", "parquet"}),
        claims=True,
    ),
    Stage(
        "filtered",
        "deduped",
        "1",
        "The spec's filter chain per modality (length, language, quality rules, toxicity, register, PII, "
        "media quality, CLIP); rejected rows keep every score computed so far.",
        frozenset({"python", "pytorch", "parquet"}),
        claims=False,
    ),
    Stage(
        "selected",
        "filtered",
        "1",
        "The spec's selection (where, quotas, a strategy: sample, top_k, dsir, k_center, cluster_balanced, "
        "proxy) under the version's budget, shared by all shards.",
        frozenset({"python", "parquet"}),
        claims=True,
    ),
    Stage(
        "synthesized",
        "selected",
        "3",
        "Selected items plus synthetic variants admitted through the same validation, dedup and filters.",
        frozenset({"python", "pytorch", "parquet"}),
        claims=True,
    ),
)

STAGE_BY_NAME: Final = {stage.name: stage for stage in STAGE_RECORDS}
#: The stage names in order.
STAGES: Final = tuple(stage.name for stage in STAGE_RECORDS)
#: Each stage but raw -> the stage it reads.
UPSTREAM: Final = {stage.name: stage.upstream for stage in STAGE_RECORDS if stage.upstream is not None}
#: Stages whose output comes with claims in the version's indexes, written under a claim journal.
CLAIMING_STAGES: Final = tuple(stage.name for stage in STAGE_RECORDS if stage.claims)
