"""The release's dataset card: `README.md` with the YAML front matter the Hugging Face Hub reads (configs
and their data files, features, license, task categories, size, languages) and a body that says what the
set holds, how it was made and how to load it. Written from the release's manifest, so the same lake gives
the same bytes."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from typing import Any

import yaml

from curation_dagster.columns import COLUMN_DESCRIPTIONS
from curation_dagster.release.features import MEDIA_FEATURES
from curation_dagster.schema import MODALITIES
from curation_dagster.spec import ReleaseSettings, VersionSpec
from curation_dagster.stages import STAGE_RECORDS

CARD = "README.md"

#: Hub task categories (its official list) that the items of a modality serve: without text, with it.
MODALITY_TASKS: dict[str, tuple[str | None, str]] = {
    "text": ("text-generation", "text-generation"),
    "image": ("unconditional-image-generation", "text-to-image"),
    "audio": (None, "text-to-audio"),
    "video": (None, "text-to-video"),
}
#: Hub task categories that a recipe's synthetic items add, by recipe kind and its `mode` or `source`.
RECIPE_TASKS: dict[tuple[str, str | None], str] = {
    ("llm", "qa"): "question-answering",
    ("tts", "text"): "text-to-speech",
    ("tts", "audio"): "text-to-speech",
    ("image_generator", "image"): "image-to-image",
    ("pan_zoom", "image"): "image-to-video",
}
#: The Hub's `size_categories`: the first whose bound is above the row count.
SIZE_CATEGORIES = (
    (1_000, "n<1K"),
    (10_000, "1K<n<10K"),
    (100_000, "10K<n<100K"),
    (1_000_000, "100K<n<1M"),
    (10_000_000, "1M<n<10M"),
    (100_000_000, "10M<n<100M"),
    (1_000_000_000, "100M<n<1B"),
    (10_000_000_000, "1B<n<10B"),
    (100_000_000_000, "10B<n<100B"),
    (1_000_000_000_000, "100B<n<1T"),
)
#: A language code the Hub accepts (ISO 639-1, -2 or -3), as language identification writes them.
_LANGUAGE_CODE = re.compile(r"^[a-z]{2,3}$")


def size_category(rows: int) -> str:
    """The Hub's size category of a dataset with `rows` rows."""
    return next((name for bound, name in SIZE_CATEGORIES if rows < bound), "n>1T")


def task_categories(spec: VersionSpec, manifest: dict[str, Any]) -> list[str]:
    """Hub task categories from the modalities released (captioned or not) and the recipes that made
    synthetic items."""
    with_text = manifest["items_with_text_by_modality"]
    tasks = set()
    for modality in manifest["configs"]:
        plain, captioned = MODALITY_TASKS[modality]
        if with_text.get(modality):
            tasks.add(captioned)
        if plain and with_text.get(modality, 0) < manifest["items_by_modality"][modality]:
            tasks.add(plain)
    recipes = {recipe.label: recipe for recipe in spec.synthesize.recipes}
    for label in manifest["synthetic_items_by_recipe"]:
        recipe = recipes.get(label)
        if recipe is not None:
            variant = getattr(recipe, "mode", None) or getattr(recipe, "source", None)
            task = RECIPE_TASKS.get((recipe.kind, variant))
            if task:
                tasks.add(task)
    return sorted(tasks)


def feature_yaml(features: dict[str, Any]) -> list[dict[str, Any]]:
    """`datasets` features (`Features.to_dict()` form) as the card's `dataset_info.features` list."""
    return [{"name": name, **_feature_yaml(feature)} for name, feature in features.items()]


def _feature_yaml(feature: dict[str, Any]) -> dict[str, Any]:
    kind = feature.get("_type")
    if kind == "Value":
        return {"dtype": feature["dtype"]}
    if kind == "List":
        inner = _feature_yaml(feature["feature"])
        return {"list": inner["dtype"] if set(inner) == {"dtype"} else [inner]}
    if kind is None:
        return {"struct": feature_yaml(feature)}
    return {"dtype": str(kind).lower()}


