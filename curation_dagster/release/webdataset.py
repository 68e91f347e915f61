"""The release's WebDataset tars: `webdataset/<modality>-NNNNN.tar`, items in key order, each tar closed
before an item would take it past `release.webdataset_max_bytes`. An item is `<id>.<ext>` (its media),
`<id>.json` (every column but the media, with `caption`) and `<id>.txt` (its text, when it has one);
members carry no time, owner or mode of their own, so a tar's bytes depend on its items only."""

from __future__ import annotations

import contextlib
import io
import json
import math
import tarfile
from collections.abc import Iterator
from typing import Any

import pyarrow as pa

from curation_dagster.io.lake import Lake
from curation_dagster.release.features import item_media
from curation_dagster.release.manifest import file_entry

#: A tar member's header, and the unit its data is padded to.
TAR_BLOCK = tarfile.BLOCKSIZE
#: A tar ends with two zero blocks and is padded to a whole record (Python's tarfile, like GNU tar).
TAR_END, TAR_RECORD = 2 * tarfile.BLOCKSIZE, tarfile.RECORDSIZE


def write_tars(
    lake: Lake,
    folder: str,
    modality: str,
    default_extension: str,
    reader: pa.RecordBatchReader,
    max_bytes: int,
) -> list[dict[str, Any]]:
    """The modality's items in tars of at most `max_bytes` each, and their manifest entries: a tar is
    closed before an item would take it past the bound, so only an item larger than it alone exceeds it."""
    written: list[dict[str, Any]] = []
    archive: _TarShard | None = None
    try:
        for row in _rows(reader):
            members = _tar_members(row, default_extension)
            size = sum(tar_member_bytes(len(data)) for data in members.values())
            if archive is not None and tar_file_bytes(archive.member_bytes + size) > max_bytes:
                written.append(archive.finish())
                archive = None
            if archive is None:
                archive = _TarShard(lake, folder, f"webdataset/{modality}-{len(written):05d}.tar", modality)
            archive.add(members, size)
        if archive is not None:
            written.append(archive.finish())
    finally:
        if archive is not None:
            archive.close()
    return written


def tar_member_bytes(size: int) -> int:
    """Bytes a member of `size` data bytes takes in a tar: its header and its data padded to a block."""
    return TAR_BLOCK + math.ceil(size / TAR_BLOCK) * TAR_BLOCK


def tar_file_bytes(member_bytes: int) -> int:
    """The size of a tar whose members take `member_bytes`: the end blocks, padded to a whole record."""
    return math.ceil((member_bytes + TAR_END) / TAR_RECORD) * TAR_RECORD


class _TarShard:
    """One tar being written: members added in key order, its manifest entry when finished."""

    def __init__(self, lake: Lake, folder: str, relative: str, modality: str) -> None:
        self.lake, self.folder, self.relative, self.modality = lake, folder, relative, modality
        self.items = 0
        self.member_bytes = 0
        path = f"{folder}/{relative}"
        lake.fs.makedirs(path.rsplit("/", 1)[0], exist_ok=True)
        self._files = contextlib.ExitStack()
        handle = self._files.enter_context(lake.fs.open(path, "wb"))
        self._archive = self._files.enter_context(
            tarfile.TarFile(fileobj=handle, mode="w", format=tarfile.USTAR_FORMAT)
        )

    def add(self, members: dict[str, bytes], size: int) -> None:
        for name in sorted(members):
            _add_member(self._archive, name, members[name])
        self.items += 1
        self.member_bytes += size

    def close(self) -> None:
        self._files.close()

    def finish(self) -> dict[str, Any]:
        """Close the tar and describe it for the manifest."""
        self.close()
        return file_entry(self.lake, self.folder, self.relative, "webdataset", {self.modality: self.items})


def _rows(reader: pa.RecordBatchReader) -> Iterator[dict[str, Any]]:
    for batch in reader:
        yield from batch.to_pylist()


def _tar_members(row: dict[str, Any], default_extension: str) -> dict[str, bytes]:
    """An item's members: its media, its `.json` sidecar and its text as `.txt` when it has one."""
    key = row["id"]
    data = item_media(key, row)
    members = {
        f"{key}.{row.get('media_format') or default_extension}": data,
        f"{key}.json": _json_bytes(_sidecar(row)),
    }
    if row.get("text"):
        members[f"{key}.txt"] = str(row["text"]).encode("utf-8")
    return members


def _add_member(archive: tarfile.TarFile, name: str, data: bytes) -> None:
    """A member with fixed owner, mode and time, so the tar's bytes depend on its contents only."""
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mtime = 0
    info.mode = 0o644
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    archive.addfile(info, io.BytesIO(data))


def _sidecar(row: dict[str, Any]) -> dict[str, Any]:
    """The `.json` member: the caption and every non-null column but the media bytes."""
    sidecar: dict[str, Any] = {"caption": row.get("text")}
    for name, value in row.items():
        if name in ("media", "text") or value is None or (isinstance(value, float) and math.isnan(value)):
            continue
        if name == "meta":
            with contextlib.suppress(json.JSONDecodeError):
                value = json.loads(value)
        sidecar[name] = value
    return sidecar


def _json_bytes(value: Any) -> bytes:
    return json.dumps(value, sort_keys=True, ensure_ascii=False, default=str).encode("utf-8")
