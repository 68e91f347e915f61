"""Model-in-the-loop selection: a proxy model's probability of the wanted class ranks the candidates.

Two proxies: `ProbeProxy`, the logistic-regression probe on text embeddings trained on the seed files and
the active-learning rounds (`active.py`), and `ModelProxy`, a local Hugging Face sequence classifier.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any

import numpy as np

from curation_dagster.errors import ModelNotConfigured
from curation_dagster.models.loading import load_sequence_classifier
from curation_dagster.models.runtime import ModelRuntime
from curation_dagster.select.base import REJECT_NO_TEXT, REJECT_THRESHOLD, Pool, Ranking, Strategy, ordered
from curation_dagster.spec import ProxySettings, SelectSettings, TextClassifierSettings
from curation_dagster.vectors.text import TextEmbedder

if TYPE_CHECKING:
    from curation_dagster.io.lake import Lake
    from curation_dagster.select.probe import Probe

MODEL_SETTING = "select.strategy.model_path"
_RUNTIMES: dict[tuple[str, str], ModelRuntime] = {}
_LOCK = threading.Lock()


class _Proxy(Strategy):
    """Ranks by the proxy's probability of `wanted_label`, highest first, ties broken by id; items below
    `min_probability` are `select.threshold`, items without text `select.no_text`."""

    name = "proxy"

    def __init__(self, settings: SelectSettings | None = None) -> None:
        super().__init__(settings)
        self._known: dict[str, float] = {}

    @property
    def spec(self) -> ProxySettings:
        strategy = self.settings.strategy
        if not isinstance(strategy, ProxySettings):
            raise TypeError(f"{type(self).__name__} needs select.strategy of kind proxy, got {strategy.kind}")
        return strategy

    def bind(self, lake: Lake | None, version: str, runtime: ModelRuntime | None) -> None:
        self._known.clear()

    def score(self, pool: Pool) -> tuple[np.ndarray, np.ndarray]:
        """The wanted class's probability per item (NaN where none) and which items could be scored."""
        raise NotImplementedError

    def probabilities(self, pool: Pool) -> tuple[np.ndarray, np.ndarray]:
        """`score`, computed once per item id: ranking and the metadata see the same items twice."""
        missing = np.asarray(
            [p for p, item in enumerate(pool.ids) if item not in self._known], dtype=np.int64
        )
        if missing.size:
            values, scored = self.score(pool.subset(missing))
            for position, value, ok in zip(missing.tolist(), values.tolist(), scored.tolist(), strict=True):
                self._known[pool.ids[position]] = value if ok else float("nan")
        values = np.asarray([self._known[item] for item in pool.ids], dtype=np.float64)
        return values, ~np.isnan(values)

    def rank(self, pool: Pool, k: int | None) -> Ranking:
        spec = self.spec
        probabilities, scored = self.probabilities(pool)
        excluded: dict[int, tuple[str, str]] = {}
        for position in np.flatnonzero(~scored).tolist():
            excluded[position] = (REJECT_NO_TEXT, "the proxy model needs text")
        if spec.min_probability is not None:
            for position in np.flatnonzero(scored & (probabilities < spec.min_probability)).tolist():
                excluded[position] = (
                    REJECT_THRESHOLD,
                    f"probability of {spec.wanted_label!r} {probabilities[position]:.3f} < "
                    f"min_probability {spec.min_probability}",
                )
        eligible = np.asarray([p for p in range(len(pool)) if p not in excluded], dtype=np.int64)
        return Ranking(ordered(-probabilities, pool.ids, eligible), probabilities, excluded)

    def describe(self, pool: Pool, selected: np.ndarray) -> dict[str, Any]:
        probabilities, scored = self.probabilities(pool)
        chosen = probabilities[selected & scored]
        out: dict[str, Any] = {"wanted_label": self.spec.wanted_label, **self.origin()}
        if scored.any():
            out["mean_probability_pool"] = round(float(probabilities[scored].mean()), 6)
        if chosen.size:
            out["mean_probability_selected"] = round(float(chosen.mean()), 6)
        return out

    def origin(self) -> dict[str, Any]:
        """Which proxy scored, for the metadata."""
        return {}


