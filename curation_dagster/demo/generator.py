"""The bundled demo landing zone: small, deterministic shards with planted problems for every stage.

Text, image, audio and video shards are generated from fixed seeds, so every run on every machine with
the same package versions writes byte-identical files. Each shard plants duplicates, near duplicates,
corrupt records and low-quality items so that raw parsing, dedup and filtering all visibly reject rows.
"""

from __future__ import annotations

import os
import random
import shutil
from pathlib import Path

from curation_dagster.demo.audio import audio_files
from curation_dagster.demo.formats import gzip_bytes, jsonl_bytes
from curation_dagster.demo.images import Pictures, demo_pictures, image_tar, media_images
from curation_dagster.demo.text import (
    forum_posts,
    forum_records,
    news_documents,
    news_records,
    web_crawl_parquet,
)
from curation_dagster.demo.video import video_files

NEWS_SHARD = "news_en.jsonl"
FORUM_SHARD = "forum_multilang.jsonl.gz"
WEB_SHARD = "web_crawl.parquet"
IMAGES_SHARD = "images_000.tar"
MEDIA_SHARD = "media_001"

DEMO_SHARD_NAMES: tuple[str, ...] = (NEWS_SHARD, FORUM_SHARD, WEB_SHARD, IMAGES_SHARD, MEDIA_SHARD)
"""Every shard `generate_demo_landing` writes, each a file or folder directly in the landing zone."""


def generate_demo_landing(landing: Path) -> list[Path]:
    """Write every demo shard into `landing`, replacing earlier ones, and return their paths sorted."""
    landing.mkdir(parents=True, exist_ok=True)
    documents = news_documents(random.Random(101))
    posts = forum_posts(random.Random(202))
    _write_atomic(landing / NEWS_SHARD, jsonl_bytes(news_records(random.Random(102), documents)))
    records = forum_records(random.Random(203), posts, [text for _, text in documents])
    _write_atomic(landing / FORUM_SHARD, gzip_bytes(jsonl_bytes(records)))
    news_texts = [text for _, text in documents]
    _write_atomic(landing / WEB_SHARD, web_crawl_parquet(random.Random(303), news_texts, posts["en"]))
    pictures = demo_pictures()
    _write_atomic(landing / IMAGES_SHARD, image_tar(pictures))
    _write_folder_atomic(landing / MEDIA_SHARD, _media_files(pictures))
    return sorted(landing / name for name in DEMO_SHARD_NAMES)


def demo_landing_is_complete(landing: Path) -> bool:
    """True when every demo shard exists in `landing`."""
    return all((landing / name).exists() for name in DEMO_SHARD_NAMES)


def _write_atomic(path: Path, data: bytes) -> None:
    """Write `data` to a hidden temporary sibling of `path`, then rename it over `path`."""
    temporary = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    temporary.write_bytes(data)
    os.replace(temporary, path)


def _write_folder_atomic(path: Path, files: dict[str, bytes]) -> None:
    """Write `files` (relative path to bytes) into a hidden temporary folder, then swap it in for `path`."""
    temporary = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    if temporary.exists():
        shutil.rmtree(temporary)
    for relative, data in sorted(files.items()):
        target = temporary / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
    if path.exists():
        shutil.rmtree(path)
    os.replace(temporary, path)


def _media_files(pictures: Pictures) -> dict[str, bytes]:
    """Every file of the `media_001/` folder by relative path."""
    files: dict[str, bytes] = {}
    files.update(media_images(pictures))
    files.update(audio_files())
    files.update(video_files())
    files["notes.xyz"] = (
        b"Shot list for the demo media folder.\nNothing here is meant to be read by the pipeline.\n"
    )
    return files
