"""The data card's sections of numbers: the funnel, score distributions, language and register,
duplicate clusters, selection and synthetic items. Each takes the card's inputs and returns HTML."""

from __future__ import annotations

import html
from dataclasses import dataclass
from typing import Any

from curation_dagster.report.page import readable_number, table
from curation_dagster.report.plots import (
    Plots,
    draw_before_and_after,
    draw_categories,
    draw_cluster_sizes,
    draw_histogram,
    draw_kept_per_stage,
    draw_rejections,
    draw_synthetic,
)
from curation_dagster.report.queries import (
    NUMERIC_TYPES,
    OUTCOMES,
    FunnelRow,
    Histogram,
    VersionViews,
    funnel_modalities,
)
from curation_dagster.schema import MODALITIES
from curation_dagster.spec import VersionSpec


@dataclass(frozen=True)
class CardInputs:
    """What every section reads: the spec, the version's views, the funnel computed from them, the
    number of raw shards, how many samples to show per group, and the plots drawn so far."""

    spec: VersionSpec
    views: VersionViews
    funnel: list[FunnelRow]
    rejections: dict[str, int]
    shards: int
    samples_per_group: int
    plots: Plots


def funnel_section(card: CardInputs) -> str:
    """Items kept and rejected per stage and modality, and rejections by reason."""
    funnel, rejections = card.funnel, card.rejections
    modalities = funnel_modalities(funnel)
    raw = funnel[0]
    header = "".join(f"<th>{m}</th>" for m in modalities)
    synthetic = sum(card.views.synthetic_kept().values())
    lines = [
        f"<p>{raw.kept_total + raw.rejected_total} items entered from {card.shards} shards; "
        f"{funnel[-1].kept_total} are in the final training set, {synthetic} of them synthetic.</p>",
        f"<table><tr><th>stage</th>{header}<th>kept</th><th>rejected</th></tr>",
    ]
    for row in funnel:
        cells = "".join(f"<td>{row.kept.get(m, 0)}</td>" for m in modalities)
        lines.append(
            f"<tr><td>{row.stage}</td>{cells}<td>{row.kept_total}</td><td>{row.rejected_total}</td></tr>"
        )
    lines.append("</table>")
    lines.append(
        card.plots.image(
            lambda axes: draw_kept_per_stage(axes, funnel, modalities),
            "items kept per stage and modality",
            [row.kept_total for row in funnel],
            "No stage kept any item.",
        )
    )
    lines.append(
        card.plots.image(
            lambda axes: draw_rejections(axes, rejections),
            "rejections by reason",
            rejections.values(),
            "No item was rejected.",
            height=max(2.0, 0.3 * len(rejections) + 1),
        )
    )
    if rejections:
        lines.append(table(["reason", "items"], list(rejections.items())))
    return "\n".join(lines)


def scores_section(card: CardInputs) -> str:
    """A histogram of every numeric score column of the filtered stage."""
    source = card.views.filtered_outcomes()
    if source is None:
        return "<p>The filtered stage has no output yet.</p>"
    parts = []
    for name in card.views.score_columns():
        histogram = _histogram(card, source, name)
        if histogram is not None:
            parts.append(histogram)
    if not parts:
        return "<p>The filtered stage wrote no numeric score.</p>"
    return (
        "<p>Every numeric column of the filtered stage, kept and rejected items stacked, so a threshold "
        'can be judged against the whole distribution.</p>\n<div class="grid">' + "\n".join(parts) + "</div>"
    )


def _histogram(card: CardInputs, source: str, column: str) -> str | None:
    """A figure with a stacked kept/rejected histogram of one numeric column, or a sentence when every item
    has the same value; None when the column has no value."""
    histogram = card.views.histogram(source, column)
    if histogram is None:
        return None
    name = html.escape(column)
    if histogram.minimum == histogram.maximum:
        value = readable_number(histogram.minimum)
        return (
            f'<figure><figcaption>{name}</figcaption><p class="no-plot">All {histogram.items} items have '
            f"{name} = {value}.</p></figure>"
        )
    note = _outliers_note(histogram)
    plot = card.plots.image(
        lambda axes: draw_histogram(axes, histogram, column),
        f"histogram of {column}" + (f"; {note}" if note else ""),
        [histogram.items],
        f"No item has a {column}.",
        width=4.2,
        height=2.6,
    )
    caption = name + (f"<br>{html.escape(note)}" if note else "")
    return f"<figure><figcaption>{caption}</figcaption>{plot}</figure>"


def _outliers_note(histogram: Histogram) -> str:
    """How many items lie beyond the bins' range and are counted in the end bars; empty when none do."""
    below, above = sum(histogram.below.values()), sum(histogram.above.values())
    parts = [
        f"{number} {'item' if number == 1 else 'items'} {relation} {readable_number(bound)}"
        for number, relation, bound in ((below, "below", histogram.low), (above, "above", histogram.high))
        if number
    ]
    bars = "the hatched bars" if len(parts) > 1 else "the hatched bar"
    return " and ".join(parts) + f", counted in {bars}" if parts else ""


