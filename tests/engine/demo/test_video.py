"""Tests for the demo video clips in the media folder, with every planted case."""

from __future__ import annotations

from pathlib import Path

import av
import pytest


def test_media_videos_decode_to_frames_and_the_corrupt_one_does_not(landing: Path) -> None:
    folder = landing / "media_001" / "video"
    frame_counts: dict[str, int] = {}
    for path in sorted(folder.glob("*.mp4")):
        if path.name == "broken_clip.mp4":
            continue
        with av.open(str(path)) as container:
            frame_counts[path.stem] = sum(1 for _ in container.decode(video=0))
    assert len(frame_counts) == 9
    assert frame_counts["flash"] <= 3
    assert min(count for name, count in frame_counts.items() if name not in ("flash", "rising_bubble")) >= 8
    assert (folder / "moving_circle.mp4").read_bytes() == (folder / "moving_circle_copy.mp4").read_bytes()
    with pytest.raises(av.error.InvalidDataError):
        av.open(str(folder / "broken_clip.mp4"))