def front_matter(spec: VersionSpec, settings: ReleaseSettings, manifest: dict[str, Any]) -> dict[str, Any]:
    """The card's YAML metadata, in the Hub's keys; lists with nothing to say are left out."""
    data: dict[str, Any] = {"pretty_name": settings.pretty_name or spec.name, "license": settings.license}
    if settings.license_name:
        data["license_name"] = settings.license_name
    if settings.license_link:
        data["license_link"] = settings.license_link
    languages = [code for code in manifest["languages"] if _LANGUAGE_CODE.match(code)]
    if languages:
        data["language"] = languages
    data["task_categories"] = task_categories(spec, manifest)
    data["size_categories"] = [size_category(manifest["items"])]
    data["tags"] = ["curation_dagster", *(["synthetic"] if manifest["synthetic_items"] else [])]
    configs = manifest["configs"]
    data["configs"] = [
        {
            "config_name": name,
            "data_files": [{"split": "train", "path": config["data_files"]}],
            **({"default": True} if name == manifest["default_config"] else {}),
        }
        for name, config in configs.items()
    ]
    download = _bytes_by_config(manifest)
    data["dataset_info"] = [
        {
            "config_name": name,
            "features": feature_yaml(config["features"]),
            "splits": [
                {"name": "train", "num_bytes": config["arrow_bytes"], "num_examples": config["items"]}
            ],
            "download_size": download.get(name, 0),
            "dataset_size": config["arrow_bytes"],
        }
        for name, config in configs.items()
    ]
    return {key: value for key, value in data.items() if value != []}


def _bytes_by_config(manifest: dict[str, Any]) -> dict[str, int]:
    sizes: dict[str, int] = {}
    for entry in manifest["files"]:
        if entry["format"] == "parquet":
            for modality in entry["items_by_modality"]:
                sizes[modality] = sizes.get(modality, 0) + int(entry["bytes"])
    return sizes


def card_text(spec: VersionSpec, settings: ReleaseSettings, manifest: dict[str, Any]) -> str:
    """The whole `README.md`: the front matter between `---` lines, then the body."""
    metadata = yaml.safe_dump(
        front_matter(spec, settings, manifest), sort_keys=False, allow_unicode=True, width=100
    )
    sections = [
        _summary(spec, settings, manifest),
        _configs_section(manifest),
        _shards_section(manifest),
        _making_section(spec, manifest),
        _loading_section(manifest),
        _fields_section(manifest),
        _license_section(settings),
    ]
    return f"---\n{metadata}---\n\n" + "\n\n".join(sections) + "\n"


def _summary(spec: VersionSpec, settings: ReleaseSettings, manifest: dict[str, Any]) -> str:
    synthetic, shards = manifest["synthetic_items"], len(manifest["source_shards"])
    lines = [
        f"# {settings.pretty_name or spec.name}",
        "",
        *([spec.description, ""] if spec.description else []),
        f"The release of dataset version `{spec.name}`: {manifest['items']:,} items"
        f"{f' ({synthetic:,} of them synthetic)' if synthetic else ''} from "
        f"{shards:,} source shard{'' if shards == 1 else 's'}, curated with curation_dagster "
        f"{manifest['engine']['package']}. `manifest.json` beside this card lists every file with its "
        "sha256, the counts and the whole spec.",
    ]
    return "\n".join(lines)


