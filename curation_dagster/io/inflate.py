"""zlib's inflate through `ctypes`, for what Python's `zlib` module does not offer: stopping at the end of
each deflate block and reporting where it is to the bit (`Z_BLOCK`), reading the sliding window
(`inflateGetDictionary`), and starting to inflate in the middle of a byte (`inflatePrime`). With them a
gzip member can be entered at a block boundary, given the 32 KiB of output before it (`resume_points`), as
zlib's own `examples/zran.c` does.

The library is the system's zlib, the one Python's `zlib` module uses on Linux and macOS. Where it cannot
be loaded (`available()` is False) no member is entered in the middle: a part of a gzip file starts at the
last member that starts before it, or at the start of the file.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import struct
import zlib
from typing import Any, Final

#: inflate's return codes and flush modes (zlib.h).
Z_OK: Final = 0
Z_STREAM_END: Final = 1
Z_NEED_DICT: Final = 2
Z_BUF_ERROR: Final = -5
Z_MEM_ERROR: Final = -4
Z_NO_FLUSH: Final = 0
Z_BLOCK: Final = 5
#: `data_type` after inflate returns: at the end of a block (or the start of the first), and in the last.
AT_BLOCK_END: Final = 128
IN_LAST_BLOCK: Final = 64
#: zlib's largest window: what a block may refer back to.
WINDOW_BYTES: Final = 1 << 15
#: Window bits: a gzip member (header and trailer checked), raw deflate.
GZIP_WBITS: Final = 31
RAW_WBITS: Final = -15


class _ZStream(ctypes.Structure):
    """zlib's `z_stream`: `uLong` is C's `unsigned long`, as `ctypes.c_ulong` is on every platform."""

    _fields_ = [
        ("next_in", ctypes.c_void_p),
        ("avail_in", ctypes.c_uint),
        ("total_in", ctypes.c_ulong),
        ("next_out", ctypes.c_void_p),
        ("avail_out", ctypes.c_uint),
        ("total_out", ctypes.c_ulong),
        ("msg", ctypes.c_char_p),
        ("state", ctypes.c_void_p),
        ("zalloc", ctypes.c_void_p),
        ("zfree", ctypes.c_void_p),
        ("opaque", ctypes.c_void_p),
        ("data_type", ctypes.c_int),
        ("adler", ctypes.c_ulong),
        ("reserved", ctypes.c_ulong),
    ]


@functools.cache
def _library() -> Any:
    """The system's zlib with the argument types of the calls used here, or None where there is none (or
    one older than 1.2.8, without `inflateGetDictionary`)."""
    name = ctypes.util.find_library("z") or ctypes.util.find_library("zlib")
    if name is None:
        return None
    try:
        library = ctypes.CDLL(name)
        get_dictionary = library.inflateGetDictionary
    except (OSError, AttributeError):
        return None
    stream = ctypes.POINTER(_ZStream)
    library.zlibVersion.restype = ctypes.c_char_p
    library.inflateInit2_.argtypes = [stream, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
    library.inflate.argtypes = [stream, ctypes.c_int]
    library.inflateEnd.argtypes = [stream]
    library.inflatePrime.argtypes = [stream, ctypes.c_int, ctypes.c_int]
    library.inflateSetDictionary.argtypes = [stream, ctypes.c_char_p, ctypes.c_uint]
    get_dictionary.argtypes = [stream, ctypes.c_char_p, ctypes.POINTER(ctypes.c_uint)]
    return library


def available() -> bool:
    """Whether the system's zlib can be called, so that gzip members can be entered at a block."""
    return _library() is not None


def output_buffer(size: int) -> Any:
    """A buffer that inflaters write their output into: one for a whole stream, however many members it
    has, since allocating one zeroes it (`bgzip` writes a member every 64 KiB)."""
    return ctypes.create_string_buffer(size)


