"""The data card's assembly: compute the funnel, write every section into the page, save it in the lake."""

from __future__ import annotations

import base64
from collections.abc import Callable
from dataclasses import dataclass, field

from curation_dagster.io.claims import ClaimJournal
from curation_dagster.io.lake import Lake
from curation_dagster.report.page import render_page
from curation_dagster.report.plots import Plots
from curation_dagster.report.queries import FunnelRow, VersionViews, funnel_modalities
from curation_dagster.report.samples import samples_section
from curation_dagster.report.sections import (
    CardInputs,
    duplicates_section,
    funnel_section,
    language_section,
    scores_section,
    selection_section,
    synthetic_section,
)
from curation_dagster.spec import VersionSpec
from curation_dagster.stages import CLAIMING_STAGES

REPORT_DIR = "report"
REPORT_FILE = "index.html"
#: The page's sections in order: anchor, heading and the function that writes the content.
SECTION_WRITERS: tuple[tuple[str, str, Callable[[CardInputs], str]], ...] = (
    ("funnel", "Funnel", funnel_section),
    ("scores", "Score distributions", scores_section),
    ("language", "Language and register", language_section),
    ("duplicates", "Duplicate clusters", duplicates_section),
    ("selection", "Selection: before and after", selection_section),
    ("synthetic", "Synthetic items: admitted and rejected", synthetic_section),
    ("samples", "Samples", samples_section),
)
SECTIONS = tuple(key for key, _, _ in SECTION_WRITERS)
#: Plots of the card repeated in the report asset's metadata (`Report.preview_markdown`).
PREVIEW_PLOTS = 2


@dataclass(frozen=True)
class Report:
    """A written data card: where it is and the numbers of its funnel."""

    path: str
    funnel: list[FunnelRow]
    rejections: dict[str, int]
    shards: int = 0
    """The shards the card counts: every shard registered in the lake's raw stage."""
    sections: tuple[str, ...] = SECTIONS
    plots: int = 0
    notes: list[str] = field(default_factory=list)
    preview: list[tuple[str, bytes]] = field(default_factory=list)
    """The card's first plots (items kept per stage, rejections by reason) as (alt text, PNG)."""

    def funnel_markdown(self) -> str:
        """The funnel as a markdown table: kept items per stage and modality, and rejected ones."""
        modalities = funnel_modalities(self.funnel)
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

    def preview_markdown(self) -> str:
        """The card's first plots as Markdown images (PNG data URIs), for the asset's page in the UI: a
        browser will not open a `file://` link from an http page, and a lake on object storage has no link
        at all, so the card's main figures travel with the metadata and the path says where the rest is."""
        lines = [
            f"The data card has {self.plots} plots and the samples; it is the file `{self.path}`. "
            "Its first figures:",
            "",
        ]
        for alt, png in self.preview:
            lines.append(f"![{alt}](data:image/png;base64,{base64.b64encode(png).decode()})")
            lines.append("")
        return "\n".join(lines).rstrip() + "\n"


def report_path(lake: Lake, version: str) -> str:
    """Where the data card of `version` is written in the lake."""
    return f"{lake.stage_dir(version, REPORT_DIR)}/{REPORT_FILE}"


def build_report(spec: VersionSpec, lake: Lake, samples_per_group: int = 6) -> Report:
    """Compute the version's numbers with DuckDB, draw the plots and write the HTML data card; refused
    while a shard's deduped, selected or synthesized output lacks its claims (a run stopped half-way)."""
    for stage in CLAIMING_STAGES:
        ClaimJournal(lake, spec.name, stage).require_none_pending()
    views = VersionViews(lake.duckdb(spec.name))
    card = CardInputs(
        spec=spec,
        views=views,
        funnel=views.funnel(),
        rejections=views.rejections(),
        shards=len(lake.list_shards(spec.name, "raw")),
        samples_per_group=samples_per_group,
        plots=Plots(),
    )
    sections = [(key, title, write(card)) for key, title, write in SECTION_WRITERS]
    page = render_page(spec, card.shards, sections)
    path = report_path(lake, spec.name)
    lake.write_bytes(path, page.encode("utf-8"))
    return Report(
        path=lake.url(path),
        funnel=card.funnel,
        rejections=card.rejections,
        shards=card.shards,
        plots=card.plots.count,
        preview=card.plots.rendered[:PREVIEW_PLOTS],
    )
