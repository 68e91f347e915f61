"""Reading the demo corpus: the prose, captions and word lists shipped under `curation_dagster/demo/corpus/`.

Plain-text files hold one item per line, or one document per paragraph where documents span lines; JSON
files hold items grouped by a key (topic, language, clip name).
"""

from __future__ import annotations

import json
from importlib import resources
from typing import Any


def _read(name: str) -> str:
    """The text of the corpus file `name`, read from the installed package."""
    return (resources.files("curation_dagster.demo") / "corpus" / name).read_text("utf-8")


def corpus_lines(name: str) -> tuple[str, ...]:
    """The lines of a plain-text corpus file, one item per line."""
    return tuple(_read(name).splitlines())


def corpus_paragraphs(name: str) -> tuple[str, ...]:
    """The documents of a plain-text corpus file, separated by a blank line; a document may span lines."""
    return tuple(_read(name).rstrip("\n").split("\n\n"))


def _json_object(name: str) -> dict[str, Any]:
    """The JSON object in the corpus file `name`."""
    value = json.loads(_read(name))
    if not isinstance(value, dict):
        raise ValueError(f"corpus/{name} must hold a JSON object; restore it from the repository")
    return value


def corpus_lists(name: str) -> dict[str, tuple[str, ...]]:
    """A JSON corpus file mapping each key to a list of strings, in file order."""
    lists = _json_object(name)
    for key, items in lists.items():
        if not isinstance(items, list) or not all(isinstance(item, str) for item in items):
            raise ValueError(
                f"corpus/{name}: {key!r} must be a list of strings; restore it from the repository"
            )
    return {key: tuple(items) for key, items in lists.items()}


def corpus_strings(name: str) -> dict[str, str]:
    """A JSON corpus file mapping each key to one string, in file order."""
    strings = _json_object(name)
    for key, value in strings.items():
        if not isinstance(value, str):
            raise ValueError(f"corpus/{name}: {key!r} must be a string; restore it from the repository")
    return dict(strings)
