"""A dataset version's spec: one YAML file per version under `versions/`, validated on load; its
sections, its stages' code versions, and loading that costs a bad file only its own version."""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import Field, ValidationError, field_validator, model_validator

from curation_dagster.errors import SpecError
from curation_dagster.schema import MODALITIES
from curation_dagster.spec.base import Modality, StrictSettings
from curation_dagster.spec.dedup import (
    DedupSettings,
)
from curation_dagster.spec.filters import (
    FilterSettings,
)
from curation_dagster.spec.release import ReleaseSettings
from curation_dagster.spec.select import (
    SelectSettings,
)
from curation_dagster.spec.synth import (
    SynthSettings,
)
from curation_dagster.stages import STAGE_RECORDS, STAGES

#: Bumped when a stage's engine code changes its output for the same settings.
#: Each stage's engine version (see `stages.py`), part of its `code_version`.
ENGINE_VERSIONS: dict[str, str] = {stage.name: stage.engine_version for stage in STAGE_RECORDS}
#: The release's engine version: bump it when the release's files change for the same settings.
RELEASE_ENGINE_VERSION = "release2"


class RawSettings(StrictSettings):
    """How landing shards are read and validated."""

    text_field: str = "text"
    """JSON Lines / Parquet field that holds the document text."""
    max_inline_bytes: int = Field(256 * 2**20, gt=0)
    """Media above this many bytes stays a file referenced by `uri` instead of being copied into the lake."""
    max_line_bytes: int = Field(64 * 2**20, gt=0)
    """A JSON Lines line longer than this many bytes is rejected (`raw.line_too_long`) and skipped without
    being held in memory; 64 MiB is far above any real document and bounds one line's memory."""
    max_item_bytes: int = Field(512 * 2**20, gt=0)
    """A WebDataset member or a media-folder caption or `.json` larger than this many bytes is rejected
    (`raw.item_too_large`) unread, since it would be held in memory whole; 512 MiB, twice
    `max_inline_bytes` (larger folder media stays a file instead)."""
    max_image_pixels: int = Field(64_000_000, gt=0, le=178_956_970)
    """Images and video frames with more pixels are rejected (`raw.image_size`, `raw.video_size`) from
    their header, before decoding: 64 megapixels (8000 x 8000) decode to about 256 MB as RGBA. At most
    178,956,970, where Pillow itself refuses an image as a decompression bomb."""


_NAME = re.compile(r"^[a-z][a-z0-9_]{0,40}$")


class VersionSpec(StrictSettings):
    """One dataset version: which modalities it takes and the settings of every stage."""

    name: str
    """Version name; prefixes every asset key. Lower-case letters, digits and underscores."""
    description: str = ""
    modalities: tuple[Modality, ...] = MODALITIES
    """Items of other modalities are rejected at the raw stage with `raw.modality_excluded`."""
    raw: RawSettings = RawSettings()
    dedup: DedupSettings = DedupSettings()
    filters: FilterSettings = FilterSettings()
    select: SelectSettings = SelectSettings()
    synthesize: SynthSettings = SynthSettings()
    release: ReleaseSettings = ReleaseSettings()
    """How the release is cut into files, and its dataset card's license and title; no stage reads it (the
    release asset's code version does: `release_code_version`)."""

    @field_validator("name")
    @classmethod
    def _name_is_an_asset_prefix(cls, value: str) -> str:
        if not _NAME.match(value):
            raise ValueError("must match [a-z][a-z0-9_]* (it becomes an asset key prefix)")
        return value

    @model_validator(mode="after")
    def _modalities_not_empty(self) -> VersionSpec:
        if not self.modalities:
            raise ValueError("modalities: list at least one modality")
        return self

    def stage_settings(self, stage: str) -> dict[str, Any]:
        """The settings that determine a stage's output, including every upstream stage's."""
        sections = {
            "raw": {"modalities": list(self.modalities), "raw": self.raw.model_dump(mode="json")},
            "deduped": self.dedup.model_dump(mode="json"),
            "filtered": self.filters.model_dump(mode="json"),
            "selected": self.select.model_dump(mode="json"),
            "synthesized": self.synthesize.model_dump(mode="json"),
        }
        return {name: sections[name] for name in STAGES[: STAGES.index(stage) + 1]}

    def code_version(self, stage: str) -> str:
        """A short hash of the settings the stage applies itself and its engine version.

        The synthesized stage also applies the dedup and filter settings to synthetic items, so they
        count for it too; upstream changes reach other stages through Dagster's staleness instead.
        """
        sections = self.stage_settings(stage)
        applied = ["deduped", "filtered", "synthesized"] if stage == "synthesized" else [stage]
        own = {
            "settings": {name: sections[name] for name in applied},
            "engine": ENGINE_VERSIONS[stage],
        }
        digest = hashlib.sha256(json.dumps(own, sort_keys=True).encode()).hexdigest()
        return f"{ENGINE_VERSIONS[stage]}-{digest[:12]}"

    def release_code_version(self) -> str:
        """A short hash of the release settings (files, card) and the release's engine version: the
        release asset's Dagster code version, so a change of `release` marks it changed in the UI."""
        own = {"settings": self.release.model_dump(mode="json"), "engine": RELEASE_ENGINE_VERSION}
        digest = hashlib.sha256(json.dumps(own, sort_keys=True).encode()).hexdigest()
        return f"{RELEASE_ENGINE_VERSION}-{digest[:12]}"


