"""Perceptual hashes of images and video frames, and the search for hashes within a Hamming distance.

Images are decoded small (JPEG through Pillow's `draft`, which decodes at 1/2 to 1/8 scale in the
decoder, other formats reduced by whole factors first; grey and RGB PNGs by kornia-rs, `png_decode.py`), turned into luminance in floating point (an
8-bit grey image rounds a smooth, low-contrast gradient into a few flat bands, whose edges then move
with every re-encode), clipped to the 2nd-98th percentile of its own values (a bright watermark or caption
then weighs no more than the picture's highlights) and hashed in batches with numpy: pHash is the
sign of the 8 x 8 lowest frequencies of a 32 x 32 DCT against their median (as imagehash computes it),
dHash compares horizontally adjacent pixels of a 9 x 8 reduction, wHash the 8 x 8 Haar low band (block
means) against its median. Besides the whole image, each image is hashed mirrored, through a few crop
windows and turned a few degrees either way, so a mirrored, cropped or slightly rotated copy lands near
one of them (plain pHash misses all three), and through windows that leave out one side's margin, so two
copies that differ by a watermark or caption along that side agree there. The mean colour of each image is kept beside its hashes:
luminance alone cannot tell a design from its recolouring.

The search is multi-index hashing (Norouzi, Punjani and Fleet 2012): split the bits into k segments; two
hashes within distance d agree within distance floor(d / k) on at least one segment (pigeonhole), so
candidates come from sorted segment values and `searchsorted`, never from all pairs, and every candidate
is then checked on the full distance. The result equals the brute-force search.
"""

from __future__ import annotations

import functools
import io
import itertools
import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final, Literal

import numpy as np

from curation_dagster.dedup.png_decode import reduced_png
from curation_dagster.media import sample_video_frames

HashKind = Literal["phash", "dhash", "whash"]

#: Crop windows hashed besides the whole image, as (left, top, right, bottom) fractions: windows keeping
#: 90% of each side on a 3 x 3 grid of offsets, so a crop to 90% at any position is within 2.5% of one.
CROP_WINDOWS: Final[tuple[tuple[float, float, float, float], ...]] = tuple(
    (left, top, left + 0.9, top + 0.9) for top in (0.0, 0.05, 0.1) for left in (0.0, 0.05, 0.1)
)
WHOLE: Final = (0.0, 0.0, 1.0, 1.0)
#: Angles (degrees, counter-clockwise) the image is turned to for its rotation variants; the corners the
#: turn uncovers are black, as image tools fill them by default.
TURNS: Final = (5.0, -5.0)
#: Variant codes stored in the index next to each hash.
VARIANT_WHOLE: Final = 0
VARIANT_MIRROR: Final = 1
VARIANT_CROP: Final = 2  # crop window i has code VARIANT_CROP + i
VARIANT_TURN: Final = VARIANT_CROP + len(CROP_WINDOWS)  # turn i has code VARIANT_TURN + i
#: The centre crop window's code: a centre crop commutes with a mirror (and, but for the corners, with a
#: turn about the centre), so it meets the mirrored and turned variants of another image.
VARIANT_CENTRE: Final = VARIANT_CROP + [window[:2] for window in CROP_WINDOWS].index((0.05, 0.05))
#: Windows that leave out the outer 15% along one side (bottom, top, right, left): a watermark, logo or
#: caption along that side is outside the window. Unlike the other variants, a margin hash is compared
#: with the same margin's hash of the other image (both images cut alike), not with its whole hash.
MARGINS: Final[tuple[tuple[float, float, float, float], ...]] = (
    (0.0, 0.0, 1.0, 0.85),
    (0.0, 0.15, 1.0, 1.0),
    (0.0, 0.0, 0.85, 1.0),
    (0.15, 0.0, 1.0, 1.0),
)
VARIANT_MARGIN: Final = VARIANT_TURN + len(TURNS)  # margin i has code VARIANT_MARGIN + i
#: Percentile of an image's own luminance at which it is clipped, at both ends.
_CLIP_PERCENT: Final = 2.0
#: Rec. 601 luma weights (Pillow's "L" conversion), applied in floating point.
_LUMA: Final = np.array([0.299, 0.587, 0.114], dtype=np.float32)
#: JPEG's (JFIF's) YCbCr to RGB: rgb = ycbcr @ _FROM_YCBCR + _FROM_YCBCR_OFFSET.
_FROM_YCBCR: Final = np.array(
    [[1.0, 1.0, 1.0], [0.0, -0.344136, 1.772], [1.402, -0.714136, 0.0]], dtype=np.float32
)
_FROM_YCBCR_OFFSET: Final = -128.0 * (_FROM_YCBCR[1] + _FROM_YCBCR[2])
#: pHash reduces to 32 x 32 for an 8 x 8 hash (imagehash's `highfreq_factor` of 4).
_PHASH_FACTOR: Final = 4
#: Images are decoded and reduced to at least this many times the hash grid on their shorter side before
#: the windows are cut and resampled (a 1024-pixel JPEG then decodes at 1/8 scale, from its DC terms).
_DECODE_FACTOR: Final = 2


