"""Local files that a spec names (evaluation sets, seed tasks): where they are looked up and how read."""

from __future__ import annotations

import contextlib
import io
import json
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import IO

from curation_dagster.errors import SpecError
from curation_dagster.io.compressed_stream import BZIP2, MAGIC_BYTES, codec_of, open_compressed_stream

#: Names of compressed files: the part before one of these says what the file holds.
COMPRESSED_SUFFIXES = (".gz", ".bz2", ".xz", ".zst")


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
    """(line number, text) of every item of a local file: JSON Lines (`.jsonl`, or `.json` compressed, as C4
    and Dolma name theirs; the first of `fields` that a line has) or plain text, one item per non-empty
    line. Compressed with gzip, bzip2, xz or zstandard, whatever the name says (the first bytes tell),
    read a piece at a time. A file that is not UTF-8, ends early or does not decode is a `SpecError` that
    names `setting`, the file and the line."""
    stem = path.name.removesuffix(next((end for end in COMPRESSED_SUFFIXES if path.name.endswith(end)), ""))
    if stem.endswith(".json") and stem == path.name:
        raise SpecError(
            f"{setting}: {path} is a .json file; give JSON Lines (.jsonl, one object per line) or plain "
            "text (one item per line)"
        )
    jsonl = stem.endswith((".jsonl", ".json"))
    number = 0
    with _text_lines(path) as lines:
        try:
            for number, line in enumerate(lines, start=1):
                if line.strip():
                    yield number, _item(line, jsonl, fields, path, number, setting)
        except (UnicodeDecodeError, OSError, EOFError) as error:
            after = f" after line {number}" if number else ""
            raise SpecError(f"{setting}: {path} could not be read{after}: {error}") from None


@contextlib.contextmanager
def _text_lines(path: Path) -> Iterator[IO[str]]:
    """The file's lines as UTF-8 text, decompressed when its first bytes are a codec's magic number."""
    with path.open("rb") as handle:
        head = handle.read(max(MAGIC_BYTES, 10))
    codec = codec_of(head)
    if codec is BZIP2 and not _bzip2_header(head):  # "BZh" is text too: a stream has its block magic next
        codec = None
    if codec is None:
        with path.open("rt", encoding="utf-8") as text:
            yield text
        return
    reader, _ = open_compressed_stream(path, codec)
    with io.TextIOWrapper(reader, encoding="utf-8") as text:
        yield text


def _bzip2_header(head: bytes) -> bool:
    """Whether `head` starts a bzip2 stream: "BZh", a block size digit, then a block's magic number (the
    digits of pi) or the end-of-stream one (of its square root), which no text starts with."""
    return head[3:4] in (b"1", b"2", b"3", b"4", b"5", b"6", b"7", b"8", b"9") and head[4:10] in (
        b"1AY&SY",
        b"\x17\x72\x45\x38\x50\x90",
    )


def _item(line: str, jsonl: bool, fields: Sequence[str], path: Path, number: int, setting: str) -> str:
    if not jsonl:
        return line.strip()
    try:
        record = json.loads(line)
    except json.JSONDecodeError as error:
        raise SpecError(f"{setting}: {path} line {number} is not JSON: {error}") from None
    found = [record[name] for name in fields if isinstance(record, dict) and name in record]
    if not found or not isinstance(found[0], str):
        raise SpecError(f"{setting}: {path} line {number} has no text field {' or '.join(fields)}")
    return str(found[0])
