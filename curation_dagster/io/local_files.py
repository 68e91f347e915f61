"""Local files that a spec names (evaluation sets, seed tasks): where they are looked up and how read."""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from curation_dagster.errors import SpecError


def resolve_local_file(name: str, setting: str) -> Path:
    """`name` as an existing local file: absolute, else in the working directory, else in the versions
    folder; `SpecError` naming `setting` when it is in none of them."""
    from curation_dagster.settings import versions_folder

    path = Path(name).expanduser()
    candidates = [path] if path.is_absolute() else [Path.cwd() / path, versions_folder() / path]
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    looked = ", ".join(str(candidate) for candidate in candidates)
    raise SpecError(f"{setting}: {name} does not exist (looked in {looked}); give a local file")


def read_text_items(path: Path, fields: Sequence[str], setting: str) -> Iterator[tuple[int, str]]:
    """(line number, text) of every item of a local file: JSON Lines (`.jsonl`, `.jsonl.gz`; the first of
    `fields` that a line has) or plain text, one item per non-empty line."""
    jsonl = path.name.endswith((".jsonl", ".jsonl.gz"))
    opener: Any = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8") as lines:
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            if not jsonl:
                yield number, line.strip()
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as error:
                raise SpecError(f"{setting}: {path} line {number} is not JSON: {error}") from None
            found = [record[name] for name in fields if isinstance(record, dict) and name in record]
            if not found or not isinstance(found[0], str):
                raise SpecError(f"{setting}: {path} line {number} has no text field {' or '.join(fields)}")
            yield number, found[0]
