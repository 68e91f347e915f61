"""The dataset-version spec: one YAML file per version under `versions/`, validated on load."""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from curation_dagster.errors import SpecError
from curation_dagster.schema import MODALITIES

Modality = Literal["text", "image", "audio", "video"]

#: Bumped when a stage's engine code changes its output for the same settings.
ENGINE_VERSIONS: dict[str, str] = {
    "raw": "1",
    "deduped": "1",
    "filtered": "1",
    "selected": "1",
    "synthesized": "1",
}


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class RawSpec(_Strict):
    """How landing shards are read and validated."""

    text_field: str = "text"
    """JSON Lines / Parquet field that holds the document text."""
    max_inline_bytes: int = Field(256 * 2**20, gt=0)
    """Media above this many bytes stays a file referenced by `uri` instead of being copied into the lake."""


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


class DedupSpec(_Strict):
    """The deduped stage."""

    exact: ExactDedupSpec = ExactDedupSpec()
    near: NearDedupSpec = NearDedupSpec()


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
    max_doc_words: int | None = 100_000
    min_avg_word_length: float | None = 3
    max_avg_word_length: float | None = 10
    max_symbol_word_ratio: float | None = 0.1
    """`#` and ellipses per word, each."""
    max_bullet_lines_ratio: float | None = 0.9
    max_ellipsis_lines_ratio: float | None = 0.3
    max_non_alpha_words_ratio: float | None = 0.8
    """At least this share of words must hold a letter (the name follows datatrove's)."""
    min_stop_words: int | None = 2
    stop_words: tuple[str, ...] = ("the", "be", "to", "of", "and", "that", "have", "with")


class GopherRepetitionFilter(_Strict):
    """The Gopher repetition rules with the published thresholds; codes `quality.gopher_repetition.<rule>`.
    Paragraphs split on two or more newlines."""

    kind: Literal["gopher_repetition"] = "gopher_repetition"
    dup_line_frac: float | None = 0.3
    dup_para_frac: float | None = 0.3
    dup_line_char_frac: float | None = 0.2
    dup_para_char_frac: float | None = 0.2
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
    min_num_sentences: int | None = 5
    min_words_per_line: int | None = 3
    max_word_length: int | None = 1000
    filter_lorem_ipsum: bool = True
    filter_javascript: bool = True
    filter_curly_bracket: bool = True
    filter_policy: bool = True


class FineWebQualityFilter(_Strict):
    """FineWeb's own rules (Penedo et al. 2024); codes `quality.fineweb.<rule>`."""

    kind: Literal["fineweb_quality"] = "fineweb_quality"
    line_punct_thr: float | None = 0.12
    """Reject when the share of lines ending in terminal punctuation is below this."""
    line_punct_exclude_zero: bool = False
    short_line_thr: float | None = 0.67
    """Reject when the share of lines of at most `short_line_length` characters is above this."""
    short_line_length: int = 30
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
    max_formality: float | None = Field(None, ge=0, le=1)

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
    action: Literal["redact", "reject", "tag"] = "redact"
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
)
TextFilterSpec = Annotated[_TextFilters, Field(discriminator="kind")]
# Text filters in a media chain judge the item's caption or transcript (its `text`); items without pass.
ImageFilterSpec = Annotated[ImageSizeFilter | ImageBlankFilter | _TextFilters, Field(discriminator="kind")]
AudioFilterSpec = Annotated[DurationFilter | AudioSilenceFilter | _TextFilters, Field(discriminator="kind")]
VideoFilterSpec = Annotated[DurationFilter | ImageSizeFilter | _TextFilters, Field(discriminator="kind")]


class FilterSpec(_Strict):
    """The filtered stage: one ordered chain per modality; cheap filters first."""

    text: tuple[TextFilterSpec, ...] = (TextLengthFilter(),)
    image: tuple[ImageFilterSpec, ...] = (ImageSizeFilter(), ImageBlankFilter())
    audio: tuple[AudioFilterSpec, ...] = (DurationFilter(min_s=0.5, max_s=600.0), AudioSilenceFilter())
    video: tuple[VideoFilterSpec, ...] = (DurationFilter(min_s=0.5, max_s=600.0),)


class SelectSpec(_Strict):
    """The selected stage: a seeded sample under a budget, shared by every shard of the version."""

    seed: int = 0
    """Seed of the per-item sampling hash; the same seed gives the same selection."""
    fraction: float = Field(1.0, gt=0, le=1)
    """Each item is sampled with this probability (by a seeded hash of its id)."""
    budget: int | None = Field(None, gt=0)
    """Most items the version selects across all shards; shards selected first claim it first."""
    budget_per_modality: dict[Modality, int] = Field(default_factory=dict)
    """Optional caps per modality, on top of `budget`."""


class TextRecipe(_Strict):
    """Word-level edits of a selected text: adjacent swaps and deletions at `edit_rate`."""

    kind: Literal["word_edits"] = "word_edits"
    edit_rate: float = Field(0.1, gt=0, le=0.5)


class ImageRecipe(_Strict):
    """A horizontal flip and a centre crop keeping `crop_fraction` of each side."""

    kind: Literal["flip_crop"] = "flip_crop"
    crop_fraction: float = Field(0.9, gt=0.3, le=1.0)


class AudioRecipe(_Strict):
    """A gain change in dB and a circular time shift by `shift_fraction` of the clip."""

    kind: Literal["gain_shift"] = "gain_shift"
    gain_db: float = Field(-6.0, ge=-40, le=20)
    shift_fraction: float = Field(0.1, ge=0, lt=1)


class VideoRecipe(_Strict):
    """A frame-rate change (keep every `frame_step`-th frame) and a centre crop."""

    kind: Literal["frame_step_crop"] = "frame_step_crop"
    frame_step: int = Field(2, ge=1, le=10)
    crop_fraction: float = Field(0.9, gt=0.3, le=1.0)


class SynthSpec(_Strict):
    """The synthesized stage: recipes per modality applied to a seeded share of the selected items."""

    seed: int = 0
    fraction: float = Field(0.25, ge=0, le=1)
    """Share of selected items (by a seeded hash of the id) that get a synthetic variant."""
    text: TextRecipe | None = TextRecipe()
    image: ImageRecipe | None = ImageRecipe()
    audio: AudioRecipe | None = AudioRecipe()
    video: VideoRecipe | None = VideoRecipe()


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
        order = ["raw", "deduped", "filtered", "selected", "synthesized"]
        sections = {
            "raw": {"modalities": list(self.modalities), "raw": self.raw.model_dump(mode="json")},
            "deduped": self.dedup.model_dump(mode="json"),
            "filtered": self.filters.model_dump(mode="json"),
            "selected": self.select.model_dump(mode="json"),
            "synthesized": self.synthesize.model_dump(mode="json"),
        }
        return {name: sections[name] for name in order[: order.index(stage) + 1]}

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
    spec = parse_spec(data, str(path))
    if spec.name != path.stem:
        raise SpecError(f"{path}: name: '{spec.name}' must equal the file name '{path.stem}'")
    return spec


def load_specs(folder: Path) -> list[VersionSpec]:
    """Every spec in `folder` (`*.yaml`), sorted by name."""
    if not folder.is_dir():
        raise SpecError(f"{folder}: the versions folder does not exist (set CURATION_VERSIONS)")
    return [load_spec(path) for path in sorted(folder.glob("*.yaml"))]