def language_section(card: CardInputs) -> str:
    """The language mix of text items and their register, kept against rejected."""
    source = card.views.filtered_outcomes()
    columns = card.views.filtered_columns()
    parts = []
    if source is not None and "lang" in columns:
        parts.append(
            _category_block(
                card, "language (`lang`)", card.views.language_mix(source), "No text item has a language."
            )
        )
    else:
        parts.append(
            "<p>No <code>lang</code> column: this version's filters do not identify languages, "
            "so there is no language mix to show.</p>"
        )
    if source is not None and "formality" in columns:
        if columns["formality"].startswith(NUMERIC_TYPES):
            parts.append(
                "<p>Register: <code>formality</code> is the estimated probability that a text is formal "
                "(at least 0.5 counts as formal).</p>"
            )
            parts.append(
                _category_block(card, "register", card.views.register_mix(source), "No item has a formality.")
            )
            histogram = _histogram(card, source, "formality")
            if histogram:
                parts.append(histogram)
        else:
            rows = card.views.formality_values(source)
            parts.append(_category_block(card, "register (`formality`)", rows, "No item has a formality."))
    else:
        parts.append(
            "<p>No <code>formality</code> column: this version's filters do not tag register "
            "(formal or colloquial).</p>"
        )
    return "\n".join(parts)


def _category_block(card: CardInputs, label: str, rows: list[tuple[Any, ...]], empty: str) -> str:
    """A table and a kept/rejected bar chart of counts by category, from (category, outcome, items); the
    sentence `empty` instead of the chart when there is no item."""
    categories = sorted({str(row[0]) for row in rows})
    counts = {outcome: dict.fromkeys(categories, 0) for outcome in OUTCOMES}
    for category, outcome, number in rows:
        counts[str(outcome)][str(category)] += int(number)
    rendered = table(
        [label, "kept", "rejected"],
        [(category, counts["kept"][category], counts["rejected"][category]) for category in categories],
    )
    plot = card.plots.image(
        lambda axes: draw_categories(axes, categories, counts),
        f"{label} by outcome",
        [number for _, _, number in rows],
        empty,
        width=5.0,
        height=2.8,
    )
    return (rendered + "\n" + plot) if rows else plot


def duplicates_section(card: CardInputs) -> str:
    """What the deduped stage removed, and the sizes of the duplicate clusters."""
    if "deduped_rejected" not in card.views.views:
        return "<p>The deduped stage rejected nothing.</p>"
    by_reason = card.views.duplicate_reasons()
    sizes = card.views.cluster_sizes()
    if not sizes:
        return "<p>No duplicates: the deduped stage found no item with a <code>dup_of</code>.</p>"
    return "\n".join(
        [
            "<p>Each removed duplicate names the kept item it duplicates (<code>dup_of</code>); a cluster "
            "is a kept item with all its removed duplicates.</p>",
            table(["reason", "items removed"], by_reason),
            table(["cluster size", "clusters"], sizes),
            card.plots.image(
                lambda axes: draw_cluster_sizes(axes, sizes),
                "duplicate cluster sizes",
                [clusters for _, clusters in sizes],
                "No duplicate clusters.",
                width=5.0,
                height=2.8,
            ),
        ]
    )


def selection_section(card: CardInputs) -> str:
    """Items per modality before and after selection, and how the spec selects."""
    before = card.funnel[2].kept if len(card.funnel) > 2 else {}
    after = card.funnel[3].kept if len(card.funnel) > 3 else {}
    modalities = [m for m in MODALITIES if before.get(m) or after.get(m)]
    if not modalities:
        return "<p>Nothing reached the selected stage.</p>"
    rows = [
        (m, before.get(m, 0), after.get(m, 0), f"{after.get(m, 0) / max(before.get(m, 0), 1):.0%}")
        for m in modalities
    ]
    select = card.spec.select
    budget = select.budget
    how = (
        f"Seeded sample of fraction {select.fraction}"
        if select.strategy.kind == "sample"
        else f"Strategy <code>{select.strategy.kind}</code>"
    )
    return "\n".join(
        [
            f"<p>{how}"
            + (f" where <code>{html.escape(select.where)}</code>" if select.where else "")
            + (f" under a budget of {budget} items" if budget else "")
            + ".</p>",
            table(["modality", "filtered (before)", "selected (after)", "share kept"], rows),
            card.plots.image(
                lambda axes: draw_before_and_after(axes, modalities, before, after),
                "items per modality before and after selection",
                [*before.values(), *after.values()],
                "Nothing reached the selected stage.",
                width=5.0,
                height=2.8,
            ),
        ]
    )


def synthetic_section(card: CardInputs) -> str:
    """Synthetic items admitted and rejected per generator, and why the rejected ones were."""
    source = card.views.synthetic_outcomes()
    counts = card.views.synthetic_counts(source) if source is not None else {}
    if source is None or not counts:
        return "<p>No synthetic item was generated.</p>"
    names = [f"{modality}: {recipe}" for modality, recipe in counts]
    outcomes = list(counts.values())
    reasons = card.views.reason_counts(f"(SELECT * FROM {source} WHERE outcome = 'rejected')")
    return "\n".join(
        [
            "<p>Synthetic variants pass raw validation, dedup against every real item and the same filters "
            "before they are admitted.</p>",
            table(
                ["generator", "admitted", "rejected"],
                [(name, each["kept"], each["rejected"]) for name, each in zip(names, outcomes, strict=True)],
            ),
            card.plots.image(
                lambda axes: draw_synthetic(axes, names, outcomes),
                "synthetic items admitted and rejected per generator",
                [number for each in outcomes for number in each.values()],
                "No synthetic item was generated.",
                height=max(2.0, 0.5 * len(names) + 1),
            ),
            table(["why rejected", "items"], list(reasons.items()))
            if reasons
            else "<p>No synthetic item was rejected.</p>",
        ]
    )
