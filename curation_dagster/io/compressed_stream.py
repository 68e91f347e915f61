"""A compressed stream (gzip, bzip2, xz or zstandard) read a fixed number of compressed bytes at a time,
which knows where in the compressed file each decompressed byte came from, so that a large compressed JSON
Lines file or tar can be split by its compressed size like a plain file by its size (`shard_parts`).

The decompressor is fed `FEED_BYTES` of the file at a time; every byte one feed produces has that feed's
offset in the file as its origin. The feeds are the same whoever reads the file, so the origin of each
byte, and with it the part each line belongs to, is the same in every part and in a whole read.
A compressed stream cannot be entered in the middle: a part decompresses everything before it (at C
speed, parsing nothing) and reads only its own lines or samples.

Members (gzip), streams (bzip2, xz) or frames (zstandard, skippable frames included) follow one another,
as `pigz`, `pbzip2`, `xz -T` and `zstd -T` write them; zero bytes between or after gzip members and xz
streams are padding. Anything else where a member should start or a member that does not decode raises
`CorruptStream`, and a file that ends inside a member `EOFError`, with `failed_at` set to the offset of
the feed it happened in.
"""

from __future__ import annotations

import bisect
import bz2
import io
import lzma
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, Final

import zstandard

if TYPE_CHECKING:  # shard_parts reads the codecs from here
    from curation_dagster.io.shard_parts import ShardPart

#: Compressed bytes fed to the decompressor at a time: a byte's origin is a multiple of it.
FEED_BYTES: Final = 1 << 16
#: gzip's magic number, which starts every member.
GZIP_MAGIC: Final = b"\x1f\x8b"
#: zlib's window bits for a gzip header and trailer (16 + the largest window).
_GZIP_WBITS: Final = 31
#: Decompressed bytes behind the newest whose origins are kept: far more than any reader holds unread
#: (a buffered reader's buffer, a tar block), so that the origins of a long file take bounded memory.
ORIGIN_HISTORY_BYTES: Final = 1 << 26


class CorruptStream(OSError):
    """Compressed bytes that do not decode, or that do not start a member where one should start."""


@dataclass(frozen=True)
class Codec:
    """A compression: the magic numbers a member may start with, whether zero bytes between members are
    padding, a new decompressor for a member (`decompress`, `eof`, `unused_data`), and the errors its
    decompressor raises on bytes that do not decode."""

    name: str
    magics: tuple[bytes, ...]
    padding: bool
    decompressor: Callable[[], Any]
    errors: tuple[type[BaseException], ...]

    def starts(self, data: bytes) -> bool:
        return data.startswith(self.magics)


GZIP: Final = Codec("gzip", (GZIP_MAGIC,), True, lambda: zlib.decompressobj(_GZIP_WBITS), (zlib.error,))
BZIP2: Final = Codec("bzip2", (b"BZh",), False, bz2.BZ2Decompressor, (OSError, ValueError))
XZ: Final = Codec(
    "xz", (b"\xfd7zXZ\x00",), True, lambda: lzma.LZMADecompressor(lzma.FORMAT_XZ), (lzma.LZMAError,)
)
ZSTD: Final = Codec(
    "zstandard",
    # A frame, or a skippable frame (magic 0x184D2A50 to 0x184D2A5F, little-endian).
    (b"\x28\xb5\x2f\xfd", *(bytes([0x50 + low, 0x2A, 0x4D, 0x18]) for low in range(16))),
    False,
    lambda: zstandard.ZstdDecompressor().decompressobj(),
    (zstandard.ZstdError,),
)
CODECS: Final = (GZIP, BZIP2, XZ, ZSTD)
#: The longest magic number: the bytes `codec_of` needs.
MAGIC_BYTES: Final = max(len(magic) for codec in CODECS for magic in codec.magics)


def codec_of(head: bytes) -> Codec | None:
    """The compression whose magic number `head` (a file's first `MAGIC_BYTES`) starts with, if any."""
    return next((codec for codec in CODECS if codec.starts(head)), None)


