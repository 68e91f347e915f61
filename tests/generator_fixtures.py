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


#: The characters the tiny VITS tokenizer knows: lower-case letters, space and a little punctuation.
VITS_CHARACTERS = " abcdefghijklmnopqrstuvwxyz'.,?"


def build_tiny_vits(folder: Path, sampling_rate: int = 8000) -> Path:
    """Save a randomly initialised VITS (16-dimensional, one layer of everything, 16x upsampling) and a
    character-level `VitsTokenizer` over `VITS_CHARACTERS` into `folder`."""
    import json

    from transformers import VitsConfig, VitsModel, VitsTokenizer

    folder.mkdir(parents=True, exist_ok=True)
    vocab = {token: index for index, token in enumerate(["<pad>", "<unk>", *VITS_CHARACTERS])}
    (folder / "vocab.json").write_text(json.dumps(vocab), encoding="utf-8")
    tokenizer = VitsTokenizer(
        str(folder / "vocab.json"), add_blank=True, normalize=True, phonemize=False, language=None
    )
    config = VitsConfig(
        vocab_size=len(vocab),
        hidden_size=16,
        num_hidden_layers=1,
        num_attention_heads=2,
        ffn_dim=16,
        flow_size=8,
        spectrogram_bins=17,
        upsample_initial_channel=16,
        upsample_rates=[4, 4],
        upsample_kernel_sizes=[8, 8],
        resblock_kernel_sizes=[3],
        resblock_dilation_sizes=[[1, 3]],
        prior_encoder_num_flows=1,
        prior_encoder_num_wavenet_layers=1,
        posterior_encoder_num_wavenet_layers=1,
        duration_predictor_filter_channels=16,
        duration_predictor_num_flows=1,
        depth_separable_num_layers=1,
        window_size=2,
        sampling_rate=sampling_rate,
    )
    torch.manual_seed(0)
    VitsModel(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


IMAGE_GENERATOR_SOURCE = '''
"""A user's image model, as the `image_generator` recipe sees one: prompts and seeds in, images out."""

import json
from pathlib import Path

import numpy as np

LOG = Path(__file__).with_suffix(".calls.jsonl")


def generate(prompts, seeds, device):
    """Per prompt, noise drawn from its seed, 8 pixels high and as wide as the prompt (at most 32)."""
    with LOG.open("a", encoding="utf-8") as log:
        log.write(json.dumps({"prompts": prompts, "seeds": seeds, "device": device}) + "\\n")
    return [
        np.random.default_rng(seed).integers(0, 256, (8, min(32, len(prompt)), 3), dtype=np.uint8)
        for prompt, seed in zip(prompts, seeds)
    ]


def not_images(prompts, seeds, device):
    """A string for the first prompt, a grey float image for the others."""
    return ["a string"] + [np.full((4, 4), 0.5) for _ in prompts[1:]]


def too_few(prompts, seeds, device):
    return []


def copy_of_png(prompts, seeds, device):
    """The bytes of copy.png beside this file, for every prompt."""
    data = Path(__file__).with_name("copy.png").read_bytes()
    return [data for _ in prompts]
'''


def write_image_generator(folder: Path) -> Path:
    """Write the Python image-generator module above into `folder` and return its path; each call of its
    `generate` appends a line to `<module>.calls.jsonl` beside it."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "painter.py"
    path.write_text(IMAGE_GENERATOR_SOURCE, encoding="utf-8")
    return path


def write_torchscript_generator(path: Path) -> Path:
    """A TorchScript image model: per prompt a 3 x 4 x 6 image of grey level (seed % 256) / 255."""
    from typing import List  # noqa: UP035 - TorchScript reads these annotations

    class Painter(torch.nn.Module):
        def forward(self, prompts: List[str], seeds: List[int]) -> torch.Tensor:  # noqa: UP006
            images = []
            for index in range(len(prompts)):
                images.append(torch.full((3, 4, 6), float(seeds[index] % 256) / 255.0))
            return torch.stack(images)

    torch.jit.script(Painter()).save(str(path))
    return path