class ProbeProxy(_Proxy):
    """The probe on text embeddings: the latest active-learning round's, or trained from the seeds (see
    `active.current_probe`). A probe given to the constructor is used as it is (notebooks, tests)."""

    needs = frozenset({"embeddings"})

    def __init__(self, settings: SelectSettings | None = None, probe: Probe | None = None) -> None:
        super().__init__(settings)
        self._given = probe
        self._probe = probe
        self._source = "given" if probe is not None else ""

    def bind(self, lake: Lake | None, version: str, runtime: ModelRuntime | None) -> None:
        super().bind(lake, version, runtime)
        if self._given is None:
            self._load(
                lake, version, TextEmbedder.for_runtime(self.settings.embeddings, runtime or ModelRuntime())
            )

    def _load(self, lake: Lake | None, version: str, embedder: TextEmbedder) -> None:
        from curation_dagster.select.active import current_probe

        self._probe, self._source = current_probe(self.settings, lake, version, embedder)

    @property
    def probe(self) -> Probe:
        """The probe in use; trained from the seeds on the CPU embedder when nothing bound one."""
        if self._probe is None:
            self._load(None, "", TextEmbedder(self.settings.embeddings))
        assert self._probe is not None
        return self._probe

    def score(self, pool: Pool) -> tuple[np.ndarray, np.ndarray]:
        probe = self.probe
        scored = np.zeros(len(pool), dtype=bool) if pool.embedded is None else np.asarray(pool.embedded, bool)
        probabilities = np.full(len(pool), np.nan)
        if scored.any():
            vectors = np.asarray(pool.embeddings)[scored]
            if vectors.shape[1] != probe.dimension:
                raise ModelNotConfigured(
                    f"the proxy probe was trained on {probe.dimension}-dimensional embeddings ({probe.model}) "
                    f"but the items have {vectors.shape[1]}: run the active_learning asset again with the "
                    "current select.embeddings"
                )
            probabilities[scored] = probe.wanted_probability(vectors)
        return probabilities, scored

    def origin(self) -> dict[str, Any]:
        probe = self._probe
        if probe is None:
            return {}
        return {"proxy": "linear probe", "probe": self._source, "probe_classes": list(probe.classes)}


class ModelProxy(_Proxy):
    """A local Hugging Face sequence classifier (`model_path`), run in batches on the runtime's device;
    `wanted_label` names one of its `id2label` labels or an output index."""

    needs = frozenset({"texts"})

    def __init__(self, settings: SelectSettings | None = None) -> None:
        super().__init__(settings)
        self._runtime: ModelRuntime | None = None

    def bind(self, lake: Lake | None, version: str, runtime: ModelRuntime | None) -> None:
        super().bind(lake, version, runtime)
        self._runtime = self._model_runtime(runtime or ModelRuntime())

    def _model_runtime(self, runtime: ModelRuntime) -> ModelRuntime:
        """A runtime whose sequence classifier is `model_path`, loaded once per process and device."""
        path, device = self.spec.model_path, runtime.device
        with _LOCK:
            key = (path, device)
            if key not in _RUNTIMES:
                _RUNTIMES[key] = ModelRuntime(
                    device=device,
                    batch_size=runtime.batch_size,
                    dtype=runtime.dtype,
                    load_sequence_classifier=lambda: load_sequence_classifier(path, device, MODEL_SETTING),
                )
            return _RUNTIMES[key]

    def label_index(self, runtime: ModelRuntime) -> int:
        """The model output that is `wanted_label`: by `label2id`, else a number below `num_labels`."""
        model, _ = runtime.sequence_classifier()
        wanted = self.spec.wanted_label
        names = {str(name): int(index) for name, index in (model.config.label2id or {}).items()}
        count = int(model.config.num_labels)
        if wanted in names:
            return names[wanted]
        if wanted.isdigit() and int(wanted) < max(count, 2):
            return int(wanted)
        raise ModelNotConfigured(
            f"select.strategy.wanted_label {wanted!r} is not a label of {self.spec.model_path} "
            f"(labels: {', '.join(sorted(names, key=names.__getitem__))}, or an index below {count})"
        )

    def score(self, pool: Pool) -> tuple[np.ndarray, np.ndarray]:
        from curation_dagster.filters.model import TextClassifier

        runtime = self._runtime or self._model_runtime(ModelRuntime())
        texts = pool.texts or [None] * len(pool)
        scored = np.asarray([bool(text and text.strip()) for text in texts], dtype=bool)
        probabilities = np.full(len(pool), np.nan)
        if scored.any():
            settings = TextClassifierSettings(
                label_index=self.label_index(runtime), max_tokens=self.spec.max_tokens
            )
            chosen = [str(texts[p]) for p in np.flatnonzero(scored)]
            probabilities[scored] = TextClassifier(settings, runtime).scores(chosen)
        return probabilities, scored

    def origin(self) -> dict[str, Any]:
        return {"proxy": "sequence classifier", "model_path": self.spec.model_path}
