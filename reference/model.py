"""GPT-2, the whole forward pass in one file: multi-head attention, the MLP, the pre-norm block, the model.

    h₀ = W_te[tokens] + P[positions]          (B, T, C)   token and position embeddings, C = d_model
    for each of the L blocks:
        h = h + Attention(LN₁(h))              (B, T, C)   each token gathers from the tokens before it
        h = h + MLP(LN₂(h))                    (B, T, C)   each position transformed on its own
    logits = LN_f(h) · W_teᵀ                   (B, T, V)   the output layer reuses the token table

Normalising *before* each sub-layer (pre-norm, rather than after as in the original Transformer) keeps the residual
stream an untouched sum of every layer's contribution, which makes deep stacks train stably without warm-up tricks.

Read this file top to bottom: the attention heads, the MLP, the block, the model. Three pieces have a formula and a
file of their own, and the config chooses their implementation by name (``GPTConfig.attention``, ``.layernorm``,
``.gelu``), which ``backends.build`` (backends.py) looks up. The default, "reference", is the formula in torch:

    piece      default, "reference"                                         alternatives, with the same parameters
    attention  attention.scaled_dot_product_attention                       "torch_sdpa": F.scaled_dot_product_attention
               softmax(Q Kᵀ / √D + M) V, M = −∞ where a key is hidden       (attention.py); "fast": Triton flash
               (the future, padding); also returns the weights              attention (fast/attention.py, kernels/)
    LayerNorm  layernorm.LayerNorm                                          "torch": F.layer_norm (layernorm.py);
               (x − μ) / √(σ² + ε) · γ + β over the last dimension          "fast": Triton (fast/layernorm.py, kernels/)
    GELU       gelu.GELU("tanh")                                            "torch": F.gelu (gelu.py)
               ½ x (1 + tanh(√(2/π) (x + 0.044715 x³)))

Another implementation joins with ``backends.register``. Positional encodings are in positional.py, the KV cache that
sampling uses in kv_cache.py.

Parameter names follow GPT-2 / nanoGPT (``transformer.wte``, ``transformer.h.0.attn.c_attn``, …) so the
weights map one-to-one onto OpenAI's checkpoints. Initialisation follows GPT-2: every weight ~ N(0, 0.02),
biases 0, and the two projections that write into the residual stream (``c_proj``) scaled by 1/√(2·L) so that
the residual's variance does not grow with depth.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from scratchformers.reference import backends
from scratchformers.reference.config import GPTConfig
from scratchformers.reference.kv_cache import KVCache
from scratchformers.reference.positional import LearnedPositionalEncoding, SinusoidalPositionalEncoding


class MultiHeadAttention(nn.Module):
    """Causal multi-head self-attention as in GPT-2: one fused Q/K/V projection, H heads, an output projection.

    ``c_attn`` maps (B, T, C) to (B, T, 3C), split into Q, K, V and reshaped to (B, H, T, D) with D = C / H;
    each head attends independently (``config.attention`` chooses how); heads are concatenated back to (B, T, C)
    and mixed by ``c_proj``.
    """

    def __init__(self, config: GPTConfig) -> None:
        super().__init__()
        self.num_heads = config.num_heads
        self.head_dim = config.head_dim
        self.dropout = config.dropout
        self.backend = config.attention
        self.attend = backends.build("attention", config)  # by default attention.scaled_dot_product_attention
        self.c_attn = nn.Linear(config.model_dim, 3 * config.model_dim, bias=config.bias)
        self.c_proj = nn.Linear(config.model_dim, config.model_dim, bias=config.bias)
        self.resid_dropout = nn.Dropout(config.dropout)

    def split_heads(self, x: torch.Tensor) -> torch.Tensor:
        """(B, T, C) → (B, H, T, D)."""
        B, T, _ = x.shape
        return x.view(B, T, self.num_heads, self.head_dim).transpose(1, 2)

    @staticmethod
    def merge_heads(x: torch.Tensor) -> torch.Tensor:
        """(B, H, T, D) → (B, T, C)."""
        B, H, T, D = x.shape
        return x.transpose(1, 2).contiguous().view(B, T, H * D)

    def forward(
        self,
        x: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        kv_cache: KVCache | None = None,
        layer: int = 0,
        need_weights: bool = False,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Self-attention over ``x`` (B, T, C); returns the output (B, T, C) and, if asked, the weights (B, H, T, T).

        With a ``kv_cache`` the new keys and values are appended to layer ``layer`` of the cache and the queries
        attend to everything cached so far; ``attention_mask`` then covers all cached positions (B, T_cache + T).
        """
        q, k, v = self.c_attn(x).split(x.shape[-1], dim=-1)  # 3 × (B, T, C)
        q, k, v = self.split_heads(q), self.split_heads(k), self.split_heads(v)  # 3 × (B, H, T, D)
        if kv_cache is not None:
            k, v = kv_cache.update(layer, k, v)  # (B, H, T_cache + T, D)
        dropout_p = self.dropout if self.training else 0.0
        # softmax(q kᵀ / √D + M) v in each head, M hiding the future (causal) and the padding (attention_mask)
        out, weights = self.attend(q, k, v, causal=True, attention_mask=attention_mask, dropout_p=dropout_p)
        if need_weights and weights is None:
            raise ValueError(f"attention={self.backend!r} never materialises the attention weights; build the model "
                             "with attention='reference' to look at them")
        y = self.resid_dropout(self.c_proj(self.merge_heads(out)))  # (B, T, C)
        return y, weights if need_weights else None


