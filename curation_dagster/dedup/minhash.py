"""Near-duplicate text detection: MinHash signatures, LSH banding, verification and clusters.

Signatures use one-permutation hashing with densification (Li, Owen and Zhang 2012; Shrivastava and
Li 2014): each shingle is hashed once, its hash picks one of the `num_perm` bins and the bin keeps its
minimum, so a document costs O(shingles) instead of O(shingles x permutations), and empty bins borrow
from the next filled bin to their right. Two documents agree in a bin with probability equal to the
Jaccard similarity of their shingle sets, as with classic MinHash. All hashing is vectorised with numpy
over every shingle of a batch of documents; words are split and made distinct by Arrow's C++ kernels, so
Python touches each distinct word of a batch once, not each word.
"""

from __future__ import annotations

import functools
import re
import sys
import unicodedata
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from curation_dagster.dedup.range_sort import key_order
from curation_dagster.dedup.word_sketch import (
    BOTTOM_K,
    ESTIMATE,
    EXACT,
    PAIRS_BOTTOM_K,
    PAIRS_EXACT,
    WordSketches,
    distinct_words,
    sketch_similarity,
)
from curation_dagster.spec import NearDedupSettings, ShingleNormalizeSettings

#: The value of an empty bin; a signature that is all EMPTY belongs to a document without shingles.
EMPTY = np.uint32(0xFFFFFFFF)
_MIX_1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX_2 = np.uint64(0x94D049BB133111EB)
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_PUNCTUATION = re.compile(r"[^\w\s]+")
_NON_ASCII = re.compile(r"[^\x00-\x7f]+")
#: Whitespace outside ASCII (line and paragraph separators, ideographic space, ...), which splits words.
_UNICODE_SPACE = re.compile(r"(?![\x00-\x7f])\s")
_DIGITS = re.compile(r"\d")
#: Documents signed at a time, which bounds the temporary memory of normalising and hashing.
_SIGNATURE_BATCH = 2048
#: Shingles hashed at a time, which bounds the temporary memory of a batch.
_CHUNK = 1 << 20


@functools.cache
def _combining_marks() -> re.Pattern[str]:
    """Every non-spacing combining mark of Unicode (category Mn), built on first use, not at import."""
    marks = "".join(
        re.escape(chr(code)) for code in range(sys.maxunicode + 1) if unicodedata.category(chr(code)) == "Mn"
    )
    return re.compile(f"[{marks}]+")


def normalize_for_shingles(text: str, settings: ShingleNormalizeSettings) -> str:
    """The text that is cut into shingles: accents, case, punctuation and digits as the settings say;
    whitespace of any script becomes a space, so it separates words as ASCII whitespace does."""
    if not text.isascii():
        text = _UNICODE_SPACE.sub(" ", text)
        if settings.strip_accents:
            text = _combining_marks().sub("", unicodedata.normalize("NFKD", text))
    if settings.casefold:
        text = text.casefold()
    if settings.strip_punctuation:
        text = _PUNCTUATION.sub(" ", text)
    if settings.replace_digits:
        text = _DIGITS.sub("0", text)
    return text


def _splitmix(values: np.ndarray) -> np.ndarray:
    """A strong 64-bit mix (SplitMix64's finaliser), vectorised; wraps around on purpose."""
    with np.errstate(over="ignore"):
        z = values + _GOLDEN
        z = (z ^ (z >> np.uint64(30))) * _MIX_1
        z = (z ^ (z >> np.uint64(27))) * _MIX_2
        return z ^ (z >> np.uint64(31))


@dataclass
class _Units:
    """Every unit (word or character) of a batch of documents as 64-bit hashes, concatenated; for words
    also the batch's distinct words (`vocabulary`, their hashes) and each unit's position among them."""

    hashes: np.ndarray
    lengths: np.ndarray
    vocabulary: np.ndarray | None = None
    word_of_unit: np.ndarray | None = None