def variant_names(mirror: bool, crops: bool, rotations: bool = False, margins: bool = False) -> list[str]:
    """The variants hashed per image, in the order of the columns `ImageHasher.hash_many` returns."""
    names = ["whole"]
    if mirror:
        names.append("mirror")
    if crops:
        names.extend(f"crop{index}" for index in range(len(CROP_WINDOWS)))
    if rotations:
        names.extend(f"turn{angle:+g}" for angle in TURNS)
    if margins:
        names.extend(f"margin{index}" for index in range(len(MARGINS)))
    return names


def variant_codes(mirror: bool, crops: bool, rotations: bool = False, margins: bool = False) -> np.ndarray:
    """The index codes of `variant_names(mirror, crops, rotations, margins)`."""
    codes = [VARIANT_WHOLE]
    if mirror:
        codes.append(VARIANT_MIRROR)
    if crops:
        codes.extend(VARIANT_CROP + index for index in range(len(CROP_WINDOWS)))
    if rotations:
        codes.extend(VARIANT_TURN + index for index in range(len(TURNS)))
    if margins:
        codes.extend(VARIANT_MARGIN + index for index in range(len(MARGINS)))
    return np.array(codes, dtype=np.int8)


@functools.cache
def _dct_rows(size: int, keep: int) -> np.ndarray:
    """The first `keep` rows of the (unnormalised) DCT-II matrix of length `size`: scipy's `dct` up to a
    factor, which the median comparison ignores."""
    k = np.arange(keep)[:, None]
    n = np.arange(size)[None, :]
    return np.cos(np.pi * k * (2 * n + 1) / (2 * size))


def pack_bits(bits: np.ndarray) -> np.ndarray:
    """`(n, b)` booleans (b <= 64) as uint64, first bit most significant (imagehash's hex order)."""
    count, width = bits.shape
    weights = np.left_shift(np.uint64(1), np.arange(width - 1, -1, -1, dtype=np.uint64))
    return (bits.astype(np.uint64) * weights).sum(axis=1, dtype=np.uint64).reshape(count)


def grid_shape(kind: HashKind, hash_size: int) -> tuple[int, int]:
    """(height, width) of the grayscale grid a hash kind is computed from."""
    if kind == "phash":
        return hash_size * _PHASH_FACTOR, hash_size * _PHASH_FACTOR
    if kind == "dhash":
        return hash_size, hash_size + 1
    return hash_size * _PHASH_FACTOR, hash_size * _PHASH_FACTOR


