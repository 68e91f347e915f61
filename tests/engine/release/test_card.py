"""Tests of curation_dagster/release/card.py: the release's README.md, parsed as the Hugging Face Hub
parses it (huggingface_hub's DatasetCard, offline)."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
from huggingface_hub import DatasetCard

from curation_dagster.release.card import card_text, front_matter, size_category, task_categories
from curation_dagster.spec import VersionSpec, parse_spec

SPEC = parse_spec({"name": "mixed", "description": "Captioned pictures and news text."})


def listed(path: str, kind: str, size: int, **items: int) -> dict[str, Any]:
    """A file as the manifest lists it (without its checksum, which the card does not read)."""
    return {"path": path, "format": kind, "bytes": size, "items_by_modality": items}


#: A manifest as `build_release` writes it, cut to what the card reads: text in two languages, captioned
#: and uncaptioned images, two shards, a synthetic text item.
MANIFEST: dict[str, Any] = {
    "items": 5,
    "items_by_modality": {"image": 2, "text": 3},
    "items_by_source_shard": {"news.jsonl": {"text": 3}, "pictures": {"image": 2}},
    "items_with_text_by_modality": {"image": 1, "text": 3},
    "source_shards": ["news.jsonl", "pictures"],
    "synthetic_items": 1,
    "synthetic_items_by_recipe": {"word_edits": 1},
    "languages": {"de": 1, "en": 2, "zh-Hans": 1},
    "rejected_by_stage": {"filtered": {"filter.text_length.too_short": 4}, "raw": {"raw.bad_json": 1}},
    "default_config": "text",
    "configs": {
        "text": {
            "data_files": "data/text/train-*.parquet",
            "items": 3,
            "arrow_bytes": 300,
            "features": {
                "id": {"dtype": "string", "_type": "Value"},
                "text": {"dtype": "string", "_type": "Value"},
                "parent_ids": {"feature": {"dtype": "string", "_type": "Value"}, "_type": "List"},
            },
        },
        "image": {
            "data_files": "data/image/train-*.parquet",
            "items": 2,
            "arrow_bytes": 5000,
            "features": {
                "id": {"dtype": "string", "_type": "Value"},
                "image": {"_type": "Image"},
                "width": {"dtype": "int32", "_type": "Value"},
            },
        },
    },
    "files": [
        listed("data/image/train-00000-of-00001.parquet", "parquet", 4000, image=2),
        listed("data/text/train-00000-of-00001.parquet", "parquet", 250, text=3),
        listed("webdataset/image-00000.tar", "webdataset", 10240, image=1),
        listed("webdataset/image-00001.tar", "webdataset", 10240, image=1),
    ],
    "code_versions": {
        "raw": "1-a",
        "deduped": "1-b",
        "filtered": "1-c",
        "selected": "1-d",
        "synthesized": "3-e",
    },
    "engine": {"package": "0.1.0", "stages": {}},
}


def parsed(tmp_path: Path, spec: VersionSpec = SPEC, manifest: dict[str, Any] = MANIFEST) -> DatasetCard:
    path = tmp_path / "README.md"
    path.write_text(card_text(spec, spec.release, manifest), encoding="utf-8")
    return DatasetCard.load(path)


def test_the_card_parses_with_huggingface_hub_and_names_configs_license_and_tasks(tmp_path: Path) -> None:
    data = parsed(tmp_path).data

    assert [config["config_name"] for config in data.configs] == ["text", "image"]
    assert data.configs[0] == {
        "config_name": "text",
        "data_files": [{"split": "train", "path": "data/text/train-*.parquet"}],
        "default": True,
    }
    assert "default" not in data.configs[1]
    assert data.license == "unknown"
    assert data.task_categories == ["text-generation", "text-to-image", "unconditional-image-generation"]
    assert data.size_categories == ["n<1K"]
    assert data.pretty_name == "mixed"
    assert data.language == ["de", "en"]
    assert data.tags == ["curation_dagster", "synthetic"]


def test_the_card_lists_each_configs_features_and_split(tmp_path: Path) -> None:
    info = {entry["config_name"]: entry for entry in parsed(tmp_path).data.dataset_info}

    assert info["image"]["features"] == [
        {"name": "id", "dtype": "string"},
        {"name": "image", "dtype": "image"},
        {"name": "width", "dtype": "int32"},
    ]
    assert info["text"]["features"][2] == {"name": "parent_ids", "list": "string"}
    assert info["image"]["splits"] == [{"name": "train", "num_bytes": 5000, "num_examples": 2}]
    assert (info["image"]["download_size"], info["text"]["download_size"]) == (4000, 250)


def test_the_card_features_are_what_datasets_reads_from_yaml(tmp_path: Path) -> None:
    import datasets

    info = {entry["config_name"]: entry for entry in parsed(tmp_path).data.dataset_info}

    for name, config in MANIFEST["configs"].items():
        assert datasets.Features._from_yaml_list(info[name]["features"]) == datasets.Features.from_dict(
            config["features"]
        )


def test_the_body_counts_items_per_config_and_shard_and_shows_rejections_and_loading(tmp_path: Path) -> None:
    text = parsed(tmp_path).text

    assert text.lstrip().startswith("# mixed\n\nCaptioned pictures and news text.")
    assert "| `text` (default) | 3 | 3 | `data/text/train-*.parquet` | 0 |" in text
    assert "| `image` | 2 | 1 | `data/image/train-*.parquet` | 2 |" in text
    assert (
        "| shard | text | image |\n| --- | --- | --- |\n| `news.jsonl` | 3 | 0 |\n| `pictures` | 0 | 2 |"
        in text
    )
    assert "| filtered | `filter.text_length.too_short` | 4 |" in text
    assert 'image = load_dataset("path/to/release", "image", split="train")' in text
    assert 'wds.WebDataset("webdataset/image-{00000..00001}.tar")' in text
    assert "**synthesized** (`3-e`)" in text
    assert "Synthetic items by recipe: `word_edits` 1." in text


def test_the_fields_table_says_what_each_column_holds_and_which_configs_have_it(tmp_path: Path) -> None:
    text = parsed(tmp_path).text

    assert "| column | what it holds | configs |" in text
    assert "| `id` | Stable item id: a hash of the shard key and the item's position in it. | all |" in text
    assert "| `parent_ids` | The items a synthetic item was made from. | text |" in text
    assert (
        "| `image` | The image, decoded by `datasets` as `Image`: its bytes (media the lake kept as a file too are copied in), and `<id>.<ext>` as its path"
        in text
    )
    assert "| `width` | Image or video width in pixels. | image |" in text


def test_a_license_from_the_spec_replaces_unknown(tmp_path: Path) -> None:
    spec = parse_spec(
        {
            "name": "mixed",
            "release": {
                "license": "other",
                "license_name": "acme-data-license",
                "license_link": "LICENSE.md",
                "pretty_name": "Acme mixed set",
            },
        }
    )

    card = parsed(tmp_path, spec)

    assert (card.data.license, card.data.license_name, card.data.license_link) == (
        "other",
        "acme-data-license",
        "LICENSE.md",
    )
    assert card.data.pretty_name == "Acme mixed set"
    assert "`acme-data-license`: LICENSE.md" in card.text


def test_no_language_key_without_detected_languages() -> None:
    manifest = {**MANIFEST, "languages": {}}

    assert "language" not in front_matter(SPEC, SPEC.release, manifest)


@pytest.mark.parametrize(
    ("rows", "category"),
    [(0, "n<1K"), (999, "n<1K"), (1_000, "1K<n<10K"), (99_999, "10K<n<100K"), (2_000_000, "1M<n<10M")],
)
def test_size_category_follows_the_row_count(rows: int, category: str) -> None:
    assert size_category(rows) == category


def test_recipes_add_the_tasks_their_items_serve() -> None:
    spec = parse_spec(
        {
            "name": "mixed",
            "synthesize": {
                "text": [{"kind": "llm", "mode": "qa"}],
                "audio": [{"kind": "tts", "source": "text"}],
            },
        }
    )
    manifest = copy.deepcopy(MANIFEST)
    manifest["synthetic_items_by_recipe"] = {"llm_qa": 2}
    manifest["items_with_text_by_modality"] = {"image": 2, "text": 3}

    assert task_categories(spec, manifest) == ["question-answering", "text-generation", "text-to-image"]


def test_a_release_without_items_has_a_card_without_configs(tmp_path: Path) -> None:
    empty = {
        **MANIFEST,
        "items": 0,
        "items_by_modality": {},
        "items_by_source_shard": {"news.jsonl": {}},
        "items_with_text_by_modality": {},
        "synthetic_items": 0,
        "synthetic_items_by_recipe": {},
        "languages": {},
        "default_config": None,
        "configs": {},
        "files": [],
    }

    card = parsed(tmp_path, manifest=empty)

    assert not {"configs", "dataset_info", "task_categories", "language"} & set(card.data.to_dict())
    assert card.data.tags == ["curation_dagster"]
    assert "The release has no items." in card.text
