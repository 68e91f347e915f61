"""The media-folder reader: files walked in sorted order, grouped by stem into samples (a media file with
its caption and JSON), links followed only inside the landing zone."""

from __future__ import annotations

import stat
from collections.abc import Iterator
from pathlib import Path

from curation_dagster.io.landing_files import file_size, folder_files, link_problem
from curation_dagster.io.reader_base import (
    MEDIA_EXTENSIONS,
    META_EXTENSION,
    ReaderSettings,
    SampleMember,
    rejected,
    sample_record,
)
from curation_dagster.io.records import RawRecord
from curation_dagster.io.shard_parts import ShardPart
from curation_dagster.io.validate import RejectCode, describe_error


def read_media_folder(
    root: Path, settings: ReaderSettings, part: ShardPart | None = None
) -> Iterator[RawRecord]:
    """The records of a media folder, one per group of files sharing a stem, and a rejected record for
    each file or sub-folder that cannot join one. Of one part, the groups whose first file starts in the
    part's bytes, counting the folder's files one after another in the order of their stems."""
    files, unlisted = folder_files(root)
    if part is None or part.index == 0:
        for error in unlisted:
            folder = Path(error.filename) if error.filename else root
            yield RawRecord(
                position=folder.relative_to(root).as_posix(),
                uri=str(folder.absolute()),
                reject_code=RejectCode.UNREADABLE_FILE,
                reject_detail=f"the folder cannot be listed: {describe_error(error)}",
            )
    groups: dict[str, list[Path]] = {}
    for file in files:
        groups.setdefault(file.relative_to(root).with_suffix("").as_posix(), []).append(file)
    offset = 0
    for stem in sorted(groups):
        if part is not None:
            start, offset = offset, offset + sum(file_size(file) for file in groups[stem])
            if part.ends_before(start):
                return
            if not part.holds(start):
                continue
        known: list[SampleMember] = []
        for file in groups[stem]:
            member = _folder_member(file, root, settings)
            if isinstance(member, RawRecord):
                yield member
            else:
                known.append(member)
        if known:
            yield sample_record(known, None, lambda main: str((root / main.name).absolute()))


def _folder_member(file: Path, root: Path, settings: ReaderSettings) -> SampleMember | RawRecord:
    """A media-folder file as a sample member, its bytes read unless it is large media; or the rejected
    record of a file that cannot be one (a refused link, an unknown kind, unreadable, too large)."""
    relative = file.relative_to(root).as_posix()
    record = RawRecord(position=relative, uri=str(file.absolute()))
    problem = link_problem(file, root.parent)
    if problem is not None:
        return rejected(record, *problem)
    if file.is_dir():
        return rejected(
            record,
            RejectCode.LINKED_FOLDER,
            f"{relative} is a symbolic link to a folder; links to folders inside a media folder are not "
            "followed: move the files in instead",
        )
    extension = file.suffix[1:].lower()
    if extension not in MEDIA_EXTENSIONS and extension not in ("txt", META_EXTENSION):
        return rejected(record, RejectCode.UNKNOWN_FORMAT, f"unknown extension {file.suffix!r}")
    member = SampleMember(name=relative, extension=extension)
    try:
        status = file.stat()
        if not stat.S_ISREG(status.st_mode):
            # Reading a FIFO or a device could block or never end.
            return rejected(record, RejectCode.UNREADABLE_FILE, f"{relative} is not a regular file")
        if extension in MEDIA_EXTENSIONS:
            # Large media stays a file, named by the record's uri and probed from disk.
            if status.st_size <= settings.max_inline_bytes:
                member.data = file.read_bytes()
        elif status.st_size > settings.max_item_bytes:
            return rejected(
                record,
                RejectCode.ITEM_TOO_LARGE,
                f"{relative} has {status.st_size} bytes, more than raw.max_item_bytes "
                f"({settings.max_item_bytes})",
            )
        else:
            member.data = file.read_bytes()
    except OSError as error:
        return rejected(record, RejectCode.UNREADABLE_FILE, describe_error(error))
    return member
