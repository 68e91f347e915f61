"""The release's `manifest.json`: what is in the release (counts per modality, config, source shard and
file, the sha256 of every file) and how it was made (the spec, code and engine versions, recipes, detected
languages, every stage's rejections of the released shards); and checking a release against it."""

from __future__ import annotations

import hashlib
import json
from importlib import metadata
from typing import Any

from curation_dagster.io.lake import Lake
from curation_dagster.release.features import ReleaseConfig
from curation_dagster.spec import ENGINE_VERSIONS, ReleaseSettings, VersionSpec
from curation_dagster.stages import STAGES

RELEASE_DIR = "release"
MANIFEST = "manifest.json"
RELEASE_FORMAT = "curation_dagster.release/2"


def release_dir(lake: Lake, version: str) -> str:
    return lake.stage_dir(version, RELEASE_DIR)


def engine_version() -> str:
    """The installed curation_dagster package version."""
    try:
        return metadata.version("curation_dagster")
    except metadata.PackageNotFoundError:
        return "not installed"


def file_entry(
    lake: Lake, folder: str, relative: str, kind: str, modalities: dict[str, int]
) -> dict[str, Any]:
    """A written file as the manifest lists it: path, format, items, bytes and sha256."""
    path = f"{folder}/{relative}"
    return {
        "path": relative,
        "format": kind,
        "items": sum(modalities.values()),
        "items_by_modality": dict(sorted(modalities.items())),
        "bytes": int(lake.fs.size(path)),
        "sha256": _sha256(lake, path),
    }


def _sha256(lake: Lake, path: str) -> str:
    digest = hashlib.sha256()
    with lake.fs.open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def release_manifest(
    spec: VersionSpec,
    settings: ReleaseSettings,
    shards: list[str],
    counts: list[tuple[str, str, int]],
    configs: list[ReleaseConfig],
    arrow_bytes: dict[str, int],
    written: list[dict[str, Any]],
) -> dict[str, Any]:
    """The manifest's counts, configs, files and versions; `counts` are (shard, modality, items)."""
    by_modality: dict[str, int] = {}
    by_shard: dict[str, dict[str, int]] = {}
    for shard, modality, count in counts:
        by_modality[modality] = by_modality.get(modality, 0) + int(count)
        by_shard.setdefault(shard, {})[modality] = int(count)
    present = [config.modality for config in configs]
    preferred = [settings.default_config] if settings.default_config else []
    default = next((m for m in [*preferred, *spec.modalities, *present] if m in present), None)
    return {
        "format": RELEASE_FORMAT,
        "version": spec.name,
        "items": sum(by_modality.values()),
        "items_by_modality": dict(sorted(by_modality.items())),
        "items_by_source_shard": by_shard,
        "source_shards": shards,
        "files": written,
        "configs": {
            config.modality: {
                "data_files": config.data_files,
                "items": config.items,
                "arrow_bytes": arrow_bytes[config.modality],
                "columns": [{"name": field.name, "type": str(field.type)} for field in config.schema],
                "features": config.features,
            }
            for config in configs
        },
        "default_config": default,
        "load": {
            "parquet": 'datasets.load_dataset("<release folder>", "<config>", split="train")',
            "webdataset": "webdataset/<modality>-NNNNN.tar: <id>.<ext>, <id>.json, <id>.txt",
        },
        "spec": spec.model_dump(mode="json"),
        "code_versions": {stage: spec.code_version(stage) for stage in STAGES},
        "engine": {"package": engine_version(), "stages": dict(ENGINE_VERSIONS)},
    }


def provenance(
    lake: Lake,
    connection: Any,
    version: str,
    source: str,
    files: list[str],
    shards: list[str],
    columns: list[str],
) -> dict[str, Any]:
    """How the items came to be, for the card: synthetic items by recipe, detected languages, items with
    text per modality, and every stage's rejections of the released shards. `source` reads `files`."""
    recipes: dict[str, int] = {}
    generated = f"SELECT generator, count(*) FROM {source} WHERE synthetic GROUP BY 1"
    for generator, count in connection.sql(generated, params=[files]).fetchall():
        recipe = _recipe_label(generator)
        recipes[recipe] = recipes.get(recipe, 0) + int(count)
    languages: dict[str, int] = {}
    if "lang" in columns:
        detected = f"SELECT lang, count(*) FROM {source} WHERE lang IS NOT NULL GROUP BY 1 ORDER BY 1"
        languages = {
            str(code): int(count) for code, count in connection.sql(detected, params=[files]).fetchall()
        }
    with_text = connection.sql(
        f"SELECT modality, count(*) FROM {source} WHERE text <> '' GROUP BY 1 ORDER BY 1", params=[files]
    ).fetchall()
    return {
        "synthetic_items": sum(recipes.values()),
        "synthetic_items_by_recipe": dict(sorted(recipes.items())),
        "languages": languages,
        "items_with_text_by_modality": {str(modality): int(count) for modality, count in with_text},
        "rejected_by_stage": _rejections(lake, connection, version, shards),
    }


def _recipe_label(generator: str | None) -> str:
    """The recipe named in a synthetic item's `generator` (JSON with a `recipe` key)."""
    try:
        return str(json.loads(generator or "")["recipe"])
    except (json.JSONDecodeError, KeyError, TypeError):
        return str(generator)


def _rejections(lake: Lake, connection: Any, version: str, shards: list[str]) -> dict[str, dict[str, int]]:
    """Items each stage rejected from the released shards, by reason."""
    rejected: dict[str, dict[str, int]] = {}
    for stage in STAGES:
        present = set(lake.list_shards(version, stage, rejected=True))  # one listing, not a look per file
        found = [
            lake.url(lake.path(version, stage, shard, rejected=True)) for shard in shards if shard in present
        ]
        if not found:
            continue
        rows = connection.sql(
            "SELECT reject_reason, count(*) FROM read_parquet(?, union_by_name = true) GROUP BY 1 ORDER BY 1",
            params=[found],
        ).fetchall()
        if rows:
            rejected[stage] = {str(reason): int(count) for reason, count in rows}
    return rejected


def manifest_bytes(manifest: dict[str, Any]) -> bytes:
    return (json.dumps(manifest, indent=2, sort_keys=True, ensure_ascii=False) + "\n").encode("utf-8")


def read_manifest(lake: Lake, version: str) -> dict[str, Any]:
    """The manifest of the version's release; `FileNotFoundError` when there is none."""
    with lake.fs.open(f"{release_dir(lake, version)}/{MANIFEST}", "rb") as handle:
        return dict(json.loads(handle.read()))


def verify_release(lake: Lake, version: str) -> list[str]:
    """Problems with the release on disk: files missing, changed (sha256) or not in the manifest."""
    folder = release_dir(lake, version)
    manifest = read_manifest(lake, version)
    problems = []
    listed = set()
    for entry in manifest["files"]:
        path = f"{folder}/{entry['path']}"
        listed.add(entry["path"])
        if not lake.fs.exists(path):
            problems.append(f"{entry['path']}: missing")
        elif _sha256(lake, path) != entry["sha256"]:
            problems.append(f"{entry['path']}: sha256 differs from the manifest")
    for found in lake.fs.find(folder):
        relative = str(found)[len(folder) + 1 :]
        if relative != MANIFEST and relative not in listed:
            problems.append(f"{relative}: not in the manifest")
    return sorted(problems)