def _byte_table(settings: ShingleNormalizeSettings) -> bytes:
    """How each byte of UTF-8 text is rewritten: ASCII case, punctuation, digits and whitespace as the
    settings say. Bytes from 0x80 up (the parts of multi-byte characters) stay as they are."""
    table = bytearray(range(256))
    for code in range(128):
        char = chr(code)
        if char.isspace():
            table[code] = ord(" ")
        elif settings.casefold and char.isupper():
            table[code] = ord(char.lower())
        elif settings.replace_digits and char.isdigit():
            table[code] = ord("0")
        elif settings.strip_punctuation and not char.isalnum() and char != "_":
            table[code] = ord(" ")
    return bytes(table)


def _utf8(text: str) -> bytes:
    """UTF-8 of a text; a lone surrogate (from a JSON escape) becomes '?' so the bytes stay valid UTF-8."""
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-8", "replace")


def _normalized_bytes(texts: Sequence[str], settings: ShingleNormalizeSettings) -> list[bytes]:
    """Each text normalised for shingling, as UTF-8.

    One byte table rewrites ASCII case, whitespace, punctuation and digits in C; only the runs of
    non-ASCII characters go through Unicode normalisation, once per distinct run (a cache per call).
    Every rule works character by character, so normalising a run alone equals normalising the text."""
    table = _byte_table(settings)
    cache: dict[str, str] = {}

    def run(match: re.Match[str]) -> str:
        chars = match.group()
        done = cache.get(chars)
        if done is None:
            done = cache[chars] = normalize_for_shingles(chars, settings)
        return done

    return [_utf8(text if text.isascii() else _NON_ASCII.sub(run, text)).translate(table) for text in texts]


def _word_hashes(normalized: list[bytes]) -> _Units:
    """Every word of every normalised text as a 64-bit hash, and the number of words per text.

    Splitting and finding the distinct words run in Arrow's C++ kernels over the whole batch; only the
    distinct words are hashed in Python (CRC-32 and length, then mixed), and numpy spreads the hashes."""
    trimmed = pc.ascii_trim_whitespace(pa.array(normalized, type=pa.binary()).cast(pa.string()))
    words = pc.ascii_split_whitespace(trimmed)
    lengths = np.diff(words.offsets.to_numpy()).astype(np.int64)
    flat = words.flatten()
    # An empty text splits into one empty word; it has none.
    empty = pc.equal(pc.binary_length(trimmed), 0).to_numpy(zero_copy_only=False)
    if empty.any():
        lengths[empty] = 0
        flat = flat.filter(pc.greater(pc.binary_length(flat), 0))
    encoded = pc.dictionary_encode(flat.cast(pa.binary()))
    vocabulary = encoded.dictionary.to_pylist()
    hashes = np.fromiter(
        (zlib.crc32(word) | (len(word) << 32) for word in vocabulary), dtype=np.uint64, count=len(vocabulary)
    )
    vocabulary_hashes = _splitmix(hashes)
    indices = encoded.indices.to_numpy(zero_copy_only=False)
    return _Units(vocabulary_hashes[indices], lengths, vocabulary_hashes, indices)


def _character_units(normalized: list[bytes]) -> _Units:
    characters = [" ".join(text.decode("utf-8").split()) for text in normalized]
    points = np.frombuffer("".join(characters).encode("utf-32-le", "surrogatepass"), dtype=np.uint32)
    lengths = np.fromiter(map(len, characters), dtype=np.int64, count=len(characters))
    return _Units(_splitmix(points.astype(np.uint64)), lengths)


