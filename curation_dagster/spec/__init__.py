"""The dataset-version spec: one YAML file per version under `versions/`, validated on load.

One module per section, settings classes named `<Thing>Settings`: `version.py` (the spec, loading, raw
settings), `dedup.py`, `filters.py`, `select.py`, `synth.py`, `embeddings.py`, `release.py`, and `base.py`
(what every settings class shares). Every name is importable from here.
"""

from curation_dagster.spec.base import (
    Modality,
    StrictSettings,
    kind_of,
    kind_union,
)
from curation_dagster.spec.dedup import (
    NEAR_DEDUP_PRESETS,
    AudioDedupSettings,
    DedupSettings,
    ExactDedupSettings,
    ImageDedupSettings,
    NearDedupSettings,
    NormalizeSettings,
    SemanticDedupSettings,
    ShingleNormalizeSettings,
    VideoDedupSettings,
)
from curation_dagster.spec.embeddings import (
    EmbeddingSettings,
)
from curation_dagster.spec.filters import (
    FILTER_SETTINGS,
    AestheticSettings,
    AudioFilterSettings,
    AudioQualitySettings,
    AudioSilenceSettings,
    BlocklistSettings,
    C4QualitySettings,
    ClipScoreSettings,
    DecontaminationSettings,
    DurationSettings,
    FilterSettings,
    FineWebQualitySettings,
    GopherQualitySettings,
    GopherRepetitionSettings,
    ImageBlankSettings,
    ImageBlurSettings,
    ImageFilterSettings,
    ImageSizeSettings,
    LanguageSettings,
    NsfwSettings,
    PIIKind,
    PIISettings,
    RegisterSettings,
    TextClassifierSettings,
    TextFilterSettings,
    TextLengthSettings,
    ToxicitySettings,
    VideoFilterSettings,
    VideoMotionSettings,
    VideoQualitySettings,
)
from curation_dagster.spec.release import (
    ReleaseSettings,
)
from curation_dagster.spec.select import (
    STRATEGY_SETTINGS,
    ActiveLearningSettings,
    ClusterBalancedSettings,
    DSIRSettings,
    KCenterSettings,
    ProxySettings,
    QuotaSettings,
    SampleSettings,
    SelectSettings,
    StrategySettings,
    TopKSettings,
)
from curation_dagster.spec.synth import (
    COMPOSITE_CAPTIONS,
    LLM_PROMPTS,
    RECIPE_MODEL_SETTINGS,
    RECIPE_SETTINGS,
    AudioRecipeSettings,
    ColourJitterBounds,
    ColourJitterSettings,
    CompositeSettings,
    FlipCropSettings,
    FrameAugmentSettings,
    FrameStepCropSettings,
    GainShiftSettings,
    ImageGeneratorSettings,
    ImageRecipeSettings,
    LLMSettings,
    NoiseSettings,
    PanZoomSettings,
    RecipeSettings,
    RecipeSettingsBase,
    ReverbSettings,
    SentenceShuffleSettings,
    SpeedPitchSettings,
    SynthSettings,
    TextRecipeSettings,
    TTSSettings,
    VideoRecipeSettings,
    WordEditsSettings,
)
from curation_dagster.spec.version import (
    ENGINE_VERSIONS,
    RawSettings,
    SpecProblem,
    VersionSpec,
    load_spec,
    load_specs,
    load_version_specs,
    parse_spec,
    version_name_of,
)

