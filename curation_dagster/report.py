"""The data card: one self-contained HTML page per version, `<CURATION_HOME>/<version>/report/index.html`.

Numbers come from DuckDB over the lake (`Lake.duckdb(version)`: one view per stage and per stage's
rejects); plots are drawn with matplotlib's Agg canvas and embedded as PNG data URIs, as are the sample
thumbnails, so the page opens anywhere without the lake. Sections: the funnel, score distributions,
language and register, duplicate clusters, selection, synthetic items and samples.
"""

from __future__ import annotations

import base64
import html
import io
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from curation_dagster.io.claims import ClaimJournal
from curation_dagster.io.lake import Lake
from curation_dagster.media import media_bytes
from curation_dagster.schema import MODALITIES
from curation_dagster.spec import VersionSpec
from curation_dagster.stages import CLAIMING_STAGES, STAGES

REPORT_DIR = "report"
REPORT_FILE = "index.html"
SECTIONS = ("funnel", "scores", "language", "duplicates", "selection", "synthetic", "samples")
HISTOGRAM_BINS = 20
THUMBNAIL_PIXELS = 160
#: Numeric columns that are not scores: dedup similarity has its own section, the rest are bookkeeping.
NOT_SCORES = frozenset({"dup_similarity", "select_score", "select_cluster", "select_rank"})
NUMERIC_TYPES = (
    "TINYINT",
    "SMALLINT",
    "INTEGER",
    "BIGINT",
    "HUGEINT",
    "UTINYINT",
    "USMALLINT",
    "UINTEGER",
    "UBIGINT",
    "UHUGEINT",
    "FLOAT",
    "DOUBLE",
    "DECIMAL",
)
COLORS = {"text": "#4c72b0", "image": "#dd8452", "audio": "#55a868", "video": "#c44e52"}
OUTCOME_COLORS = {"kept": "#55a868", "rejected": "#c44e52"}


@dataclass(frozen=True)
class FunnelRow:
    """Items one stage kept and rejected, by modality."""

    stage: str
    kept: dict[str, int]
    rejected: dict[str, int]

    @property
    def kept_total(self) -> int:
        return sum(self.kept.values())

    @property
    def rejected_total(self) -> int:
        return sum(self.rejected.values())


@dataclass(frozen=True)
class Report:
    """A written data card: where it is and the numbers of its funnel."""

    path: str
    funnel: list[FunnelRow]
    rejections: dict[str, int]
    sections: tuple[str, ...] = SECTIONS
    plots: int = 0
    notes: list[str] = field(default_factory=list)

    def funnel_markdown(self) -> str:
        """The funnel as a markdown table: kept items per stage and modality, and rejected ones."""
        modalities = [
            m for m in MODALITIES if any(row.kept.get(m) or row.rejected.get(m) for row in self.funnel)
        ]
        lines = [
            "| stage | " + " | ".join(modalities) + " | kept | rejected |",
            "| --- | " + " | ".join("---:" for _ in modalities) + " | ---: | ---: |",
        ]
        for row in self.funnel:
            cells = [str(row.kept.get(modality, 0)) for modality in modalities]
            lines.append(
                f"| {row.stage} | " + " | ".join(cells) + f" | {row.kept_total} | {row.rejected_total} |"
            )
        return "\n".join(lines)


def report_path(lake: Lake, version: str) -> str:
    return f"{lake.stage_dir(version, REPORT_DIR)}/{REPORT_FILE}"


def build_report(spec: VersionSpec, lake: Lake, samples_per_group: int = 6) -> Report:
    """Compute the version's numbers with DuckDB, draw the plots and write the HTML data card; refused
    while a shard's deduped or synthesized output lacks its claims (a run stopped half-way)."""
    for stage in CLAIMING_STAGES:
        ClaimJournal(lake, spec.name, stage).require_none_pending()
    card = _Card(spec, lake, samples_per_group)
    page = card.render()
    path = report_path(lake, spec.name)
    lake.write_bytes(path, page.encode("utf-8"))
    return Report(
        path=lake.url(path),
        funnel=card.funnel,
        rejections=card.rejections,
        plots=card.plots,
        notes=card.notes,
    )