def hash_grids(grids: np.ndarray, kind: HashKind, hash_size: int) -> np.ndarray:
    """Hashes of a stack of grayscale grids `(n, height, width)` shaped as `grid_shape` says, as uint64."""
    count = grids.shape[0]
    pixels = grids.astype(np.float64, copy=False)
    if kind == "phash":
        rows = _dct_rows(pixels.shape[1], hash_size)
        low = rows @ pixels @ rows.T  # (n, hash_size, hash_size)
        flat = low.reshape(count, -1)
        bits = flat > np.median(flat, axis=1, keepdims=True)
    elif kind == "dhash":
        bits = (pixels[:, :, 1:] > pixels[:, :, :-1]).reshape(count, -1)
    else:
        block = pixels.shape[1] // hash_size
        means = pixels.reshape(count, hash_size, block, hash_size, block).mean(axis=(2, 4))
        flat = means.reshape(count, -1)
        bits = flat > np.median(flat, axis=1, keepdims=True)
    return pack_bits(bits)


@dataclass
class ImageHashes:
    """Hashes of a batch of images: one column per variant; `usable` is false for images that could
    not be decoded or are blank (one flat colour hashes like every other flat colour)."""

    hashes: np.ndarray
    """`(images, variants)` uint64."""
    usable: np.ndarray
    """`(images,)` bool."""
    errors: list[str | None]
    """Per image, why it is not usable (None when it is)."""
    colours: np.ndarray
    """`(images, 3)` float32: the mean red, green and blue of each image, 0-255."""


class ImageHasher:
    """Decodes images small and hashes the whole image, its mirror, crop windows, small turns and margin
    windows, in batches."""

    def __init__(
        self,
        kind: HashKind = "phash",
        hash_size: int = 8,
        mirror: bool = True,
        crops: bool = True,
        min_detail: float = 0.5,
        windows: Sequence[tuple[float, float, float, float]] = CROP_WINDOWS,
        rotations: bool = True,
        margins: bool = True,
    ) -> None:
        if not 2 <= hash_size <= 8:
            raise ValueError("hash_size must be 2 to 8 (a hash of hash_size² bits fits 64 bits)")
        self.kind: HashKind = kind
        self.hash_size = hash_size
        self.mirror = mirror
        self.windows = [WHOLE, *(windows if crops else ())]
        self.turns = TURNS if rotations else ()
        self.margins = MARGINS if margins else ()
        self.min_detail = min_detail
        self.grid = grid_shape(kind, hash_size)

    @property
    def variants(self) -> int:
        return len(self.windows) + (1 if self.mirror else 0) + len(self.turns) + len(self.margins)

    def grids(self, data: bytes) -> tuple[np.ndarray, np.ndarray]:
        """The luminance grids of one image, `(variants, height, width)` float32 (whole, mirror, crops,
        turns, margins), and its mean colour."""
        from PIL import Image

        height, width = self.grid
        side = max(height, width) * _DECODE_FACTOR
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            reduced = reduced_png(data, side)
            if reduced is None:
                with Image.open(io.BytesIO(data)) as opened:
                    reduced = _reduced(opened, side)
        pixels = np.asarray(reduced, dtype=np.float32)
        if reduced.mode == "YCbCr":  # a JPEG's own planes: Y is the luma, the means convert to RGB
            luminance = np.ascontiguousarray(pixels[:, :, 0])
            colour = pixels.reshape(-1, 3).mean(axis=0) @ _FROM_YCBCR + _FROM_YCBCR_OFFSET
        else:
            colour = pixels.reshape(-1, 3).mean(axis=0)
            luminance = pixels @ _LUMA
        # The clip levels from every other pixel of every other row: nearly the same percentiles, a quarter
        # of the sort.
        low, high = np.percentile(luminance[::2, ::2], (_CLIP_PERCENT, 100.0 - _CLIP_PERCENT))
        clipped = np.clip(luminance, low, high, out=luminance)
        # Every window is an area average of the clipped luminance: two small matrix products each.
        boxes = [*self.windows, *self.margins]
        rows = np.stack([_area_weights(clipped.shape[0], top, bottom, height) for _, top, _, bottom in boxes])
        columns = np.stack(
            [_area_weights(clipped.shape[1], left, right, width) for left, _, right, _ in boxes]
        )
        cut = rows @ clipped @ columns.transpose(0, 2, 1)
        grids = list(cut[: len(self.windows)])
        if self.mirror:
            grids.insert(1, grids[0][:, ::-1])
        image = Image.fromarray(clipped)
        for angle in self.turns:
            # Turned at the image's own aspect ratio, as a copy is, the uncovered corners black.
            turned = image.rotate(angle, Image.Resampling.BILINEAR, fillcolor=0.0)
            grids.append(np.asarray(turned.resize((width, height), Image.Resampling.LANCZOS), np.float32))
        grids.extend(cut[len(self.windows) :])
        return np.stack(grids), colour

    def hash_many(self, images: Sequence[bytes | None]) -> ImageHashes:
        """Hashes of every image of a batch; undecodable or blank images are marked unusable."""
        from PIL import Image

        height, width = self.grid
        grids = np.zeros((len(images), self.variants, height, width), dtype=np.float32)
        colours = np.zeros((len(images), 3), dtype=np.float32)
        usable = np.zeros(len(images), dtype=bool)
        errors: list[str | None] = []
        for row, data in enumerate(images):
            error = None
            if data is None:
                error = "no media bytes"
            else:
                try:
                    grids[row], colours[row] = self.grids(data)
                except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as failure:
                    error = f"cannot decode: {failure}"[:200]
                else:
                    if float(grids[row, 0].std()) < self.min_detail:
                        error = "blank: one flat colour"
            usable[row] = error is None
            errors.append(error)
        flat = grids.reshape(-1, height, width)
        hashes = hash_grids(flat, self.kind, self.hash_size).reshape(len(images), self.variants)
        return ImageHashes(hashes=hashes, usable=usable, errors=errors, colours=colours)