def _field_path(loc: tuple[int | str, ...], data: Any) -> str:
    """The dotted path of the field as the user wrote it: pydantic's tagged-union tags are dropped."""
    parts: list[str] = []
    node = data
    for part in loc:
        if isinstance(node, dict) and part not in node and node.get("kind") == part:
            continue  # the tag pydantic adds for a `kind`-discriminated union, not a key in the file
        parts.append(str(part))
        if isinstance(node, dict):
            node = node.get(part)
        elif isinstance(node, list | tuple) and isinstance(part, int) and 0 <= part < len(node):
            node = node[part]
        else:
            node = None
    return ".".join(parts) or "<top level>"


def _format_validation_error(source: str, data: Any, error: ValidationError) -> str:
    lines = []
    for item in error.errors():
        lines.append(f"{source}: {_field_path(item['loc'], data)}: {item['msg']}")
    return "\n".join(lines)


def parse_spec(data: Any, source: str = "<spec>") -> VersionSpec:
    """Validate a spec given as a mapping; errors name the source and the field."""
    if not isinstance(data, dict):
        raise SpecError(f"{source}: the spec must be a mapping, got {type(data).__name__}")
    try:
        return VersionSpec.model_validate(data)
    except ValidationError as error:
        raise SpecError(_format_validation_error(source, data, error)) from None


def load_spec(path: Path) -> VersionSpec:
    """Load and validate one `versions/<name>.yaml` (safe YAML); its `name` must match the file name."""
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as error:
        raise SpecError(f"{path}: not valid YAML: {error}") from None
    except (OSError, UnicodeDecodeError) as error:
        raise SpecError(f"{path}: cannot be read as UTF-8 text: {error}") from None
    spec = parse_spec(data, str(path))
    if spec.name != path.stem:
        raise SpecError(f"{path}: name: '{spec.name}' must equal the file name '{path.stem}'")
    return spec


def load_specs(folder: Path) -> list[VersionSpec]:
    """Every spec in `folder` (`*.yaml`), sorted by name; the first invalid one raises SpecError."""
    specs, problems = load_version_specs(folder)
    if problems:
        raise problems[0].error
    return specs


@dataclass(frozen=True)
class SpecProblem:
    """A spec file that does not load: its path, the version name it stands for, and the error."""

    path: Path
    version: str
    error: SpecError


def load_version_specs(folder: Path) -> tuple[list[VersionSpec], list[SpecProblem]]:
    """Every valid spec in `folder`, and every file that is not one: one bad file costs only its own
    version. A missing folder is an error for all."""
    if not folder.is_dir():
        raise SpecError(f"{folder}: the versions folder does not exist (set CURATION_VERSIONS)")
    specs: list[VersionSpec] = []
    problems: list[SpecProblem] = []
    for path in sorted(folder.glob("*.yaml")):
        try:
            specs.append(load_spec(path))
        except SpecError as error:
            problems.append(SpecProblem(path, version_name_of(path), error))
    return specs, problems


def version_name_of(path: Path) -> str:
    """The version name a spec file stands for, from its file name, made a valid one if it is not."""
    name = re.sub(r"[^a-z0-9_]", "_", path.stem.lower())[:40]
    return name if _NAME.match(name) else f"v_{name}"[:41]
