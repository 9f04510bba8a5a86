"""GPT-2's whole forward pass in NumPy, from the weights of the torch model.

Write ``gpt2_forward(ids, state_dict, num_heads)``: the logits (B, T, V) for token ids (B, T), where ``state_dict``
holds the model's weights as NumPy arrays under GPT-2's names (as torch's model.state_dict() has them):

    transformer.wte.weight (V, C), transformer.wpe.weight (max_len, C)        token and position tables
    transformer.h.<l>.ln_1.weight / .bias (C,)                                for every layer l = 0, 1, ...
    transformer.h.<l>.attn.c_attn.weight (3C, C) / .bias (3C,)                q, k, v in one projection
    transformer.h.<l>.attn.c_proj.weight (C, C) / .bias (C,)
    transformer.h.<l>.ln_2.weight / .bias (C,)
    transformer.h.<l>.mlp.c_fc.weight (4C, C) / .bias (4C,)
    transformer.h.<l>.mlp.c_proj.weight (C, 4C) / .bias (C,)
    transformer.ln_f.weight / .bias (C,), lm_head.weight (V, C)

A weight is stored as torch.nn.Linear stores it, (out_features, in_features): y = x @ W.T + b.

    x = wte[ids] + wpe[:T]                              (B, T, C)
    for each layer:
        x = x + c_proj(attention(split(c_attn(ln_1(x)))))   causal, num_heads heads of D = C / num_heads
        x = x + c_proj(gelu(c_fc(ln_2(x))))                 GELU in its tanh form
    logits = ln_f(x) @ lm_head.weight.T                 (B, T, V)

LayerNorms use eps = 1e-5. To split into heads, reshape (B, T, C) to (B, T, H, D) and transpose to (B, H, T, D).

Build it from your own earlier exercises if you like: this file's folder is on the import path while it is checked,
so ``from attention import attention``, ``from layernorm import layer_norm`` and ``from gelu import gelu`` work.

About 20 lines. The library's version is reference/numpy_gpt.py; try it yourself first. Check it with

    scratchformers check gpt2_forward gpt2_forward.py
"""
import numpy as np


def gpt2_forward(ids: np.ndarray, state_dict: dict[str, np.ndarray], num_heads: int) -> np.ndarray:
    """GPT-2's logits (B, T, V) for token ids (B, T)."""
    raise NotImplementedError
