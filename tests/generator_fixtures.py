"""A tiny, randomly initialised GPT-2 and a word-level tokenizer trained here: nothing is downloaded."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

import torch

END_OF_TEXT = "<|endoftext|>"

CORPUS = (
    "rewrite the following text in your own words keep its meaning facts and language",
    "text rewritten read the passage and write questions that it answers",
    "here are some tasks write one new task different from the ones above on the topic of this",
    "the cat sat on the mat and the dog ran in the park",
    "the council approved a plan to turn the old railway yard into a public park with a lake",
    "astronomers detected water vapour in the atmosphere of a planet orbiting a red dwarf star",
    "summarise the article in one sentence list three facts from the report",
    "each on a line starting with followed by its answer passage new",
)
"""Words the tokenizer knows; `Q` and `A` are not among them, so the model can never write `Q:` or `A:`."""


def build_tiny_causal_lm(folder: Path) -> Path:
    """Save a one-layer GPT-2 (32-dimensional) and its word-level fast tokenizer, without a pad token,
    into `folder`."""
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers
    from transformers import GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerFast

    word_level = Tokenizer(models.WordLevel(unk_token="[UNK]"))
    word_level.pre_tokenizer = pre_tokenizers.Whitespace()
    trainer = trainers.WordLevelTrainer(special_tokens=["[UNK]", END_OF_TEXT])
    word_level.train_from_iterator(list(CORPUS), trainer=trainer)
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=word_level, unk_token="[UNK]", eos_token=END_OF_TEXT)
    assert tokenizer.pad_token is None
    config = GPT2Config(
        vocab_size=word_level.get_vocab_size(),
        n_positions=512,
        n_layer=1,
        n_embd=32,
        n_head=2,
        bos_token_id=tokenizer.eos_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    torch.manual_seed(0)
    GPT2LMHeadModel(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


@contextlib.contextmanager
def one_torch_thread() -> Iterator[None]:
    """Run torch on one thread: a tiny model spends its time in thread hand-offs otherwise, badly so on
    a machine shared with other processes."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)
