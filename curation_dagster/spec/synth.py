"""The synthesized stage's settings: one settings class per recipe kind, the recipe lists per modality."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Final, Literal, TypeAlias, Union

from pydantic import BaseModel, Field, field_validator, model_validator

from curation_dagster.spec.base import StrictSettings, kind_union


class RecipeSettingsBase(StrictSettings):
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


class WordEditsSettings(RecipeSettingsBase):
    """Word-level edits of a selected text: adjacent swaps and deletions at `edit_rate`."""

    kind: Literal["word_edits"] = "word_edits"
    edit_rate: float = Field(0.1, gt=0, le=0.5)


class SentenceShuffleSettings(RecipeSettingsBase):
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


class LLMSettings(RecipeSettingsBase):
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
    def _template_and_tasks_fit_the_mode(self) -> LLMSettings:
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


class FlipCropSettings(RecipeSettingsBase):
    """A horizontal flip and a centre crop keeping `crop_fraction` of each side."""

    kind: Literal["flip_crop"] = "flip_crop"
    crop_fraction: float = Field(0.9, gt=0.3, le=1.0)
    """Share of each side kept around the centre after the mirror."""
    captions: Literal["mirror", "skip", "keep"] = "mirror"
    """What the mirror does to captions. `mirror`: the words that name a side or a turning sense are
    exchanged (left and right, leftmost and rightmost, clockwise and anticlockwise), and a picture whose
    caption mentions writing (a sign, a logo, lettering: mirrored, it reads backwards) is not mirrored.
    `skip`: pictures whose caption has such words or mentions writing are not mirrored. `keep`: captions
    stay as they are (for captions that never describe layout). A picture not mirrored is a rejected
    candidate with its reason."""


class ColourJitterBounds(RecipeSettingsBase):
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


class ColourJitterSettings(ColourJitterBounds):
    """Brightness, contrast, saturation and hue changes, each drawn per parent within its bound."""

    kind: Literal["colour_jitter"] = "colour_jitter"

    @model_validator(mode="after")
    def _changes_something(self) -> ColourJitterSettings:
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


class CompositeSettings(RecipeSettingsBase):
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
    def _template_uses_both_captions(self) -> CompositeSettings:
        _check_template("composite.caption_template", self.template, {"first", "second"}, {"first", "second"})
        return self


class ImageGeneratorSettings(RecipeSettingsBase):
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
    def _prompt_uses_text(self) -> ImageGeneratorSettings:
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


class GainShiftSettings(RecipeSettingsBase):
    """A gain change in dB and a circular time shift by `shift_fraction` of the clip."""

    kind: Literal["gain_shift"] = "gain_shift"
    gain_db: float = Field(-6.0, ge=-40, le=20)
    """Gain in dB (negative is quieter); the result is clipped to full scale."""
    shift_fraction: float = Field(0.1, ge=0, lt=1)
    """Circular shift as a share of the clip's length."""


class NoiseSettings(RecipeSettingsBase):
    """Added Gaussian noise, white or pink, scaled to a target signal-to-noise ratio over the whole clip;
    seeded per parent. A mix that would clip is scaled down as a whole, which keeps the ratio."""

    kind: Literal["noise"] = "noise"
    snr_db: float = Field(20.0, ge=-10, le=80)
    """Signal-to-noise ratio in dB: 10 log10 of the clip's mean power over the noise's."""
    colour: Literal["white", "pink"] = "white"
    """`white`: flat spectrum; `pink`: power falling as 1/f (equal power per octave)."""


class SpeedPitchSettings(RecipeSettingsBase):
    """Speed and pitch changes by resampling (polyphase, band-limited), with a phase-vocoder time stretch
    where pitch and speed must move apart. Without `semitones` the pitch follows the speed, as on tape."""

    kind: Literal["speed_pitch"] = "speed_pitch"
    speed: float = Field(1.1, ge=0.5, le=2.0)
    """Playback speed factor: the clip lasts 1 / speed as long."""
    semitones: float | None = Field(None, ge=-12, le=12)
    """Pitch shift in semitones relative to the parent, whatever the speed; null lets the pitch follow
    the speed (by 12 log2(speed) semitones)."""

    @model_validator(mode="after")
    def _changes_something(self) -> SpeedPitchSettings:
        if self.speed == 1.0 and not self.semitones:
            raise ValueError("speed_pitch: with speed 1 set semitones to a non-zero shift")
        return self


class ReverbSettings(RecipeSettingsBase):
    """Reverberation: the clip convolved with a synthetic impulse response of seeded Gaussian noise whose
    amplitude decays exponentially by 60 dB over `rt60_s`, mixed with the dry clip. The clip keeps its
    length (the tail after its end is cut)."""

    kind: Literal["reverb"] = "reverb"
    rt60_s: float = Field(0.5, ge=0.05, le=5.0)
    """Reverberation time: seconds for the impulse response to fall by 60 dB (0.3-0.6 is a room, 2+ a hall)."""
    wet: float = Field(0.3, gt=0, le=1)
    """Share of the reverberated signal in the mix, at the loudness of the dry clip."""


class TTSSettings(RecipeSettingsBase):
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


class FrameStepCropSettings(RecipeSettingsBase):
    """A frame-rate change (keep every `frame_step`-th frame) and a centre crop."""

    kind: Literal["frame_step_crop"] = "frame_step_crop"
    frame_step: int = Field(2, ge=1, le=10)
    """Keep every n-th frame; the frame rate falls by the same factor."""
    crop_fraction: float = Field(0.9, gt=0.3, le=1.0)
    """Share of each side kept around the centre."""


