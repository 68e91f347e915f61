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


#: The open_clip architecture name of the tiny CLIP: its config file's name without `.json`.
TINY_CLIP = "curation-tiny-clip"


def tiny_clip_config(tokenizer_folder: Path) -> dict[str, object]:
    """A two-layer ViT (32 px images, 16 px patches) and a two-layer text tower on the BERT vocabulary
    above, so the token table has 14 rows instead of open_clip's 49,408; text pools at `[SEP]`."""
    return {
        "embed_dim": 24,
        "vision_cfg": {"image_size": 32, "layers": 2, "width": 32, "head_width": 16, "patch_size": 16},
        "text_cfg": {
            "context_length": 16,
            "vocab_size": len(VOCAB),
            "width": 32,
            "heads": 2,
            "layers": 2,
            "hf_tokenizer_name": str(tokenizer_folder),
            "pool_type": "eos",
            "eos_id": VOCAB.index("[SEP]"),
            "pad_id": 0,
        },
    }


def build_tiny_clip(folder: Path, seed: int = 0) -> tuple[Path, Path, Path]:
    """Save the tiny CLIP's model-config JSON, its WordPiece tokenizer and a randomly initialised state
    dict as .safetensors and .pt into `folder`; returns (config, safetensors, pt) paths."""
    import json

    import open_clip
    from safetensors.torch import save_file
    from transformers import BertTokenizer

    folder.mkdir(parents=True, exist_ok=True)
    tokenizer_folder = folder / "tokenizer"
    tokenizer_folder.mkdir()
    (tokenizer_folder / "vocab.txt").write_text("\n".join(VOCAB) + "\n", encoding="utf-8")
    BertTokenizer.from_pretrained(tokenizer_folder, local_files_only=True).save_pretrained(tokenizer_folder)
    config = tiny_clip_config(tokenizer_folder)
    config_path = folder / f"{TINY_CLIP}.json"
    config_path.write_text(json.dumps(config), encoding="utf-8")
    torch.manual_seed(seed)
    model = open_clip.CLIP(**config)
    state = {name: tensor.contiguous() for name, tensor in model.state_dict().items()}
    save_file(state, str(folder / "tiny-clip.safetensors"))
    torch.save(state, folder / "tiny-clip.pt")
    return config_path, folder / "tiny-clip.safetensors", folder / "tiny-clip.pt"
