"""The data card: one self-contained HTML page per version, `<CURATION_HOME>/<version>/report/index.html`.

Numbers come from DuckDB over the lake (`queries.py`: one view per stage and per stage's rejects); plots
are drawn with matplotlib's Agg canvas (`plots.py`) and embedded as PNG data URIs, as are the sample
thumbnails (`samples.py`), so the page opens anywhere without the lake (`page.py`). Sections
(`sections.py`): the funnel, score distributions, language and register, duplicate clusters, selection,
synthetic items and samples; `card.py` puts them together and writes the page.
"""

from curation_dagster.report.card import (
    REPORT_DIR,
    REPORT_FILE,
    SECTIONS,
    Report,
    build_report,
    report_path,
)
from curation_dagster.report.queries import FunnelRow

__all__ = ["REPORT_DIR", "REPORT_FILE", "SECTIONS", "FunnelRow", "Report", "build_report", "report_path"]
