"""The synthesized stage with media recipes (curation_dagster/synth/stage.py, `run_synthesize`): provenance and
modality of image, audio, video and cross-modality candidates, their admission through the same dedup
and filters as real data, and the per-recipe metadata."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from curation_dagster.checks import check_conservation
from curation_dagster.io.lake import Lake
from curation_dagster.io.validate import probe_audio, probe_video
from curation_dagster.models.runtime import ModelRuntime
from curation_dagster.pipeline import run_stage
from curation_dagster.schema import item_id
from curation_dagster.shard_io import StageResult
from curation_dagster.spec import VersionSpec, parse_spec
from curation_dagster.stages import STAGES
from tests.generator_fixtures import write_image_generator
from tests.media_fixtures import noisy_png, tiny_mp4, tone_wav, write_jsonl

pytestmark = pytest.mark.usefixtures("no_network", "torch_single_thread")

MEDIA = "media"
FOX, OWL = item_id(MEDIA, "fox.png"), item_id(MEDIA, "owl.png")


@pytest.fixture
def landing(tmp_path: Path) -> Path:
    """A media shard: two captioned images, a captioned tone and a clip."""
    folder = tmp_path / "landing" / MEDIA
    folder.mkdir(parents=True)
    (folder / "fox.png").write_bytes(noisy_png(seed=1))
    (folder / "fox.txt").write_text("A red fox.", encoding="utf-8")
    (folder / "owl.png").write_bytes(noisy_png(seed=2))
    (folder / "owl.txt").write_text("An owl.", encoding="utf-8")
    (folder / "tone.wav").write_bytes(tone_wav())
    (folder / "clip.mp4").write_bytes(tiny_mp4())
    return tmp_path / "landing"


def make_spec(synthesize: dict[str, Any], modalities: list[str], video_min_s: float = 0.1) -> VersionSpec:
    return parse_spec(
        {
            "name": "media_synth",
            "modalities": modalities,
            "filters": {
                "text": [{"kind": "text_length", "min_chars": 1, "min_words": 1}],
                "image": [{"kind": "image_size", "min_width": 8, "min_height": 8}],
                "audio": [{"kind": "duration", "min_s": 0.01, "max_s": 60.0}],
                "video": [{"kind": "duration", "min_s": video_min_s, "max_s": 60.0}],
            },
            "select": {"seed": 1, "fraction": 1.0},
            "synthesize": {"seed": 2, "fraction": 1.0, "text": None, **synthesize},
        }
    )


def run_all(
    spec: VersionSpec, lake: Lake, landing: Path, shard: str, runtime: ModelRuntime | None = None
) -> dict[str, StageResult]:
    return {stage: run_stage(spec, lake, stage, shard, landing / shard, runtime=runtime) for stage in STAGES}


def synthetic(lake: Lake, spec: VersionSpec, shard: str, *, rejected: bool = False) -> list[dict[str, Any]]:
    rows = lake.read_table(lake.path(spec.name, "synthesized", shard, rejected=rejected)).to_pylist()
    return [row for row in rows if row["synthetic"]]


def assert_conserved(lake: Lake, spec: VersionSpec, shard: str, result: StageResult) -> None:
    assert result.rows_in == result.rows_kept + result.rows_rejected
    assert check_conservation(lake, spec.name, "synthesized", shard, result.rows_in).passed


def test_media_recipes_make_items_of_their_modality_with_parents_generator_and_seed(
    landing: Path, tmp_path: Path
) -> None:
    lake = Lake(tmp_path / "lake")
    spec = make_spec(
        {
            "image": [{"kind": "colour_jitter"}, {"kind": "composite"}],
            "audio": [{"kind": "noise", "snr_db": 15}, {"kind": "reverb"}, {"kind": "speed_pitch"}],
            "video": [{"kind": "pan_zoom", "seconds": 0.5, "fps": 8}, {"kind": "frame_augment"}],
        },
        ["image", "audio", "video"],
    )

    result = run_all(spec, lake, landing, MEDIA)["synthesized"]

    by_recipe: dict[str, list[dict[str, Any]]] = {}
    for row in synthetic(lake, spec, MEDIA):
        by_recipe.setdefault(json.loads(row["generator"])["recipe"], []).append(row)
        parent = row["parent_ids"][0]
        assert row["id"] == item_id(MEDIA, f"synth:{json.loads(row['generator'])['recipe']}:{parent}")
        assert json.loads(row["meta"])["seed"] == f"2:{parent}"
    assert {recipe: len(rows) for recipe, rows in by_recipe.items()} == {
        "colour_jitter": 2,
        "composite": 2,
        "noise": 1,
        "reverb": 1,
        "speed_pitch": 1,
        "pan_zoom": 2,
        "frame_augment": 1,
    }
    assert result.extra["synthetic_by_recipe"]["pan_zoom"] == {
        "generated": 2,
        "admitted": 2,
        "rejected": 0,
        "rejected_by_reason": {},
    }
    composites = {row["parent_ids"][0]: row for row in by_recipe["composite"]}
    assert composites[FOX]["parent_ids"] == [FOX, OWL]
    assert composites[FOX]["text"] == "Left: A red fox. Right: An owl."
    assert (composites[FOX]["width"], composites[FOX]["height"]) == (64, 32)
    for clip in by_recipe["pan_zoom"]:
        assert clip["modality"] == "video" and clip["parent_ids"][0] in {FOX, OWL}
        assert probe_video(clip["media"])["frame_count"] == 4
        assert clip["duration_s"] == 0.5
    assert json.loads(by_recipe["noise"][0]["generator"]) == {
        "recipe": "noise",
        "snr_db": 15.0,
        "colour": "white",
    }
    assert probe_audio(by_recipe["speed_pitch"][0]["media"])["duration_s"] == pytest.approx(
        0.5 / 1.1, abs=1e-3
    )
    assert result.extra["synthetic_generated"] == result.extra["synthetic_admitted"] == 10
    assert_conserved(lake, spec, MEDIA, result)


def test_a_generated_copy_of_a_real_image_is_rejected_and_clips_face_the_video_filters(
    landing: Path, tmp_path: Path
) -> None:
    painter = write_image_generator(tmp_path / "models")
    (painter.parent / "copy.png").write_bytes(noisy_png(seed=2))  # the owl, a real item
    runtime = ModelRuntime.local("cpu", image_generator=f"{painter}:copy_of_png")
    lake = Lake(tmp_path / "lake")
    spec = make_spec(
        {
            "image": [{"kind": "image_generator"}],
            "video": [{"kind": "pan_zoom", "seconds": 0.5, "fps": 8}],
        },
        ["image", "video"],
        video_min_s=1.0,
    )

    results = run_all(spec, lake, landing, MEDIA, runtime)

    rejected = synthetic(lake, spec, MEDIA, rejected=True)
    copies = sorted(
        (row["parent_ids"][0], row["reject_reason"], row["dup_of"])
        for row in rejected
        if row["modality"] == "image"
    )
    assert copies == sorted([(FOX, "dedup.exact", OWL), (OWL, "dedup.exact", OWL)])
    clips = [row for row in rejected if row["modality"] == "video"]
    assert len(clips) == 2 and {row["reject_stage"] for row in clips} == {"synthesized"}
    assert {row["reject_reason"] for row in clips} == {"filter.duration.too_short"}
    assert results["synthesized"].extra["synthetic_by_recipe"]["image_generator"]["rejected_by_reason"] == {
        "dedup.exact": 2
    }
    assert_conserved(lake, spec, MEDIA, results["synthesized"])


def test_tts_turns_text_items_into_admitted_audio_items(tmp_path: Path, tiny_vits_folder: Path) -> None:
    shard = "docs.jsonl"
    landing = tmp_path / "landing"
    landing.mkdir()
    write_jsonl(landing / shard, ["The boats were still tied up at the pier.", "Wheat grew in three fields."])
    lake = Lake(tmp_path / "lake")
    spec = make_spec({"audio": [{"kind": "tts"}]}, ["text", "audio"])
    runtime = ModelRuntime.local("cpu", text_to_speech=str(tiny_vits_folder), batch_size=2)

    result = run_all(spec, lake, landing, shard, runtime)["synthesized"]

    speech = synthetic(lake, spec, shard)
    assert sorted((row["parent_ids"], row["text"]) for row in speech) == sorted(
        [
            ([item_id(shard, "L1")], "The boats were still tied up at the pier."),
            ([item_id(shard, "L2")], "Wheat grew in three fields."),
        ]
    )
    assert {(row["modality"], row["media_format"], row["sample_rate"]) for row in speech} == {
        ("audio", "wav", 8000)
    }
    assert all(json.loads(row["generator"])["model"] == str(tiny_vits_folder) for row in speech)
    assert result.extra["synthetic_by_recipe"]["tts"]["admitted"] == 2
    assert_conserved(lake, spec, shard, result)


def test_recipes_whose_output_modality_the_version_excludes_make_nothing(
    landing: Path, tmp_path: Path
) -> None:
    lake = Lake(tmp_path / "lake")
    spec = make_spec({"image": [{"kind": "colour_jitter"}], "video": [{"kind": "pan_zoom"}]}, ["image"])

    result = run_all(spec, lake, landing, MEDIA)["synthesized"]

    assert set(result.extra["synthetic_by_recipe"]) == {"colour_jitter"}
    assert {row["modality"] for row in synthetic(lake, spec, MEDIA)} == {"image"}


OWL_LIKE = '''
from pathlib import Path


def owl_like(prompts, seeds, device):
    """A near copy of the owl for every prompt: fox.png for the fox's caption, owl.png for the owl's."""
    folder = Path(__file__).parent
    return [(folder / ("fox.png" if "fox" in prompt else "owl.png")).read_bytes() for prompt in prompts]
'''


def near_copy(png: bytes, pixel: tuple[int, int]) -> bytes:
    """The image with one pixel inverted: other bytes, the same perceptual hash."""
    with Image.open(io.BytesIO(png)) as source:
        image = source.convert("RGB")
    red, green, blue = image.getpixel(pixel)
    image.putpixel(pixel, (255 - red, 255 - green, 255 - blue))
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def test_a_synthetic_image_may_resemble_its_parent_but_not_another_real_image(
    landing: Path, tmp_path: Path
) -> None:
    models = tmp_path / "models"
    models.mkdir()
    (models / "owl_like.py").write_text(OWL_LIKE, encoding="utf-8")
    (models / "fox.png").write_bytes(near_copy(noisy_png(seed=2), (0, 0)))
    (models / "owl.png").write_bytes(near_copy(noisy_png(seed=2), (5, 5)))
    runtime = ModelRuntime.local("cpu", image_generator=f"{models / 'owl_like.py'}:owl_like")
    lake = Lake(tmp_path / "lake")
    spec = make_spec({"image": [{"kind": "image_generator"}]}, ["image"])

    result = run_all(spec, lake, landing, MEDIA, runtime)["synthesized"]

    (rejected,) = synthetic(lake, spec, MEDIA, rejected=True)
    assert (rejected["parent_ids"], rejected["reject_reason"], rejected["dup_of"]) == (
        [FOX],
        "dedup.image",
        OWL,
    )
    assert rejected["reject_detail"].endswith("not one of its parents")
    (admitted,) = synthetic(lake, spec, MEDIA)
    assert admitted["parent_ids"] == [OWL]  # a near copy of its own parent is what a variant may be
    index = lake.read_table(lake.path(spec.name, "synth_image_hashes", MEDIA))
    assert set(index.column("id").to_pylist()) == {admitted["id"]}
    assert_conserved(lake, spec, MEDIA, result)


@pytest.mark.parametrize("batch_rows", [1, 1024], ids=["a batch per parent", "one batch"])
def test_a_copy_rejected_for_resembling_another_item_does_not_claim_its_content(
    landing: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, batch_rows: int
) -> None:
    monkeypatch.setattr("curation_dagster.synth.stage.BATCH_ROWS", batch_rows)
    painter = write_image_generator(tmp_path / "models")
    (painter.parent / "copy.png").write_bytes(near_copy(noisy_png(seed=2), (3, 3)))  # near the owl
    runtime = ModelRuntime.local("cpu", image_generator=f"{painter}:copy_of_png")
    lake = Lake(tmp_path / "lake")
    spec = make_spec({"image": [{"kind": "image_generator"}]}, ["image"])

    result = run_all(spec, lake, landing, MEDIA, runtime)["synthesized"]

    rejected = [
        (row["parent_ids"], row["reject_reason"]) for row in synthetic(lake, spec, MEDIA, rejected=True)
    ]
    assert rejected == [([FOX], "dedup.image")]  # the fox's copy looks like the owl, not its parent
    assert [row["parent_ids"] for row in synthetic(lake, spec, MEDIA)] == [[OWL]]  # same bytes, its parent
    assert_conserved(lake, spec, MEDIA, result)
