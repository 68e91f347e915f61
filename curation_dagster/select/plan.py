"""The selection plan of one shard: `where`, then quota groups, then the strategy within each group, all
under the version budget that earlier shards have partly used (first come, first served).

Order of work: items failing `where` are `select.threshold`; items of a group without quota are
`select.quota`; the strategy ranks each group and refuses what it must (`select.not_sampled`,
`select.threshold`, `select.cluster_cap`, `select.no_text`); the budget left is split between groups
(largest remainder, leftover redistributed); each group takes its ranked items in order while its share,
the version budget and the modality caps allow. Everything else is `select.budget`.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from curation_dagster.schema import mark_rejected, with_fields
from curation_dagster.select.base import (
    REJECT_BUDGET,
    REJECT_QUOTA,
    REJECT_THRESHOLD,
    SELECT_FIELDS,
    Pool,
    Ranking,
    Strategy,
)
from curation_dagster.select.quotas import allot, largest_remainder
from curation_dagster.select.state import NO_GROUP, Usage
from curation_dagster.spec import SelectSettings


@dataclass(frozen=True)
class Decision:
    """One item's outcome: the reject reason and detail (None when selected) and its `select_*` values."""

    reason: str | None
    detail: str | None
    score: float | None = None
    group: str | None = None
    cluster: int | None = None
    rank: int | None = None


@dataclass
class GroupOutcome:
    """One group's numbers in this shard: the distribution before and after selection."""

    candidates: int = 0
    eligible: int = 0
    quota: int | None = None
    used_by_other_shards: int = 0
    allotted: int = 0
    selected: int = 0


@dataclass
class SelectionPlan:
    """Every item's decision and the numbers behind them; `apply` splits batches by it."""

    strategy: str
    decisions: dict[str, Decision]
    budget: int | None
    usage: Usage
    groups: dict[str, GroupOutcome] = field(default_factory=dict)
    modalities: dict[str, GroupOutcome] = field(default_factory=dict)
    stats: dict[str, Any] = field(default_factory=dict)
    embeddings: dict[str, Any] | None = None

    @property
    def selected(self) -> int:
        return sum(group.selected for group in self.modalities.values())

    def apply(self, table: pa.Table) -> tuple[pa.Table, pa.Table]:
        """Split a batch into (selected, rejected), both with the `select_*` columns."""
        chosen = [self.decisions[item] for item in table.column("id").to_pylist()]
        columns = {
            "select_score": [d.score for d in chosen],
            "select_strategy": [self.strategy] * len(chosen),
            "select_group": [d.group for d in chosen],
            "select_cluster": [d.cluster for d in chosen],
            "select_rank": [d.rank for d in chosen],
        }
        annotated = table
        for select_field in SELECT_FIELDS:
            array = pa.array(columns[select_field.name], select_field.type)
            index = annotated.schema.get_field_index(select_field.name)
            annotated = (
                annotated.set_column(index, select_field, array)
                if index >= 0
                else annotated.append_column(select_field, array)
            )
        annotated = annotated.cast(with_fields(table.schema, SELECT_FIELDS))
        is_rejected = pa.array([d.reason is not None for d in chosen], pa.bool_())
        rejected = [d for d in chosen if d.reason is not None]
        return annotated.filter(pc.invert(is_rejected)), mark_rejected(
            annotated.filter(is_rejected),
            "selected",
            [str(d.reason) for d in rejected],
            [d.detail for d in rejected],
        )

    def metadata(self) -> dict[str, Any]:
        """The budget, the distribution per group and per modality before and after, the strategy's numbers."""
        out: dict[str, Any] = {
            "strategy": self.strategy,
            "budget": self.budget,
            "budget_used_by_other_shards": self.usage.total,
            "budget_used_by_this_shard": self.selected,
            "budget_left": None
            if self.budget is None
            else max(0, self.budget - self.usage.total - self.selected),
            "selection_by_modality": _markdown("modality", self.modalities),
        }
        if self.groups:
            out["selection_by_group"] = _markdown("group", self.groups)
            out["selection_groups"] = {name: vars(group) for name, group in sorted(self.groups.items())}
        if self.stats:
            out["strategy_stats"] = self.stats
        if self.embeddings is not None:
            out["embeddings"] = self.embeddings
        return out


