"""Tests for the bundled demo landing zone: determinism, shard layout and every planted case."""

from __future__ import annotations

import gzip
import hashlib
import io
import itertools
import json
import re
import tarfile
from collections import Counter
from pathlib import Path
from typing import Any

import av
import imagehash
import numpy as np
import pyarrow.parquet as pq
import pytest
import soundfile
from PIL import Image

from curation_dagster.demo_data import DEMO_SHARD_NAMES, demo_landing_is_complete, generate_demo_landing
from curation_dagster.filters.media import _working_grey, clipping_ratio, laplacian_variance, snr_db


@pytest.fixture(scope="module")
def landing(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One generated demo landing zone shared by the read-only tests of this module."""
    root = tmp_path_factory.mktemp("landing")
    generate_demo_landing(root)
    return root


def _digests(root: Path) -> dict[str, str]:
    """The sha256 of every file under `root`, by relative path."""
    return {
        path.relative_to(root).as_posix(): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(root.rglob("*"))
        if path.is_file()
    }


def _jsonl_values(data: bytes) -> list[Any]:
    """Each line parsed as JSON, or the exception type name when it does not parse."""
    values: list[Any] = []
    for line in data.splitlines():
        try:
            values.append(json.loads(line.decode("utf-8")))
        except (UnicodeDecodeError, json.JSONDecodeError) as error:
            values.append(type(error).__name__)
    return values


def _texts(values: list[Any]) -> list[str]:
    """The non-blank text of every well-formed object line."""
    return [
        value["text"]
        for value in values
        if isinstance(value, dict) and isinstance(value.get("text"), str) and value["text"].strip()
    ]


def _normalised(text: str) -> str:
    """Lower case with runs of whitespace collapsed, as exact dedup compares texts."""
    return re.sub(r"\s+", " ", text.lower()).strip()


def _tar_samples(path: Path) -> dict[str, dict[str, bytes]]:
    """The WebDataset samples of a tar: key to extension to bytes."""
    samples: dict[str, dict[str, bytes]] = {}
    with tarfile.open(path) as archive:
        for member in archive.getmembers():
            key, extension = member.name.split(".", 1)
            extracted = archive.extractfile(member)
            assert extracted is not None
            samples.setdefault(key, {})[extension] = extracted.read()
    return samples


def _is_single_colour(image: Image.Image) -> bool:
    """True when every pixel of `image` has the same colour."""
    return image.convert("RGB").getcolors(maxcolors=1) is not None


def _decodes(data: bytes) -> bool:
    """True when Pillow can fully decode `data`."""
    try:
        with Image.open(io.BytesIO(data)) as image:
            image.load()
    except (OSError, Image.UnidentifiedImageError):
        return False
    return True


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


def test_news_shard_plants_each_kind_of_corrupt_line(landing: Path) -> None:
    values = _jsonl_values((landing / "news_en.jsonl").read_bytes())
    assert values.count("JSONDecodeError") == 1
    assert values.count("UnicodeDecodeError") == 1
    assert sum(isinstance(value, list) for value in values) == 1
    objects = [value for value in values if isinstance(value, dict)]
    assert [value["text"] for value in objects if "text" in value and not value["text"].strip()] == [
        "",
        "  \t \n  ",
    ]
    assert sum("text" not in value for value in objects) == 1


def test_news_shard_ids_are_unique_and_numbered_by_line(landing: Path) -> None:
    values = _jsonl_values((landing / "news_en.jsonl").read_bytes())
    ids = {line: value["id"] for line, value in enumerate(values, start=1) if isinstance(value, dict)}
    assert all(record_id == f"news-{line:04d}" for line, record_id in ids.items())
    assert 140 <= len(values) <= 160


def test_news_shard_has_ten_case_and_whitespace_duplicates(landing: Path) -> None:
    texts = _texts(_jsonl_values((landing / "news_en.jsonl").read_bytes()))
    counts = Counter(_normalised(text) for text in texts)
    assert sum(count - 1 for count in counts.values()) == 10
    assert sum(count - 1 for count in Counter(texts).values()) < 10


def test_news_shard_has_ten_near_duplicates_one_or_two_words_apart(landing: Path) -> None:
    texts = list(
        dict.fromkeys(_normalised(t) for t in _texts(_jsonl_values((landing / "news_en.jsonl").read_bytes())))
    )
    near = 0
    for first, second in itertools.combinations(texts, 2):
        first_words, second_words = first.split(" "), second.split(" ")
        if len(first_words) == len(second_words) >= 20:
            changed = sum(a != b for a, b in zip(first_words, second_words, strict=True))
            near += 1 <= changed <= 2
    assert near == 10


def test_news_shard_has_long_short_boilerplate_and_toxic_documents(landing: Path) -> None:
    texts = _texts(_jsonl_values((landing / "news_en.jsonl").read_bytes()))
    assert sum(len(text) > 25_000 for text in texts) == 2
    assert sum(len(text.split()) <= 3 for text in texts) == 5
    assert sum("All rights reserved" in text or "cookies" in text for text in texts) == 5
    assert sum("idiot" in text.lower() or "moron" in text.lower() for text in texts) >= 4


def test_forum_shard_is_gzip_without_timestamp_and_has_two_corrupt_lines(landing: Path) -> None:
    data = (landing / "forum_multilang.jsonl.gz").read_bytes()
    assert data[4:8] == b"\x00\x00\x00\x00"
    values = _jsonl_values(gzip.decompress(data))
    assert values.count("JSONDecodeError") == 1
    assert values.count("UnicodeDecodeError") == 1
    assert 140 <= len(values) <= 160


def test_forum_shard_copies_eight_news_documents(landing: Path) -> None:
    news = set(_texts(_jsonl_values((landing / "news_en.jsonl").read_bytes())))
    forum = _texts(_jsonl_values(gzip.decompress((landing / "forum_multilang.jsonl.gz").read_bytes())))
    assert sum(text in news for text in forum) == 8


def test_forum_shard_has_posts_in_four_languages(landing: Path) -> None:
    values = _jsonl_values(gzip.decompress((landing / "forum_multilang.jsonl.gz").read_bytes()))
    boards = Counter(value["board"] for value in values if isinstance(value, dict))
    assert {"de.general", "en.general", "es.general", "fr.general"} <= set(boards)
    assert min(boards[f"{language}.general"] for language in ("de", "fr", "es")) >= 30


def test_web_crawl_has_null_empty_and_copied_rows(landing: Path) -> None:
    table = pq.read_table(landing / "web_crawl.parquet")
    assert table.column_names == ["text", "url", "crawl_date"]
    texts = table.column("text").to_pylist()
    assert texts.count(None) == 2
    assert texts.count("") == 2
    news = set(_texts(_jsonl_values((landing / "news_en.jsonl").read_bytes())))
    forum = set(_texts(_jsonl_values(gzip.decompress((landing / "forum_multilang.jsonl.gz").read_bytes()))))
    assert sum(text in news for text in texts) >= 4
    assert sum(text in forum - news for text in texts) >= 2


def test_image_tar_keys_are_consecutive_and_members_carry_no_timestamps(landing: Path) -> None:
    with tarfile.open(landing / "images_000.tar") as archive:
        members = archive.getmembers()
    assert all(member.mtime == 0 and member.uid == 0 and member.gid == 0 for member in members)
    assert [member.name for member in members] == sorted(member.name for member in members)
    keys = sorted({member.name.split(".", 1)[0] for member in members})
    assert keys == [f"{index:06d}" for index in range(len(keys))]


def test_image_tar_plants_undecodable_and_malformed_samples(landing: Path) -> None:
    samples = _tar_samples(landing / "images_000.tar")
    images = [
        data for sample in samples.values() if (data := sample.get("jpg", sample.get("png"))) is not None
    ]
    broken = [data for data in images if not _decodes(data)]
    assert len(images) - len(broken) >= 25
    assert len(broken) == 2
    assert sum(data.startswith(b"\xff\xd8") for data in broken) == 1
    assert sum(set(sample) == {"txt"} for sample in samples.values()) == 1
    invalid_json = 0
    for sample in samples.values():
        if "json" in sample:
            try:
                json.loads(sample["json"])
            except json.JSONDecodeError:
                invalid_json += 1
    assert invalid_json == 1


def test_image_tar_plants_exact_duplicates_tiny_and_blank_images(landing: Path) -> None:
    samples = _tar_samples(landing / "images_000.tar")
    images = [sample.get("jpg", sample.get("png")) for sample in samples.values()]
    payloads = [data for data in images if data is not None]
    assert len(payloads) - len(set(payloads)) == 3
    sizes, blanks = [], 0
    for data in payloads:
        if _decodes(data):
            with Image.open(io.BytesIO(data)) as image:
                sizes.append(image.size)
                blanks += _is_single_colour(image)
    assert sizes.count((12, 12)) == 2
    assert blanks == 2


def test_image_tar_near_copies_are_perceptually_close_and_distinct_pictures_are_not(landing: Path) -> None:
    by_caption: dict[str, list[imagehash.ImageHash]] = {}
    for sample in _tar_samples(landing / "images_000.tar").values():
        data = sample.get("jpg", sample.get("png"))
        if data is None or not _decodes(data):
            continue
        with Image.open(io.BytesIO(data)) as image:
            if min(image.size) < 32 or _is_single_colour(image):
                continue
            by_caption.setdefault(sample["txt"].decode(), []).append(imagehash.phash(image))
    copies = [group for group in by_caption.values() if len(group) > 1]
    assert len(copies) == 9
    assert max(first - second for group in copies for first, second in itertools.combinations(group, 2)) <= 4
    originals = [group[0] for group in by_caption.values()]
    assert min(first - second for first, second in itertools.combinations(originals, 2)) >= 10


def test_media_images_have_captions_and_one_byte_copy_of_a_tar_image(landing: Path) -> None:
    folder = landing / "media_001" / "images"
    pngs = sorted(folder.glob("*.png"))
    assert len(pngs) == 9
    assert all(png.with_suffix(".txt").exists() for png in pngs)
    tar_images = {
        data for sample in _tar_samples(landing / "images_000.tar").values() for data in sample.values()
    }
    assert sum(png.read_bytes() in tar_images for png in pngs) == 1


def test_media_audio_plants_duplicate_silent_short_and_corrupt_clips(landing: Path) -> None:
    folder = landing / "media_001" / "audio"
    assert (folder / "tone_440hz.wav").read_bytes() == (folder / "tone_440hz_copy.wav").read_bytes()
    silence, rate = soundfile.read(folder / "silence_2s.wav")
    assert rate == 16_000 and len(silence) == 32_000 and not np.any(silence)
    assert soundfile.info(str(folder / "blip_short.wav")).duration == pytest.approx(0.2)
    with pytest.raises(soundfile.LibsndfileError):
        soundfile.read(folder / "broken_clip.wav")
    assert len(list(folder.glob("*.txt"))) >= 2


def test_media_audio_clips_are_mono_16_khz_between_one_and_four_seconds(landing: Path) -> None:
    planted = {
        "silence_2s.wav",
        "blip_short.wav",
        "broken_clip.wav",
        "tone_440hz_copy.wav",
        "overdriven_330hz.wav",
        "chord_in_hiss.wav",
        "phone_tone_8khz.wav",
    }
    clips = [
        path for path in sorted((landing / "media_001" / "audio").glob("*.wav")) if path.name not in planted
    ]
    assert len(clips) == 12
    for path in clips:
        info = soundfile.info(str(path))
        assert (info.channels, info.samplerate) == (1, 16_000)
        assert 1.0 <= info.duration <= 4.0


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
