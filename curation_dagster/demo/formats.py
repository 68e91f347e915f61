"""The byte encodings of the demo files: JSON lines, gzip and ustar without timestamps, and noise.

Every encoder is deterministic, so the same input gives the same bytes on every run and machine.
"""

from __future__ import annotations

import gzip
import io
import json
import random
import tarfile
from collections.abc import Iterable
from typing import Any

Line = dict[str, Any] | list[Any] | bytes
"""One JSONL line: a JSON object, another JSON value, or raw bytes written verbatim (corrupt lines)."""


def jsonl_bytes(lines: Iterable[Line]) -> bytes:
    """Encode lines as JSON lines, writing `bytes` lines verbatim."""
    encoded = [
        line if isinstance(line, bytes) else json.dumps(line, ensure_ascii=False).encode("utf-8")
        for line in lines
    ]
    return b"\n".join(encoded) + b"\n"


def gzip_bytes(data: bytes) -> bytes:
    """Gzip `data` with no file name and a zero timestamp in the header."""
    buffer = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", fileobj=buffer, compresslevel=9, mtime=0) as stream:
        stream.write(data)
    return buffer.getvalue()


def tar_bytes(members: dict[str, bytes]) -> bytes:
    """A ustar archive of `members` in name order, with zero timestamps and owners."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.USTAR_FORMAT) as archive:
        for name in sorted(members):
            info = tarfile.TarInfo(name)
            info.size = len(members[name])
            info.mtime = 0
            info.mode = 0o644
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            archive.addfile(info, io.BytesIO(members[name]))
    return buffer.getvalue()


def random_bytes(seed: int, size: int) -> bytes:
    """Deterministic noise bytes, used as the content of corrupt media files."""
    return random.Random(seed).randbytes(size)
