"""GPT-2, the whole model: embeddings, a stack of pre-norm blocks, a final LayerNorm and a tied LM head.

    h₀ = W_te[tokens] + P[positions]              (B, T, C)
    h_l = Block_l(h_{l−1})                         l = 1 … L
    logits = LN_f(h_L) · W_teᵀ                     (B, T, V)   the output layer reuses the token table

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

from scratchformers.reference.block import Block, make_layernorm
from scratchformers.reference.config import GPTConfig
from scratchformers.reference.kv_cache import KVCache
from scratchformers.reference.positional import LearnedPositionalEncoding, SinusoidalPositionalEncoding


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
                ln_f=make_layernorm(config),
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
