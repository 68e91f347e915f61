"""A compressed stream (gzip, bzip2, xz or zstandard) read a fixed number of compressed bytes at a time,
which knows where in the compressed file each decompressed byte came from, so that a large compressed JSON
Lines file or tar can be split by its compressed size like a plain file by its size (`shard_parts`).

The decompressor is fed `FEED_BYTES` of the file at a time; every byte one feed produces has that feed's
offset in the file as its origin. The feeds are the same whoever reads the file, so the origin of each
byte, and with it the part each line belongs to, is the same in every part and in a whole read. A
compressed stream cannot be entered just anywhere: a part decompresses everything before it (at C speed,
parsing nothing) and reads only its own lines or samples, or, for a JSON Lines file, starts at the resume
point made for it in one pass over the file (`resume_points`): in gzip the end of a deflate block, in
every codec the start of a member. A feed is decompressed a bounded piece at a time as the reader asks
(`OUTPUT_BYTES`, `ZSTD_SLICE_BYTES`), never whole: a few kilobytes of bzip2 or zstandard can stand for
gigabytes.

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
from typing import TYPE_CHECKING, Any, BinaryIO, Final, NoReturn

import zstandard

from curation_dagster.io import inflate

if TYPE_CHECKING:  # shard_parts reads the codecs from here
    from curation_dagster.io.resume_points import PointRecorder, ResumePoint
    from curation_dagster.io.shard_parts import ShardPart

#: Compressed bytes fed to the decompressor at a time: a byte's origin is a multiple of it.
FEED_BYTES: Final = 1 << 16
#: gzip's magic number, which starts every member.
GZIP_MAGIC: Final = b"\x1f\x8b"
#: zlib's window bits for a gzip header and trailer (16 + the largest window).
_GZIP_WBITS: Final = 31
#: The most output one step of the stream asks of a gzip, bzip2 or xz decompressor: a file that expands
#: thousands of times over (a compression bomb) is read in bounded memory.
OUTPUT_BYTES: Final = 1 << 23
#: Compressed bytes one step gives zstandard's decompressor, whose output has no bound to ask for: at
#: most 32,768 times as much comes out (a 4-byte block of one repeated byte for 128 KiB), 128 MiB.
ZSTD_SLICE_BYTES: Final = 1 << 12
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
    feed it came from (`origin`).

    A stream may start at a `resume` point (`resume_points`): the bytes from there on come out with the
    offsets and origins of a read from the start. A `recorder` is told what comes out, where members
    start and, in gzip, where deflate blocks end, to make such points."""

    def __init__(
        self,
        file: BinaryIO,
        codec: Codec = GZIP,
        feed_bytes: int | None = None,
        *,
        recorder: PointRecorder | None = None,
        resume: ResumePoint | None = None,
    ) -> None:
        super().__init__()
        self._file, self._codec, self._feed_bytes = file, codec, feed_bytes or FEED_BYTES
        self._recorder = recorder
        self._buffer: Any = None  # what inflaters called through `inflate` write into
        self._decompressor: Any = None
        self._pending = memoryview(b"")  # decompressed, not yet read
        self._fed = 0  # compressed bytes read from the file so far
        self._input, self._input_at = b"", 0  # what the current feed has left, and where the feed starts
        self._full = False  # whether zlib's last output reached `OUTPUT_BYTES`
        self._produced = 0  # decompressed bytes produced so far
        self._output_starts: list[int] = []  # where each nonempty output starts
        self._output_origins: list[int] = []  # and the offset in the file of the feed it came from
        self._ended = False
        #: The offset of the feed in which the stream failed to decode, once it has.
        self.failed_at: int | None = None
        if resume is not None:
            self._resume(resume)

    @property
    def feed_bytes(self) -> int:
        return self._feed_bytes

    @property
    def produced(self) -> int:
        """Decompressed bytes so far, counted from the start of the file."""
        return self._produced

    @property
    def feed_span(self) -> tuple[int, int]:
        """Where the feed being decompressed starts and where the next one will."""
        return self._input_at, self._fed

    def _resume(self, point: ResumePoint) -> None:
        """Start at `point`: the rest of its feed, its member entered or about to start."""
        self._file.seek(point.at)
        self._input, self._input_at = self._file.read(point.feed_end - point.at), point.feed_at
        self._fed, self._produced = point.feed_end, point.produced
        if not point.member_start:
            self._decompressor = point.member(self._output_buffer())

    def _output_buffer(self) -> Any:
        if self._buffer is None:
            self._buffer = inflate.output_buffer(OUTPUT_BYTES)
        return self._buffer

    def readable(self) -> bool:
        return True

    def close(self) -> None:
        self._file.close()
        super().close()

    def readinto(self, buffer: memoryview | bytearray) -> int:  # type: ignore[override]
        while not self._pending and not self._ended:
            self._step()
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

    def _step(self) -> None:
        """One bounded piece of output: from what the current feed has left, or from the next feed."""
        if not self._input and self._drained():
            at = self._fed
            data = self._file.read(self._feed_bytes)
            self._fed += len(data)
            if not data:
                self._ended = True
                if self._decompressor is not None and not self._decompressor.eof:
                    self._fail(
                        at, EOFError("Compressed file ended before the end-of-stream marker was reached")
                    )
                return
            self._input, self._input_at = data, at
            if self._recorder is not None:
                self._recorder.feed(at)
        try:
            output = self._advance()
        except (CorruptStream, EOFError) as error:
            self._fail(self._input_at, error)
        except self._codec.errors as error:
            self._fail(
                self._input_at, CorruptStream(f"{self._codec.name} data that does not decode: {error}")
            )
        if output:
            self._output_starts.append(self._produced)
            self._output_origins.append(self._input_at)
            self._produced += len(output)
            self._pending = memoryview(output)
            self._forget_old_origins()
        if self._recorder is not None:
            self._record(output)

    def _record(self, output: bytes) -> None:
        """Tell the recorder what came out, and where the stream is when a deflate block ended."""
        assert self._recorder is not None
        self._recorder.output(output)
        member = self._decompressor
        if isinstance(member, inflate.BlockMember) and member.at_block:
            self._recorder.block_end(self, member, self._fed - len(self._input))

    def _fail(self, at: int, error: BaseException) -> NoReturn:
        self.failed_at, self._ended = at, True
        raise error

    def _drained(self) -> bool:
        """Whether the decompressor holds no output it could give without more input (one stopped at
        `OUTPUT_BYTES` may)."""
        decompressor = self._decompressor
        if decompressor is None or decompressor.eof:
            return True
        return not self._full if self._codec is GZIP else getattr(decompressor, "needs_input", True)

    def _advance(self) -> bytes:
        """At most about `OUTPUT_BYTES` of output (zstandard: what `ZSTD_SLICE_BYTES` of input give) from
        the current feed's input, starting a member where one ended. A feed's bytes are decompressed a
        piece at a time, so that no feed, however far it expands, is held whole."""
        decompressor = self._decompressor
        if decompressor is None or decompressor.eof:
            self._input = self._next_member(self._input)
            if not self._input:
                return b""
            decompressor = self._decompressor
        if self._codec is ZSTD:  # no bound on its output: a slice of input at a time
            piece, self._input = self._input[:ZSTD_SLICE_BYTES], self._input[ZSTD_SLICE_BYTES:]
            output: bytes = decompressor.decompress(piece)
        elif self._codec is GZIP:  # output past the bound waits in zlib: asked again with no input
            output = decompressor.decompress(self._input, OUTPUT_BYTES)
            self._input, self._full = decompressor.unconsumed_tail, len(output) == OUTPUT_BYTES
        else:  # bzip2, xz: the input goes into the decompressor's buffer
            output = decompressor.decompress(self._input if decompressor.needs_input else b"", OUTPUT_BYTES)
            self._input = b""
        if decompressor.eof:  # what follows the member (zlib leaves it in `unconsumed_tail` too)
            self._input = decompressor.unused_data + (self._input if self._codec is ZSTD else b"")
        return output

    def _forget_old_origins(self) -> None:
        """Drop the origins of outputs that lie wholly `ORIGIN_HISTORY_BYTES` behind the newest byte, a
        thousand at a time."""
        old = bisect.bisect_right(self._output_starts, self._produced - ORIGIN_HISTORY_BYTES) - 1
        if old >= 1024:
            del self._output_starts[:old]
            del self._output_origins[:old]

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
        if self._recorder is not None:
            self._recorder.member_start(self, self._fed - len(data))
        if self._recorder is not None and self._codec is GZIP and inflate.available():
            self._decompressor = inflate.BlockMember(self._output_buffer())
        else:
            self._decompressor = self._codec.decompressor()
        return data


def open_compressed_stream(
    path: Path, codec: Codec, resume: ResumePoint | None = None
) -> tuple[io.BufferedReader, CompressedStream]:
    """A buffered reader of the decompressed bytes of the file at `path` compressed by `codec` (closing it
    closes the file), and its stream, fed `FEED_BYTES` at a time (from `resume` on, when given). A read
    that a failure interrupts loses what it had gathered (a line cut by the end of the stream is not
    returned); a reader that takes short reads (`tarfile`) reads the stream itself, which returns the bytes
    decoded before it raises."""
    stream = CompressedStream(path.open("rb"), codec, resume=resume)
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
