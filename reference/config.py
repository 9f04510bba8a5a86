"""Model configuration and the classic presets, from a 6-layer toy to GPT-3.

Field names follow the 'Transformers From Scratch' notebook this library follows (its ``GPT2(**config)``):
``max_len`` (context length), ``emb_dim`` (the width of the token and position embeddings), ``num_layers``,
``num_heads``, ``model_dim`` (the model's hidden width, d_model: the residual stream that every block reads and
writes), ``vocab_size``, ``dropout``, ``weight_decay``. In GPT-2 the embeddings *are* the residual stream, so
``emb_dim`` and ``model_dim`` are two names for one width: give either (the other follows) or both with the same
value. The feed-forward MLP's inner width, d_ff, has its own field, ``mlp_dim``, 4 · d_model by default as in GPT-2.

That notebook's config, ``GPTConfig(max_len=1024, emb_dim=768, num_layers=12, num_heads=12, model_dim=768,
vocab_size=50257, weight_decay=0.1, dropout=0.0)``, is GPT-2 small: 124,439,808 parameters, an MLP 3072 wide.

A note on that notebook's table of sizes. It lists GPT-3 with a width of 2048: that is GPT-3's *context length*.
The 175B model of Brown et al. (2020, table 2.1) has 96 layers, 96 heads of size 128 and d_model = 12288; the
``gpt3`` preset uses the paper's numbers. It also gives GPT-Mini (6 layers, 6 heads, width 192, minGPT's made-up
``gpt-mini``, which publishes no count) as "1.2M parameters". No GPT-2-shaped model of that size has 1.2M: its
blocks alone hold 2,669,568 parameters (1,339,008 even with an MLP only 192 wide, the closest reading), and the
whole ``gpt-mini`` preset, with GPT-2's 50,257-token table and 256 positions, has 12,368,064.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, fields, replace
from typing import Any, Literal

from scratchformers.reference import backends

Positional = Literal["learned", "sinusoidal"]


GPT2_SMALL_WIDTH = 768  # d_model when neither emb_dim nor model_dim is given

# The fields that say what function the weights compute. A checkpoint's weights mean something only with its own
# values of these: some change shapes (emb_dim), others none (num_heads splits the same weights into other heads).
# The remaining fields choose implementations (attention, layernorm, gelu) or training settings (dropout,
# weight_decay), which may change between runs of the same weights.
ARCHITECTURE_FIELDS = ("max_len", "emb_dim", "model_dim", "num_layers", "num_heads", "mlp_dim", "vocab_size", "bias",
                       "layer_norm_eps", "positional")


@dataclass
class GPTConfig:
    """Hyper-parameters of a GPT-2-style decoder.

    ``emb_dim`` and ``model_dim`` both name d_model (see the module docstring): after construction both hold it,
    whichever was given; two different values are an error. ``mlp_dim`` (d_ff) defaults to ``4 * model_dim``.

    ``attention``, ``layernorm`` and ``gelu`` choose *implementations*, not architecture (see backends.py): a
    checkpoint trained with one backend loads into a model built with another, because the ``state_dict`` keys are
    identical.
    """

    max_len: int = 1024
    emb_dim: int | None = None
    num_layers: int = 12
    num_heads: int = 12
    model_dim: int | None = None
    vocab_size: int = 50257
    dropout: float = 0.0
    weight_decay: float = 0.1
    mlp_dim: int | None = None
    bias: bool = True
    layer_norm_eps: float = 1e-5
    positional: Positional = "learned"
    attention: str = "reference"  # "reference", "torch_sdpa" or "fast"
    layernorm: str = "reference"  # "reference", "torch" or "fast"
    gelu: str = "reference"  # "reference" or "torch"

    def __post_init__(self) -> None:
        width = next((w for w in (self.emb_dim, self.model_dim) if w is not None), GPT2_SMALL_WIDTH)
        self.emb_dim = width if self.emb_dim is None else self.emb_dim
        self.model_dim = width if self.model_dim is None else self.model_dim
        for name in ("max_len", "emb_dim", "num_layers", "num_heads", "model_dim", "vocab_size"):
            _check_positive_int(name, getattr(self, name))
        if self.emb_dim != self.model_dim:
            wider = max(self.emb_dim, self.model_dim)
            raise ValueError(
                f"emb_dim ({self.emb_dim}) and model_dim ({self.model_dim}) disagree: both name the model's width "
                f"d_model (GPT-2's embeddings are its residual stream), so give one of them or the same value twice. "
                f"For an MLP {wider} wide, pass mlp_dim={wider} (its default is 4 * d_model)"
            )
        if self.mlp_dim is None:
            self.mlp_dim = 4 * self.model_dim
        _check_positive_int("mlp_dim", self.mlp_dim)
        if self.emb_dim % self.num_heads != 0:
            raise ValueError(
                f"emb_dim ({self.emb_dim}) must be divisible by num_heads ({self.num_heads}) "
                "so that every head gets emb_dim // num_heads dimensions"
            )
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")
        if self.positional not in ("learned", "sinusoidal"):
            raise ValueError(f"positional must be 'learned' or 'sinusoidal', got {self.positional!r}")
        for kind in backends.KINDS:
            backends.check_name(kind, getattr(self, kind))

    @property
    def head_dim(self) -> int:
        """Width of one attention head, d_head = d_model / num_heads."""
        return self.emb_dim // self.num_heads

    def to_dict(self) -> dict[str, Any]:
        """A JSON-friendly copy (used in checkpoints)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> GPTConfig:
        """Inverse of :meth:`to_dict`; unknown keys are a clear error, not silently dropped.

        A record without ``mlp_dim`` is one whose ``model_dim`` is the MLP's width, and is read with that meaning.
        """
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"unknown GPTConfig fields {unknown}; known fields are {sorted(known)}")
        if "model_dim" in values and "mlp_dim" not in values:
            values = {**values, "mlp_dim": values["model_dim"], "model_dim": None}
        return cls(**values)

    def replace(self, **changes: Any) -> GPTConfig:
        """A copy with some fields changed, e.g. ``config.replace(attention="fast")``.

        A new width given as ``emb_dim`` or ``model_dim`` sets d_model (both names), and an MLP width that was the
        default 4 · d_model follows it, unless ``mlp_dim`` is given too.
        """
        width = changes.get("emb_dim", changes.get("model_dim"))
        if width is not None:
            changes = {"emb_dim": width, "model_dim": width, **changes}
            if self.mlp_dim == 4 * self.model_dim:
                changes.setdefault("mlp_dim", None)
        return replace(self, **changes)


