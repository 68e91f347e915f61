"""Shared fixtures: a tiny landing zone and spec-building helpers."""

import json
from pathlib import Path

import pytest


def write_jsonl(path: Path, texts: list[str]) -> Path:
    """A JSON Lines landing shard with one `{"text": ...}` object per text."""
    path.write_text("".join(json.dumps({"text": text}) + "\n" for text in texts), encoding="utf-8")
    return path


@pytest.fixture
def tiny_landing(tmp_path: Path) -> Path:
    """Two small text shards sharing one document, plus one bad line."""
    landing = tmp_path / "landing"
    landing.mkdir()
    shared = "The river bank was quiet in the early morning light and the boats were still tied up."
    write_jsonl(
        landing / "a.jsonl",
        [
            shared,
            "Researchers measured the growth of wheat under three watering schedules over two summers.",
            "too short",
        ],
    )
    (landing / "a.jsonl").open("a", encoding="utf-8").write("{not json\n")
    write_jsonl(
        landing / "b.jsonl",
        [
            shared.upper(),
            "The new library opened its doors on Monday with a reading for children and a small concert.",
        ],
    )
    return landing
