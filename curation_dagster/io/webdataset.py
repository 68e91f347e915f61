"""The WebDataset reader: a tar streamed member by member, one record per sample (the members that share
a key), and nothing ever extracted to disk."""

from __future__ import annotations

import lzma
import tarfile
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Final

from curation_dagster.io.reader_base import (
    ReaderSettings,
    SampleMember,
    rejected,
    sample_record,
    truncated_record,
)
from curation_dagster.io.records import RawRecord
from curation_dagster.io.validate import RejectCode


def _tar_member_key(name: str) -> tuple[str, str]:
    """WebDataset's split of a member name into sample key and extension, at the basename's first dot."""
    directory, _, basename = name.rpartition("/")
    stem, dot, extension = basename.partition(".")
    if not dot:
        return name, ""
    return (f"{directory}/{stem}" if directory else stem), extension.lower()


def read_webdataset(path: Path, settings: ReaderSettings) -> Iterator[RawRecord]:
    """The records of a WebDataset tar, one per sample; a tar that ends early ends with a
    `raw.truncated_shard` record after the samples read."""
    occurrences: dict[str, int] = {}
    positions: set[str] = set()
    key: str | None = None
    members: list[SampleMember] = []

    def finished_sample() -> RawRecord:
        assert key is not None
        occurrence = occurrences.get(key, 0) + 1
        occurrences[key] = occurrence
        position = _unused(key if occurrence == 1 else f"{key}#{occurrence}", positions)
        record = sample_record(members, position, lambda main: f"{path}#{main.name}")
        if occurrence == 1:
            return record
        return rejected(
            record,
            RejectCode.AMBIGUOUS_SAMPLE,
            f"sample key {key!r} appears again after other samples; a WebDataset keeps a sample's members "
            "together",
        )

    with path.open("rb") as file:
        try:
            # Stream mode: members are read in order and nothing is ever extracted to disk, so member
            # names such as `../x` or `/etc/x` are only labels.
            with tarfile.open(fileobj=file, mode="r|*") as archive:
                for info in archive:
                    if info.isdir():
                        continue
                    member_key, extension = _tar_member_key(info.name)
                    if key is not None and member_key != key:
                        yield finished_sample()
                        members = []
                    key = member_key
                    members.append(_tar_member(archive, info, extension, settings.max_item_bytes))
        except (tarfile.TarError, EOFError, OSError, ValueError, zlib.error, lzma.LZMAError) as error:
            if members:
                yield finished_sample()
            truncated = truncated_record(path, error)
            truncated.position = _unused(truncated.position, positions)
            yield truncated
            return
    if members:
        yield finished_sample()


def _unused(position: str, used: set[str]) -> str:
    """`position`, or `position#2`, `#3`, ... when a member name already took it: ids stay unique."""
    candidate, count = position, 1
    while candidate in used:
        count += 1
        candidate = f"{position}#{count}"
    used.add(candidate)
    return candidate


_MEMBER_KINDS: Final = {
    tarfile.SYMTYPE: "symbolic link",
    tarfile.LNKTYPE: "hard link",
    tarfile.CHRTYPE: "character device",
    tarfile.BLKTYPE: "block device",
    tarfile.FIFOTYPE: "FIFO",
}


def _tar_member(
    archive: tarfile.TarFile, info: tarfile.TarInfo, extension: str, max_item_bytes: int
) -> SampleMember:
    """A tar member with its bytes, or refused unread: larger than `max_item_bytes`, or not a file."""
    member = SampleMember(name=info.name, extension=extension)
    if not info.isfile():
        # A link or a device has no bytes of its own, and a stream cannot go back for a hard link's target.
        member.reject_code = RejectCode.UNSUPPORTED_MEMBER
        member.reject_detail = (
            f"{info.name} is a {_MEMBER_KINDS.get(info.type, 'special')} member, not a file"
        )
        return member
    if info.size > max_item_bytes:
        # Left unread, the stream skips the member's data in bounded chunks when it moves on.
        member.reject_code = RejectCode.ITEM_TOO_LARGE
        member.reject_detail = (
            f"{info.name} has {info.size} bytes, more than raw.max_item_bytes ({max_item_bytes})"
        )
        return member
    content = archive.extractfile(info)
    member.data = content.read() if content is not None else b""
    return member
