"""Tests for the demo landing zone as a whole: determinism, shard layout and the media folder's plants."""

from __future__ import annotations

import hashlib
from pathlib import Path

import av
import numpy as np
import pytest
import soundfile
from PIL import Image

from curation_dagster.demo import DEMO_SHARD_NAMES, demo_landing_is_complete, generate_demo_landing
from curation_dagster.filters.media import _working_grey, clipping_ratio, laplacian_variance, snr_db


def _digests(root: Path) -> dict[str, str]:
    """The sha256 of every file under `root`, by relative path."""
    return {
        path.relative_to(root).as_posix(): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(root.rglob("*"))
        if path.is_file()
    }


def test_generation_is_byte_identical_across_runs(tmp_path: Path, landing: Path) -> None:
    generate_demo_landing(tmp_path)
    assert _digests(tmp_path) == _digests(landing)


def test_regenerating_in_place_leaves_no_temporary_files(tmp_path: Path) -> None:
    generate_demo_landing(tmp_path)
    generate_demo_landing(tmp_path)
    assert sorted(path.name for path in tmp_path.iterdir()) == sorted(DEMO_SHARD_NAMES)


def test_returns_every_shard_path_sorted(tmp_path: Path) -> None:
    paths = generate_demo_landing(tmp_path)
    assert paths == sorted(tmp_path / name for name in DEMO_SHARD_NAMES)
    assert all(path.exists() for path in paths)
    assert (tmp_path / "media_001").is_dir()


def test_demo_landing_is_complete_flips_after_generation(tmp_path: Path) -> None:
    assert not demo_landing_is_complete(tmp_path)
    generate_demo_landing(tmp_path)
    assert demo_landing_is_complete(tmp_path)


def test_demo_landing_stays_small(landing: Path) -> None:
    total = sum(path.stat().st_size for path in landing.rglob("*") if path.is_file())
    assert total < 5_000_000


def test_media_folder_plants_one_problem_for_each_media_quality_rule(landing: Path) -> None:
    folder = landing / "media_001"
    blur_scores = {
        path.name: laplacian_variance(_working_grey(Image.open(path)))
        for path in sorted((folder / "images").glob("*.png"))
    }
    assert [name for name, score in blur_scores.items() if score < 15] == ["image_007.png"]
    overdriven, _ = soundfile.read(folder / "audio" / "overdriven_330hz.wav")
    assert clipping_ratio(overdriven) > 0.5
    hiss, rate = soundfile.read(folder / "audio" / "chord_in_hiss.wav")
    assert snr_db(hiss, rate) == pytest.approx(0.0, abs=2.0)
    assert soundfile.info(str(folder / "audio" / "phone_tone_8khz.wav")).samplerate == 8000
    with av.open(str(folder / "video" / "still_house.mp4")) as container:
        frames = np.stack([frame.to_ndarray(format="gray") for frame in container.decode(video=0)])
    assert len(frames) == 20
    assert np.abs(frames.astype(np.int16) - frames[0]).mean() < 0.5  # one picture, up to codec noise
    with av.open(str(folder / "video" / "rising_bubble.mp4")) as container:
        assert container.streams.video[0].average_rate == 2


def test_media_folder_holds_a_stray_file_with_an_unknown_extension(landing: Path) -> None:
    assert (landing / "media_001" / "notes.xyz").is_file()
