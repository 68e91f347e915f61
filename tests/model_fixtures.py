"""Tiny, randomly initialised models that tests build and save themselves: nothing is downloaded."""

from pathlib import Path

import torch

VOCAB = [
    "[PAD]",
    "[UNK]",
    "[CLS]",
    "[SEP]",
    "[MASK]",
    "the",
    "cat",
    "sat",
    "on",
    "mat",
    "a",
    "dog",
    "ran",
    ".",
]


def build_tiny_classifier(folder: Path, num_labels: int = 3) -> Path:
    """Save a randomly initialised two-layer BERT classifier and its WordPiece tokenizer into `folder`."""
    from transformers import BertConfig, BertForSequenceClassification, BertTokenizer

    vocab_folder = folder.parent / f"{folder.name}-vocab"
    vocab_folder.mkdir(parents=True)
    (vocab_folder / "vocab.txt").write_text("\n".join(VOCAB) + "\n", encoding="utf-8")
    # from_pretrained reads vocab.txt in transformers 4 and 5; the 5.x constructor ignores `vocab_file=`.
    tokenizer = BertTokenizer.from_pretrained(vocab_folder, local_files_only=True)
    assert tokenizer.vocab_size == len(VOCAB)
    config = BertConfig(
        vocab_size=len(VOCAB),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=37,
        max_position_embeddings=64,
    )
    config.num_labels = num_labels
    torch.manual_seed(0)
    BertForSequenceClassification(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder
