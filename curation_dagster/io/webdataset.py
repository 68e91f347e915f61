"""The WebDataset reader: a tar streamed member by member, one record per sample (the members that share
a key), and nothing ever extracted to disk."""

from __future__ import annotations

import tarfile
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO, Final

from curation_dagster.io.compressed_stream import MAGIC_BYTES, CompressedStream, DecompressedPart, codec_of
from curation_dagster.io.reader_base import (
    ReaderSettings,
    SampleMember,
    rejected,
    sample_record,
    truncated_record,
)
from curation_dagster.io.records import RawRecord
from curation_dagster.io.shard_parts import ShardPart
from curation_dagster.io.validate import RejectCode


def _tar_member_key(name: str) -> tuple[str, str]:
    """WebDataset's split of a member name into sample key and extension, at the basename's first dot."""
    directory, _, basename = name.rpartition("/")
    stem, dot, extension = basename.partition(".")
    if not dot:
        return name, ""
    return (f"{directory}/{stem}" if directory else stem), extension.lower()


def read_webdataset(
    path: Path, settings: ReaderSettings, part: ShardPart | None = None
) -> Iterator[RawRecord]:
    """The records of a WebDataset tar, one per sample; a tar that ends early ends with a
    `raw.truncated_shard` record after the samples read.

    Of one part, the samples whose first member's header starts in the part's bytes: the headers before
    them are read to number repeated keys as the whole tar does, their data skipped unread (an
    uncompressed tar can be entered anywhere); the part's last sample is read to its last member even
    past the part's end. A compressed tar's part holds the samples whose first header came out of its
    compressed bytes (`compressed_stream`), the tar before them decompressed and passed over.
    """
    names = _SampleNames()
    key: str | None = None
    members: list[SampleMember] = []
    owned = part is None or part.start == 0  # whether the sample being gathered is this part's

    def finished_sample() -> RawRecord | None:
        assert key is not None
        position, repeated = names.claim(key)
        if not owned:
            return None
        record = sample_record(members, position, lambda main: f"{path}#{main.name}")
        if not repeated:
            return record
        return rejected(
            record,
            RejectCode.AMBIGUOUS_SAMPLE,
            f"sample key {key!r} appears again after other samples; a WebDataset keeps a sample's members "
            "together",
        )

    with path.open("rb") as file:
        # A compressed tar, whole or a part, is decompressed by `compressed_stream`: both read the same.
        codec = codec_of(file.read(MAGIC_BYTES))
        file.seek(0)
        source: BinaryIO | CompressedStream = file
        bounds: ShardPart | DecompressedPart | None = part
        if codec is not None:
            # The stream itself, not a buffered reader: tarfile takes short reads, so the samples before
            # a failure are read.
            stream = CompressedStream(file, codec)
            source = stream
            bounds = None if part is None else DecompressedPart(stream, part)
        try:
            # Stream mode for a whole or compressed tar: members are read in order and nothing is ever
            # extracted to disk, so member names such as `../x` or `/etc/x` are only labels. A part of a
            # plain tar seeks past others' data.
            with tarfile.open(
                fileobj=source, mode="r:" if part is not None and codec is None else "r|"
            ) as archive:
                for info in archive:
                    if info.isdir():
                        continue
                    member_key, extension = _tar_member_key(info.name)
                    if key is not None and member_key != key:
                        if (record := finished_sample()) is not None:
                            yield record
                        members, key = [], None
                    if key is None and bounds is not None:
                        if bounds.ends_before(info.offset):
                            return
                        owned = bounds.holds(info.offset)
                    key = member_key
                    members.append(
                        _tar_member(archive, info, extension, settings.max_item_bytes)
                        if owned
                        else SampleMember(name=info.name, extension=extension)
                    )
        except (tarfile.TarError, EOFError, OSError, ValueError) as error:
            # CorruptStream is an OSError: a compressed stream that stops decoding lands here too.
            if members and (record := finished_sample()) is not None:
                yield record
            if owned:
                truncated = truncated_record(path, error)
                truncated.position = names.unused(truncated.position)
                yield truncated
            return
    if members and (record := finished_sample()) is not None:
        yield record


class _SampleNames:
    """The positions of a tar's samples in order: a sample key seen before is repeated (`key#2`), and a
    position another sample took gets a further `#n`, so that ids stay unique."""

    def __init__(self) -> None:
        self._occurrences: dict[str, int] = {}
        self._used: set[str] = set()

    def claim(self, key: str) -> tuple[str, bool]:
        """The position of the next sample with `key`, and whether the key came before."""
        occurrence = self._occurrences.get(key, 0) + 1
        self._occurrences[key] = occurrence
        return self.unused(key if occurrence == 1 else f"{key}#{occurrence}"), occurrence > 1

    def unused(self, position: str) -> str:
        """`position`, or `position#2`, `#3`, ... when a member name already took it."""
        candidate, count = position, 1
        while candidate in self._used:
            count += 1
            candidate = f"{position}#{count}"
        self._used.add(candidate)
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