class PanZoomSettings(RecipeSettingsBase):
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


class FrameAugmentSettings(ColourJitterBounds):
    """Every frame of a clip flipped and colour-jittered alike (one draw per parent, so the clip stays
    consistent), at the same size and frame rate; encoded with MPEG-4 part 2 in MP4, without audio."""

    kind: Literal["frame_augment"] = "frame_augment"
    flip: bool = True
    """Mirror every frame horizontally."""
    captions: Literal["mirror", "skip", "keep"] = "mirror"
    """What the mirror does to captions, as for `flip_crop`: side and turning words exchanged and clips
    whose caption mentions writing not mirrored (`mirror`), clips with such captions not mirrored
    (`skip`), or captions unchanged (`keep`)."""
    brightness: float = Field(0.2, ge=0, le=1)
    """Brightness factor bound."""
    contrast: float = Field(0.2, ge=0, le=1)
    """Contrast factor bound."""
    saturation: float = Field(0.2, ge=0, le=1)
    """Saturation factor bound."""
    hue: float = Field(0.02, ge=0, le=0.5)
    """Hue shift bound as a fraction of the colour circle."""

    @model_validator(mode="after")
    def _changes_something(self) -> FrameAugmentSettings:
        if not (self.flip or self.jitters):
            raise ValueError("frame_augment: set flip or at least one colour bound above 0")
        return self


#: Every recipe kind's settings and the modality of the items it makes: the one list of recipe kinds. The
#: engine's `synth/registry.py` maps the same kinds to recipe classes (a test checks both).
RECIPE_SETTINGS: Final[dict[type[StrictSettings], str]] = {
    WordEditsSettings: "text",
    SentenceShuffleSettings: "text",
    LLMSettings: "text",
    FlipCropSettings: "image",
    ColourJitterSettings: "image",
    CompositeSettings: "image",
    ImageGeneratorSettings: "image",
    GainShiftSettings: "audio",
    NoiseSettings: "audio",
    SpeedPitchSettings: "audio",
    ReverbSettings: "audio",
    TTSSettings: "audio",
    FrameStepCropSettings: "video",
    PanZoomSettings: "video",
    FrameAugmentSettings: "video",
}


def _recipes_of(modality: str) -> Any:
    return kind_union(settings for settings, made in RECIPE_SETTINGS.items() if made == modality)


if TYPE_CHECKING:
    TextRecipeSettings: TypeAlias = Any
    ImageRecipeSettings: TypeAlias = Any
    AudioRecipeSettings: TypeAlias = Any
    VideoRecipeSettings: TypeAlias = Any
    #: The settings of any one recipe.
    RecipeSettings: TypeAlias = Any
else:
    TextRecipeSettings = _recipes_of("text")
    ImageRecipeSettings = _recipes_of("image")
    AudioRecipeSettings = _recipes_of("audio")
    VideoRecipeSettings = _recipes_of("video")
    RecipeSettings = Union[tuple(RECIPE_SETTINGS)]  # noqa: UP007 (a runtime tuple)

#: Recipe kinds that run a model on the accelerator, and the `models` setting each needs.
RECIPE_MODEL_SETTINGS: dict[str, str] = {
    "llm": "models.text_generator",
    "tts": "models.text_to_speech",
    "image_generator": "models.image_generator",
}


class SynthSettings(StrictSettings):
    """The synthesized stage: recipes per modality applied to a seeded share of the selected items."""

    seed: int = 0
    """Seeds which items each recipe takes and, with each parent's id, every draw a recipe makes."""
    fraction: float = Field(0.25, ge=0, le=1)
    """Share of selected items (by a seeded hash of the id) that get a synthetic variant."""
    text: tuple[TextRecipeSettings, ...] = (WordEditsSettings(),)
    """Text recipes, each making one variant per chosen parent: a list, or one recipe as a mapping
    (`{kind: word_edits, edit_rate: 0.1}`); null or `[]` makes none."""
    image: tuple[ImageRecipeSettings, ...] = (FlipCropSettings(),)
    """Recipes that make images (`flip_crop`, `colour_jitter`, `composite`, `image_generator`), in the
    forms `text` accepts."""
    audio: tuple[AudioRecipeSettings, ...] = (GainShiftSettings(),)
    """Recipes that make audio (`gain_shift`, `noise`, `speed_pitch`, `reverb`, `tts`), in the forms
    `text` accepts."""
    video: tuple[VideoRecipeSettings, ...] = (FrameStepCropSettings(),)
    """Recipes that make video (`frame_step_crop`, `pan_zoom`, `frame_augment`), in the forms `text`
    accepts."""

    @field_validator("text", "image", "audio", "video", mode="before")
    @classmethod
    def _one_recipe_or_a_list(cls, value: Any) -> Any:
        if value is None:
            return ()
        return [value] if isinstance(value, dict | BaseModel) else value

    @model_validator(mode="after")
    def _recipe_names_differ(self) -> SynthSettings:
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
        """Whether a recipe runs a model (`RECIPE_MODEL_SETTINGS`), so the stage needs the accelerator."""
        return bool(self.model_settings)

    @property
    def model_settings(self) -> list[str]:
        """The `models` settings the recipes need, in recipe order without repeats."""
        kinds = [recipe.kind for recipe in self.recipes]
        return list(
            dict.fromkeys(RECIPE_MODEL_SETTINGS[kind] for kind in kinds if kind in RECIPE_MODEL_SETTINGS)
        )