#: The names of the release before the spec became a package (`TextLengthFilter` for the settings of
#: `filters.text.TextLength`, `SelectSpec`, `TextRecipe` for `word_edits`, ...), kept for one release so
#: notebooks written against them keep working; new code uses the `*Settings` names.
RawSpec = RawSettings
NormalizeSpec = NormalizeSettings
ExactDedupSpec = ExactDedupSettings
ShingleNormalizeSpec = ShingleNormalizeSettings
NearDedupSpec = NearDedupSettings
ImageDedupSpec = ImageDedupSettings
VideoDedupSpec = VideoDedupSettings
AudioDedupSpec = AudioDedupSettings
SemanticDedupSpec = SemanticDedupSettings
DedupSpec = DedupSettings
TextLengthFilter = TextLengthSettings
BlocklistFilter = BlocklistSettings
TextClassifierFilter = TextClassifierSettings
LanguageFilter = LanguageSettings
GopherQualityFilter = GopherQualitySettings
GopherRepetitionFilter = GopherRepetitionSettings
C4QualityFilter = C4QualitySettings
FineWebQualityFilter = FineWebQualitySettings
ToxicityFilter = ToxicitySettings
RegisterFilter = RegisterSettings
PIIFilter = PIISettings
DecontaminationFilter = DecontaminationSettings
ImageSizeFilter = ImageSizeSettings
ImageBlankFilter = ImageBlankSettings
ClipScoreFilter = ClipScoreSettings
AestheticFilter = AestheticSettings
NsfwFilter = NsfwSettings
DurationFilter = DurationSettings
AudioSilenceFilter = AudioSilenceSettings
ImageBlurFilter = ImageBlurSettings
AudioQualityFilter = AudioQualitySettings
VideoQualityFilter = VideoQualitySettings
VideoMotionFilter = VideoMotionSettings
TextFilterSpec = TextFilterSettings
ImageFilterSpec = ImageFilterSettings
AudioFilterSpec = AudioFilterSettings
VideoFilterSpec = VideoFilterSettings
FilterSpec = FilterSettings
SampleStrategy = SampleSettings
TopKStrategy = TopKSettings
DSIRStrategy = DSIRSettings
KCenterStrategy = KCenterSettings
ClusterBalancedStrategy = ClusterBalancedSettings
ActiveLearningSpec = ActiveLearningSettings
ProxyStrategy = ProxySettings
StrategySpec = StrategySettings
QuotaSpec = QuotaSettings
EmbeddingSpec = EmbeddingSettings
SelectSpec = SelectSettings
TextRecipe = WordEditsSettings
SentenceShuffleRecipe = SentenceShuffleSettings
LLMRecipe = LLMSettings
TextRecipeSpec = TextRecipeSettings
ImageRecipe = FlipCropSettings
ColourJitterRecipe = ColourJitterSettings
CompositeRecipe = CompositeSettings
ImageGeneratorRecipe = ImageGeneratorSettings
AudioRecipe = GainShiftSettings
NoiseRecipe = NoiseSettings
SpeedPitchRecipe = SpeedPitchSettings
ReverbRecipe = ReverbSettings
TTSRecipe = TTSSettings
VideoRecipe = FrameStepCropSettings
PanZoomRecipe = PanZoomSettings
FrameAugmentRecipe = FrameAugmentSettings
ImageRecipeSpec = ImageRecipeSettings
AudioRecipeSpec = AudioRecipeSettings
VideoRecipeSpec = VideoRecipeSettings
SynthSpec = SynthSettings
MODEL_RECIPES = RECIPE_MODEL_SETTINGS