class MLP(nn.Module):
    """The position-wise feed-forward network: ``c_fc`` (C → F), GELU (tanh form), ``c_proj`` (F → C), dropout.

        MLP(x) = W₂ · GELU(W₁ x + b₁) + b₂,   F = ``mlp_dim`` = 4C in GPT-2

    Every position is transformed independently; attention is the only place where positions exchange information.
    """

    def __init__(self, config: GPTConfig) -> None:
        super().__init__()
        self.c_fc = nn.Linear(config.model_dim, config.mlp_dim, bias=config.bias)
        self.gelu = backends.build("gelu", config)  # by default gelu.GELU("tanh")
        self.c_proj = nn.Linear(config.mlp_dim, config.model_dim, bias=config.bias)
        self.dropout = nn.Dropout(config.dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.dropout(self.c_proj(self.gelu(self.c_fc(x))))  # (B, T, C) → (B, T, F) → (B, T, C)


class Block(nn.Module):
    """One pre-norm block: ``x + Attention(LN₁(x))``, then ``x + MLP(LN₂(x))``."""

    def __init__(self, config: GPTConfig) -> None:
        super().__init__()
        self.ln_1 = backends.build("layernorm", config)  # by default layernorm.LayerNorm
        self.attn = MultiHeadAttention(config)
        self.ln_2 = backends.build("layernorm", config)
        self.mlp = MLP(config)

    def forward(
        self,
        x: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        kv_cache: KVCache | None = None,
        layer: int = 0,
        need_weights: bool = False,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """x (B, T, C) → (B, T, C), plus the attention weights when ``need_weights``."""
        attended, weights = self.attn(
            self.ln_1(x), attention_mask=attention_mask, kv_cache=kv_cache, layer=layer, need_weights=need_weights
        )
        x = x + attended
        x = x + self.mlp(self.ln_2(x))
        return x, weights


class GPT(nn.Module):
    """A GPT-2-style decoder-only transformer built from a :class:`GPTConfig`."""

    def __init__(self, config: GPTConfig) -> None:
        super().__init__()
        self.config = config
        positional = LearnedPositionalEncoding if config.positional == "learned" else SinusoidalPositionalEncoding
        self.transformer = nn.ModuleDict(
            dict(
                wte=nn.Embedding(config.vocab_size, config.emb_dim),
                wpe=positional(config.max_len, config.emb_dim),
                drop=nn.Dropout(config.dropout),
                h=nn.ModuleList(Block(config) for _ in range(config.num_layers)),
                ln_f=backends.build("layernorm", config),
            )
        )
        self.lm_head = nn.Linear(config.emb_dim, config.vocab_size, bias=False)
        self.lm_head.weight = self.transformer.wte.weight  # weight tying: one (V, C) table for input and output
        self.apply(self._init_weights)
        residual_std = 0.02 / math.sqrt(2 * config.num_layers)
        for name, parameter in self.named_parameters():
            if name.endswith("c_proj.weight"):
                nn.init.normal_(parameter, mean=0.0, std=residual_std)

    @staticmethod
    def _init_weights(module: nn.Module) -> None:
        if isinstance(module, nn.Linear):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)

    def num_parameters(self, non_embedding: bool = False) -> int:
        """Trainable parameters (the tied table counted once); ``non_embedding`` drops token/position tables."""
        total = sum(p.numel() for p in self.parameters())
        if non_embedding:
            total -= self.transformer.wte.weight.numel()
            if isinstance(self.transformer.wpe, LearnedPositionalEncoding):
                total -= self.transformer.wpe.weight.numel()
        return total

    def new_kv_cache(self, batch_size: int) -> KVCache:
        """An empty cache sized for this model; its buffers take the dtype and device of the first keys stored
        (the autocast dtype under ``torch.autocast``, else the weights')."""
        c = self.config
        return KVCache(c.num_layers, batch_size, c.num_heads, c.max_len, c.head_dim)

    def _check_input(self, idx: torch.Tensor, past: int) -> None:
        if not isinstance(idx, torch.Tensor) or idx.dim() != 2 or idx.dtype not in (torch.int64, torch.int32):
            raise ValueError("idx must be an integer tensor of token ids with shape (batch, time)")
        if past + idx.shape[1] > self.config.max_len:
            raise ValueError(
                f"sequence of {past + idx.shape[1]} tokens is longer than the model's max_len "
                f"{self.config.max_len}; crop the context (generate() does this for you)"
            )

    def _run(
        self,
        idx: torch.Tensor,
        attention_mask: torch.Tensor | None,
        kv_cache: KVCache | None,
        need_weights: bool,
    ) -> tuple[torch.Tensor, list[torch.Tensor]]:
        past = kv_cache.length if kv_cache is not None else 0
        self._check_input(idx, past)
        positions = torch.arange(past, past + idx.shape[1], device=idx.device)  # (T,)
        x = self.transformer.drop(self.transformer.wte(idx) + self.transformer.wpe(positions))  # (B, T, C)
        attentions = []
        for layer, block in enumerate(self.transformer.h):
            x, weights = block(
                x, attention_mask=attention_mask, kv_cache=kv_cache, layer=layer, need_weights=need_weights
            )
            if need_weights:
                attentions.append(weights)
        if kv_cache is not None:
            kv_cache.advance(idx.shape[1])
        logits = self.lm_head(self.transformer.ln_f(x))  # (B, T, V)
        return logits, attentions

    def forward(
        self,
        idx: torch.Tensor,
        targets: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        kv_cache: KVCache | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Logits (B, T, V) for token ids ``idx`` (B, T), and the mean cross-entropy if ``targets`` are given.

        Targets equal to -1 are ignored (use it for padding). ``attention_mask`` (B, T_total) marks real tokens
        with 1 and padding with 0; with a ``kv_cache`` it spans the cached positions too.
        """
        logits, _ = self._run(idx, attention_mask, kv_cache, need_weights=False)
        loss = None
        if targets is not None:
            loss = F.cross_entropy(logits.view(-1, logits.size(-1)), targets.reshape(-1), ignore_index=-1)
        return logits, loss

    def forward_with_attention(
        self, idx: torch.Tensor, attention_mask: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """Logits and every layer's attention weights, a list of L tensors (B, H, T, T) (reference attention)."""
        return self._run(idx, attention_mask, None, need_weights=True)
