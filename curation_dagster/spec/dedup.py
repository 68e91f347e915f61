"""The deduped stage's settings: exact, near-duplicate text, image, video and audio, and semantic dedup."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from curation_dagster.spec.base import StrictSettings
from curation_dagster.spec.embeddings import EmbeddingSettings


class NormalizeSettings(StrictSettings):
    """How text is normalised before exact hashing, so trivial variants hash alike."""

    casefold: bool = True
    """Compare text case-insensitively."""
    collapse_whitespace: bool = True
    """Treat any run of whitespace (spaces, tabs, newlines) as one space and strip the ends."""
    unicode_nfkc: bool = True
    """Apply Unicode NFKC, so compatibility characters (full-width letters, ligatures) hash alike."""


class ExactDedupSettings(StrictSettings):
    """Exact duplicates on normalised content, across every shard of the version."""

    enabled: bool = True
    """Remove exact duplicates; off only for debugging, since every later stage assumes it."""
    normalize: NormalizeSettings = NormalizeSettings()
    """Text normalisation applied before hashing; media items are hashed on their bytes."""


class ShingleNormalizeSettings(StrictSettings):
    """How text is normalised before shingling for near-duplicate detection."""

    casefold: bool = True
    """Compare words case-insensitively."""
    strip_accents: bool = True
    """Drop combining accents after Unicode NFKD (é → e)."""
    strip_punctuation: bool = True
    """Treat punctuation as whitespace, so punctuation and line-wrapping edits do not change shingles."""
    replace_digits: bool = True
    """Map every digit to 0, so dates and counters do not separate otherwise equal documents."""


#: Named settings for near-duplicate detection; a spec's explicit fields override the preset's.
NEAR_DEDUP_PRESETS: dict[str, dict[str, Any]] = {
    # FineWeb's published choice: 5-word shingles, 14 bands x 8 rows (112 hashes), threshold ~0.72, no check.
    "fineweb": {"shingle": "words", "ngram": 5, "bands": 14, "rows": 8, "verify": "none"},
    # The project default: finds edits of up to a fifth of the words, keeps documents a third rewritten and
    # never merges documents sharing under half their words.
    "edits": {
        "shingle": "words",
        "ngram": 3,
        "bands": 63,
        "rows": 2,
        "verify": "word_jaccard",
        "min_similarity": 0.5,
        "min_pair_similarity": 0.41,
        "word_sketch": 512,
        "pair_sketch": 1024,
    },
}
#: Standard errors of the `verify_hashes` estimate on each side of `min_similarity` inside which a pair is
#: confirmed on word sketches. On near_dedup.py's real text the 128-value estimate of word-set Jaccard was
#: off by more than 3 standard errors for 0.13% of pairs (2% of documents under 80 distinct words, whose
#: empty bins densification fills) and by more than 4 for 0.006%.
GREY_ZONE_SIGMAS = 4.0


class NearDedupSettings(StrictSettings):
    """Near duplicates of text by MinHash LSH, across every shard of the version.

    Candidates are documents that share a band of `rows` hash values in any of `bands` bands; a pair of
    shingle-Jaccard similarity s becomes a candidate with probability 1 - (1 - s^rows)^bands, which is 1/2
    near s = (1/bands)^(1/rows). Candidates are then checked (`verify`) before they are merged: with
    `word_jaccard`, a pair must share `min_similarity` of its words (a pair whose estimate is within
    `grey_margin` of the cut is decided on the two documents' word sketches, `word_sketch`) and
    `min_pair_similarity` of its word pairs (two neighbouring words, in order; on their sketches,
    `pair_sketch`), exactly for documents of up to 512 distinct words and 1,024 distinct pairs.
    """

    enabled: bool = True
    """Remove near duplicates of text items (after exact dedup)."""
    preset: Literal["fineweb", "edits"] | None = None
    """Start from a named preset; fields given explicitly override it."""
    shingle: Literal["words", "chars"] = "words"
    """Shingle unit: word n-grams, or character n-grams (for scripts without spaces)."""
    ngram: int = Field(3, ge=1, le=32)
    """Shingle length in units. Shorter shingles keep similarity higher under word edits."""
    bands: int = Field(63, ge=1, le=512)
    """LSH bands; more bands find lower similarities (more candidates to check)."""
    rows: int = Field(2, ge=1, le=64)
    """Hash values per band; more rows make the S-curve steeper and the threshold higher. 63 bands of 2
    make a pair with 20% of its words replaced (3-word shingle Jaccard about 0.34) a candidate with
    probability 0.9996; 42 of 3, the default before, 0.83 (the word checks then decide, at about the same
    cost on real text)."""
    verify: Literal["none", "word_jaccard", "shingle_jaccard"] = "word_jaccard"
    """How a candidate pair is confirmed: estimated Jaccard similarity of the two documents' word sets
    (the users' notion: share of words), of their shingle sets, or not at all (banding alone decides).
    For text without spaces between words, use character shingles with `shingle_jaccard`."""
    min_similarity: float = Field(0.5, ge=0, le=1)
    """A candidate pair is merged only when the Jaccard similarity of its word sets is at least this.
    Replacing a share r of a document's words with new ones leaves it near (1 - r) / (1 + r): 0.82 at 10%,
    0.67 at 20%, 0.54 at 30%; on real text the spread is wide, since a replaced word may occur elsewhere in
    the document and a new one may already be there (on benchmarks/near_dedup.py's corpus 20% replaced
    sits at 0.58-0.77, 30% at 0.53-0.69), so word sets cannot tell a 20% edit from a 30% rewrite and
    `min_pair_similarity` does. 0.5 keeps every document that shares under half its words with another
    (a block of another document followed by a third one reached 0.46 there)."""
    min_pair_similarity: float = Field(0.41, ge=0, le=1)
    """A candidate pair that shares enough words is merged only when the Jaccard similarity of its sets of
    word pairs (each two neighbouring words, in order) is at least this; 0 turns the check off. Replacing
    a share r of the words keeps about (1 - r)^2 of the pairs, so edit rates lie twice as far apart: on
    the benchmark's real text 20% replaced sat at 0.44-0.55, 30% at 0.29-0.39 and 40% at 0.17-0.31, every
    5-10% edit, moved sentence, header, footer and case change at 0.63 or more. 0.41 removes every 20%
    edit there and keeps every 30% rewrite."""
    verify_hashes: int = Field(128, ge=16, le=1024)
    """Hash values of the word-set signature that estimates `word_jaccard` (std ~ sqrt(J(1-J)/n))."""
    word_sketch: int = Field(512, ge=0, le=4096)
    """Smallest word hashes kept per document (a bottom-k sketch of its word set, 4 bytes each, in the
    index beside its signature), which decide `word_jaccard` pairs whose estimate lies within `grey_margin`
    of `min_similarity`: exactly when both documents have at most this many distinct words (the
    benchmark's documents of 100 to 600 words have at most 403), otherwise with a standard error of at most
    sqrt(J(1 - J) / word_sketch), 0.021 at 512 against the 128-value estimate's 0.042. 0 decides every pair
    on the estimate (and keeps no sketch)."""
    pair_sketch: int = Field(1024, ge=0, le=8192)
    """Smallest word-pair hashes kept per document (4 bytes each, in the index beside its word sketch),
    which decide `min_pair_similarity`: exactly when both documents have at most this many distinct pairs
    (about one per word: the benchmark's documents of up to 600 words have at most 600), otherwise with a
    standard error of at most sqrt(J(1 - J) / pair_sketch), 0.016 at 1,024. 0 turns the check off."""
    seed: int = 1
    """Seed of the hash functions; the same seed gives the same signatures."""
    normalize: ShingleNormalizeSettings = ShingleNormalizeSettings()

    @model_validator(mode="before")
    @classmethod
    def _apply_preset(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("preset") is not None:
            preset = NEAR_DEDUP_PRESETS.get(str(data["preset"]))
            if preset is not None:
                return {**preset, **data}
        return data

    @classmethod
    def preset_settings(cls, name: str, **overrides: Any) -> NearDedupSettings:
        """The settings of a named preset (`fineweb`, `edits`), with overrides."""
        return cls.model_validate({"preset": name, **overrides})

    @property
    def num_perm(self) -> int:
        """Hash values per shingle signature: bands x rows."""
        return self.bands * self.rows

    @property
    def threshold(self) -> float:
        """The shingle similarity at which a pair becomes a candidate with probability about 1/2."""
        return float((1 / self.bands) ** (1 / self.rows))

    @property
    def grey_margin(self) -> float:
        """How far from `min_similarity` a pair's estimate must be to be decided on it alone:
        `GREY_ZONE_SIGMAS` standard errors of the `verify_hashes` estimate at the cut (0.17 by default)."""
        cut = self.min_similarity
        return float(GREY_ZONE_SIGMAS * (cut * (1 - cut) / self.verify_hashes) ** 0.5)


class ImageDedupSettings(StrictSettings):
    """Near-duplicate images by 64-bit perceptual hashes, across every shard of the version.

    Each image is hashed whole, mirrored, through nine windows keeping 90% of each side, turned 5 degrees
    either way and without each side's outer 15%; two images match when a pair of their hashes is close
    (one of them a whole-image hash within `max_distance` bits; both the same margin window, or both among
    the mirrored, centre-cropped and turned hashes, within `close_distance`) and their mean colours agree
    (`colour_check`). A copy removed as the
    direct match of a kept image is indexed too, as that image's copy: a later copy that matches it is
    removed as well, so copies of one original need not all be near the original, only near one of the
    first copies. Measured on 89 real wallpapers and photographs with eight changed copies of each
    (`benchmarks/image_dedup.py`): 98-100% of the copies of every kind caught (re-encode, resize, crop,
    brightness, watermark, WebP, mirror, 5-degree turn), no distinct picture or colour variant removed.
    """

    enabled: bool = True
    """Remove near-duplicate images (after exact dedup)."""
    hash: Literal["phash", "dhash", "whash"] = "phash"
    """pHash (32 x 32 DCT, 8 x 8 low frequencies against their median; the most robust to re-encoding and
    brightness), dHash (signs of horizontal gradients of a 9 x 8 reduction) or wHash (Haar low band)."""
    hash_size: int = Field(8, ge=4, le=8)
    """Side of the hash grid: hashes have hash_size² bits (64 with 8). Smaller hashes merge more."""
    max_distance: int = Field(8, ge=0, le=32)
    """Images whose hashes differ in at most this many bits are duplicates; dup_similarity is
    1 - distance / bits. 10 catches more watermarked copies, with more distinct pictures merged (the
    benchmark reports both) and look-ups about seven times as wide."""
    mirror: bool = True
    """Also match horizontally mirrored copies (plain pHash does not)."""
    crops: bool = True
    """Also match crops keeping about 90% of each side, at any position (plain pHash misses most)."""
    rotations: bool = True
    """Also match copies turned by a few degrees (hashes of the image turned 5 degrees either way, corners
    black)."""
    margins: bool = True
    """Also match copies that differ by a mark along one side (a corner watermark, a logo, a caption):
    each image is also hashed without the outer 15% of its bottom, top, right and left, and two images
    match when the same such window of both is within `close_distance` bits."""
    close_distance: int = Field(6, ge=0, le=32)
    """The distance (at most `max_distance`) for the pairs that are weaker evidence: a turned hash against
    a whole one, two margin windows, and two of the mirrored, centre-cropped and turned hashes (a cropped
    copy against a mirrored or turned one). Both often meet between distinct smooth pictures (the black
    corners of a turned picture and the cut of a margin window weigh more in a picture with little
    detail), and a copy's turned and margin hashes agree closely; on the benchmark's wallpapers 8 bits
    removed distinct pictures that 6 does not."""
    colour_check: bool = True
    """Also require the two images' mean colours to agree: brightness and contrast changes, re-encodes,
    watermarks and crops keep them close, a recoloured design (a light and a dark variant, another hue)
    does not, though its luminance hashes are alike (`image_rule.colours_agree` has the limits)."""
    min_detail: float = Field(0.5, ge=0)
    """Images whose 32 x 32 luminance reduction has a standard deviation below this many grey levels are
    blank (one flat colour: it hashes like every other flat colour) and not hashed; exact dedup and the
    filters still apply. Smooth gradients and low-contrast pictures are well above it."""


class VideoDedupSettings(StrictSettings):
    """Near-duplicate videos by the pHash of frames sampled at a fixed rate, across every shard.

    Two videos match when at least `min_matching_share` of the informative sampled frames of one are
    within `max_distance` bits of some frame of the other, in any order, and neither has more unmatched
    frames than a trim of `max_trim_s` allows: re-encodes, resizes, frame-rate changes and trims of a few
    seconds match; different videos, excerpts of a long video and single frames do not.
    """

    enabled: bool = True
    """Remove near-duplicate videos (after exact dedup)."""
    frames_per_second: float = Field(2.0, gt=0, le=30)
    """Frames sampled per second of video. At 2 a trimmed copy is sampled at most a quarter second away
    from the original's frames; at 1, trims by half seconds of panning footage lose most matches."""
    max_frames: int = Field(1200, ge=1)
    """Frames sampled at most per video (the first 10 minutes at 2 per second)."""
    hash_size: int = Field(8, ge=4, le=8)
    """Side of the frame pHash grid: hash_size² bits."""
    max_distance: int = Field(10, ge=0, le=32)
    """Two frames match when their hashes differ in at most this many bits."""
    min_matching_share: float = Field(0.7, gt=0, le=1)
    """Share of the shorter video's sampled frames that must match frames of the other; dup_similarity
    is the smaller of the two videos' shares."""
    max_trim_s: float = Field(5.0, ge=0)
    """Seconds of either video that may lack a match (trimmed at the start or end, or cut) when that is
    more than 1 - `min_matching_share` of it; a short excerpt of a long video is not its duplicate."""
    min_detail: float = Field(2.0, ge=0)
    """Sampled frames this flat (black, fades, title cards) are not hashed and do not count."""


class AudioDedupSettings(StrictSettings):
    """Near-duplicate sounds by spectral fingerprints of windows sampled at a fixed rate, across every
    shard; matched like videos (`dedup.video`): a share of one's windows within `max_distance` bits of
    windows of the other, in any order, with at most a trim's worth unmatched in either. Each window's
    64-bit hash is the sign pattern of its band energies (64 bands, 150 Hz to 4 kHz, about a semitone
    each) around the spectrum's overall tilt: gain cancels, MP3 and Vorbis re-encodes and resampling
    keep it. Sounds shorter than a window and a half are not fingerprinted.
    """

    enabled: bool = True
    """Remove near-duplicate sounds (after exact dedup)."""
    frames_per_second: float = Field(2.0, gt=0, le=20)
    """Windows fingerprinted per second of sound."""
    window_s: float = Field(2.0, gt=0, le=10)
    """Length of each window; 2 s windows every 0.5 s keep trimmed copies within reach of each other."""
    max_frames: int = Field(1200, ge=1)
    """Windows fingerprinted at most per sound (the first 10 minutes at 2 per second)."""
    max_distance: int = Field(10, ge=0, le=32)
    """Two windows match when their 64-bit hashes differ in at most this many bits."""
    min_matching_share: float = Field(0.7, gt=0, le=1)
    """Share of the shorter sound's windows that must match windows of the other; dup_similarity is the
    smaller of the two sounds' shares."""
    max_trim_s: float = Field(5.0, ge=0)
    """Seconds of either sound that may lack a match when that is more than 1 - `min_matching_share` of
    it; a short excerpt of a long recording is not its duplicate."""
    min_level_db: float = Field(-60.0, le=0)
    """Windows quieter than this (dB below full scale) are silence: not matched, not counted."""


class SemanticDedupSettings(StrictSettings):
    """SemDeDup (Abbas et al. 2023) on text or CLIP image embeddings, across every shard of the version: k-means
    clusters, then within a cluster an item whose cosine similarity to an item already kept is at least
    1 - `epsilon` (`image_epsilon` for images) is removed. The centroids are fitted once per version, on up
    to `sample_size` items of the first shard deduped with these settings, and stored in the lake; later
    shards are assigned to them and compared, cluster by cluster, with the items earlier shards kept. Off
    unless the section is given.
    """

    enabled: bool = True
    """Remove semantic duplicates of the items of `modalities` (after exact and near dedup); true once the
    section is written, so `semantic: {}` turns it on."""
    clusters: int = Field(50, ge=1, le=100_000)
    """k of k-means. Items are only compared within their cluster, so more clusters mean less work and
    memory per shard but more duplicate pairs split across two clusters. The fit uses at most one cluster
    per 10 sample items, so a small first shard gives the version fewer, larger clusters (more work)."""
    epsilon: float = Field(0.07, gt=0, lt=1)
    """Text items are duplicates when their cosine similarity is at least 1 - epsilon. 0.07 (0.93) is NeMo
    Curator's text SemDeDup example with all-MiniLM-L6-v2; its workflow default is 0.01. Lower is stricter."""
    image_epsilon: float = Field(0.03, gt=0, lt=1)
    """`epsilon` for image items' CLIP vectors: 0.03 (0.97) is the SemDeDup paper's value on LAION-440M's CLIP
    image embeddings, where it removed about half of the data with little loss. Lower is stricter."""
    keep: Literal["earliest", "nearest_centroid", "farthest_centroid"] = "earliest"
    """Which item of a group of duplicates within one shard is kept: the earliest row, as the other dedup
    steps do; the one nearest to the cluster's centroid (NeMo Curator's `easy`); or the farthest (the
    paper's choice, NeMo Curator's default `hard`). Items kept by earlier shards are never removed."""
    sample_size: int = Field(100_000, ge=1)
    """Most items the centroids are fitted on: a seeded sample of the first shard's text items."""
    kmeans_init: int = Field(3, ge=1, le=50)
    """Seeded k-means restarts; the best of them (lowest inertia) is kept."""
    seed: int = 0
    """Seed of the k-means fit and of the sample it is fitted on."""
    embeddings: EmbeddingSettings = Field(default_factory=lambda: EmbeddingSettings())
    """The text embedder; with the same settings as `select.embeddings` the vectors stored in
    `<version>/embeddings/` are computed once and shared with selection."""
    modalities: tuple[Literal["text", "image"], ...] = ("text",)
    """The modalities deduplicated, each in its own embedding space with its own centroids, index files and
    fingerprint: `text` with the text embedder above, `image` with the CLIP image embeddings of
    `models.clip_weights` (kept in `<version>/image_embeddings/`, shared with the CLIP filters)."""

    @field_validator("modalities")
    @classmethod
    def _modalities_listed_once(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if not value or len(set(value)) != len(value):
            raise ValueError("list text and/or image, each at most once")
        return value

    def epsilon_of(self, modality: str) -> float:
        """The epsilon of one of `modalities`: `image_epsilon` for images, `epsilon` for text."""
        return self.image_epsilon if modality == "image" else self.epsilon


class DedupSettings(StrictSettings):
    """The deduped stage."""

    exact: ExactDedupSettings = ExactDedupSettings()
    near: NearDedupSettings = NearDedupSettings()
    image: ImageDedupSettings = ImageDedupSettings()
    """Near-duplicate images; runs on the images exact dedup kept."""
    video: VideoDedupSettings = VideoDedupSettings()
    """Near-duplicate videos; runs on the videos exact dedup kept."""
    audio: AudioDedupSettings = AudioDedupSettings()
    """Near-duplicate sounds; runs on the sounds exact dedup kept."""
    semantic: SemanticDedupSettings = Field(default_factory=lambda: SemanticDedupSettings(enabled=False))
    """Semantic duplicates by embeddings (SemDeDup); runs on the items of `semantic.modalities` (text by
    default) that exact and near dedup kept. Off by default: it runs a model on the accelerator."""