__all__ = [
    "COMPOSITE_CAPTIONS",
    "ENGINE_VERSIONS",
    "FILTER_SETTINGS",
    "LLM_PROMPTS",
    "MODEL_RECIPES",
    "NEAR_DEDUP_PRESETS",
    "RECIPE_MODEL_SETTINGS",
    "RECIPE_SETTINGS",
    "STRATEGY_SETTINGS",
    "ActiveLearningSettings",
    "ActiveLearningSpec",
    "AestheticFilter",
    "AestheticSettings",
    "AudioDedupSettings",
    "AudioDedupSpec",
    "AudioFilterSettings",
    "AudioFilterSpec",
    "AudioQualityFilter",
    "AudioQualitySettings",
    "AudioRecipe",
    "AudioRecipeSettings",
    "AudioRecipeSpec",
    "AudioSilenceFilter",
    "AudioSilenceSettings",
    "BlocklistFilter",
    "BlocklistSettings",
    "C4QualityFilter",
    "C4QualitySettings",
    "ClipScoreFilter",
    "ClipScoreSettings",
    "ClusterBalancedSettings",
    "ClusterBalancedStrategy",
    "ColourJitterBounds",
    "ColourJitterRecipe",
    "ColourJitterSettings",
    "CompositeRecipe",
    "CompositeSettings",
    "DSIRSettings",
    "DSIRStrategy",
    "DecontaminationFilter",
    "DecontaminationSettings",
    "DedupSettings",
    "DedupSpec",
    "DurationFilter",
    "DurationSettings",
    "EmbeddingSettings",
    "EmbeddingSpec",
    "ExactDedupSettings",
    "ExactDedupSpec",
    "FilterSettings",
    "FilterSpec",
    "FineWebQualityFilter",
    "FineWebQualitySettings",
    "FlipCropSettings",
    "FrameAugmentRecipe",
    "FrameAugmentSettings",
    "FrameStepCropSettings",
    "GainShiftSettings",
    "GopherQualityFilter",
    "GopherQualitySettings",
    "GopherRepetitionFilter",
    "GopherRepetitionSettings",
    "ImageBlankFilter",
    "ImageBlankSettings",
    "ImageBlurFilter",
    "ImageBlurSettings",
    "ImageDedupSettings",
    "ImageDedupSpec",
    "ImageFilterSettings",
    "ImageFilterSpec",
    "ImageGeneratorRecipe",
    "ImageGeneratorSettings",
    "ImageRecipe",
    "ImageRecipeSettings",
    "ImageRecipeSpec",
    "ImageSizeFilter",
    "ImageSizeSettings",
    "KCenterSettings",
    "KCenterStrategy",
    "LLMRecipe",
    "LLMSettings",
    "LanguageFilter",
    "LanguageSettings",
    "Modality",
    "NearDedupSettings",
    "NearDedupSpec",
    "NoiseRecipe",
    "NoiseSettings",
    "NormalizeSettings",
    "NormalizeSpec",
    "NsfwFilter",
    "NsfwSettings",
    "PIIFilter",
    "PIIKind",
    "PIISettings",
    "PanZoomRecipe",
    "PanZoomSettings",
    "ProxySettings",
    "ProxyStrategy",
    "QuotaSettings",
    "QuotaSpec",
    "RawSettings",
    "RawSpec",
    "RecipeSettings",
    "RecipeSettingsBase",
    "RegisterFilter",
    "RegisterSettings",
    "ReleaseSettings",
    "ReverbRecipe",
    "ReverbSettings",
    "SampleSettings",
    "SampleStrategy",
    "SelectSettings",
    "SelectSpec",
    "SemanticDedupSettings",
    "SemanticDedupSpec",
    "SentenceShuffleRecipe",
    "SentenceShuffleSettings",
    "ShingleNormalizeSettings",
    "ShingleNormalizeSpec",
    "SpecProblem",
    "SpeedPitchRecipe",
    "SpeedPitchSettings",
    "StrategySettings",
    "StrategySpec",
    "StrictSettings",
    "SynthSettings",
    "SynthSpec",
    "TTSRecipe",
    "TTSSettings",
    "TextClassifierFilter",
    "TextClassifierSettings",
    "TextFilterSettings",
    "TextFilterSpec",
    "TextLengthFilter",
    "TextLengthSettings",
    "TextRecipe",
    "TextRecipeSettings",
    "TextRecipeSpec",
    "TopKSettings",
    "TopKStrategy",
    "ToxicityFilter",
    "ToxicitySettings",
    "VersionSpec",
    "VideoDedupSettings",
    "VideoDedupSpec",
    "VideoFilterSettings",
    "VideoFilterSpec",
    "VideoMotionFilter",
    "VideoMotionSettings",
    "VideoQualityFilter",
    "VideoQualitySettings",
    "VideoRecipe",
    "VideoRecipeSettings",
    "VideoRecipeSpec",
    "WordEditsSettings",
    "kind_of",
    "kind_union",
    "load_spec",
    "load_specs",
    "load_version_specs",
    "parse_spec",
    "version_name_of",
]
