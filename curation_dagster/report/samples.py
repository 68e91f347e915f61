"""The data card's samples: kept and rejected items per modality as tiles with their text, a thumbnail,
a waveform or a first frame, for rejected items the stage and reason, and for synthetic items a badge with
their recipe and parents."""

from __future__ import annotations

import html
import io
from typing import Any

from curation_dagster.media import first_video_frame, media_bytes
from curation_dagster.report.page import clip, code, img
from curation_dagster.report.plots import draw_png, draw_waveform
from curation_dagster.report.queries import recipe_name
from curation_dagster.report.sections import CardInputs
from curation_dagster.schema import MODALITIES
from curation_dagster.stages import STAGES

THUMBNAIL_PIXELS = 160


def samples_section(card: CardInputs) -> str:
    """Tiles of the final training set's first items and of rejected items, per modality."""
    kept = card.views.samples("synthesized", card.samples_per_group)
    rejected_views = [f"{stage}_rejected" for stage in STAGES]
    rejected = card.views.rejected_samples(rejected_views, card.samples_per_group)
    synthetic = card.views.synthetic_kept()
    shown = {str(row["id"]) for row in kept}
    parts = []
    for modality in MODALITIES:
        kept_rows = [row for row in kept if row["modality"] == modality]
        rejected_rows = [row for row in rejected if row["modality"] == modality]
        if not kept_rows and not rejected_rows:
            continue
        parts.append(f"<h3>{modality}</h3>")
        final = card.funnel[-1].kept.get(modality, 0)
        kept_label = (
            f"kept (final training set: {final} items, {synthetic.get(modality, 0)} of them synthetic)"
        )
        for label, chosen in ((kept_label, kept_rows), ("rejected", rejected_rows)):
            if not chosen:
                continue
            tiles = "\n".join(_tile(row, shown) for row in chosen)
            parts.append(f'<h4>{label}</h4>\n<div class="samples">{tiles}</div>')
    return "\n".join(parts) if parts else "<p>No items yet.</p>"


def _tile(row: dict[str, Any], shown: set[str]) -> str:
    """One item's tile; a synthetic item's parents link to their tiles among the `shown` ids."""
    picture = _thumbnail(row)
    caption = []
    if row.get("synthetic"):
        caption.append(f'<span class="synthetic">synthetic: {code(recipe_name(row["generator"]))}</span>')
        parents = [
            f'<a href="#item-{html.escape(parent)}">{code(parent)}</a>' if parent in shown else code(parent)
            for parent in map(str, row.get("parent_ids") or [])
        ]
        if parents:
            caption.append(f'<span class="parents">from {", ".join(parents)}</span>')
    if row.get("reject_reason"):
        caption.append(
            f'<span class="reason">{html.escape(str(row["reject_stage"]))}: '
            f"{code(str(row['reject_reason']))}</span>"
        )
        if row.get("reject_detail"):
            caption.append(f'<span class="detail">{html.escape(clip(str(row["reject_detail"]), 120))}</span>')
    if row.get("text"):
        caption.append(f'<span class="text">{html.escape(clip(str(row["text"]), 300))}</span>')
    item = html.escape(str(row["id"]))
    caption.append(f'<span class="id">{code(str(row["id"]))}</span>')
    anchor = f' id="item-{item}"' if not row.get("reject_reason") else ""
    return f'<div class="tile"{anchor} data-id="{item}">{picture}{"".join(caption)}</div>'


def _thumbnail(row: dict[str, Any]) -> str:
    """An `<img>` preview of a media item, or a note saying why it cannot be shown."""
    modality = row["modality"]
    if modality == "text":
        return ""
    try:
        data = media_bytes(row)
        if modality == "image":
            return img(_image_thumbnail(data), "thumbnail")
        if modality == "audio":
            return img(_waveform(data), "waveform")
        if modality == "video":
            return img(_video_thumbnail(data), "first frame")
    except (OSError, ValueError, RuntimeError, EOFError) as error:
        return (
            f'<span class="unshown">cannot be shown ({html.escape(type(error).__name__)}): '
            f"{html.escape(clip(str(row['uri']), 80))}</span>"
        )
    return f'<span class="unshown">{html.escape(str(row["uri"]))}</span>'


def _waveform(data: bytes) -> bytes:
    """A PNG of an audio clip's mono waveform, at most about 2000 points."""
    import numpy as np
    import soundfile

    samples, _rate = soundfile.read(io.BytesIO(data), always_2d=True)
    mono = samples.mean(axis=1)
    step = max(1, len(mono) // 2000)
    shown = mono[::step] if len(mono) else np.zeros(1)
    return draw_png(lambda axes: draw_waveform(axes, shown), 1.6, 0.8)


def _image_thumbnail(data: bytes) -> bytes:
    from PIL import Image

    with Image.open(io.BytesIO(data)) as image:
        picture = image.convert("RGB")
    picture.thumbnail((THUMBNAIL_PIXELS, THUMBNAIL_PIXELS))
    return _png(picture)


def _video_thumbnail(data: bytes) -> bytes:
    """The first decodable frame of a clip; PyAV's errors are `ValueError`s or `OSError`s."""
    picture = first_video_frame(data)
    picture.thumbnail((THUMBNAIL_PIXELS, THUMBNAIL_PIXELS))
    return _png(picture)


def _png(picture: Any) -> bytes:
    buffer = io.BytesIO()
    picture.save(buffer, format="PNG")
    return buffer.getvalue()