def _markdown(label: str, outcomes: Mapping[str, GroupOutcome]) -> str:
    total = max(sum(o.selected for o in outcomes.values()), 1)
    lines = [
        f"| {label} | before (in shard) | eligible | quota | earlier shards | selected (after) | share after |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for name, o in sorted(outcomes.items()):
        quota = "" if o.quota is None else str(o.quota)
        lines.append(
            f"| {name} | {o.candidates} | {o.eligible} | {quota} | {o.used_by_other_shards} | {o.selected} "
            f"| {o.selected / total:.1%} |"
        )
    return "\n".join(lines)


def _quota_targets(settings: SelectSettings) -> dict[str, int] | None:
    """Each group's share of the version budget, split exactly; None without quotas."""
    quotas = settings.quotas
    if quotas is None:
        return None
    if quotas.counts is not None:
        return dict(quotas.counts)
    return largest_remainder(settings.budget or 0, quotas.weights())


@dataclass
class _Ledger:
    """Per item of the pool: why it is rejected, its strategy score and rank, whether the strategy could
    rank it, whether it is selected; per quota group, its outcome."""

    reasons: list[tuple[str, str] | None]
    scores: np.ndarray
    ranks: list[int | None]
    eligible: np.ndarray
    selected: np.ndarray
    outcomes: dict[str, GroupOutcome] = field(default_factory=dict)

    @classmethod
    def of(cls, size: int) -> _Ledger:
        return cls(
            [None] * size,
            np.full(size, np.nan),
            [None] * size,
            np.zeros(size, dtype=bool),
            np.zeros(size, dtype=bool),
        )


def plan_selection(
    settings: SelectSettings,
    strategy: Strategy,
    pool: Pool,
    passes: np.ndarray,
    groups: list[str | None],
    usage: Usage,
    prior: Mapping[str, np.ndarray] | None = None,
    prior_spaces: Mapping[str, np.ndarray] | None = None,
) -> SelectionPlan:
    """Decide every item of the pool (one shard's candidates). `groups` holds each item's quota group
    (None without quotas), `usage` what other shards selected, `prior` their embeddings by group and,
    when the pool mixes embedding spaces, `prior_spaces` the space of each of those rows."""
    prior = prior or {}
    prior_spaces = prior_spaces or {}
    budget = settings.total_budget
    budget_left = None if budget is None else max(0, budget - usage.total)
    targets = _quota_targets(settings)
    labels = [NO_GROUP if group is None else group for group in groups]
    ledger = _Ledger.of(len(pool))
    for position in np.flatnonzero(~passes).tolist():
        ledger.reasons[position] = (REJECT_THRESHOLD, f"select.where is not true: {settings.where}")
    rankings = _rank_groups(
        settings, strategy, pool, passes, labels, usage, prior, prior_spaces, budget_left, ledger
    )
    supply = {label: len(ranking.order) for label, (_, ranking) in rankings.items()}
    allotted, remaining = _allot(settings, targets, supply, usage, budget_left, ledger)
    _take(settings, pool, rankings, allotted, remaining, targets, budget, usage, ledger)
    return SelectionPlan(
        strategy=strategy.name,
        decisions=_decisions(pool, ledger.reasons, ledger.scores, ledger.ranks, groups),
        budget=budget,
        usage=usage,
        groups=ledger.outcomes if targets is not None else {},
        modalities=_by_modality(pool, ledger.eligible, ledger.selected, usage),
        stats=_describe(strategy, pool, passes, ledger.selected, prior, prior_spaces, usage),
    )


def _rank_groups(
    settings: SelectSettings,
    strategy: Strategy,
    pool: Pool,
    passes: np.ndarray,
    labels: list[str],
    usage: Usage,
    prior: Mapping[str, np.ndarray],
    prior_spaces: Mapping[str, np.ndarray],
    budget_left: int | None,
    ledger: _Ledger,
) -> dict[str, tuple[np.ndarray, Ranking]]:
    """Each quota group's members that pass `where`, ranked by the strategy against what other shards
    selected in the group; groups without a quota are rejected as `select.quota`."""
    targets = _quota_targets(settings)
    weights = settings.quotas.weights() if settings.quotas is not None else {NO_GROUP: 1.0}
    rankings: dict[str, tuple[np.ndarray, Ranking]] = {}
    for label in sorted(set(labels)):
        members = np.asarray([p for p, g in enumerate(labels) if g == label and passes[p]], dtype=np.int64)
        outcome = ledger.outcomes.setdefault(label, GroupOutcome())
        outcome.candidates = labels.count(label)
        outcome.used_by_other_shards = usage.group[label] if targets is not None else usage.total
        if not members.size:
            continue
        if targets is not None and weights.get(label, 0) <= 0:
            for position in members.tolist():
                ledger.reasons[position] = (REJECT_QUOTA, f"group {label!r} has no quota in select.quotas")
            continue
        group_pool = pool.subset(members)
        group_pool.prior_embeddings = prior.get(label)
        group_pool.prior_spaces = prior_spaces.get(label)
        group_pool.prior_cluster_counts = {c: n for (g, c), n in usage.cluster.items() if g == label}
        ranking = strategy.rank(group_pool, budget_left)
        rankings[label] = (members, ranking)
        ledger.scores[members] = ranking.scores
        ledger.eligible[members] = True
        for local, (reason, detail) in ranking.excluded.items():
            ledger.reasons[int(members[local])] = (reason, detail)
            ledger.eligible[int(members[local])] = False
        for rank, local in enumerate(ranking.order.tolist(), start=1):
            ledger.ranks[int(members[local])] = rank
        outcome.eligible = len(members) - len(ranking.excluded)
    return rankings


def _allot(
    settings: SelectSettings,
    targets: dict[str, int] | None,
    supply: dict[str, int],
    usage: Usage,
    budget_left: int | None,
    ledger: _Ledger,
) -> tuple[dict[str, int], dict[str, int]]:
    """(items each group may select in this shard, what is left of each group's quota)."""
    if targets is None:
        available = supply.get(NO_GROUP, 0)
        return {NO_GROUP: available if budget_left is None else min(budget_left, available)}, {}
    assert settings.quotas is not None
    weights = settings.quotas.weights()
    remaining = {label: max(0, targets.get(label, 0) - usage.group[label]) for label in weights}
    allotted = allot(remaining, supply, weights, budget_left, redistribute=settings.quotas.redistribute)
    for label, target in targets.items():
        ledger.outcomes.setdefault(
            label, GroupOutcome(used_by_other_shards=usage.group[label])
        ).quota = target
    return allotted, remaining


def _take(
    settings: SelectSettings,
    pool: Pool,
    rankings: dict[str, tuple[np.ndarray, Ranking]],
    allotted: dict[str, int],
    remaining: dict[str, int],
    targets: dict[str, int] | None,
    budget: int | None,
    usage: Usage,
    ledger: _Ledger,
) -> None:
    """Select each group's best-ranked items within its allotment and the per-modality budgets; the
    rest of each group is rejected as `select.budget`, saying which budget ran out."""
    modality_left = {m: max(0, cap - usage.modality[m]) for m, cap in settings.budget_per_modality.items()}
    for label, (members, ranking) in sorted(rankings.items()):
        allowance = allotted.get(label, 0)
        if targets is not None and allowance >= remaining.get(label, 0):
            full = f"quota of group {label!r} used ({targets.get(label, 0)} items)"
        else:
            full = f"version budget of {budget} items used"
        taken = 0
        for local in ranking.order.tolist():
            position = int(members[local])
            modality = pool.modalities[position]
            if taken >= allowance:
                ledger.reasons[position] = (REJECT_BUDGET, full)
            elif modality in modality_left and modality_left[modality] <= 0:
                cap = settings.budget_per_modality[modality]
                ledger.reasons[position] = (REJECT_BUDGET, f"{modality} budget of {cap} items used")
            else:
                ledger.selected[position] = True
                taken += 1
                if modality in modality_left:
                    modality_left[modality] -= 1
        ledger.outcomes[label].allotted, ledger.outcomes[label].selected = allowance, taken
        for position in members.tolist():
            if not ledger.selected[position] and ledger.reasons[position] is None:
                ledger.reasons[position] = (REJECT_BUDGET, full)


def _decisions(
    pool: Pool,
    reasons: list[tuple[str, str] | None],
    scores: np.ndarray,
    ranks: list[int | None],
    groups: list[str | None],
) -> dict[str, Decision]:
    clusters = pool.clusters.tolist() if pool.clusters is not None else [-1] * len(pool)
    out = {}
    for position, item in enumerate(pool.ids):
        reason = reasons[position]
        score = float(scores[position])
        out[item] = Decision(
            reason=None if reason is None else reason[0],
            detail=None if reason is None else reason[1],
            score=None if np.isnan(score) else score,
            group=groups[position],
            cluster=None if clusters[position] < 0 else int(clusters[position]),
            rank=ranks[position],
        )
    return out


def _by_modality(
    pool: Pool, eligible: np.ndarray, selected: np.ndarray, usage: Usage
) -> dict[str, GroupOutcome]:
    before = Counter(pool.modalities)
    passing = Counter(m for m, ok in zip(pool.modalities, eligible.tolist(), strict=True) if ok)
    after = Counter(m for m, s in zip(pool.modalities, selected.tolist(), strict=True) if s)
    return {
        modality: GroupOutcome(
            candidates=before[modality],
            eligible=passing[modality],
            used_by_other_shards=usage.modality[modality],
            selected=after[modality],
        )
        for modality in sorted(before)
    }


def _describe(
    strategy: Strategy,
    pool: Pool,
    passes: np.ndarray,
    selected: np.ndarray,
    prior: Mapping[str, np.ndarray],
    prior_spaces: Mapping[str, np.ndarray],
    usage: Usage,
) -> dict[str, Any]:
    """The strategy's numbers over every item that passed `where`, with all groups' earlier selections."""
    eligible = np.flatnonzero(passes)
    if not eligible.size:
        return {}
    whole = pool.subset(eligible)
    groups = [group for group, vectors in sorted(prior.items()) if len(vectors)]
    whole.prior_embeddings = np.vstack([prior[group] for group in groups]) if groups else None
    if whole.spaces is not None and groups:
        whole.prior_spaces = np.concatenate([prior_spaces[group] for group in groups])
    counts: Counter[int] = Counter()
    for (_, cluster), count in usage.cluster.items():
        counts[cluster] += count
    whole.prior_cluster_counts = dict(counts)
    return strategy.describe(whole, selected[eligible])
