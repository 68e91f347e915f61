"""Near-duplicate images and videos across shards through the lake's hash indexes (curation_dagster/
dedup/media.py and the deduped stage in curation_dagster/dedup/stage.py): incremental, earliest wins,
conservation."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image, ImageOps

from curation_dagster.checks import check_conservation
from curation_dagster.dedup.indexes import AUDIO_HASHES, IMAGE_HASHES, VIDEO_HASHES
from curation_dagster.dedup.media import AudioMatcher, ShardMedia, add_sequence, audio_fingerprinter
from curation_dagster.errors import SpecError
from curation_dagster.io.lake import Lake
from curation_dagster.media import H264_VIDEO, VideoEncoding, encode_mp4
from curation_dagster.pipeline import run_stage
from curation_dagster.schema import item_id
from curation_dagster.shard_io import StageResult
from curation_dagster.spec import AudioDedupSettings, VersionSpec, parse_spec
from tests.engine.dedup.image_fixtures import crop, jpeg, scene
from tests.engine.dedup.sound_fixtures import sound, tune


def spec(**dedup: Any) -> VersionSpec:
    return parse_spec({"name": "media", "modalities": ["image", "video", "audio"], "dedup": dedup})


def write_folder(root: Path, files: dict[str, bytes]) -> Path:
    root.mkdir(parents=True)
    for name, data in files.items():
        (root / name).write_bytes(data)
    return root


def dedup(settings: VersionSpec, lake: Lake, landing: Path, shard: str) -> StageResult:
    run_stage(settings, lake, "raw", shard, landing / shard)
    return run_stage(settings, lake, "deduped", shard)


def rows(lake: Lake, shard: str, *, rejected: bool = False) -> list[dict[str, Any]]:
    table = lake.read_table(lake.path("media", "deduped", shard, rejected=rejected))
    return table.drop_columns(["media"]).to_pylist()


@pytest.fixture
def pictures() -> list[Image.Image]:
    return [scene(seed, (320, 240)) for seed in range(5)]


@pytest.fixture
def landing(tmp_path: Path, pictures: list[Image.Image]) -> Path:
    """`one` holds five pictures; `two` a q20 re-encode of the first, a mirror of the second, a 90% crop
    of the third and a new picture; `three` a brighter copy of the fourth."""
    root = tmp_path / "landing"
    write_folder(root / "one", {f"{index}.jpg": jpeg(picture) for index, picture in enumerate(pictures)})
    write_folder(
        root / "two",
        {
            "a_q20.jpg": jpeg(pictures[0], 20),
            "b_mirror.png": _png(ImageOps.mirror(pictures[1])),
            "c_crop.jpg": jpeg(crop(pictures[2], 0.9, 0.0, 1.0)),
            "d_new.jpg": jpeg(scene(50, (320, 240))),
        },
    )
    write_folder(root / "three", {"e_bright.jpg": jpeg(pictures[3].point(lambda v: min(255, v + 25)))})
    return root


def _png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()


def test_near_copies_in_a_later_shard_are_removed_with_dup_of_the_earlier_items(
    landing: Path, tmp_path: Path
) -> None:
    lake = Lake(tmp_path / "lake")
    dedup(spec(), lake, landing, "one")
    before = {path: path.stat().st_mtime_ns for path in (tmp_path / "lake").rglob("*.parquet")}
    result = dedup(spec(), lake, landing, "two")
    removed = rows(lake, "two", rejected=True)
    assert [row["reject_reason"] for row in removed] == ["dedup.image"] * 3
    assert [row["dup_of"] for row in removed] == [item_id("one", f"{index}.jpg") for index in range(3)]
    assert all(0.87 <= row["dup_similarity"] <= 1.0 for row in removed)
    assert "mirrored" in removed[1]["reject_detail"]
    assert "crop" in removed[2]["reject_detail"]
    assert [row["id"] for row in rows(lake, "two")] == [item_id("two", "d_new.jpg")]
    assert result.extra["image_near_duplicates"] == 3
    assert result.extra["image_near_duplicates_of_other_shards"] == 3
    assert "dedup.image" not in str(result.extra["example_pairs"])
    assert "mirrored" in result.extra["media_example_pairs"]
    assert check_conservation(lake, "media", "deduped", "two", result.rows_in).passed
    assert {path: path.stat().st_mtime_ns for path in before} == before
    assert len(rows(lake, "one")) == 5


def test_a_third_shard_is_checked_against_both_earlier_shards(landing: Path, tmp_path: Path) -> None:
    lake = Lake(tmp_path / "lake")
    for shard in ("one", "two"):
        dedup(spec(), lake, landing, shard)
    result = dedup(spec(), lake, landing, "three")
    (removed,) = rows(lake, "three", rejected=True)
    assert removed["dup_of"] == item_id("one", "3.jpg")
    assert result.extra["duplicate_rate"] == 1.0


def test_the_earliest_shard_wins_whatever_the_arrival_order(landing: Path, tmp_path: Path) -> None:
    lake = Lake(tmp_path / "lake")
    dedup(spec(), lake, landing, "two")
    dedup(spec(), lake, landing, "one")
    removed = {row["id"]: row["dup_of"] for row in rows(lake, "one", rejected=True)}
    assert removed == {
        item_id("one", "0.jpg"): item_id("two", "a_q20.jpg"),
        item_id("one", "1.jpg"): item_id("two", "b_mirror.png"),
        item_id("one", "2.jpg"): item_id("two", "c_crop.jpg"),
    }
    assert len(rows(lake, "two")) == 4


def test_rerunning_the_earlier_shard_keeps_what_it_kept(landing: Path, tmp_path: Path) -> None:
    lake = Lake(tmp_path / "lake")
    for shard in ("one", "two", "three"):
        dedup(spec(), lake, landing, shard)
    dedup(spec(), lake, landing, "one")
    assert len(rows(lake, "one")) == 5
    assert rows(lake, "one", rejected=True) == []


def test_within_a_shard_the_first_row_wins_and_exact_copies_stay_exact(
    pictures: list[Image.Image], tmp_path: Path
) -> None:
    landing = tmp_path / "landing"
    original = jpeg(pictures[0])
    write_folder(
        landing / "mixed",
        {"a.jpg": original, "b.jpg": original, "c.jpg": jpeg(pictures[0], 20), "d.jpg": jpeg(pictures[1])},
    )
    lake = Lake(tmp_path / "lake")
    result = dedup(spec(), lake, landing, "mixed")
    removed = {row["id"]: (row["reject_reason"], row["dup_of"]) for row in rows(lake, "mixed", rejected=True)}
    first = item_id("mixed", "a.jpg")
    assert removed == {
        item_id("mixed", "b.jpg"): ("dedup.exact", first),
        item_id("mixed", "c.jpg"): ("dedup.image", first),
    }
    assert result.rows_in == result.rows_kept + result.rows_rejected == 4


def test_the_index_holds_kept_images_and_their_direct_copies(landing: Path, tmp_path: Path) -> None:
    lake = Lake(tmp_path / "lake")
    for shard in ("one", "two"):
        dedup(spec(), lake, landing, shard)
    index = lake.read_table(lake.path("media", IMAGE_HASHES, "two"))
    assert index.column_names == ["id", "variant", "hash", "colour", "copy_of"]
    # The new picture, and the three copies removed as direct matches of shard one's pictures.
    copies = {
        item_id("two", name): item_id("one", f"{index}.jpg")
        for index, name in enumerate(["a_q20.jpg", "b_mirror.png", "c_crop.jpg"])
    }
    kept_as = dict(zip(index.column("id").to_pylist(), index.column("copy_of").to_pylist(), strict=True))
    assert kept_as == {item_id("two", "d_new.jpg"): None, **copies}
    assert index.num_rows == 4 * 17  # whole, mirror, nine crop windows, two turns, four margins
    assert str(index.schema.field("hash").type) == "uint64"


def test_an_index_built_with_other_settings_is_refused_with_a_clear_error(
    landing: Path, tmp_path: Path
) -> None:
    lake = Lake(tmp_path / "lake")
    dedup(spec(), lake, landing, "one")
    with pytest.raises(SpecError, match=r"other dedup\.image settings"):
        dedup(spec(image={"hash": "dhash"}), lake, landing, "two")


def test_an_index_of_an_earlier_release_without_keys_is_refused_before_anything_is_computed(
    landing: Path, tmp_path: Path
) -> None:
    lake = Lake(tmp_path / "lake")
    dedup(spec(), lake, landing, "one")
    keys = lake.stage_dir("media", IMAGE_HASHES + "_keys")
    lake.fs.rm(keys, recursive=True)  # what an earlier release left: the Parquet record only
    run_stage(spec(), lake, "raw", "two", landing / "two")
    with pytest.raises(SpecError, match=r"image_hashes of shards one have no keys"):
        run_stage(spec(), lake, "deduped", "two")
    assert not lake.exists(lake.path("media", "deduped", "two"))


def test_a_larger_distance_needs_no_new_index(landing: Path, tmp_path: Path) -> None:
    lake = Lake(tmp_path / "lake")
    dedup(spec(), lake, landing, "one")
    result = dedup(spec(image={"max_distance": 4}), lake, landing, "two")
    assert result.rows_in == result.rows_kept + result.rows_rejected


def test_disabled_image_dedup_removes_nothing_and_writes_no_index(landing: Path, tmp_path: Path) -> None:
    lake = Lake(tmp_path / "lake")
    off = spec(image={"enabled": False})
    dedup(off, lake, landing, "one")
    result = dedup(off, lake, landing, "two")
    assert result.rows_rejected == 0
    assert not lake.exists(lake.path("media", IMAGE_HASHES, "two"))


# Video


def clip(
    seed: int, start: float = 0.0, seconds: float = 6.0, size: tuple[int, int] = (128, 72), crf: int = 23
) -> bytes:
    """A clip panning across a scene at 10 frames per second, from `start` to `seconds`."""
    background = scene(seed, (480, 270))
    rng = np.random.default_rng(seed)
    speed_x, speed_y = rng.uniform(-15, 15), rng.uniform(-8, 8)
    frames = []
    for index in range(round(start * 10), round(seconds * 10)):
        left, top = 160 + speed_x * index / 10, 90 + speed_y * index / 10
        frames.append(background.crop((int(left), int(top), int(left) + 160, int(top) + 90)).resize(size))
    return encode_mp4(frames, 10, VideoEncoding("libx264", {**H264_VIDEO.options, "crf": str(crf)}))


@pytest.fixture
def video_landing(tmp_path: Path) -> Path:
    root = tmp_path / "landing"
    write_folder(root / "first", {"v0.mp4": clip(0), "v1.mp4": clip(1)})
    write_folder(
        root / "second",
        {
            "a_reencoded.mp4": clip(0, size=(96, 54), crf=38),
            "b_trimmed.mp4": clip(1, start=2.3),
            "c_other.mp4": clip(2),
        },
    )
    return root


def test_reencoded_and_trimmed_videos_are_found_and_different_videos_kept(
    video_landing: Path, tmp_path: Path
) -> None:
    lake = Lake(tmp_path / "lake")
    dedup(spec(), lake, video_landing, "first")
    result = dedup(spec(), lake, video_landing, "second")
    removed = {row["id"]: row for row in rows(lake, "second", rejected=True)}
    assert {item: row["dup_of"] for item, row in removed.items()} == {
        item_id("second", "a_reencoded.mp4"): item_id("first", "v0.mp4"),
        item_id("second", "b_trimmed.mp4"): item_id("first", "v1.mp4"),
    }
    assert {row["reject_reason"] for row in removed.values()} == {"dedup.video"}
    assert removed[item_id("second", "a_reencoded.mp4")]["dup_similarity"] >= 0.9
    # The trim keeps 3.7 of 6 seconds: the copy matches whole, the original about two thirds.
    assert 0.55 <= removed[item_id("second", "b_trimmed.mp4")]["dup_similarity"] <= 0.8
    assert [row["id"] for row in rows(lake, "second")] == [item_id("second", "c_other.mp4")]
    assert result.extra["video_near_duplicates_of_other_shards"] == 2
    index = lake.read_table(lake.path("media", VIDEO_HASHES, "first"))
    assert index.column_names == ["id", "frame", "hash", "frames"]
    assert set(index.column("frames").to_pylist()) == {12}  # 6 s at 2 frames per second
    assert check_conservation(lake, "media", "deduped", "second", result.rows_in).passed


def test_the_longer_original_arriving_after_its_trim_is_removed(video_landing: Path, tmp_path: Path) -> None:
    lake = Lake(tmp_path / "lake")
    dedup(spec(), lake, video_landing, "second")
    dedup(spec(), lake, video_landing, "first")
    removed = {row["id"]: row["dup_of"] for row in rows(lake, "first", rejected=True)}
    assert removed == {
        item_id("first", "v0.mp4"): item_id("second", "a_reencoded.mp4"),
        item_id("first", "v1.mp4"): item_id("second", "b_trimmed.mp4"),
    }


def test_a_short_excerpt_does_not_remove_the_video_it_comes_from(tmp_path: Path) -> None:
    landing = tmp_path / "landing"
    write_folder(
        landing / "excerpt", {"a_start.mp4": clip(3, seconds=1.0), "b_full.mp4": clip(3, seconds=12.0)}
    )
    lake = Lake(tmp_path / "lake")
    result = dedup(spec(), lake, landing, "excerpt")
    assert result.rows_rejected == 0


# Audio


def test_reencoded_quieter_and_trimmed_sounds_are_found_and_different_sounds_kept(tmp_path: Path) -> None:
    landing = tmp_path / "landing"
    first, second = tune(0), tune(1)
    write_folder(landing / "first", {"s0.wav": sound(first), "s1.wav": sound(second)})
    write_folder(
        landing / "second",
        {
            "a_quiet.mp3": sound(first * 0.4, "MP3"),
            "b_trimmed.ogg": sound(second[int(2.3 * 22050) :], "OGG"),
            "c_other.wav": sound(tune(2)),
        },
    )
    lake = Lake(tmp_path / "lake")
    dedup(spec(), lake, landing, "first")
    result = dedup(spec(), lake, landing, "second")
    removed = {
        row["id"]: (row["reject_reason"], row["dup_of"]) for row in rows(lake, "second", rejected=True)
    }
    assert removed == {
        item_id("second", "a_quiet.mp3"): ("dedup.audio", item_id("first", "s0.wav")),
        item_id("second", "b_trimmed.ogg"): ("dedup.audio", item_id("first", "s1.wav")),
    }
    assert result.extra["audio_near_duplicates_of_other_shards"] == 2
    assert lake.read_table(lake.path("media", AUDIO_HASHES, "first")).num_rows == 2 * 21  # 12 s: 21 windows
    assert check_conservation(lake, "media", "deduped", "second", result.rows_in).passed


def test_different_tunes_are_never_merged() -> None:
    settings = AudioDedupSettings()
    media = ShardMedia()
    for seed in range(12):
        add_sequence(media, audio_fingerprinter(settings), str(seed), sound(tune(100 + seed)))
    hashes = media.hash_set()
    match = AudioMatcher(settings).match(hashes, hashes)
    assert [(q, t) for q, t in zip(match.query, match.target, strict=True) if q != t] == []


def test_a_distance_too_wide_for_the_key_segments_reads_every_shard_and_still_finds_the_copies(
    landing: Path, tmp_path: Path
) -> None:
    lake = Lake(tmp_path / "lake")
    wide = spec(image={"max_distance": 16})  # 5 bits in a 21-bit segment: too many masks to probe
    dedup(wide, lake, landing, "one")
    result = dedup(wide, lake, landing, "two")
    removed = {row["id"]: row["dup_of"] for row in rows(lake, "two", rejected=True)}
    assert {
        item_id("two", "a_q20.jpg"): item_id("one", "0.jpg"),
        item_id("two", "b_mirror.png"): item_id("one", "1.jpg"),
        item_id("two", "c_crop.jpg"): item_id("one", "2.jpg"),
    }.items() <= removed.items()
    assert result.rows_in == result.rows_kept + result.rows_rejected
