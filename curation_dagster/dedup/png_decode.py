"""The perceptual hasher's fast path for PNG: 8-bit grey and RGB pictures decoded by kornia-rs.

A PNG cannot be decoded at a reduced size (JPEG can, through its DCT), so hashing one costs its whole
decode, and Pillow's (stock zlib inflate, scalar unfiltering) was nearly all of it: our hasher ran at
imagehash.phash's speed on PNG, against twice it on JPEG. kornia-rs (Rust's `png` crate with `fdeflate`)
decodes the same pixels about three times as fast on one core. Only what it decodes to exactly Pillow's
pixels takes this path: 8-bit grey or RGB, without a transparent colour (`tRNS`); everything else, and
any file it fails on, goes through Pillow as before, so hashes and errors are unchanged.
"""

from __future__ import annotations

import struct
from typing import Any

import numpy as np

_SIGNATURE = b"\x89PNG\r\n\x1a\n"
#: PNG colour types kornia-rs decodes to Pillow's pixels, and the mode it is asked for.
_MODES = {0: "mono", 2: "rgb"}


def reduced_png(data: bytes, side: int) -> Any | None:
    """An 8-bit grey or RGB PNG as Pillow's RGB image, reduced by whole factors while both sides stay at
    least `side` (as `perceptual._reduced` does it); None when this fast path does not apply."""
    header = _simple_header(data)
    if header is None:
        return None
    width, height, colour = header
    from PIL import Image

    if width * height > (Image.MAX_IMAGE_PIXELS or 2**62):
        return None  # Pillow warns or refuses, as it always has
    # Imported here, not with the module: kornia-rs's import loads NVIDIA's runtime compiler library when
    # the CUDA wheels are installed, which a process that only schedules work has no use for.
    import kornia_rs

    try:
        pixels = kornia_rs.io.decode_image_png_u8(data, (height, width), _MODES[colour])
    except Exception:  # kornia-rs raises bare Exceptions; Pillow then decides and words the error
        return None
    image = Image.fromarray(np.ascontiguousarray(pixels[:, :, 0]) if colour == 0 else pixels).convert("RGB")
    factor = min(width, height) // side
    return image.reduce(factor) if factor >= 2 else image


def _simple_header(data: bytes) -> tuple[int, int, int] | None:
    """Width, height and colour type of an 8-bit grey or RGB PNG with no transparent colour before its
    image data; None for anything else."""
    if len(data) < 33 or data[:8] != _SIGNATURE or data[12:16] != b"IHDR":
        return None
    width, height, depth, colour = struct.unpack(">IIBB", data[16:26])
    if depth != 8 or colour not in _MODES or width == 0 or height == 0:
        return None
    position = 8
    while position + 8 <= len(data):
        length, kind = struct.unpack(">I4s", data[position : position + 8])
        if kind == b"tRNS":
            return None
        if kind == b"IDAT":
            return width, height, colour
        position += 12 + length
    return None