class _Card:
    """Builds the page section by section; holds the DuckDB connection with the version's views."""

    def __init__(self, spec: VersionSpec, lake: Lake, samples_per_group: int) -> None:
        self.spec, self.lake, self.samples_per_group = spec, lake, samples_per_group
        self.connection = lake.duckdb(spec.name)
        self.views = {
            str(row[0]) for row in self.sql("SELECT view_name FROM duckdb_views() WHERE NOT internal")
        }
        self.funnel: list[FunnelRow] = []
        self.rejections: dict[str, int] = {}
        self.plots = 0
        self.notes: list[str] = []

    # ------------------------------------------------------------------------------------ helpers

    def sql(self, query: str, params: Sequence[Any] | None = None) -> list[tuple[Any, ...]]:
        return list(self.connection.sql(query, params=list(params) if params else None).fetchall())

    def columns(self, view: str) -> dict[str, str]:
        """Column names and DuckDB types of a view, empty when the view does not exist."""
        if view not in self.views:
            return {}
        return {str(name): str(kind) for name, kind, *_ in self.sql(f"DESCRIBE {view}")}

    def union(self, *views: str) -> str | None:
        """A FROM clause over the existing views among `views` (stages add columns, so by name)."""
        present = [view for view in views if view in self.views]
        if not present:
            return None
        return "(" + " UNION ALL BY NAME ".join(f"SELECT * FROM {view}" for view in present) + ")"

    def plot(self, draw: Callable[[Any], None], alt: str, width: float = 6.4, height: float = 3.2) -> str:
        """An `<img>` of a plot drawn by `draw(axes)`."""
        self.plots += 1
        return _img(_draw_png(draw, width, height), alt, "plot")

    # ----------------------------------------------------------------------------------- sections

    def render(self) -> str:
        sections = [
            ("funnel", "Funnel", self.funnel_section()),
            ("scores", "Score distributions", self.scores_section()),
            ("language", "Language and register", self.language_section()),
            ("duplicates", "Duplicate clusters", self.duplicates_section()),
            ("selection", "Selection: before and after", self.selection_section()),
            ("synthetic", "Synthetic items: admitted and rejected", self.synthetic_section()),
            ("samples", "Samples", self.samples_section()),
        ]
        body = "\n".join(
            f'<section id="{key}">\n<h2>{html.escape(title)}</h2>\n{content}\n</section>'
            for key, title, content in sections
        )
        nav = " · ".join(f'<a href="#{key}">{html.escape(title)}</a>' for key, title, _ in sections)
        versions = ", ".join(f"{stage} <code>{self.spec.code_version(stage)}</code>" for stage in STAGES)
        title = f"Data card: {self.spec.name}"
        return _PAGE.format(
            title=html.escape(title),
            description=html.escape(self.spec.description or ""),
            versions=versions,
            shards=len(self.lake.list_shards(self.spec.name, "raw")),
            nav=nav,
            body=body,
        )

    def funnel_section(self) -> str:
        for stage in STAGES:
            kept = self._count_by_modality(stage)
            rejected = self._count_by_modality(f"{stage}_rejected")
            self.funnel.append(FunnelRow(stage, kept, rejected))
        rejected_views = self.union(*(f"{stage}_rejected" for stage in STAGES))
        if rejected_views:
            rows = self.sql(
                f"SELECT reject_reason, count(*) FROM {rejected_views} GROUP BY 1 ORDER BY 2 DESC, 1"
            )
            self.rejections = {str(reason): int(count) for reason, count in rows}
        modalities = [
            m for m in MODALITIES if any(row.kept.get(m) or row.rejected.get(m) for row in self.funnel)
        ]
        raw = self.funnel[0]
        header = "".join(f"<th>{m}</th>" for m in modalities)
        lines = [
            f"<p>{raw.kept_total + raw.rejected_total} items entered from "
            f"{len(self.lake.list_shards(self.spec.name, 'raw'))} shards; "
            f"{self.funnel[-1].kept_total} are in the final training set.</p>",
            f"<table><tr><th>stage</th>{header}<th>kept</th><th>rejected</th></tr>",
        ]
        for row in self.funnel:
            cells = "".join(f"<td>{row.kept.get(m, 0)}</td>" for m in modalities)
            lines.append(
                f"<tr><td>{row.stage}</td>{cells}<td>{row.kept_total}</td><td>{row.rejected_total}</td></tr>"
            )
        lines.append("</table>")

        def stages(axes: Any) -> None:
            bottom = [0] * len(STAGES)
            for modality in modalities:
                values = [row.kept.get(modality, 0) for row in self.funnel]
                axes.bar(STAGES, values, bottom=bottom, label=modality, color=COLORS[modality])
                bottom = [b + v for b, v in zip(bottom, values, strict=True)]
            axes.set_ylabel("items kept")
            axes.legend(fontsize="small")

        if modalities:
            lines.append(self.plot(stages, "items kept per stage and modality"))
        if self.rejections:

            def reasons(axes: Any) -> None:
                names = list(self.rejections)[::-1]
                axes.barh(names, [self.rejections[name] for name in names], color=OUTCOME_COLORS["rejected"])
                axes.set_xlabel("items rejected")
                axes.tick_params(axis="y", labelsize="small")

            height = max(2.0, 0.3 * len(self.rejections) + 1)
            lines.append(self.plot(reasons, "rejections by reason", height=height))
            lines.append(_table(["reason", "items"], list(self.rejections.items())))
        else:
            lines.append("<p>No item was rejected.</p>")
        return "\n".join(lines)

    def _count_by_modality(self, view: str) -> dict[str, int]:
        if view not in self.views:
            return {}
        return {str(m): int(c) for m, c in self.sql(f"SELECT modality, count(*) FROM {view} GROUP BY 1")}

    def scores_section(self) -> str:
        source = self._filtered_outcomes()
        if source is None:
            return "<p>The filtered stage has no output yet.</p>"
        columns = {**self.columns("filtered"), **self.columns("filtered_rejected")}
        numeric = [
            name
            for name, kind in columns.items()
            if kind.startswith(NUMERIC_TYPES) and name not in NOT_SCORES
        ]
        parts = []
        for name in numeric:
            histogram = self._histogram(source, name)
            if histogram is None:
                continue
            parts.append(f"<figure><figcaption>{html.escape(name)}</figcaption>{histogram}</figure>")
        if not parts:
            return "<p>The filtered stage wrote no numeric score.</p>"
        return (
            "<p>Every numeric column of the filtered stage, kept and rejected items stacked, so a threshold "
            'can be judged against the whole distribution.</p>\n<div class="grid">'
            + "\n".join(parts)
            + "</div>"
        )

    def _filtered_outcomes(self) -> str | None:
        """Kept and rejected rows of the filtered stage with an `outcome` column."""
        parts = [
            f"SELECT *, '{outcome}' AS outcome FROM {view}"
            for view, outcome in (("filtered", "kept"), ("filtered_rejected", "rejected"))
            if view in self.views
        ]
        return "(" + " UNION ALL BY NAME ".join(parts) + ")" if parts else None

    def _histogram(self, source: str, column: str) -> str | None:
        """A stacked kept/rejected histogram of one numeric column, binned in DuckDB."""
        quoted = _quote(column)
        low, high, count = self.sql(
            f"SELECT min({quoted})::DOUBLE, max({quoted})::DOUBLE, count({quoted}) FROM {source}"
        )[0]
        if not count:
            return None
        low, high = float(low), float(high)
        if high == low:  # one value: centre it in a unit-wide range
            low, high = low - 0.5, high + 0.5
        width = (high - low) / HISTOGRAM_BINS
        rows = self.sql(
            f"SELECT least(floor(({quoted} - ?) / ?)::INTEGER, {HISTOGRAM_BINS - 1}) AS bin, outcome, count(*) "
            f"FROM {source} WHERE {quoted} IS NOT NULL GROUP BY ALL",
            [low, width],
        )
        counts = {outcome: [0] * HISTOGRAM_BINS for outcome in OUTCOME_COLORS}
        for bin_index, outcome, number in rows:
            counts[str(outcome)][int(bin_index)] += int(number)
        edges = [low + index * width for index in range(HISTOGRAM_BINS)]

        def draw(axes: Any) -> None:
            bottom = [0] * HISTOGRAM_BINS
            for outcome, values in counts.items():
                axes.bar(
                    edges,
                    values,
                    width=width,
                    bottom=bottom,
                    align="edge",
                    label=outcome,
                    color=OUTCOME_COLORS[outcome],
                )
                bottom = [b + v for b, v in zip(bottom, values, strict=True)]
            axes.set_xlabel(column)
            axes.set_ylabel("items")
            axes.legend(fontsize="small")

        return self.plot(draw, f"histogram of {column}", width=4.2, height=2.6)

    def language_section(self) -> str:
        source = self._filtered_outcomes()
        columns = {**self.columns("filtered"), **self.columns("filtered_rejected")}
        parts = []
        if source is not None and "lang" in columns:
            rows = self.sql(
                f"SELECT coalesce(lang, '(none)') AS lang, outcome, count(*) FROM {source} "
                "WHERE modality = 'text' GROUP BY ALL ORDER BY 1, 2"
            )
            parts.append(self._category_block("language (`lang`)", rows))
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
                rows = self.sql(
                    f"SELECT CASE WHEN formality >= 0.5 THEN 'formal' ELSE 'colloquial' END, outcome, count(*) "
                    f"FROM {source} WHERE formality IS NOT NULL GROUP BY ALL ORDER BY 1, 2"
                )
                parts.append(self._category_block("register", rows))
                histogram = self._histogram(source, "formality")
                if histogram:
                    parts.append(histogram)
            else:
                rows = self.sql(
                    f"SELECT coalesce(formality::VARCHAR, '(none)'), outcome, count(*) FROM {source} "
                    "GROUP BY ALL ORDER BY 1, 2"
                )
                parts.append(self._category_block("register (`formality`)", rows))
        else:
            parts.append(
                "<p>No <code>formality</code> column: this version's filters do not tag register "
                "(formal or colloquial).</p>"
            )
        return "\n".join(parts)

    def _category_block(self, label: str, rows: list[tuple[Any, ...]]) -> str:
        """A table and a kept/rejected bar chart of counts by category."""
        categories = sorted({str(row[0]) for row in rows})
        counts = {outcome: dict.fromkeys(categories, 0) for outcome in OUTCOME_COLORS}
        for category, outcome, number in rows:
            counts[str(outcome)][str(category)] += int(number)

        def draw(axes: Any) -> None:
            bottom = [0] * len(categories)
            for outcome, values in counts.items():
                heights = [values[category] for category in categories]
                axes.bar(categories, heights, bottom=bottom, label=outcome, color=OUTCOME_COLORS[outcome])
                bottom = [b + h for b, h in zip(bottom, heights, strict=True)]
            axes.set_ylabel("items")
            axes.legend(fontsize="small")

        table = _table(
            [label, "kept", "rejected"],
            [(category, counts["kept"][category], counts["rejected"][category]) for category in categories],
        )
        return table + "\n" + self.plot(draw, f"{label} by outcome", width=5.0, height=2.8)

    def duplicates_section(self) -> str:
        if "deduped_rejected" not in self.views:
            return "<p>The deduped stage rejected nothing.</p>"
        by_reason = self.sql("SELECT reject_reason, count(*) FROM deduped_rejected GROUP BY 1 ORDER BY 1")
        sizes = self.sql(
            "SELECT size, count(*) FROM (SELECT dup_of, count(*) + 1 AS size FROM deduped_rejected "
            "WHERE dup_of IS NOT NULL GROUP BY dup_of) GROUP BY size ORDER BY size"
        )
        if not sizes:
            return "<p>No duplicates: the deduped stage found no item with a <code>dup_of</code>.</p>"

        def draw(axes: Any) -> None:
            axes.bar([str(size) for size, _ in sizes], [count for _, count in sizes], color="#8172b3")
            axes.set_xlabel("cluster size (the kept item plus its duplicates)")
            axes.set_ylabel("clusters")

        return "\n".join(
            [
                "<p>Each removed duplicate names the kept item it duplicates (<code>dup_of</code>); a cluster "
                "is a kept item with all its removed duplicates.</p>",
                _table(["reason", "items removed"], by_reason),
                _table(["cluster size", "clusters"], sizes),
                self.plot(draw, "duplicate cluster sizes", width=5.0, height=2.8),
            ]
        )

    def selection_section(self) -> str:
        before = self.funnel[2].kept if len(self.funnel) > 2 else {}
        after = self.funnel[3].kept if len(self.funnel) > 3 else {}
        modalities = [m for m in MODALITIES if before.get(m) or after.get(m)]
        if not modalities:
            return "<p>Nothing reached the selected stage.</p>"
        rows = [
            (m, before.get(m, 0), after.get(m, 0), f"{after.get(m, 0) / max(before.get(m, 0), 1):.0%}")
            for m in modalities
        ]

        def draw(axes: Any) -> None:
            positions = range(len(modalities))
            axes.bar(
                [p - 0.2 for p in positions], [before.get(m, 0) for m in modalities], 0.4, label="filtered"
            )
            axes.bar(
                [p + 0.2 for p in positions], [after.get(m, 0) for m in modalities], 0.4, label="selected"
            )
            axes.set_xticks(list(positions), modalities)
            axes.set_ylabel("items")
            axes.legend(fontsize="small")

        select = self.spec.select
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
                _table(["modality", "filtered (before)", "selected (after)", "share kept"], rows),
                self.plot(draw, "items per modality before and after selection", width=5.0, height=2.8),
            ]
        )

    def synthetic_section(self) -> str:
        parts = [
            f"SELECT modality, generator, '{outcome}' AS outcome, "
            + ("reject_reason" if outcome == "rejected" else "NULL AS reject_reason")
            + f" FROM {view} WHERE synthetic"
            for view, outcome in (("synthesized", "kept"), ("synthesized_rejected", "rejected"))
            if view in self.views and "synthetic" in self.columns(view)
        ]
        if not parts:
            return "<p>No synthetic item was generated.</p>"
        source = "(" + " UNION ALL ".join(parts) + ")"
        rows = self.sql(
            f"SELECT modality, generator, outcome, count(*) FROM {source} GROUP BY ALL ORDER BY ALL"
        )
        if not rows:
            return "<p>No synthetic item was generated.</p>"
        labels: dict[tuple[str, str], dict[str, int]] = {}
        for modality, generator, outcome, number in rows:
            key = (str(modality), _recipe(generator))
            labels.setdefault(key, dict.fromkeys(OUTCOME_COLORS, 0))[str(outcome)] += int(number)
        names = [f"{modality}: {recipe}" for modality, recipe in labels]

        def draw(axes: Any) -> None:
            left = [0] * len(names)
            for outcome in OUTCOME_COLORS:
                widths = [counts[outcome] for counts in labels.values()]
                label = "admitted" if outcome == "kept" else outcome
                axes.barh(names, widths, left=left, label=label, color=OUTCOME_COLORS[outcome])
                left = [a + b for a, b in zip(left, widths, strict=True)]
            axes.set_xlabel("synthetic items")
            axes.legend(fontsize="small")

        reasons = self.sql(
            f"SELECT reject_reason, count(*) FROM {source} WHERE outcome = 'rejected' GROUP BY 1 ORDER BY 2 DESC, 1"
        )
        table = _table(
            ["generator", "admitted", "rejected"],
            [
                (name, counts["kept"], counts["rejected"])
                for name, counts in zip(names, labels.values(), strict=True)
            ],
        )
        return "\n".join(
            [
                "<p>Synthetic variants pass raw validation, dedup against every real item and the same filters "
                "before they are admitted.</p>",
                table,
                self.plot(
                    draw,
                    "synthetic items admitted and rejected per generator",
                    height=max(2.0, 0.5 * len(names) + 1),
                ),
                _table(["why rejected", "items"], reasons)
                if reasons
                else "<p>No synthetic item was rejected.</p>",
            ]
        )

    def samples_section(self) -> str:
        kept = self._samples("synthesized")
        rejected_views = [f"{stage}_rejected" for stage in STAGES]
        rejected = self._samples_rejected(rejected_views)
        parts = []
        for modality in MODALITIES:
            kept_rows = [row for row in kept if row["modality"] == modality]
            rejected_rows = [row for row in rejected if row["modality"] == modality]
            if not kept_rows and not rejected_rows:
                continue
            parts.append(f"<h3>{modality}</h3>")
            for label, chosen in (("kept (final training set)", kept_rows), ("rejected", rejected_rows)):
                if not chosen:
                    continue
                tiles = "\n".join(self._tile(row) for row in chosen)
                parts.append(f'<h4>{label}</h4>\n<div class="samples">{tiles}</div>')
        return "\n".join(parts) if parts else "<p>No items yet.</p>"

    def _samples(self, view: str) -> list[dict[str, Any]]:
        if view not in self.views:
            return []
        query = (
            f"SELECT id, modality, text, media, uri, media_format FROM {view} "
            "QUALIFY row_number() OVER (PARTITION BY modality ORDER BY id) <= ? ORDER BY modality, id"
        )
        return self.connection.sql(query, params=[self.samples_per_group]).to_arrow_table().to_pylist()

    def _samples_rejected(self, views: list[str]) -> list[dict[str, Any]]:
        """Rejected samples per modality, one per reason first so that every reason gets shown."""
        present = [view for view in views if view in self.views]
        if not present:
            return []
        source = " UNION ALL ".join(
            f"SELECT id, modality, text, media, uri, media_format, reject_stage, reject_reason, reject_detail "
            f"FROM {view}"
            for view in present
        )
        query = (
            f"SELECT * EXCLUDE (turn) FROM (SELECT *, row_number() OVER (PARTITION BY modality, reject_reason "
            f"ORDER BY id) AS turn FROM ({source})) "
            "QUALIFY row_number() OVER (PARTITION BY modality ORDER BY turn, reject_reason, id) <= ? "
            "ORDER BY modality, reject_reason, id"
        )
        return self.connection.sql(query, params=[self.samples_per_group]).to_arrow_table().to_pylist()

    def _tile(self, row: dict[str, Any]) -> str:
        picture = self._thumbnail(row)
        caption = []
        if row.get("reject_reason"):
            caption.append(
                f'<span class="reason">{html.escape(str(row["reject_stage"]))}: '
                f"<code>{html.escape(str(row['reject_reason']))}</code></span>"
            )
            if row.get("reject_detail"):
                caption.append(
                    f'<span class="detail">{html.escape(_clip(str(row["reject_detail"]), 120))}</span>'
                )
        if row.get("text"):
            caption.append(f'<span class="text">{html.escape(_clip(str(row["text"]), 300))}</span>')
        caption.append(f'<span class="id"><code>{html.escape(str(row["id"]))}</code></span>')
        return f'<div class="tile">{picture}{"".join(caption)}</div>'

    def _thumbnail(self, row: dict[str, Any]) -> str:
        modality = row["modality"]
        if modality == "text":
            return ""
        try:
            data = media_bytes(row)
            if modality == "image":
                return _img(_image_thumbnail(data), "thumbnail")
            if modality == "audio":
                return self._waveform(data)
            if modality == "video":
                return _img(_video_thumbnail(data), "first frame")
        except (OSError, ValueError, RuntimeError, EOFError) as error:
            return (
                f'<span class="unshown">cannot be shown ({html.escape(type(error).__name__)}): '
                f"{html.escape(_clip(str(row['uri']), 80))}</span>"
            )
        return f'<span class="unshown">{html.escape(str(row["uri"]))}</span>'

    def _waveform(self, data: bytes) -> str:
        import numpy as np
        import soundfile

        samples, _rate = soundfile.read(io.BytesIO(data), always_2d=True)
        mono = samples.mean(axis=1)
        step = max(1, len(mono) // 2000)
        shown = mono[::step] if len(mono) else np.zeros(1)

        def draw(axes: Any) -> None:
            axes.plot(shown, linewidth=0.6, color=COLORS["audio"])
            axes.set_ylim(-1, 1)
            axes.axis("off")

        return _img(_draw_png(draw, 1.6, 0.8), "waveform")


def _image_thumbnail(data: bytes) -> bytes:
    from PIL import Image

    with Image.open(io.BytesIO(data)) as image:
        picture = image.convert("RGB")
    picture.thumbnail((THUMBNAIL_PIXELS, THUMBNAIL_PIXELS))
    return _png(picture)


def _video_thumbnail(data: bytes) -> bytes:
    """The first decodable frame of a clip; PyAV's errors are `ValueError`s or `OSError`s."""
    import av

    with av.open(io.BytesIO(data), mode="r") as container:
        for frame in container.decode(video=0):
            picture = frame.to_image()
            picture.thumbnail((THUMBNAIL_PIXELS, THUMBNAIL_PIXELS))
            return _png(picture)
    raise ValueError("the clip has no video frame")


def _png(picture: Any) -> bytes:
    buffer = io.BytesIO()
    picture.save(buffer, format="PNG")
    return buffer.getvalue()


def _img(png: bytes, alt: str, kind: str = "thumb") -> str:
    """An `<img>` with the PNG inline as a data URI."""
    data = base64.b64encode(png).decode()
    return f'<img class="{kind}" alt="{html.escape(alt)}" src="data:image/png;base64,{data}">'


def _draw_png(draw: Callable[[Any], None], width: float, height: float) -> bytes:
    """A PNG of what `draw(axes)` puts on a fresh figure, rendered by matplotlib's Agg canvas."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width, height), dpi=100, layout="constrained")
    FigureCanvasAgg(figure)
    draw(figure.add_subplot())
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", metadata={"Software": None})
    return buffer.getvalue()


def _recipe(generator: Any) -> str:
    """The recipe name recorded in a synthetic item's `generator` JSON."""
    try:
        return str(json.loads(str(generator))["recipe"])
    except (ValueError, KeyError, TypeError):
        return str(generator)


def _table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    head = "".join(f"<th>{html.escape(str(cell))}</th>" for cell in header)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(str(cell))}</td>" for cell in row) + "</tr>" for row in rows
    )
    return f"<table><tr>{head}</tr>{body}</table>"


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _clip(text: str, limit: int) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


_PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>{title}</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2rem auto; max-width: 72rem; color: #222; padding: 0 1rem; }}
table {{ border-collapse: collapse; margin: 0.5rem 0 1rem; }}
th, td {{ border: 1px solid #ccc; padding: 0.2rem 0.6rem; text-align: right; }}
th:first-child, td:first-child {{ text-align: left; }}
section {{ border-top: 1px solid #ddd; margin-top: 1.5rem; }}
.grid {{ display: flex; flex-wrap: wrap; gap: 0.5rem; }}
figure {{ margin: 0; }}
figcaption {{ font-family: monospace; }}
.samples {{ display: flex; flex-wrap: wrap; gap: 0.75rem; }}
.tile {{ width: 12rem; border: 1px solid #ddd; padding: 0.4rem; font-size: 0.8rem; display: flex;
  flex-direction: column; gap: 0.2rem; }}
.tile img {{ max-width: 100%; }}
.reason {{ color: #a33; }}
.unshown {{ color: #777; font-style: italic; }}
</style>
</head>
<body>
<header>
<h1>{title}</h1>
<p>{description}</p>
<p>{shards} shards. Code versions: {versions}.</p>
<nav>{nav}</nav>
</header>
{body}
</body>
</html>
"""