def _shingles(units: _Units, ngram: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """64-bit hashes of every n-gram of units within each document, and the document of each.

    A document shorter than `ngram` units has one shingle made of all its units; an empty one has none.
    """
    lengths = units.lengths
    starts = np.concatenate(([0], np.cumsum(lengths)[:-1])) if len(lengths) else np.zeros(0, np.int64)
    counts = np.where(lengths >= ngram, lengths - ngram + 1, np.minimum(lengths, 1))
    doc_of_shingle = np.repeat(np.arange(len(lengths)), counts)
    first_unit = np.repeat(starts - np.concatenate(([0], np.cumsum(counts)[:-1])), counts) + np.arange(
        int(counts.sum())
    )
    padded = np.concatenate((units.hashes, np.zeros(ngram, np.uint64)))
    short = (lengths < ngram)[doc_of_shingle] if (lengths < ngram).any() else None
    combined = np.full(len(first_unit), _splitmix(np.array([seed], dtype=np.uint64))[0], dtype=np.uint64)
    with np.errstate(over="ignore"):
        for offset in range(ngram):
            part = padded[first_unit + offset]
            if short is not None and offset:
                # A short document's single shingle stops at its last unit.
                part = np.where(short & (offset >= lengths[doc_of_shingle]), np.uint64(0), part)
            combined *= _MIX_1
            combined ^= part
    return _splitmix(combined), doc_of_shingle


def _densify(bins: np.ndarray) -> np.ndarray:
    """Fill each empty bin from the next filled bin to its right (circularly), shifted by the distance,
    so that two documents still agree in a bin with probability equal to their Jaccard similarity."""
    empty = bins == EMPTY
    if not empty.any():
        return bins
    count = bins.shape[1]
    doubled = np.concatenate((bins, bins), axis=1)
    position = np.where(np.concatenate((~empty, ~empty), axis=1), np.arange(2 * count), 2 * count)
    next_filled = np.minimum.accumulate(position[:, ::-1], axis=1)[:, ::-1][:, :count]
    has_any = next_filled < 2 * count
    source = np.take_along_axis(doubled, np.minimum(next_filled, 2 * count - 1), axis=1).astype(np.uint64)
    distance = (next_filled - np.arange(count)).astype(np.uint64)
    with np.errstate(over="ignore"):
        shifted = (_splitmix(source * np.uint64(0x100000001B3) + distance) >> np.uint64(32)).astype(np.uint32)
    shifted = np.minimum(shifted, np.uint32(0xFFFFFFFE))
    filled = np.where(empty & has_any, shifted, bins)
    return filled


def _one_permutation_signatures(
    shingles: np.ndarray, doc_of_shingle: np.ndarray, docs: int, bins: int
) -> np.ndarray:
    """One-permutation MinHash: bin by one hash, keep the minimum of another part of it per bin."""
    signatures = np.full((docs, bins), EMPTY, dtype=np.uint32)
    flat = signatures.reshape(-1)
    for start in range(0, len(shingles), _CHUNK):
        chunk = shingles[start : start + _CHUNK]
        owners = doc_of_shingle[start : start + _CHUNK]
        with np.errstate(over="ignore"):
            which_bin = ((chunk >> np.uint64(32)) * np.uint64(bins)) >> np.uint64(32)
        values = np.minimum((chunk & np.uint64(0xFFFFFFFF)), np.uint64(0xFFFFFFFE)).astype(np.uint32)
        np.minimum.at(flat, owners * bins + which_bin.astype(np.int64), values)
    return _densify(signatures)


@dataclass
class DocumentSignatures:
    """What near dedup keeps of each document of a batch: its shingle signature (band keys), the signature
    that estimates `verify`'s similarity, and the bottom-k sketches of its word set and of its word pairs
    (see `word_sketch.py`) when pairs are confirmed with them."""

    shingles: np.ndarray
    verify: np.ndarray
    sketches: WordSketches | None


def signatures(texts: Sequence[str], settings: NearDedupSettings | None = None) -> np.ndarray:
    """Shingle signatures, `(len(texts), settings.num_perm)` uint32, from raw text (normalising and
    shingling included). A document without any shingle gets a row of EMPTY and never matches."""
    return _sign(texts, settings or NearDedupSettings(), words=False, sketch=False).shingles


def word_signatures(texts: Sequence[str], settings: NearDedupSettings | None = None) -> np.ndarray:
    """Signatures of each document's set of words (`verify_hashes` values), to estimate the share of
    words two documents have in common."""
    return _sign(texts, settings or NearDedupSettings(), words=True, sketch=False).verify


def word_sketches(texts: Sequence[str], settings: NearDedupSettings | None = None) -> WordSketches:
    """Each document's bottom-k sketch of its set of words (`word_sketch` values)."""
    sketches = _sign(texts, settings or NearDedupSettings(), words=False, sketch=True).sketches
    assert sketches is not None
    return sketches


def uses_word_sketch(settings: NearDedupSettings) -> bool:
    """Whether documents get sketches: of their words to confirm grey-zone pairs, of their word pairs."""
    return settings.verify == "word_jaccard" and (settings.word_sketch > 0 or settings.pair_sketch > 0)


def uses_pair_sketch(settings: NearDedupSettings) -> bool:
    """Whether candidate pairs must also share `min_pair_similarity` of their word pairs. Pair sketches
    are kept whenever `pair_sketch` is set, so the index serves any `min_pair_similarity`."""
    return settings.verify == "word_jaccard" and settings.pair_sketch > 0 and settings.min_pair_similarity > 0


def dedup_signatures(texts: Sequence[str], settings: NearDedupSettings) -> DocumentSignatures:
    """Everything `verify` needs, from one pass of normalising and hashing."""
    signed = _sign(
        texts, settings, words=settings.verify == "word_jaccard", sketch=uses_word_sketch(settings)
    )
    if settings.verify != "word_jaccard":
        signed.verify = signed.shingles
    return signed


def _sign(
    texts: Sequence[str], settings: NearDedupSettings, *, words: bool, sketch: bool
) -> DocumentSignatures:
    """Shingle signatures and, when asked, word-set signatures and word sketches, `_SIGNATURE_BATCH`
    documents at a time; each text is normalised once and its words hashed once for all of them."""
    if len(texts) > _SIGNATURE_BATCH:
        parts = [
            _sign(texts[start : start + _SIGNATURE_BATCH], settings, words=words, sketch=sketch)
            for start in range(0, len(texts), _SIGNATURE_BATCH)
        ]
        return DocumentSignatures(
            np.concatenate([part.shingles for part in parts]),
            np.concatenate([part.verify for part in parts]),
            WordSketches.join([part.sketches for part in parts if part.sketches is not None])
            if sketch
            else None,
        )
    normalized = _normalized_bytes(texts, settings.normalize)
    word_units = _word_hashes(normalized) if settings.shingle == "words" or words or sketch else None
    units = (
        word_units if word_units is not None and settings.shingle == "words" else _character_units(normalized)
    )
    shingles, owners = _shingles(units, settings.ngram, settings.seed)
    shingle_sigs = _one_permutation_signatures(shingles, owners, len(texts), settings.num_perm)
    verify = np.zeros((len(texts), 0), np.uint32)
    sketches = None
    if word_units is not None and (words or sketch):
        assert word_units.vocabulary is not None and word_units.word_of_unit is not None
        # (document, word) pairs: every token's, or each document's distinct words when the sketch
        # needs them anyway (the word-set signature is a minimum per bin, the same over either).
        owners = np.repeat(np.arange(len(texts)), word_units.lengths)
        chosen = word_units.word_of_unit
        if sketch:
            salt = _splitmix(np.array([settings.seed + 2], dtype=np.uint64))[0]
            values = (_splitmix(word_units.vocabulary ^ salt) >> np.uint64(32)).astype(np.uint32)
            pairs = _pair_sketches(values, owners, chosen, len(texts), settings)
            owners, chosen = distinct_words(values, chosen, word_units.lengths)
            sketches = WordSketches.of_words(values, owners, chosen, len(texts), settings.word_sketch)
            sketches = sketches.with_pairs(pairs)
        if words:
            verify = _word_set_signatures(word_units.vocabulary, owners, chosen, len(texts), settings)
    return DocumentSignatures(shingle_sigs, verify, sketches)


def _pair_sketches(
    values: np.ndarray,
    owners: np.ndarray,
    word_of_token: np.ndarray,
    documents: int,
    settings: NearDedupSettings,
) -> WordSketches | None:
    """Each document's sketch of its pairs of neighbouring words (`pair_sketch` values), from the 32-bit
    hash of every word (`values`) and each token's word and document; None when `pair_sketch` is 0."""
    if settings.pair_sketch == 0:
        return None
    follows = np.flatnonzero(owners[1:] == owners[:-1])
    left = values[word_of_token[follows]].astype(np.uint64)
    right = values[word_of_token[follows + 1]].astype(np.uint64)
    salt = _splitmix(np.array([settings.seed + 3], dtype=np.uint64))[0]
    hashes = (_splitmix((left << np.uint64(32) | right) ^ salt) >> np.uint64(32)).astype(np.uint32)
    return WordSketches.of_hashes(owners[follows], hashes, documents, settings.pair_sketch)


def _word_set_signatures(
    vocabulary: np.ndarray, owners: np.ndarray, words: np.ndarray, docs: int, settings: NearDedupSettings
) -> np.ndarray:
    """One-permutation signatures of word sets from (document, word) pairs: each word hashed as
    `_shingles` hashes a one-word shingle, once per distinct word of the batch."""
    with np.errstate(over="ignore"):
        start = _splitmix(np.array([settings.seed + 1], dtype=np.uint64))[0] * _MIX_1
    hashes = _splitmix(start ^ vocabulary)
    return _one_permutation_signatures(hashes[words], owners, docs, settings.verify_hashes)


def estimated_jaccard(first: np.ndarray, second: np.ndarray) -> np.ndarray:
    """The share of equal values between signatures, row by row: an estimate of Jaccard similarity."""
    agree = (first == second) & (first != EMPTY)
    return np.asarray(agree.mean(axis=-1))


def band_keys(signatures: np.ndarray, bands: int, rows: int) -> np.ndarray:
    """One 64-bit key per band and document, `(docs, bands)`; the band number is mixed in, so keys of
    different bands never collide by construction of the band."""
    docs = signatures.shape[0]
    grouped = signatures[:, : bands * rows].reshape(docs, bands, rows).astype(np.uint64)
    keys = np.broadcast_to(np.arange(bands, dtype=np.uint64) + np.uint64(1), (docs, bands)).copy()
    for row in range(rows):
        keys = _splitmix(keys ^ grouped[:, :, row])
    return keys


def candidate_probability(similarity: float, bands: int, rows: int) -> float:
    """The LSH S-curve: the chance that a pair of this shingle similarity shares at least one band."""
    return float(1 - (1 - similarity**rows) ** bands)


class UnionFind:
    """Connected components over item positions; the root of a component is its smallest position."""

    def __init__(self, size: int) -> None:
        self.parent = np.arange(size)

    def find(self, item: int) -> int:
        root = item
        while self.parent[root] != root:
            root = int(self.parent[root])
        while self.parent[item] != root:
            self.parent[item], item = root, int(self.parent[item])
        return root

    def union(self, first: int, second: int) -> None:
        a, b = self.find(first), self.find(second)
        if a != b:
            self.parent[max(a, b)] = min(a, b)

    def roots(self) -> np.ndarray:
        """The root of every item at once (pointer jumping, vectorised)."""
        roots = self.parent.copy()
        while True:
            jumped = roots[roots]
            if (jumped == roots).all():
                return roots
            roots = jumped


#: Each member of an LSH bucket is compared with the bucket's first member and this many members just
#: before it: enough to connect a bucket, while a huge (boilerplate) bucket costs linear work, not quadratic.
NEIGHBOURS = 3
#: Pairs verified at a time, which bounds the memory of gathering their signatures.
_VERIFY_CHUNK = 1 << 16


def bucket_pairs(keys: np.ndarray, neighbours: int = NEIGHBOURS) -> np.ndarray:
    """Candidate pairs `(earlier, later)` of rows whose key is equal, for one column of band keys: every
    row with the first row of its bucket and with up to `neighbours` rows just before it."""
    order = key_order(keys)
    sorted_keys = keys[order]
    index = np.arange(len(keys))
    new_group = (
        np.concatenate(([True], sorted_keys[1:] != sorted_keys[:-1])) if len(keys) else np.zeros(0, bool)
    )
    head = np.maximum.accumulate(np.where(new_group, index, 0))
    later = np.nonzero(~new_group)[0]
    parts = [np.stack((order[head[later]], order[later]), axis=1)]
    for lag in range(1, neighbours + 1):
        chosen = later[(later - lag) > head[later]]
        parts.append(np.stack((order[chosen - lag], order[chosen]), axis=1))
    return np.concatenate(parts)


def has_shingles(shingle_sigs: np.ndarray) -> np.ndarray:
    """Which documents have at least one shingle (the others never match anything)."""
    return np.asarray((shingle_sigs != EMPTY).any(axis=1))


def verified_similarity(
    left: np.ndarray, right: np.ndarray, sigs: np.ndarray, right_sigs: np.ndarray | None = None
) -> np.ndarray:
    """Estimated similarity of pairs `(left[i], right[i])`, in chunks to bound memory; `right` indexes
    `right_sigs` when given (signatures of earlier shards), else `sigs`."""
    other = sigs if right_sigs is None else right_sigs
    out = np.empty(len(left), dtype=np.float64)
    for start in range(0, len(left), _VERIFY_CHUNK):
        stop = start + _VERIFY_CHUNK
        out[start:stop] = estimated_jaccard(sigs[left[start:stop]], other[right[start:stop]])
    return out


@dataclass(frozen=True)
class Signed:
    """The documents one side of a candidate pair indexes: verification signatures, one row each, and
    their word sketches when grey-zone pairs are confirmed on them."""

    sigs: np.ndarray
    sketches: WordSketches | None = None


@dataclass(frozen=True)
class Confirmation:
    """Candidate pairs measured: each pair's similarity, the measure that gave it (a code of
    `word_sketch.MEASURES`) and whether it confirms the pair."""

    similarity: np.ndarray
    measure: np.ndarray
    confirmed: np.ndarray

    def near_misses(self, settings: NearDedupSettings) -> np.ndarray:
        """Pairs not confirmed that came within `NEAR_MISS` of the cut of their measure (`min_similarity`
        for word sets, `min_pair_similarity` for word pairs)."""
        if settings.verify == "none":
            return np.zeros(len(self.similarity), dtype=bool)
        on_pairs = (self.measure == PAIRS_EXACT) | (self.measure == PAIRS_BOTTOM_K)
        cut = np.where(on_pairs, settings.min_pair_similarity, settings.min_similarity)
        return ~self.confirmed & (self.similarity >= cut - NEAR_MISS)


#: How far under `min_similarity` a pair that is not merged counts as a near miss (shown to users).
NEAR_MISS = 0.05


def confirm(
    left: np.ndarray, right: np.ndarray, settings: NearDedupSettings, own: Signed, other: Signed | None = None
) -> Confirmation:
    """Decide candidate pairs `(left[i], right[i])`: rows of `own`, and of `other` when given (earlier
    shards), else of `own`. The MinHash estimate decides a pair clearly above or below `min_similarity`;
    one within `settings.grey_margin` of it is decided by the two documents' word sketches, exactly when
    both have at most `word_sketch` distinct words. A pair that shares enough words must then share
    `min_pair_similarity` of its word pairs too (`uses_pair_sketch`), measured on the pair sketches; its
    similarity is then that of its word pairs, the measure that separates an edit from a rewrite."""
    other = other or own
    similarity = verified_similarity(left, right, own.sigs, other.sigs)
    measure = np.full(len(left), ESTIMATE, dtype=np.int8)
    if settings.verify == "none":
        return Confirmation(similarity, measure, np.ones(len(left), dtype=bool))
    if own.sketches is not None and other.sketches is not None and settings.word_sketch > 0:
        grey = np.flatnonzero(np.abs(similarity - settings.min_similarity) <= settings.grey_margin)
        if len(grey):
            value, exact = sketch_similarity(
                own.sketches, left[grey], other.sketches, right[grey], settings.word_sketch
            )
            similarity[grey] = value
            measure[grey] = np.where(exact, EXACT, BOTTOM_K)
    confirmed = similarity >= settings.min_similarity
    if uses_pair_sketch(settings):
        checked = np.flatnonzero(confirmed)
        if len(checked):
            own_pairs = own.sketches.pairs if own.sketches is not None else None
            other_pairs = other.sketches.pairs if other.sketches is not None else None
            if own_pairs is None or other_pairs is None:
                raise ValueError("word-pair sketches are missing: min_pair_similarity cannot be checked")
            value, exact = sketch_similarity(
                own_pairs, left[checked], other_pairs, right[checked], settings.pair_sketch
            )
            similarity[checked] = value
            measure[checked] = np.where(exact, PAIRS_EXACT, PAIRS_BOTTOM_K)
            confirmed[checked] = value >= settings.min_pair_similarity
    return Confirmation(similarity, measure, confirmed)


@dataclass
class NearMisses:
    """Candidate pairs that came within `NEAR_MISS` under the cut, gathered as they are compared."""

    parts: list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]] = field(default_factory=list)

    def add(
        self, left: np.ndarray, right: np.ndarray, measured: Confirmation, settings: NearDedupSettings
    ) -> None:
        chosen = measured.near_misses(settings)
        if chosen.any():
            self.parts.append(
                (left[chosen], right[chosen], measured.similarity[chosen], measured.measure[chosen])
            )

    def pairs(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Left rows, right rows, similarities and measures, each pair once (a pair that shares several
        bands is compared in each), ordered by left row, then right row."""
        if not self.parts:
            empty = np.zeros(0, np.int64)
            return empty, empty, np.zeros(0, np.float64), np.zeros(0, np.int8)
        left, right, similarity, measure = (np.concatenate(part) for part in zip(*self.parts, strict=True))
        _, first = np.unique(np.stack((left, right), axis=1), axis=0, return_index=True)
        return left[first], right[first], similarity[first], measure[first]


def cluster(
    keys: np.ndarray,
    usable: np.ndarray,
    documents: Signed,
    settings: NearDedupSettings,
    near_misses: NearMisses | None = None,
) -> UnionFind:
    """Connected components of confirmed candidate pairs, band by band. `keys` holds the band keys of
    the rows listed in `usable` (the documents that have shingles), `documents` one row per document.

    Pairs already in one component are skipped before they are confirmed, so each band adds little work
    once the clusters have formed. Pairs just under the cut go into `near_misses` when given."""
    clusters = UnionFind(len(documents.sigs))
    for band in range(keys.shape[1]):
        pairs = usable[bucket_pairs(keys[:, band])]
        if not len(pairs):
            continue
        roots = clusters.roots()
        pairs = pairs[roots[pairs[:, 0]] != roots[pairs[:, 1]]]
        measured = confirm(pairs[:, 0], pairs[:, 1], settings, documents)
        if near_misses is not None:
            near_misses.add(pairs[:, 0], pairs[:, 1], measured, settings)
        for first, second in pairs[measured.confirmed]:
            clusters.union(int(first), int(second))
    return clusters


def near_duplicates(texts: Sequence[str], settings: NearDedupSettings | None = None) -> list[int | None]:
    """For each document, the position of the first document of the near-duplicate cluster it joins,
    or None when it is that first document (or has no near duplicate). Earlier documents win.

    This is the in-memory form for notebooks and benchmarks; the deduped stage applies the same steps
    shard by shard against the lake's index.
    """
    settings = settings or NearDedupSettings()
    signed = dedup_signatures(texts, settings)
    usable = np.nonzero(has_shingles(signed.shingles))[0]
    keys = band_keys(signed.shingles[usable], settings.bands, settings.rows)
    roots = cluster(keys, usable, Signed(signed.verify, signed.sketches), settings).roots()
    return [None if root == index else int(root) for index, root in enumerate(roots)]