def _configs_section(manifest: dict[str, Any]) -> str:
    configs = manifest["configs"]
    if not configs:
        return "## Configs\n\nThe release has no items."
    with_text = manifest["items_with_text_by_modality"]
    tars = _tars_by_modality(manifest)
    rows = [
        [
            f"`{name}`" + (" (default)" if name == manifest["default_config"] else ""),
            f"{config['items']:,}",
            f"{with_text.get(name, 0):,}",
            f"`{config['data_files']}`",
            f"{len(tars.get(name, [])):,}",
        ]
        for name, config in configs.items()
    ]
    return "\n".join(
        [
            "## Configs",
            "",
            "One config per modality, one `train` split each; rows are ordered by id.",
            "",
            _table(["config", "items", "with text", "Parquet files", "WebDataset tars"], rows),
        ]
    )


def _shards_section(manifest: dict[str, Any]) -> str:
    modalities = [m for m in MODALITIES if m in manifest["items_by_modality"]]
    rows = [
        [f"`{shard}`", *(f"{counts.get(m, 0):,}" for m in modalities)]
        for shard, counts in sorted(manifest["items_by_source_shard"].items())
    ]
    return "\n".join(["## Source shards", "", _table(["shard", *modalities], rows)])


def _making_section(spec: VersionSpec, manifest: dict[str, Any]) -> str:
    codes = manifest["code_versions"]
    lines = [
        "## How it was made",
        "",
        f"Every item went through the stages of curation_dagster {manifest['engine']['package']}, each at "
        "its code version (engine version and a hash of the settings it applies):",
        "",
    ]
    settings = _stage_settings(spec)
    for number, stage in enumerate(STAGE_RECORDS, start=1):
        lines.append(f"{number}. **{stage.name}** (`{codes[stage.name]}`): {stage.description}")
        if settings.get(stage.name):
            lines.append(f"   Settings: {settings[stage.name]}.")
    recipes = manifest["synthetic_items_by_recipe"]
    if recipes:
        made = ", ".join(f"`{label}` {count:,}" for label, count in recipes.items())
        lines += ["", f"Synthetic items by recipe: {made}."]
    rejected = manifest["rejected_by_stage"]
    if rejected:
        rows = [
            [stage, f"`{reason}`", f"{count:,}"]
            for stage, reasons in rejected.items()
            for reason, count in reasons.items()
        ]
        lines += ["", "Items the stages removed from these shards, by reason:", ""]
        lines.append(_table(["stage", "reason", "items"], rows))
    return "\n".join(lines)


def _stage_settings(spec: VersionSpec) -> dict[str, str]:
    """A line per stage naming what its settings switch on; the full spec is in `manifest.json`."""
    dump = spec.model_dump(mode="json")
    dedup = [
        name
        for name, section in dump["dedup"].items()
        if isinstance(section, dict) and section.get("enabled")
    ]
    filters = [
        f"{modality}: {', '.join(str(item.get('kind')) for item in dump['filters'][modality])}"
        for modality in MODALITIES
        if dump["filters"].get(modality)
    ]
    select = dump["select"]
    strategy = select.get("strategy")
    chosen = [f"strategy {strategy.get('kind') if isinstance(strategy, dict) else strategy}"]
    chosen += [
        f"{key} {json.dumps(select[key])}" for key in ("fraction", "budget", "where") if select.get(key)
    ]
    recipes = [
        f"{modality}: {', '.join(recipe.label for recipe in getattr(spec.synthesize, modality))}"
        for modality in MODALITIES
        if getattr(spec.synthesize, modality)
    ]
    synthesized = f"{'; '.join(recipes)}; fraction {spec.synthesize.fraction}" if recipes else "no recipes"
    return {
        "raw": "modalities " + ", ".join(spec.modalities),
        "deduped": "methods on: " + (", ".join(dedup) or "none"),
        "filtered": "; ".join(filters) or "no filters",
        "selected": ", ".join(chosen),
        "synthesized": synthesized,
    }


