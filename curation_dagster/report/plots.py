"""The data card's plots: matplotlib drawings on its Agg canvas, embedded as PNG data URIs.

Each `draw_*` function puts one chart on the axes it is given; `Plots.image` renders it and counts it, or
writes a sentence instead when the chart would show only zeros. matplotlib is imported only when a plot is
rendered, so importing the report stays light.
"""

from __future__ import annotations

import html
import io
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from curation_dagster.report.page import img, readable_number
from curation_dagster.report.queries import HISTOGRAM_BINS, FunnelRow, Histogram
from curation_dagster.stages import STAGES

COLORS = {"text": "#4c72b0", "image": "#dd8452", "audio": "#55a868", "video": "#c44e52"}
OUTCOME_COLORS = {"kept": "#55a868", "rejected": "#c44e52"}
DUPLICATES_COLOR = "#8172b3"


class Plots:
    """Renders the card's plots as inline `<img>`s and counts them for the report."""

    def __init__(self) -> None:
        self.count = 0
        self.rendered: list[tuple[str, bytes]] = []
        """Every plot drawn, in page order, as (alt text, PNG)."""

    def image(
        self,
        draw: Callable[[Any], None],
        alt: str,
        counts: Iterable[float],
        empty: str,
        width: float = 6.4,
        height: float = 3.2,
    ) -> str:
        """An `<img>` of a plot drawn by `draw(axes)` from `counts`; the sentence `empty` instead when every
        count is zero, since an empty chart reads like a broken one."""
        if not any(counts):
            return f'<p class="no-plot">{html.escape(empty)}</p>'
        self.count += 1
        png = draw_png(draw, width, height)
        self.rendered.append((alt, png))
        return img(png, alt, "plot")


def draw_png(draw: Callable[[Any], None], width: float, height: float) -> bytes:
    """A PNG of what `draw(axes)` puts on a fresh figure, rendered by matplotlib's Agg canvas."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width, height), dpi=100, layout="constrained")
    FigureCanvasAgg(figure)
    draw(figure.add_subplot())
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", metadata={"Software": None})
    return buffer.getvalue()


def draw_kept_per_stage(axes: Any, funnel: Sequence[FunnelRow], modalities: Sequence[str]) -> None:
    """Items kept per stage, stacked by modality."""
    bottom = [0] * len(STAGES)
    for modality in modalities:
        values = [row.kept.get(modality, 0) for row in funnel]
        axes.bar(STAGES, values, bottom=bottom, label=modality, color=COLORS[modality])
        bottom = [b + v for b, v in zip(bottom, values, strict=True)]
    axes.set_ylabel("items kept")
    axes.legend(fontsize="small")


def draw_rejections(axes: Any, rejections: Mapping[str, int]) -> None:
    """Horizontal bars of rejected items per reason, the most frequent on top."""
    names = list(rejections)[::-1]
    axes.barh(names, [rejections[name] for name in names], color=OUTCOME_COLORS["rejected"])
    axes.set_xlabel("items rejected")
    axes.tick_params(axis="y", labelsize="small")


def draw_histogram(axes: Any, histogram: Histogram, column: str) -> None:
    """A histogram of one column with kept and rejected items stacked, and a hatched bar at each end that
    counts the items below or above the bins' range, labelled with that bound."""
    bottom = [0] * HISTOGRAM_BINS
    for outcome, values in histogram.counts.items():
        axes.bar(
            histogram.edges,
            values,
            width=histogram.width,
            bottom=bottom,
            align="edge",
            label=outcome,
            color=OUTCOME_COLORS[outcome],
        )
        bottom = [b + v for b, v in zip(bottom, values, strict=True)]
    width = histogram.width
    ends = [
        (histogram.below, histogram.low - 3 * width, f"< {readable_number(histogram.low)}"),
        (histogram.above, histogram.high + 2 * width, f"> {readable_number(histogram.high)}"),
    ]
    ticks = [(float(tick), readable_number(tick)) for tick in axes.get_xticks()]
    ticks = [
        (tick, label) for tick, label in ticks if histogram.low - width <= tick <= histogram.high + width
    ]
    for counts, left, label in ends:
        if not any(counts.values()):
            continue
        stacked = 0
        for outcome, number in counts.items():
            axes.bar(
                left, number, width, bottom=stacked, align="edge", color=OUTCOME_COLORS[outcome], hatch="//"
            )
            stacked += number
        centre = left + width / 2
        ticks = [(tick, text) for tick, text in ticks if abs(tick - centre) > 4 * width]
        ticks.append((centre, label))
    if any(any(counts.values()) for counts, _, _ in ends):
        axes.set_xticks([tick for tick, _ in ticks], [label for _, label in ticks])
    axes.set_xlabel(column)
    axes.set_ylabel("items")
    axes.legend(fontsize="small")


def draw_categories(axes: Any, categories: Sequence[str], counts: Mapping[str, Mapping[str, int]]) -> None:
    """Items per category with kept and rejected stacked; `counts` is outcome -> category -> items."""
    bottom = [0] * len(categories)
    for outcome, values in counts.items():
        heights = [values[category] for category in categories]
        axes.bar(categories, heights, bottom=bottom, label=outcome, color=OUTCOME_COLORS[outcome])
        bottom = [b + h for b, h in zip(bottom, heights, strict=True)]
    axes.set_ylabel("items")
    axes.legend(fontsize="small")


def draw_cluster_sizes(axes: Any, sizes: Sequence[tuple[Any, ...]]) -> None:
    """Duplicate clusters per size, from (size, clusters) rows."""
    axes.bar([str(size) for size, _ in sizes], [count for _, count in sizes], color=DUPLICATES_COLOR)
    axes.set_xlabel("cluster size (the kept item plus its duplicates)")
    axes.set_ylabel("clusters")


def draw_before_and_after(
    axes: Any, modalities: Sequence[str], before: Mapping[str, int], after: Mapping[str, int]
) -> None:
    """Items per modality before (filtered) and after (selected) selection, side by side."""
    positions = range(len(modalities))
    axes.bar([p - 0.2 for p in positions], [before.get(m, 0) for m in modalities], 0.4, label="filtered")
    axes.bar([p + 0.2 for p in positions], [after.get(m, 0) for m in modalities], 0.4, label="selected")
    axes.set_xticks(list(positions), modalities)
    axes.set_ylabel("items")
    axes.legend(fontsize="small")


def draw_synthetic(axes: Any, names: Sequence[str], counts: Sequence[Mapping[str, int]]) -> None:
    """Synthetic items per generator, admitted and rejected stacked; `counts[i]` belongs to `names[i]`."""
    left = [0] * len(names)
    for outcome in OUTCOME_COLORS:
        widths = [outcomes[outcome] for outcomes in counts]
        label = "admitted" if outcome == "kept" else outcome
        axes.barh(names, widths, left=left, label=label, color=OUTCOME_COLORS[outcome])
        left = [a + b for a, b in zip(left, widths, strict=True)]
    axes.set_xlabel("synthetic items")
    axes.legend(fontsize="small")


def draw_waveform(axes: Any, samples: Any) -> None:
    """An audio clip's mono samples in [-1, 1], without axes."""
    axes.plot(samples, linewidth=0.6, color=COLORS["audio"])
    axes.set_ylim(-1, 1)
    axes.axis("off")