@functools.lru_cache(maxsize=4096)
def _area_weights(length: int, start: float, stop: float, cells: int) -> np.ndarray:
    """`(cells, length)` weights that average the pixels of `[start, stop)` (fractions of `length`) into
    `cells` equal cells, each pixel weighted by the share of it inside the cell (an area resample)."""
    edges = np.linspace(start * length, stop * length, cells + 1)
    pixel = np.arange(length, dtype=np.float64)
    inside = np.clip(
        np.minimum(edges[1:, None], pixel[None, :] + 1) - np.maximum(edges[:-1, None], pixel[None, :]),
        0,
        None,
    )
    return (inside / inside.sum(axis=1, keepdims=True)).astype(np.float32)


def _reduced(image: Any, side: int) -> Any:
    """`image` reduced by whole factors while both sides stay at least `side`: a colour JPEG in its own
    YCbCr planes through the decoder's DCT scaling (no colour conversion), other images as RGB with
    transparency over white and `reduce` (a box filter)."""
    from PIL import Image

    if image.format == "JPEG":
        image.draft("YCbCr" if image.mode == "RGB" else "RGB", (side, side))
        if image.mode == "YCbCr":
            image.load()
            factor = min(image.width, image.height) // side
            return image.reduce(factor) if factor >= 2 else image
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        image = Image.alpha_composite(background, rgba)
    rgb = image.convert("RGB")
    factor = min(rgb.width, rgb.height) // side
    return rgb.reduce(factor) if factor >= 2 else rgb


@dataclass
class FrameFingerprint:
    """The hashes of a video's or a sound's frames sampled at a fixed rate, and which of them carry
    information (a black frame or silence hashes like every other one, so it never counts as a match)."""

    hashes: np.ndarray
    """`(frames,)` uint64, in time order."""
    informative: np.ndarray
    """`(frames,)` bool."""