def _check_positive_int(name: str, value: Any) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
        raise ValueError(f"GPTConfig.{name} must be a positive integer, got {value!r}")


PRESETS: dict[str, dict[str, Any]] = {
    "gpt-mini": dict(num_layers=6, num_heads=6, emb_dim=192, max_len=256),
    "gpt2": dict(num_layers=12, num_heads=12, emb_dim=768),
    "gpt2-medium": dict(num_layers=24, num_heads=16, emb_dim=1024),
    "gpt2-large": dict(num_layers=36, num_heads=20, emb_dim=1280),
    "gpt2-xl": dict(num_layers=48, num_heads=25, emb_dim=1600),
    "gpt3": dict(num_layers=96, num_heads=96, emb_dim=12288, max_len=2048, vocab_size=50257),
}


def get_config(name: str, **overrides: Any) -> GPTConfig:
    """A preset by name (``gpt-mini``, ``gpt2``, ``gpt2-medium``, ``gpt2-large``, ``gpt2-xl``, ``gpt3``).

    ``overrides`` change single fields; a width given as ``emb_dim`` or ``model_dim`` replaces the preset's d_model.
    """
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; choose one of {', '.join(PRESETS)}")
    preset = dict(PRESETS[name])
    if {"emb_dim", "model_dim"} & set(overrides):
        del preset["emb_dim"]
    return GPTConfig(**{**preset, **overrides})


def count_parameters(config: GPTConfig, non_embedding: bool = False) -> int:
    """Number of trainable parameters, computed from the config alone (no model is built).

    Per layer: two LayerNorms (4·C), attention (C·3C + 3C + C·C + C), MLP (C·F + F + F·C + C) with
    C = d_model (``model_dim``, = ``emb_dim``), F = ``mlp_dim``. Plus the token table V·C (shared with the LM head),
    the learned position table L·C and the final LayerNorm 2·C. ``non_embedding=True`` leaves out the token and
    position tables, as Kaplan et al. do. Biases are counted when ``config.bias``; GPT-2 (124M) has 124,439,808
    parameters in all.
    """
    C, F, L, V = config.model_dim, config.mlp_dim, config.max_len, config.vocab_size
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