class CompressedStream(io.RawIOBase):
    """The decompressed bytes of a file compressed by `codec`, and for each the offset of the compressed
    feed it came from (`origin`)."""

    def __init__(self, file: BinaryIO, codec: Codec = GZIP, feed_bytes: int | None = None) -> None:
        super().__init__()
        self._file, self._codec, self._feed_bytes = file, codec, feed_bytes or FEED_BYTES
        self._decompressor: Any = None
        self._pending = memoryview(b"")  # decompressed, not yet read
        self._fed = 0  # compressed bytes fed so far
        self._produced = 0  # decompressed bytes produced so far
        self._output_starts: list[int] = []  # where each feed's nonempty output starts
        self._output_origins: list[int] = []  # and that feed's offset in the file
        self._ended = False
        #: The offset of the feed in which the stream failed to decode, once it has.
        self.failed_at: int | None = None

    @property
    def feed_bytes(self) -> int:
        return self._feed_bytes

    def readable(self) -> bool:
        return True

    def close(self) -> None:
        self._file.close()
        super().close()

    def readinto(self, buffer: memoryview | bytearray) -> int:  # type: ignore[override]
        while not self._pending and not self._ended:
            self._feed()
        size = min(len(buffer), len(self._pending))
        buffer[:size] = self._pending[:size]
        self._pending = self._pending[size:]  # a view: no copy of the rest
        return size

    def origin(self, offset: int) -> int:
        """The file offset of the feed that produced decompressed byte `offset` (produced already, and
        at most `ORIGIN_HISTORY_BYTES` before the newest)."""
        if offset >= self._produced:
            raise ValueError(f"byte {offset} is not decompressed yet ({self._produced} are)")
        if offset < self._output_starts[0]:
            raise ValueError(f"byte {offset} is too far behind the stream for its origin to be kept")
        return self._output_origins[bisect.bisect_right(self._output_starts, offset) - 1]

    def _feed(self) -> None:
        at = self._fed
        data = self._file.read(self._feed_bytes)
        self._fed += len(data)
        try:
            output = self._decompress(data, at)
        except (CorruptStream, EOFError):
            self.failed_at = at
            self._ended = True
            raise
        except self._codec.errors as error:
            self.failed_at = at
            self._ended = True
            raise CorruptStream(f"{self._codec.name} data that does not decode: {error}") from error
        if output:
            self._output_starts.append(self._produced)
            self._output_origins.append(at)
            self._produced += len(output)
            self._pending = memoryview(output)
            self._forget_old_origins()

    def _forget_old_origins(self) -> None:
        """Drop the origins of feeds whose output lies wholly `ORIGIN_HISTORY_BYTES` behind the newest
        byte, a thousand at a time."""
        old = bisect.bisect_right(self._output_starts, self._produced - ORIGIN_HISTORY_BYTES) - 1
        if old >= 1024:
            del self._output_starts[:old]
            del self._output_origins[:old]

    def _decompress(self, data: bytes, at: int) -> bytes:
        """The output of feeding `data`; at the end of the file (`data` empty), checks the last member
        ended."""
        if not data:
            self._ended = True
            if self._decompressor is not None and not self._decompressor.eof:
                raise EOFError("Compressed file ended before the end-of-stream marker was reached")
            return b""
        output: list[bytes] = []
        while data:
            if self._decompressor is None or self._decompressor.eof:
                data = self._next_member(data)
                if not data:
                    break
            assert self._decompressor is not None
            output.append(self._decompressor.decompress(data))
            data = self._decompressor.unused_data if self._decompressor.eof else b""
        return b"".join(output)

    def _next_member(self, data: bytes) -> bytes:
        """`data` from the start of the next member, a new decompressor ready for it; b"" when `data` is
        padding after a member."""
        if self._decompressor is not None and self._codec.padding:
            data = data.lstrip(b"\x00")
            if not data:
                return b""
        longest = max(len(magic) for magic in self._codec.magics)
        if len(data) < longest:
            # The feed may end inside the magic number: this feed takes the rest of it.
            more = self._file.read(longest - len(data))
            self._fed += len(more)
            data += more
        if not self._codec.starts(data):
            what = "member" if self._decompressor is not None else "file"
            raise CorruptStream(f"not a {self._codec.name} {what} ({data[:longest]!r})")
        self._decompressor = self._codec.decompressor()
        return data


def open_compressed_stream(path: Path, codec: Codec) -> tuple[io.BufferedReader, CompressedStream]:
    """A buffered reader of the decompressed bytes of the file at `path` compressed by `codec` (closing it
    closes the file), and its stream, fed `FEED_BYTES` at a time. A read that a failure interrupts loses what it had
    gathered (a line cut by the end of the stream is not returned); a reader that takes short reads
    (`tarfile`) reads the stream itself, which returns the bytes decoded before it raises."""
    stream = CompressedStream(path.open("rb"), codec)
    return io.BufferedReader(stream, buffer_size=stream.feed_bytes), stream


class DecompressedPart:
    """A part of a compressed file seen from its decompressed bytes: the item that starts at decompressed
    byte `offset` (decompressed already) is the part's when the feed that produced that byte is."""

    def __init__(self, stream: CompressedStream, part: ShardPart) -> None:
        self._stream, self.part = stream, part

    def holds(self, offset: int) -> bool:
        return self.part.holds(self._stream.origin(offset))

    def ends_before(self, offset: int) -> bool:
        return self.part.ends_before(self._stream.origin(offset))