class VideoFingerprinter:
    """Samples a video at `frames_per_second` (the first frame at or after each tick, time measured from
    the first frame) up to `max_frames`, decodes each sampled frame straight to a small grayscale grid and
    hashes the grids in one batch."""

    def __init__(
        self,
        frames_per_second: float = 1.0,
        max_frames: int = 600,
        hash_size: int = 8,
        min_detail: float = 2.0,
    ) -> None:
        self.frames_per_second = frames_per_second
        self.max_frames = max_frames
        self.hash_size = hash_size
        self.min_detail = min_detail

    def grids(self, source: Any) -> np.ndarray:
        """Grayscale grids `(frames, 32, 32)` of the sampled frames of a video (bytes or a binary file)."""
        side = self.hash_size * _PHASH_FACTOR
        return sample_video_frames(source, self.frames_per_second, self.max_frames, side)

    def fingerprint(self, source: Any) -> FrameFingerprint:
        grids = self.grids(source)
        informative = grids.reshape(len(grids), -1).std(axis=1) >= self.min_detail
        return FrameFingerprint(hash_grids(grids, "phash", self.hash_size), informative)


# Search


def popcount(values: np.ndarray) -> np.ndarray:
    """Set bits per uint64."""
    return np.bitwise_count(values).astype(np.int64)


@dataclass(frozen=True)
class SegmentPlan:
    """How a multi-index search cuts `bits`-bit hashes: `bounds[i]:bounds[i+1]` are segment i's bits,
    and each segment is searched within `radius` (candidates agree within it on at least one segment)."""

    bits: int
    bounds: tuple[int, ...]
    radius: int

    @property
    def segments(self) -> int:
        return len(self.bounds) - 1

    def values(self, hashes: np.ndarray, segment: int) -> np.ndarray:
        """Segment `segment` of every hash (bit 0 is the least significant)."""
        low, high = self.bounds[segment], self.bounds[segment + 1]
        mask = np.uint64((1 << (high - low)) - 1)
        return (hashes >> np.uint64(low)) & mask

    def ball(self, segment: int) -> np.ndarray:
        """Every XOR mask of the segment's width with at most `radius` bits set."""
        return _ball(self.bounds[segment + 1] - self.bounds[segment], self.radius)


@functools.cache
def _ball(width: int, radius: int) -> np.ndarray:
    masks = [0]
    for flipped in range(1, radius + 1):
        for positions in itertools.combinations(range(width), flipped):
            masks.append(sum(1 << position for position in positions))
    return np.array(masks, dtype=np.uint64)


#: Segments up to this many bits are looked up in a table indexed by the segment value (one read per
#: key); wider ones by binary search in the sorted values.
_TABLE_BITS: Final = 22
#: Candidate pairs materialised at a time, which bounds the memory of a search.
_CANDIDATES_PER_BLOCK: Final = 1 << 22


