"""Tests for the demo text shards: news, forum and web crawl, with every planted case."""

from __future__ import annotations

import gzip
import itertools
import json
import re
from collections import Counter
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq


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
