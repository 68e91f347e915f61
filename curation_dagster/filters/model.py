"""Filters that run a model on the accelerator: scoring in batches, deciding against a threshold."""

from __future__ import annotations

from typing import ClassVar

import pyarrow as pa

from curation_dagster.errors import ModelNotConfigured
from curation_dagster.filters.base import Filter, Verdicts
from curation_dagster.models.device import autocast
from curation_dagster.models.runtime import ModelRuntime
from curation_dagster.spec import TextClassifierSettings


class TextClassifier(Filter):
    """A Hugging Face sequence classifier (e.g. a toxicity model) scores each text; the probability of
    `label_index` above `max_score` rejects. Texts are batched by length to waste little padding."""

    name = "text_classifier"
    reads_text = True
    score_fields: ClassVar = [pa.field("text_classifier_score", pa.float64())]
    needs_accelerator = True

    def __init__(self, settings: TextClassifierSettings, runtime: ModelRuntime | None = None) -> None:
        self.settings = settings
        self.runtime = runtime

    def scores(self, texts: list[str]) -> list[float]:
        """The probability of the configured label for each text, in input order."""
        if self.runtime is None:
            raise ModelNotConfigured(
                "the text_classifier filter runs a model: give the chain a ModelRuntime (the Dagster asset "
                "builds one from the accelerator and models resources)"
            )
        import torch

        model, tokenizer = self.runtime.sequence_classifier()
        labels = int(model.config.num_labels)
        if not 0 <= self.settings.label_index < max(labels, 2):
            raise ModelNotConfigured(
                f"text_classifier.label_index is {self.settings.label_index} but the model has {labels} labels"
            )
        order = sorted(range(len(texts)), key=lambda index: len(texts[index]))
        result = [0.0] * len(texts)
        device = self.runtime.device
        for start in range(0, len(order), self.runtime.batch_size):
            batch = order[start : start + self.runtime.batch_size]
            encoded = tokenizer(
                [texts[index] for index in batch],
                truncation=True,
                max_length=self.settings.max_tokens,
                padding=True,
                return_tensors="pt",
            ).to(device)
            with torch.inference_mode(), autocast(device, self.runtime.dtype):
                logits = model(**encoded).logits.float()
            probabilities = logits.sigmoid() if labels == 1 else logits.softmax(dim=-1)
            column = 0 if labels == 1 else self.settings.label_index
            for index, value in zip(batch, probabilities[:, column].tolist(), strict=True):
                result[index] = float(value)
        return result

    def evaluate(self, table: pa.Table) -> Verdicts:
        texts = [text or "" for text in table.column("text").to_pylist()]
        scores = self.scores(texts)
        reasons: list[str | None] = []
        details: list[str | None] = []
        for score in scores:
            if score > self.settings.max_score:
                reasons.append(self.code("above_threshold"))
                details.append(f"score {score:.3f} > {self.settings.max_score}")
            else:
                reasons.append(None)
                details.append(None)
        return Verdicts({"text_classifier_score": list(scores)}, reasons, details)
