"""Text recipes that run a causal language model: paraphrase, question-answer pairs, self-instruct.

CPU pre-processing (prompts from templates, the parent cut to `max_input_tokens`), batched generation on
the runtime's device with one seeded sampler per parent, CPU parsing; output that cannot be parsed is an
`Unusable` outcome, so it becomes a rejected candidate with its reason, never an error.
"""

from __future__ import annotations

import json
import random
import re
from collections.abc import Mapping, Sequence
from typing import Any

from curation_dagster.errors import ModelNotConfigured
from curation_dagster.io.local_files import read_text_items, resolve_local_file
from curation_dagster.models.generation import (
    TEXT_GENERATOR_SETTING,
    SamplingSettings,
    generate_texts,
    truncate_to_tokens,
)
from curation_dagster.models.runtime import ModelRuntime
from curation_dagster.spec import LLMSettings
from curation_dagster.synth.base import ModelRecipe, Outcome, Unusable, Variant

REJECT_EMPTY_OUTPUT = "synth.empty_output"
REJECT_QA_UNPARSEABLE = "synth.qa_unparseable"

_MARKER = re.compile(r"(?:^|(?<=\s))([QA])\s*:", re.IGNORECASE)
_BLANK_LINE = re.compile(r"\n\s*\n")
_TASK_PREFIX = re.compile(r"^\s*(?:(?:\d+|[a-z])[.)]\s*|[-*•]\s*|(?:new\s+)?task\s*:\s*)+", re.IGNORECASE)
_SHOWN_OUTPUT_CHARS = 160


def parse_qa_pairs(output: str) -> list[tuple[str, str]]:
    """The (question, answer) pairs of a model's output: each `Q:` immediately followed by an `A:`; an
    answer ends at the next marker or blank line. Whitespace inside each is collapsed."""
    markers = list(_MARKER.finditer(output))
    pairs: list[tuple[str, str]] = []
    for index in range(len(markers) - 1):
        question_marker, answer_marker = markers[index], markers[index + 1]
        if question_marker.group(1).upper() != "Q" or answer_marker.group(1).upper() != "A":
            continue
        question = " ".join(output[question_marker.end() : answer_marker.start()].split())
        end = markers[index + 2].start() if index + 2 < len(markers) else len(output)
        answer = _BLANK_LINE.split(output[answer_marker.end() : end], maxsplit=1)[0]
        answer = " ".join(answer.split())
        if question and answer:
            pairs.append((question, answer))
    return pairs


def first_instruction(output: str) -> str:
    """The first non-empty line of a model's output, without list numbering or a `Task:` label."""
    for line in output.splitlines():
        cleaned = _TASK_PREFIX.sub("", line).strip()
        if cleaned:
            return cleaned
    return ""


def _shown(output: str) -> str:
    flat = " ".join(output.split())
    return repr(flat if len(flat) <= _SHOWN_OUTPUT_CHARS else flat[: _SHOWN_OUTPUT_CHARS - 1] + "…")


class LanguageModelRecipe(ModelRecipe):
    """An `llm` recipe: prompts a causal language model from `models.text_generator` with each parent."""

    name = "llm"
    modality = "text"
    settings: LLMSettings

    def __init__(self, settings: LLMSettings, runtime: ModelRuntime | None = None) -> None:
        super().__init__(settings, runtime)
        self._seed_tasks: list[str] | None = None

    @property
    def model(self) -> str:
        return self.runtime.text_generator if self.runtime is not None else ""

    @property
    def generator(self) -> str:
        s = self.settings
        recorded: dict[str, Any] = {
            "recipe": self.label,
            "mode": s.mode,
            "model": self.model,
            "prompt": s.template,
            "max_new_tokens": s.max_new_tokens,
            "temperature": s.temperature,
            "top_p": s.top_p,
            "max_input_tokens": s.max_input_tokens,
        }
        if s.mode == "qa":
            recorded["max_pairs"] = s.max_pairs
        if s.mode == "self_instruct":
            recorded.update(
                seed_tasks=len(self.seed_tasks()),
                seed_tasks_file=s.seed_tasks_file,
                tasks_per_prompt=s.tasks_per_prompt,
            )
        return json.dumps(recorded, sort_keys=True)

    def seed_tasks(self) -> list[str]:
        """The self-instruct seed tasks: the spec's, then the file's, read once."""
        if self._seed_tasks is None:
            tasks = [task.strip() for task in self.settings.seed_tasks if task.strip()]
            if self.settings.seed_tasks_file:
                setting = "llm.seed_tasks_file"
                path = resolve_local_file(self.settings.seed_tasks_file, setting)
                tasks += [text.strip() for _, text in read_text_items(path, ("instruction", "text"), setting)]
            self._seed_tasks = tasks
        return self._seed_tasks

    def generate(self, parents: Sequence[Mapping[str, Any]], seeds: Sequence[int]) -> list[Outcome]:
        if not parents:
            return []
        if self.runtime is None:
            raise ModelNotConfigured(
                f"the llm synthesis recipe {self.label} needs a model: run the stage with a ModelRuntime whose "
                f"{TEXT_GENERATOR_SETTING} is a local Hugging Face causal language model folder"
            )
        s = self.settings
        model, tokenizer = self.runtime.causal_lm()
        texts = truncate_to_tokens(
            tokenizer, [str(parent["text"] or "") for parent in parents], s.max_input_tokens
        )
        prompts: list[str] = []
        shown_tasks: list[list[str]] = []
        for text, seed in zip(texts, seeds, strict=True):
            rng = random.Random(seed)
            tasks: list[str] = []
            if s.mode == "self_instruct":
                pool = self.seed_tasks()
                tasks = rng.sample(pool, min(s.tasks_per_prompt, len(pool)))
            listed = "\n".join(f"{number}. {task}" for number, task in enumerate(tasks, start=1))
            prompts.append(s.template.format(text=text, tasks=listed))
            shown_tasks.append(tasks)
        outputs = generate_texts(
            model,
            tokenizer,
            prompts,
            seeds,
            SamplingSettings(s.max_new_tokens, s.temperature, s.top_p),
            device=self.runtime.device,
            batch_size=self.runtime.batch_size,
            dtype=self.runtime.dtype,
        )
        return [
            self._parse(prompt, output, tasks)
            for prompt, output, tasks in zip(prompts, outputs, shown_tasks, strict=True)
        ]

    def _parse(self, prompt: str, output: str, tasks: list[str]) -> Outcome:
        mode = self.settings.mode
        if mode == "qa":
            # A prompt that ends in "Q:" has the model start with the first question.
            primed = ("Q: " if prompt.rstrip().endswith("Q:") else "") + output
            pairs = parse_qa_pairs(primed)[: self.settings.max_pairs]
            if not pairs:
                return Unusable(
                    REJECT_QA_UNPARSEABLE,
                    f"no 'Q:' line followed by an 'A:' line in the model output {_shown(primed)}",
                    primed.strip() or None,
                )
            text = "\n\n".join(f"Q: {question}\nA: {answer}" for question, answer in pairs)
            return Variant(text, None, None, {"qa_pairs": [{"q": q, "a": a} for q, a in pairs]})
        text = first_instruction(output) if mode == "self_instruct" else output.strip()
        if not text:
            return Unusable(REJECT_EMPTY_OUTPUT, f"the model generated no text: {_shown(output)}")
        return Variant(text, None, None, {"seed_tasks": tasks} if tasks else {})