class Inflater:
    """One zlib inflate stream (`wbits`: `GZIP_WBITS` for a gzip member, `RAW_WBITS` for raw deflate),
    fed a `bytes` object at a time, writing into `output` (`output_buffer`). Only on a machine where
    `available()`."""

    def __init__(self, wbits: int, output: Any) -> None:
        self._open = False
        self._zlib = _library()
        self._stream = _ZStream()
        self._output = output
        self._check(
            self._zlib.inflateInit2_(
                ctypes.byref(self._stream), wbits, self._zlib.zlibVersion(), ctypes.sizeof(_ZStream)
            )
        )
        self._open = True

    @property
    def data_type(self) -> int:
        """After `inflate`: the unused bits of the last byte read (the low 3 bits), and `AT_BLOCK_END`,
        `IN_LAST_BLOCK`."""
        return int(self._stream.data_type)

    @property
    def check(self) -> int:
        """The CRC-32 of this gzip member's output so far (with `GZIP_WBITS`)."""
        return int(self._stream.adler) & 0xFFFFFFFF

    @property
    def total_out(self) -> int:
        """Bytes of output since the stream began."""
        return int(self._stream.total_out)

    def inflate(
        self, data: bytes, start: int, max_output: int, flush: int = Z_NO_FLUSH
    ) -> tuple[bytes, int, int]:
        """Inflate `data[start:]` into at most `max_output` bytes (no more than the buffer): the output,
        the input bytes taken and zlib's return code (`Z_OK`, `Z_STREAM_END`, `Z_BUF_ERROR` when nothing
        could be done). A stream that does not decode raises `zlib.error`, as Python's `zlib` does."""
        stream = self._stream
        if not isinstance(data, bytes):
            data = bytes(data)
        base = ctypes.cast(ctypes.c_char_p(data), ctypes.c_void_p).value or 0
        stream.next_in, stream.avail_in = base + start, len(data) - start
        size = min(max_output, len(self._output))
        stream.next_out, stream.avail_out = ctypes.addressof(self._output), size
        code = self._zlib.inflate(ctypes.byref(stream), flush)
        taken = len(data) - start - stream.avail_in
        stream.next_in = stream.avail_in = 0  # `data` may be freed after this call
        if code not in (Z_OK, Z_STREAM_END, Z_BUF_ERROR):
            self._check(code)
        return ctypes.string_at(self._output, size - stream.avail_out), taken, code

    def prime(self, bits: int, value: int) -> None:
        """Put the `bits` low bits of `value` in front of the input: a block that starts inside a byte."""
        self._check(self._zlib.inflatePrime(ctypes.byref(self._stream), bits, value))

    def set_dictionary(self, window: bytes) -> None:
        """The output before a raw stream's first block, which its first blocks may refer back to."""
        self._check(self._zlib.inflateSetDictionary(ctypes.byref(self._stream), window, len(window)))

    def window(self) -> bytes:
        """The last `WINDOW_BYTES` of output (fewer at the start of a member)."""
        buffer, size = ctypes.create_string_buffer(WINDOW_BYTES), ctypes.c_uint(0)
        self._check(self._zlib.inflateGetDictionary(ctypes.byref(self._stream), buffer, ctypes.byref(size)))
        return buffer.raw[: size.value]

    def close(self) -> None:
        if self._open:
            self._open = False
            self._zlib.inflateEnd(ctypes.byref(self._stream))

    def __del__(self) -> None:
        self.close()

    def _check(self, code: int) -> None:
        if code == Z_OK:
            return
        if code == Z_MEM_ERROR:
            raise MemoryError("zlib could not allocate its state")
        message = self._stream.msg.decode("ascii", "replace") if self._stream.msg else "unknown error"
        # Python's own wording, so that a stream entered in the middle fails as one read from the start.
        raise zlib.error(f"Error {code} while decompressing data: {message}")


class ResumedMember:
    """The rest of a gzip member entered at a deflate block (a `resume_points.ResumePoint`), with the
    interface of the `zlib.decompressobj` that `compressed_stream` reads a member through: `decompress(data,
    max_length)`, `unconsumed_tail`, `eof`, `unused_data`. Its trailer is checked as zlib checks it: the
    CRC-32 of the member's output (continued from the CRC at the point) once its four bytes are in, then
    the length, with Python's error messages."""

    def __init__(self, bits: int, byte: int, window: bytes, crc: int, size: int, output: Any) -> None:
        self._inflater: Inflater | None = Inflater(RAW_WBITS, output)
        if bits:
            self._inflater.prime(bits, byte >> (8 - bits))
        if window:
            self._inflater.set_dictionary(window)
        self._crc, self._size = crc, size
        self._trailer = b""
        self.unconsumed_tail = b""
        self.unused_data = b""
        self.eof = False

    def decompress(self, data: bytes, max_length: int) -> bytes:
        if self._inflater is None:  # the deflate data has ended: its trailer
            self._take_trailer(data)
            return b""
        output, taken, code = self._inflater.inflate(data, 0, max_length)
        self._crc = zlib.crc32(output, self._crc)
        self._size += len(output)
        rest = data[taken:]
        if code == Z_STREAM_END:
            self._inflater.close()
            self._inflater = None
            self._take_trailer(rest)
        else:
            self.unconsumed_tail = rest
        return output

    def _take_trailer(self, data: bytes) -> None:
        had = len(self._trailer)
        self._trailer += data[: 8 - had]
        rest = data[8 - had :]
        self.unconsumed_tail = b""
        if had < 4 <= len(self._trailer) and struct.unpack("<I", self._trailer[:4])[0] != self._crc:
            raise zlib.error("Error -3 while decompressing data: incorrect data check")
        if len(self._trailer) == 8:
            if struct.unpack("<I", self._trailer[4:])[0] != self._size & 0xFFFFFFFF:
                raise zlib.error("Error -3 while decompressing data: incorrect length check")
            self.eof, self.unused_data = True, rest


class BlockMember:
    """A gzip member read through zlib's inflate stopping at the end of each deflate block, with the
    interface of `zlib.decompressobj(31)` (the same zlib, so the same output and errors). After each
    `decompress`, `at_block` says whether it stopped where a reader can enter the member (the end of a
    block that is not the last, or the start of the first), with `bits` of the last byte taken unread and
    the member's `window()`, `check` and `total_out` there."""

    def __init__(self, output: Any) -> None:
        self._inflater = Inflater(GZIP_WBITS, output)
        self.unconsumed_tail = b""
        self.unused_data = b""
        self.eof = False
        self.at_block = False
        self.bits = 0
        #: The last compressed byte taken, whose `bits` high bits are unread.
        self.last_byte = 0

    @property
    def inflater(self) -> Inflater:
        return self._inflater

    def decompress(self, data: bytes, max_length: int) -> bytes:
        output, taken, code = self._inflater.inflate(data, 0, max_length, Z_BLOCK)
        if taken:
            self.last_byte = data[taken - 1]
        kind = self._inflater.data_type
        self.at_block = code != Z_STREAM_END and bool(kind & AT_BLOCK_END) and not kind & IN_LAST_BLOCK
        self.bits = kind & 7
        if code == Z_STREAM_END:
            self.eof, self.unused_data, self.unconsumed_tail = True, data[taken:], b""
            self._inflater.close()
        else:
            self.unconsumed_tail = data[taken:]
        return output
