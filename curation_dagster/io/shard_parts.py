"""Bounded parts of large landing files: a file or media folder larger than the bound
(`$CURATION_MAX_SHARD_BYTES`, 256 MiB by default) is registered as several shards, `<key>.part-00000`,
`<key>.part-00001`, ..., so that no worker needs all of it.

Part `i` covers bytes [i * bound, (i + 1) * bound), the last part to the end, and holds the items that
start there: a JSON Lines line whose first byte lies in the range, a Parquet row group whose first page
does, a WebDataset sample whose first member's header does, a media-folder sample (the files sharing a
stem, counted one after another in sorted order) whose first file does. A compressed JSON Lines file
(gzip, bzip2, xz, zstandard) is cut by its compressed bytes: a line is the part's whose compressed bytes
produced its first byte (`compressed_stream`); the part decompresses what comes before, parsing none of
it, or enters the stream at a resume point made once for all the file's parts (`resume_points`). Every
item starts in exactly one range, so exactly one part reads it; the parts depend only on the size and the
bound, so the same file always gives the same keys. A compressed tar is cut the same way, a sample being
the part's whose compressed bytes produced its first header."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Final

from curation_dagster.io.compressed_stream import MAGIC_BYTES, codec_of
from curation_dagster.io.landing_files import file_size, folder_files, link_problem

if TYPE_CHECKING:
    from curation_dagster.io.resume_points import ResumePoint

#: What joins a shard key and a part number: `news.jsonl.part-00003`.
PART_KEY_INFIX: Final = ".part-"


@dataclass(frozen=True)
class ShardPart:
    """Part `index` of `count` of a landing file or folder: the items that start in bytes [start, end)
    of it (`end` None: to the end, so nothing appended after registration falls between parts); of a
    compressed file (`compressed`), the items whose first byte came out of those compressed bytes.
    `resume`: where in a compressed file its reading may start instead (`resume_points`), when known."""

    index: int
    count: int
    start: int
    end: int | None
    compressed: bool = False
    resume: ResumePoint | None = dataclasses.field(default=None, compare=False, repr=False)

    def holds(self, offset: int) -> bool:
        """Whether the item that starts at byte `offset` is this part's."""
        return offset >= self.start and not self.ends_before(offset)

    def ends_before(self, offset: int) -> bool:
        """Whether the item that starts at byte `offset`, and every later one, belongs to a later part."""
        return self.end is not None and offset >= self.end

    def describe(self) -> str:
        """`part 2 of 5: items starting in bytes 1024-2048` for metadata and logs."""
        end = "the end" if self.end is None else str(self.end)
        where = "decompressed from compressed bytes" if self.compressed else "starting in bytes"
        return f"part {self.index + 1} of {self.count}: items {where} {self.start}-{end}"


def part_key(shard: str, index: int) -> str:
    """The partition key of part `index` of the shard keyed `shard`."""
    return f"{shard}{PART_KEY_INFIX}{index:05d}"


def plan_parts(size: int, max_shard_bytes: int) -> list[ShardPart]:
    """The parts of something of `size` bytes; none when it fits the bound, so it stays one shard."""
    if max_shard_bytes < 1:
        raise ValueError(f"the shard bound must be at least one byte, got {max_shard_bytes}")
    if size <= max_shard_bytes:
        return []
    count = -(-size // max_shard_bytes)
    return [
        ShardPart(
            index=index,
            count=count,
            start=index * max_shard_bytes,
            end=None if index == count - 1 else (index + 1) * max_shard_bytes,
        )
        for index in range(count)
    ]


def shard_parts(path: Path, kind: str, max_shard_bytes: int) -> list[ShardPart]:
    """The parts a landing file or folder of `kind` is registered as; none when it is one shard: it fits
    the bound, it is a tar that cannot be opened, or it is a link the raw stage refuses (one rejected row,
    never split)."""
    if link_problem(path, path.parent) is not None:
        return []
    files = folder_files(path)[0] if kind == "folder" else [path]
    parts = plan_parts(sum(file_size(file) for file in files), max_shard_bytes)
    if not parts or not (kind == "tar" or kind.startswith("jsonl.")):
        return parts
    head = _head(path)
    if kind == "tar" and head is None:
        return []
    if kind.startswith("jsonl.") or codec_of(head or b"") is not None:
        return [dataclasses.replace(part, compressed=True) for part in parts]
    return parts


def _head(path: Path) -> bytes | None:
    """A file's first bytes, which tell its compression; None when it cannot be opened (a tar then stays
    one shard, and its raw run rejects it once)."""
    try:
        with path.open("rb") as file:
            return file.read(MAGIC_BYTES)
    except OSError:
        return None
