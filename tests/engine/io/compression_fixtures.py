"""Compressed test files in each codec that `compressed_stream` reads, and an independent reading of them:
each member decompressed in one call, not fed a few bytes at a time."""

from __future__ import annotations

import bz2
import gzip
import lzma

import zstandard

from curation_dagster.io.compressed_stream import CODECS, Codec

#: A JSON Lines file's suffix per codec.
JSONL_SUFFIX = {"gzip": ".jsonl.gz", "bzip2": ".jsonl.bz2", "xz": ".jsonl.xz", "zstandard": ".jsonl.zst"}
CODEC_NAMES = [codec.name for codec in CODECS]
#: A zstandard skippable frame (magic 0x184D2A53, 3 bytes of user data), which readers pass over.
SKIPPABLE_FRAME = bytes([0x53, 0x2A, 0x4D, 0x18]) + (3).to_bytes(4, "little") + b"abc"


def codec(name: str) -> Codec:
    return next(codec for codec in CODECS if codec.name == name)


def compress(name: str, data: bytes, level: int) -> bytes:
    """`data` as one member of codec `name` at `level` (0-9, mapped to the codec's range)."""
    if name == "gzip":
        return gzip.compress(data, level, mtime=0)
    if name == "bzip2":
        return bz2.compress(data, max(1, level))
    if name == "xz":
        return lzma.compress(data, preset=level)
    frame = zstandard.ZstdCompressor(level=max(1, level * 2)).compress(data)
    return SKIPPABLE_FRAME + frame if level % 3 == 0 else frame


def one_shot(name: str, packed: bytes) -> bytes | None:
    """What the file decompresses to, each member in one call; None when it is not whole: it ends inside
    a member, a member does not decode, or something other than a member (or padding, where the codec
    allows it) follows one."""
    chosen, out, data, first = codec(name), [], packed, True
    while data:
        if not first and chosen.padding:
            data = data.lstrip(b"\x00")
            if not data:
                break
        if not chosen.starts(data):
            return None
        decompressor = chosen.decompressor()
        try:
            out.append(decompressor.decompress(data))
        except chosen.errors:
            return None
        if not decompressor.eof:
            return None
        data, first = decompressor.unused_data, False
    return b"".join(out)
