"""GPT-2 in ~60 lines of NumPy: the whole forward pass and a greedy sampler, built from the ``np_*`` blocks.

    x = wte[ids] + wpe[positions]                  token + position embeddings        (B, T, C)
    for each block:                                pre-norm residual blocks
        x = x + attn(ln_1(x))                      causal multi-head self-attention
        x = x + mlp(ln_2(x))                       c_fc → GELU (tanh) → c_proj
    logits = ln_f(x) @ lm_headᵀ                    lm_head is wte (tied) in GPT-2      (B, T, V)

The parameters are a plain pytree of NumPy arrays named like the torch ``state_dict`` (see
:func:`params_from_state_dict`); linear weights are (out_features, in_features) as in ``torch.nn.Linear``.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from scratchformers.reference.np_attention import multi_head_attention_forward
from scratchformers.reference.np_layernorm import layer_norm_forward
from scratchformers.reference.np_linear import mlp_forward
from scratchformers.reference.np_positional import embedding_forward, sinusoidal_positions

Params = dict[str, Any]


def _layer_norm(x: np.ndarray, p: Params) -> np.ndarray:
    return layer_norm_forward(x, p["weight"], p["bias"])[0]


def _attention(x: np.ndarray, p: Params, num_heads: int) -> np.ndarray:
    c_attn, c_proj = p["c_attn"], p["c_proj"]
    args = (c_attn["weight"], c_attn["bias"], c_proj["weight"], c_proj["bias"])
    return multi_head_attention_forward(x, *args, num_heads=num_heads, causal=True)[0]


def _mlp(x: np.ndarray, p: Params) -> np.ndarray:
    c_fc, c_proj = p["c_fc"], p["c_proj"]
    return mlp_forward(x, c_fc["weight"], c_fc["bias"], c_proj["weight"], c_proj["bias"])[0]


def gpt2_forward(ids: np.ndarray, params: Params, num_heads: int) -> np.ndarray:
    """Logits (B, T, V) for token ids (B, T), or (T, V) for ids (T,)."""
    ids = np.asarray(ids)
    batch = ids[None] if ids.ndim == 1 else ids  # (B, T)
    T, max_len = batch.shape[-1], params["wpe"].shape[0]
    if batch.ndim != 2 or T > max_len:
        raise ValueError(f"ids must be (T,) or (B, T) with T <= max_len = {max_len}, got shape {ids.shape}")
    x = embedding_forward(params["wte"], batch)[0] + params["wpe"][:T]  # (B, T, C)
    for block in params["blocks"]:
        x = x + _attention(_layer_norm(x, block["ln_1"]), block["attn"], num_heads)  # (B, T, C)
        x = x + _mlp(_layer_norm(x, block["ln_2"]), block["mlp"])  # (B, T, C)
    logits = _layer_norm(x, params["ln_f"]) @ params["lm_head"].T  # (B, T, V)
    return logits[0] if ids.ndim == 1 else logits


def generate_greedy(ids: np.ndarray, params: Params, num_heads: int, n_new: int) -> np.ndarray:
    """Append ``n_new`` tokens to ``ids`` (T,) or (B, T), each the argmax of the next-token logits.

    No KV cache: every step reruns the whole (cropped) context, which is simple and slow. The context is cropped
    to its last ``max_len`` tokens. Returns the prompt followed by the new tokens.
    """
    if n_new < 0:
        raise ValueError(f"n_new must be >= 0, got {n_new}")
    ids = np.asarray(ids)
    max_len = params["wpe"].shape[0]
    for _ in range(n_new):
        logits = gpt2_forward(ids[..., -max_len:], params, num_heads)  # (B, T, V) or (T, V)
        next_id = np.argmax(logits[..., -1, :], axis=-1)  # (B,) or ()
        ids = np.concatenate([ids, next_id[..., None].astype(ids.dtype)], axis=-1)
    return ids


def params_from_state_dict(state_dict: dict[str, Any], max_len: int | None = None) -> Params:
    """The NumPy pytree of a torch GPT ``state_dict`` (GPT-2 / nanoGPT key names), arrays keep their dtype.

    Without ``transformer.wpe.weight`` the model uses sinusoidal positions: pass ``max_len`` to build the table.
    Without ``lm_head.weight`` the head is tied to ``transformer.wte.weight``. Missing biases become None.
    """

    def array(key: str, required: bool = True) -> np.ndarray | None:
        if key not in state_dict:
            if required:
                raise ValueError(f"state_dict has no {key!r}; is this a GPT-2-style model?")
            return None
        value = state_dict[key]
        return value.detach().cpu().numpy() if hasattr(value, "detach") else np.asarray(value)

    def affine(prefix: str) -> Params:
        return {"weight": array(prefix + ".weight"), "bias": array(prefix + ".bias", required=False)}

    wte = array("transformer.wte.weight")
    wpe = array("transformer.wpe.weight", required=False)
    if wpe is None:
        if max_len is None:
            raise ValueError("state_dict has no transformer.wpe.weight (sinusoidal positions): pass max_len")
        wpe = sinusoidal_positions(max_len, wte.shape[1], dtype=wte.dtype)
    num_layers = sum(1 for key in state_dict if key.startswith("transformer.h.") and key.endswith(".ln_1.weight"))
    blocks = [
        {
            "ln_1": affine(f"{h}.ln_1"),
            "attn": {"c_attn": affine(f"{h}.attn.c_attn"), "c_proj": affine(f"{h}.attn.c_proj")},
            "ln_2": affine(f"{h}.ln_2"),
            "mlp": {"c_fc": affine(f"{h}.mlp.c_fc"), "c_proj": affine(f"{h}.mlp.c_proj")},
        }
        for h in (f"transformer.h.{i}" for i in range(num_layers))
    ]
    lm_head = array("lm_head.weight", required=False)
    return {
        "wte": wte,
        "wpe": wpe,
        "blocks": blocks,
        "ln_f": affine("transformer.ln_f"),
        "lm_head": wte if lm_head is None else lm_head,
    }