def _loading_section(manifest: dict[str, Any]) -> str:
    default = manifest["default_config"]
    lines = [
        "## Loading",
        "",
        "With `datasets` (images decode to PIL images; audio and video decode with `torchcodec`), from this "
        "folder or its Hub repository:",
        "",
        "```python",
        "from datasets import load_dataset",
        "",
    ]
    for name in manifest["configs"]:
        lines.append(f'{name} = load_dataset("path/to/release", "{name}", split="train")')
    lines += _media_access(manifest["configs"])
    lines += ["```"]
    tars = _tars_by_modality(manifest)
    if tars:
        lines += [
            "",
            "With `webdataset`: each item is `<id>.<ext>` (its media), `<id>.json` (every column but the "
            "media, with `caption`) and `<id>.txt` (its text, when it has one), members sorted by key:",
            "",
            "```python",
            "import webdataset as wds",
            "",
        ]
        for modality, paths in tars.items():
            lines.append(f'{modality} = wds.WebDataset("{_brace_range(paths)}").decode()')
        lines.append("```")
    if default:
        lines += ["", f"Without a config name, `load_dataset` loads `{default}`."]
    return "\n".join(lines)


def _media_access(configs: Iterable[str]) -> list[str]:
    examples = {
        "image": 'image[0]["image"].size                  # a PIL image: (width, height)',
        "audio": 'audio[0]["audio"]["sampling_rate"]      # and ["array"]',
        "video": 'video[0]["video"].metadata.num_frames   # a torchcodec VideoDecoder',
    }
    return [examples[name] for name in configs if name in examples]


def _fields_section(manifest: dict[str, Any]) -> str:
    configs = manifest["configs"]
    names = list(dict.fromkeys(name for config in configs.values() for name in config["features"]))
    rows = []
    for name in names:
        holders = [config for config, entry in configs.items() if name in entry["features"]]
        rows.append(
            [f"`{name}`", column_meaning(name), "all" if len(holders) == len(configs) else ", ".join(holders)]
        )
    return "\n".join(
        [
            "## Fields",
            "",
            "The item contract, its provenance, and the scores and measurements the stages recorded; a config "
            "leaves out a column none of its items has. Types are in `dataset_info` above.",
            "",
            _table(["column", "what it holds", "configs"], rows),
        ]
    )


def column_meaning(name: str) -> str:
    """What a release column holds: a media column, a column of the item contract or a stage, a score."""
    if name in MEDIA_FEATURES:
        return (
            f"The {name}, decoded by `datasets` as `{MEDIA_FEATURES[name]}`: its bytes (media the lake kept as a "
            "file too are copied in), and `<id>.<ext>` as its path."
        )
    return COLUMN_DESCRIPTIONS.get(
        name, "A score a filter computed; the filtered stage's asset page names it."
    )


def _license_section(settings: ReleaseSettings) -> str:
    if settings.license == "unknown":
        text = (
            "Unknown: the items keep the licenses of their sources, which the pipeline does not record. "
            "Set `release.license` in the version's spec when they are known."
        )
    elif settings.license == "other":
        text = f"`{settings.license_name}`" + (f": {settings.license_link}" if settings.license_link else "")
    else:
        text = f"`{settings.license}`."
    return f"## License\n\n{text}"


def _tars_by_modality(manifest: dict[str, Any]) -> dict[str, list[str]]:
    tars: dict[str, list[str]] = {}
    for entry in manifest["files"]:
        if entry["format"] == "webdataset":
            for modality in entry["items_by_modality"]:
                tars.setdefault(modality, []).append(entry["path"])
    return tars


def _brace_range(paths: list[str]) -> str:
    """`webdataset/image-{00000..00003}.tar` for consecutive tars, the path itself for one."""
    if len(paths) == 1:
        return paths[0]
    prefix, first = paths[0].rsplit("-", 1)
    last = paths[-1].rsplit("-", 1)[1]
    return f"{prefix}-{{{first.removesuffix('.tar')}..{last.removesuffix('.tar')}}}.tar"


def _table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "| " + " | ".join("---" for _ in header) + " |"]
    lines += ["| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |" for row in rows]
    return "\n".join(lines)
