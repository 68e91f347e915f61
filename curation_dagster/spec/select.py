"""The selected stage's settings: `where`, quotas, the strategy (one settings class per kind), the budget."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Final, Literal, TypeAlias

from pydantic import Field, field_validator, model_validator

from curation_dagster.spec.base import Modality, StrictSettings, kind_union
from curation_dagster.spec.embeddings import EmbeddingSettings


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


class SampleSettings(StrictSettings):
    """A seeded sample: each item gets a uniform score from a hash of (`select.seed`, id); items scoring
    below `select.fraction` are kept, lowest scores first, while the budget lasts."""

    kind: Literal["sample"] = "sample"


class TopKSettings(StrictSettings):
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
    def _bounds_in_order(self) -> TopKSettings:
        if self.min_value is not None and self.max_value is not None and self.min_value > self.max_value:
            raise ValueError(
                f"select.strategy.min_value ({self.min_value}) is above max_value ({self.max_value})"
            )
        return self


class DSIRSettings(StrictSettings):
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


class KCenterSettings(StrictSettings):
    """k-center greedy coreset on the text embeddings (a 2-approximation of the smallest covering radius):
    repeatedly add the item farthest from everything selected so far, in this shard and in earlier ones;
    the first item of the version is the one with the lowest seeded score."""

    kind: Literal["k_center"] = "k_center"


class ClusterBalancedSettings(StrictSettings):
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


class ActiveLearningSettings(StrictSettings):
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


class ProxySettings(StrictSettings):
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
    active_learning: ActiveLearningSettings = ActiveLearningSettings()
    """The rounds of the version's `active_learning` asset (probe only)."""

    @model_validator(mode="after")
    def _probe_or_model(self) -> ProxySettings:
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


#: Every strategy kind's settings: the one list of strategy kinds. The engine's `select/selector.py` maps the
#: same kinds to strategy classes (a test checks both).
STRATEGY_SETTINGS: Final = (
    SampleSettings,
    TopKSettings,
    DSIRSettings,
    KCenterSettings,
    ClusterBalancedSettings,
    ProxySettings,
)
if TYPE_CHECKING:
    StrategySettings: TypeAlias = Any
else:
    StrategySettings = kind_union(STRATEGY_SETTINGS)


class QuotaSettings(StrictSettings):
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
    def _shares_or_counts(self) -> QuotaSettings:
        if (self.shares is None) == (self.counts is None):
            raise ValueError("select.quotas: give exactly one of shares or counts")
        values = list((self.shares or self.counts or {}).values())
        if not values or any(value < 0 for value in values) or sum(values) <= 0:
            raise ValueError("select.quotas: shares or counts must be non-negative and not all zero")
        return self

    def weights(self) -> dict[str, float]:
        """Each group's weight for splitting and redistributing budget: shares, or counts."""
        return {group: float(value) for group, value in (self.shares or self.counts or {}).items()}


class SelectSettings(StrictSettings):
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
    quotas: QuotaSettings | None = None
    """Optional groups with their own share of the budget; the strategy runs within each group."""
    strategy: StrategySettings = SampleSettings()
    """How items are ranked within a group: `sample`, `top_k`, `dsir`, `k_center`, `cluster_balanced` or
    `proxy` (a mapping with `kind`, or just the name when it needs no settings)."""
    embeddings: EmbeddingSettings = EmbeddingSettings()
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
    def _settings_fit_the_strategy(self) -> SelectSettings:
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
        if isinstance(self.strategy, ProxySettings):
            return self.strategy.uses_probe
        return self.strategy.kind in ("k_center", "cluster_balanced")

    @property
    def runs_model(self) -> bool:
        """Whether the strategy runs a model on the accelerator: an embedder or a proxy classifier."""
        return self.needs_embeddings or isinstance(self.strategy, ProxySettings)

    @property
    def total_budget(self) -> int | None:
        """The version's budget: `budget`, else the sum of quota counts, else none."""
        if self.budget is not None:
            return self.budget
        if self.quotas is not None and self.quotas.counts is not None:
            return sum(self.quotas.counts.values())
        return None