def segment_plan(
    bits: int, max_distance: int, queries: int, targets: int, segments: int | None = None
) -> SegmentPlan:
    """An exact plan for a search, the cheapest by a cost model of uniform hashes: target values
    indexed, query keys looked up, candidates checked. `segments` forces k; k = max_distance + 1 is the
    classic plan in which candidates share a whole segment (radius 0)."""
    choices = [segments] if segments else range(1, min(max_distance + 1, bits) + 1)
    best: tuple[float, SegmentPlan] | None = None
    for count in choices:
        bounds = tuple(round(index * bits / count) for index in range(count + 1))
        plan = SegmentPlan(bits, bounds, max_distance // count)
        cost = 0.0
        for segment in range(count):
            width = bounds[segment + 1] - bounds[segment]
            keys = queries * _ball_size(width, plan.radius)
            lookup = 1.0 if _use_table(width, targets) else math.log2(targets + 2)
            cost += targets * 2 + keys * lookup + 2 * keys * targets / 2.0**width
        if best is None or cost < best[0]:
            best = (cost, plan)
    assert best is not None
    return best[1]


def _use_table(width: int, targets: int) -> bool:
    """Whether a segment is looked up in a table (narrow enough, and not mostly empty)."""
    return width <= _TABLE_BITS and (1 << width) <= 16 * targets


def _ball_size(width: int, radius: int) -> int:
    return sum(math.comb(width, flipped) for flipped in range(radius + 1))


def near_pairs(
    queries: np.ndarray,
    targets: np.ndarray,
    max_distance: int,
    bits: int = 64,
    segments: int | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every (query position, target position, distance) with Hamming distance <= `max_distance`,
    sorted by query then target; exactly the brute-force result, found by multi-index hashing.
    Candidates are checked block by block, so memory follows the matches, not the candidates."""
    queries = np.ascontiguousarray(queries, dtype=np.uint64)
    targets = np.ascontiguousarray(targets, dtype=np.uint64)
    empty = np.zeros(0, np.int64)
    if not len(queries) or not len(targets):
        return empty, empty, empty
    if len(queries) > len(targets):
        # The query side's keys are expanded and the target side is indexed: expand the smaller one.
        pair_t, pair_q, distance = near_pairs(targets, queries, max_distance, bits, segments)
        order = np.lexsort((pair_t, pair_q))
        return pair_q[order], pair_t[order], distance[order]
    plan = segment_plan(bits, max_distance, len(queries), len(targets), segments)
    found_q: list[np.ndarray] = []
    found_t: list[np.ndarray] = []
    for segment in range(plan.segments):
        width = plan.bounds[segment + 1] - plan.bounds[segment]
        target_values = plan.values(targets, segment)
        order = np.argsort(target_values, kind="stable")
        table = None
        if _use_table(width, len(targets)):
            table = np.zeros((1 << width) + 1, dtype=np.int64)
            np.cumsum(np.bincount(target_values.astype(np.int64), minlength=1 << width), out=table[1:])
        ordered = target_values[order]
        ball = plan.ball(segment)
        query_values = plan.values(queries, segment)
        step = max(1, _CANDIDATES_PER_BLOCK // len(ball))
        for start in range(0, len(queries), step):
            keys = (query_values[start : start + step, None] ^ ball[None, :]).reshape(-1)
            if table is not None:
                index = keys.astype(np.int64)
                low, high = table[index], table[index + 1]
            else:
                low = np.searchsorted(ordered, keys, side="left")
                high = np.searchsorted(ordered, keys, side="right")
            counts = high - low
            hits = np.nonzero(counts)[0]
            if not len(hits):
                continue
            owners = hits // len(ball) + start
            low, counts = low[hits], counts[hits]
            ends = np.cumsum(counts)
            first = 0
            while first < len(hits):
                # The hits whose candidates fit in one block (at least one hit, however many it has).
                last = max(
                    first + 1, int(np.searchsorted(ends, ends[first] - counts[first] + _CANDIDATES_PER_BLOCK))
                )
                block_counts = counts[first:last]
                total = int(block_counts.sum())
                offsets = np.arange(total) - np.repeat(np.cumsum(block_counts) - block_counts, block_counts)
                pair_q = np.repeat(owners[first:last], block_counts)
                pair_t = order[np.repeat(low[first:last], block_counts) + offsets]
                close = popcount(queries[pair_q] ^ targets[pair_t]) <= max_distance
                found_q.append(pair_q[close])
                found_t.append(pair_t[close])
                first = last
    if not found_q:
        return empty, empty, empty
    packed = np.unique(np.concatenate(found_q).astype(np.int64) * len(targets) + np.concatenate(found_t))
    pair_q, pair_t = packed // len(targets), packed % len(targets)
    return pair_q, pair_t, popcount(queries[pair_q] ^ targets[pair_t])


def brute_force_pairs(
    queries: np.ndarray, targets: np.ndarray, max_distance: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The all-pairs reference of `near_pairs`, for tests and benchmarks."""
    distance = popcount(queries[:, None] ^ targets[None, :])
    pair_q, pair_t = np.nonzero(distance <= max_distance)
    return pair_q.astype(np.int64), pair_t.astype(np.int64), distance[pair_q, pair_t]
