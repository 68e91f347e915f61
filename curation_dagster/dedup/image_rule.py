"""The image rule of near-duplicate media dedup: how images are hashed for the index (`image_hasher`,
`add_images`), the index file's schema, and which two images match (`ImageMatcher`: hash pairs, the margin
windows, the colour check). The decision itself, earliest wins, is `media.decide`'s, shared with videos and
sounds."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

import numpy as np
import pyarrow as pa

from curation_dagster.dedup.media import (
    MEDIA_FINGERPRINT_KEY,
    HashSet,
    Match,
    MediaMatcher,
    ShardMedia,
    settings_digest,
)
from curation_dagster.dedup.perceptual import (
    TURNS,
    VARIANT_CENTRE,
    VARIANT_CROP,
    VARIANT_MARGIN,
    VARIANT_MIRROR,
    VARIANT_TURN,
    VARIANT_WHOLE,
    ImageHasher,
    near_pairs,
    variant_codes,
)
from curation_dagster.spec import ImageDedupSettings


def image_settings_fingerprint(settings: ImageDedupSettings) -> str:
    """A hash of the settings that change stored hashes (not the distances or the colour check, which
    apply at lookup). Layout 2: luminance in floating point, clipped, turned and margin variants, mean
    colours, indexed copies."""
    relevant = settings.model_dump(
        mode="json",
        include={"hash", "hash_size", "mirror", "crops", "rotations", "margins", "min_detail"},
    )
    return settings_digest({"image": relevant, "layout": 2})


def image_index_schema(settings: ImageDedupSettings) -> pa.Schema:
    """`image_hashes/<shard>.parquet`: one row per indexed image and hashed variant, with the image's mean
    colour; `copy_of` names the kept image an indexed copy was removed as a duplicate of (null for kept
    images)."""
    return pa.schema(
        [
            pa.field("id", pa.dictionary(pa.int32(), pa.string()), nullable=False),
            pa.field("variant", pa.int8(), nullable=False),
            pa.field("hash", pa.uint64(), nullable=False),
            pa.field("colour", pa.list_(pa.float32(), 3), nullable=False),
            pa.field("copy_of", pa.dictionary(pa.int32(), pa.string()), nullable=True),
        ],
        metadata={MEDIA_FINGERPRINT_KEY: image_settings_fingerprint(settings).encode()},
    )


#: The side each margin window leaves out, in the order of `perceptual.MARGINS`.
MARGIN_SIDES: Final = ("bottom", "top", "right", "left")
#: The colour check of `colours_agree`, in grey levels of 0-255 channels. A mean colour's chroma is its
#: vector on the red-green and yellow-blue opponent axes. Two mean colours agree when their chromas differ
#: in hue by at most `HUE_SHARE` of the larger chroma (the component of one across the other) and in
#: strength by at most `STRENGTH_SHARE` of it (either at least `CHROMA_SLACK`: near-grey colours have no
#: reliable hue), and their luminances by at most `LUMA_SLACK`. Adding to every channel moves neither
#: chroma; a brightness or contrast change scales chroma without turning it; a recolouring turns it,
#: changes its strength a lot, or moves luminance far. Measured on 89 real wallpapers
#: (`benchmarks/image_dedup.py`): every pair of copies of one picture agrees, 28 of 1,377 pairs of colour
#: variants of one design do (5 of them with hashes within 10 bits).
CHROMA_SLACK: Final = 8.0
HUE_SHARE: Final = 0.27
STRENGTH_SHARE: Final = 0.45
LUMA_SLACK: Final = 48.0
_OPPONENT: Final = np.array([[1.0, 0.5, 0.299], [-1.0, 0.5, 0.587], [0.0, -1.0, 0.114]])


def _is_turn(units: np.ndarray) -> np.ndarray:
    """Which image variant codes are turns."""
    return (units >= VARIANT_TURN) & (units < VARIANT_MARGIN)


def meets_variants(units: np.ndarray) -> np.ndarray:
    """Which image variant codes meet each other as well as whole hashes: the mirror, the centre crop and
    the turns. A centre crop commutes with a mirror (the centre crop of a mirrored copy is the mirror of a
    centre-cropped copy) and, but for the corners, with a turn about the centre, so a cropped copy meets a
    mirrored or turned copy of the same picture through these pairs when neither is the original."""
    return (units == VARIANT_MIRROR) | (units == VARIANT_CENTRE) | _is_turn(units)


def _variant_words(unit: int) -> str:
    """How a hash of variant `unit` changed its image, for `describe`."""
    if unit == VARIANT_MIRROR:
        return "mirrored"
    if unit == VARIANT_CENTRE:
        return "centre-cropped"
    return f"turned {TURNS[unit - VARIANT_TURN]:+g} degrees"


def colours_agree(first: np.ndarray, second: np.ndarray) -> np.ndarray:
    """Row by row, whether two `(n, 3)` arrays of mean RGB colours pass the colour check."""
    a = np.asarray(first, dtype=np.float64) @ _OPPONENT
    b = np.asarray(second, dtype=np.float64) @ _OPPONENT
    larger = np.maximum(np.hypot(a[:, 0], a[:, 1]), np.hypot(b[:, 0], b[:, 1]))
    scale = np.maximum(larger, 1e-9)
    # The smaller chroma along and across the larger one's direction (the same either way round).
    along = (a[:, 0] * b[:, 0] + a[:, 1] * b[:, 1]) / scale
    across = np.abs(a[:, 0] * b[:, 1] - a[:, 1] * b[:, 0]) / scale
    return (
        (across <= np.maximum(CHROMA_SLACK, HUE_SHARE * larger))
        & (larger - along <= np.maximum(CHROMA_SLACK, STRENGTH_SHARE * larger))
        & (np.abs(a[:, 2] - b[:, 2]) <= LUMA_SLACK)
    )


class ImageMatcher(MediaMatcher):
    """Two images match when some pair of their hashes is within `max_distance` bits, one of the pair
    being a whole-image hash (whole-whole, whole-mirror, whole-crop, and within `close_distance` bits
    whole-turn), or within `close_distance` bits both the same margin window (each image without the same
    side's outer strip) or both among the mirror, the centre crop and the turns (`meets_variants`: a
    centre-cropped copy and a mirrored or turned copy of one picture), and (with `colour_check`) their
    mean colours agree (`colours_agree`): the same set of pairs in both directions, so the rule is
    symmetric and arrival order cannot change what matches."""

    copies = True

    def __init__(self, settings: ImageDedupSettings) -> None:
        self.bits = settings.hash_size**2
        self.max_distance = settings.max_distance
        self.colour_check = settings.colour_check
        self.close_distance = min(settings.close_distance, settings.max_distance)

    def match(self, queries: HashSet, targets: HashSet) -> Match:
        whole_q = np.nonzero(queries.unit == VARIANT_WHOLE)[0]
        other_q = np.nonzero((queries.unit != VARIANT_WHOLE) & (queries.unit < VARIANT_MARGIN))[0]
        whole_t = np.nonzero(targets.unit == VARIANT_WHOLE)[0]
        paired_t = np.nonzero(targets.unit < VARIANT_MARGIN)[0]
        # Whole hashes are looked up in every hash but the margins of the other side, both ways round:
        # the side whose keys are expanded is always one hash per image, never thirteen.
        found_q, found_t, distance_q = near_pairs(
            queries.hash[whole_q], targets.hash[paired_t], self.max_distance, self.bits
        )
        back_t, back_q, distance_t = near_pairs(
            targets.hash[whole_t], queries.hash[other_q], self.max_distance, self.bits
        )
        parts_q, parts_t = [whole_q[found_q], other_q[back_q]], [paired_t[found_t], whole_t[back_t]]
        parts_d = [distance_q, distance_t]
        # Two variants that commute (`meets_variants`), neither a whole hash: the weaker evidence.
        meet_q, meet_t = (
            np.nonzero(meets_variants(queries.unit))[0],
            np.nonzero(meets_variants(targets.unit))[0],
        )
        pair_q, pair_t, pair_d = near_pairs(
            queries.hash[meet_q], targets.hash[meet_t], self.close_distance, self.bits
        )
        parts_q.append(meet_q[pair_q])
        parts_t.append(meet_t[pair_t])
        parts_d.append(pair_d)
        for code in np.unique(queries.unit[queries.unit >= VARIANT_MARGIN]).tolist():
            # A margin hash meets the same margin's hashes of the other side only.
            margin_q = np.nonzero(queries.unit == code)[0]
            margin_t = np.nonzero(targets.unit == code)[0]
            pair_q, pair_t, pair_d = near_pairs(
                queries.hash[margin_q], targets.hash[margin_t], self.close_distance, self.bits
            )
            parts_q.append(margin_q[pair_q])
            parts_t.append(margin_t[pair_t])
            parts_d.append(pair_d)
        q, t, distance = np.concatenate(parts_q), np.concatenate(parts_t), np.concatenate(parts_d)
        # Within `max_distance` only with a whole hash on one side and no turn; the rest within
        # `close_distance`.
        weak = _is_turn(queries.unit[q]) | _is_turn(targets.unit[t])
        weak |= (queries.unit[q] != VARIANT_WHOLE) & (targets.unit[t] != VARIANT_WHOLE)
        close = distance <= np.where(weak, self.close_distance, self.max_distance)
        q, t, distance = q[close], t[close], distance[close]
        if len(q) and self.colour_check:
            assert queries.colour is not None and targets.colour is not None
            alike = colours_agree(queries.colour[queries.item[q]], targets.colour[targets.item[t]])
            q, t, distance = q[alike], t[alike], distance[alike]
        if not len(q):
            return Match.empty()
        # Per item pair, the closest hash pair. Ties go to the pair that says most about the change: two
        # whole hashes, a whole hash and a variant, two margin windows, two meeting variants; then lower
        # variant codes.
        unit_q, unit_t = queries.unit[q], targets.unit[t]
        kind = np.where(
            (unit_q == VARIANT_WHOLE) | (unit_t == VARIANT_WHOLE),
            (unit_q != VARIANT_WHOLE) | (unit_t != VARIANT_WHOLE),
            np.where(unit_q >= VARIANT_MARGIN, 2, 3),
        )
        order = np.lexsort((unit_t, unit_q, kind, distance, targets.item[t], queries.item[q]))
        q, t, distance = q[order], t[order], distance[order]
        pair_q, pair_t = queries.item[q], targets.item[t]
        first = np.ones(len(q), dtype=bool)
        first[1:] = (pair_q[1:] != pair_q[:-1]) | (pair_t[1:] != pair_t[:-1])
        return Match(
            query=pair_q[first],
            target=pair_t[first],
            similarity=1.0 - distance[first] / self.bits,
            query_unit=queries.unit[q[first]],
            target_unit=targets.unit[t[first]],
        )

    def describe(self, similarity: float, query_unit: int, target_unit: int, dup_of: str) -> str:
        distance = round((1.0 - similarity) * self.bits)
        how = "whole images"
        if VARIANT_WHOLE not in (query_unit, target_unit) and query_unit < VARIANT_MARGIN:
            how = f"this image {_variant_words(query_unit)} matches {dup_of} {_variant_words(target_unit)}"
        elif VARIANT_MIRROR in (query_unit, target_unit):
            how = "mirrored"
        elif query_unit >= VARIANT_MARGIN:
            how = f"both without the {MARGIN_SIDES[query_unit - VARIANT_MARGIN]} margin"
        elif query_unit >= VARIANT_TURN:
            how = f"this image turned matches {dup_of}"
        elif target_unit >= VARIANT_TURN:
            how = f"this image matches {dup_of} turned"
        elif target_unit >= VARIANT_CROP:
            how = f"this image matches a crop of {dup_of}"
        elif query_unit >= VARIANT_CROP:
            how = f"a crop of this image matches {dup_of}"
        return f"near-duplicate image of {dup_of}: hash distance {distance} of {self.bits} ({how})"


def image_hasher(settings: ImageDedupSettings) -> tuple[ImageHasher, np.ndarray]:
    """The hasher the settings describe and the variant code of each of its hashes."""
    hasher = ImageHasher(
        settings.hash,
        settings.hash_size,
        settings.mirror,
        settings.crops,
        settings.min_detail,
        rotations=settings.rotations,
        margins=settings.margins,
    )
    return hasher, variant_codes(settings.mirror, settings.crops, settings.rotations, settings.margins)


def add_images(
    shard: ShardMedia,
    hasher: ImageHasher,
    codes: np.ndarray,
    ids: Sequence[str],
    images: Sequence[bytes | None],
) -> None:
    """Hash a batch of images into `shard`; images that cannot be hashed are counted, not indexed."""
    hashed = hasher.hash_many(images)
    for row, item_id in enumerate(ids):
        if hashed.usable[row]:
            shard.add(item_id, codes, hashed.hashes[row], hashed.colours[row])
        else:
            shard.unhashed.append(item_id)
