"""The data card's samples: kept and rejected items per modality as tiles with their text, a thumbnail,
a waveform or a first frame, and for rejected items the stage and reason."""

from __future__ import annotations

import html
import io
from typing import Any

from curation_dagster.media import media_bytes
from curation_dagster.report.page import clip, img
from curation_dagster.report.plots import draw_png, draw_waveform
from curation_dagster.report.sections import CardInputs
from curation_dagster.schema import MODALITIES
from curation_dagster.stages import STAGES

THUMBNAIL_PIXELS = 160


def samples_section(card: CardInputs) -> str:
    """Tiles of the final training set's first items and of rejected items, per modality."""
    kept = card.views.samples("synthesized", card.samples_per_group)
    rejected_views = [f"{stage}_rejected" for stage in STAGES]
    rejected = card.views.rejected_samples(rejected_views, card.samples_per_group)
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
            tiles = "\n".join(_tile(row) for row in chosen)
            parts.append(f'<h4>{label}</h4>\n<div class="samples">{tiles}</div>')
    return "\n".join(parts) if parts else "<p>No items yet.</p>"


def _tile(row: dict[str, Any]) -> str:
    picture = _thumbnail(row)
    caption = []
    if row.get("reject_reason"):
        caption.append(
            f'<span class="reason">{html.escape(str(row["reject_stage"]))}: '
            f"<code>{html.escape(str(row['reject_reason']))}</code></span>"
        )
        if row.get("reject_detail"):
            caption.append(f'<span class="detail">{html.escape(clip(str(row["reject_detail"]), 120))}</span>')
    if row.get("text"):
        caption.append(f'<span class="text">{html.escape(clip(str(row["text"]), 300))}</span>')
    caption.append(f'<span class="id"><code>{html.escape(str(row["id"]))}</code></span>')
    return f'<div class="tile">{picture}{"".join(caption)}</div>'


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
