"""Model configuration and the classic presets, from a 6-layer toy to GPT-3.

Field names follow the project's original notebook: ``max_len`` (context length), ``emb_dim`` (the width of the
token embeddings and of the residual stream, d_model), ``num_layers``, ``num_heads``, ``model_dim`` (the inner width
of the feed-forward MLP, d_ff = 4 · d_model in GPT-2), ``vocab_size``, ``dropout``, ``weight_decay``.

A note on GPT-3: the original notebook's table listed GPT-3 with a width of 2048. That is wrong: 2048 is GPT-3's
*context length*. The 175B model of Brown et al. (2020, table 2.1) has 96 layers, 96 heads of size 128 and
d_model = 12288. The ``gpt3`` preset below uses the paper's numbers.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, fields, replace
from typing import Any, Literal

AttentionBackend = Literal["reference", "torch_sdpa", "fast"]
LayerNormBackend = Literal["reference", "torch", "fast"]
Positional = Literal["learned", "sinusoidal"]


@dataclass
class GPTConfig:
    """Hyper-parameters of a GPT-2-style decoder.

    The three string fields choose *implementations*, not architecture: a checkpoint trained with one
    backend loads into a model built with another, because the ``state_dict`` keys are identical.
    """

    max_len: int = 1024
    emb_dim: int = 768
    num_layers: int = 12
    num_heads: int = 12
    model_dim: int | None = None
    vocab_size: int = 50257
    dropout: float = 0.0
    weight_decay: float = 0.1
    bias: bool = True
    layer_norm_eps: float = 1e-5
    positional: Positional = "learned"
    attention: AttentionBackend = "reference"
    layernorm: LayerNormBackend = "reference"

    def __post_init__(self) -> None:
        if self.model_dim is None:
            self.model_dim = 4 * self.emb_dim
        for name in ("max_len", "emb_dim", "num_layers", "num_heads", "model_dim", "vocab_size"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                raise ValueError(f"GPTConfig.{name} must be a positive integer, got {value!r}")
        if self.emb_dim % self.num_heads != 0:
            raise ValueError(
                f"emb_dim ({self.emb_dim}) must be divisible by num_heads ({self.num_heads}) "
                "so that every head gets emb_dim // num_heads dimensions"
            )
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")
        if self.positional not in ("learned", "sinusoidal"):
            raise ValueError(f"positional must be 'learned' or 'sinusoidal', got {self.positional!r}")
        if self.attention not in ("reference", "torch_sdpa", "fast"):
            raise ValueError(f"attention must be 'reference', 'torch_sdpa' or 'fast', got {self.attention!r}")
        if self.layernorm not in ("reference", "torch", "fast"):
            raise ValueError(f"layernorm must be 'reference', 'torch' or 'fast', got {self.layernorm!r}")

    @property
    def head_dim(self) -> int:
        """Width of one attention head, d_head = d_model / n_heads."""
        return self.emb_dim // self.num_heads

    def to_dict(self) -> dict[str, Any]:
        """A JSON-friendly copy (used in checkpoints)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> GPTConfig:
        """Inverse of :meth:`to_dict`; unknown keys are a clear error, not silently dropped."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"unknown GPTConfig fields {unknown}; known fields are {sorted(known)}")
        return cls(**values)

    def replace(self, **changes: Any) -> GPTConfig:
        """A copy with some fields changed, e.g. ``config.replace(attention="fast")``."""
        return replace(self, **changes)


PRESETS: dict[str, dict[str, Any]] = {
    "gpt-mini": dict(num_layers=6, num_heads=6, emb_dim=192, max_len=256),
    "gpt2": dict(num_layers=12, num_heads=12, emb_dim=768),
    "gpt2-medium": dict(num_layers=24, num_heads=16, emb_dim=1024),
    "gpt2-large": dict(num_layers=36, num_heads=20, emb_dim=1280),
    "gpt2-xl": dict(num_layers=48, num_heads=25, emb_dim=1600),
    "gpt3": dict(num_layers=96, num_heads=96, emb_dim=12288, max_len=2048, vocab_size=50257),
}


def get_config(name: str, **overrides: Any) -> GPTConfig:
    """A preset by name (``gpt-mini``, ``gpt2``, ``gpt2-medium``, ``gpt2-large``, ``gpt2-xl``, ``gpt3``)."""
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; choose one of {', '.join(PRESETS)}")
    return GPTConfig(**{**PRESETS[name], **overrides})


def count_parameters(config: GPTConfig, non_embedding: bool = False) -> int:
    """Number of trainable parameters, computed from the config alone (no model is built).

    Per layer: two LayerNorms (4·C), attention (C·3C + 3C + C·C + C), MLP (C·F + F + F·C + C) with C = emb_dim,
    F = model_dim. Plus the token table V·C (shared with the LM head), the learned position table L·C and the
    final LayerNorm 2·C. ``non_embedding=True`` leaves out the token and position tables, as Kaplan et al. do.
    Biases are counted when ``config.bias``; GPT-2 (124M) has 124,439,808 parameters in all.
    """
    C, F, L, V = config.emb_dim, config.model_dim, config.max_len, config.vocab_size
    b = 1 if config.bias else 0
    norms = 2 * (2 * C if config.bias else C)
    attention = C * 3 * C + b * 3 * C + C * C + b * C
    mlp = C * F + b * F + F * C + b * C
    per_layer = norms + attention + mlp
    final_norm = 2 * C if config.bias else C
    body = config.num_layers * per_layer + final_norm
    if non_embedding:
        return body
    positions = L * C if config.positional == "learned" else 0
    return body + V * C + positions
