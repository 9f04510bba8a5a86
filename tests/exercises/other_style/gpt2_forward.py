"""GPT-2 from scratch in NumPy, einsum everywhere, written without the library's blocks."""
import numpy as np


def gpt2_forward(ids, sd, num_heads):
    def ln(x, name):
        mu, var = x.mean(-1, keepdims=True), x.var(-1, keepdims=True)
        return (x - mu) / np.sqrt(var + 1e-5) * sd[name + ".weight"] + sd[name + ".bias"]

    def linear(x, name):
        return np.einsum("btc,oc->bto", x, sd[name + ".weight"]) + sd[name + ".bias"]

    B, T = ids.shape
    x = sd["transformer.wte.weight"][ids] + sd["transformer.wpe.weight"][:T]
    n_layers = len({key.split(".")[2] for key in sd if key.startswith("transformer.h.")})
    future = np.triu(np.ones((T, T), dtype=bool), 1)
    for layer in range(n_layers):
        p = f"transformer.h.{layer}."
        q, k, v = np.split(linear(ln(x, p + "ln_1"), p + "attn.c_attn"), 3, axis=-1)
        C = q.shape[-1]
        D = C // num_heads
        q, k, v = (t.reshape(B, T, num_heads, D) for t in (q, k, v))
        s = np.einsum("bqhd,bkhd->bhqk", q, k) / np.sqrt(D)
        s = np.where(future, -np.inf, s)
        w = np.exp(s - s.max(-1, keepdims=True))
        w = w / w.sum(-1, keepdims=True)
        y = np.einsum("bhqk,bkhd->bqhd", w, v).reshape(B, T, C)
        x = x + linear(y, p + "attn.c_proj")
        h = linear(ln(x, p + "ln_2"), p + "mlp.c_fc")
        h = 0.5 * h * (1 + np.tanh(np.sqrt(2 / np.pi) * (h + 0.044715 * h**3)))
        x = x + linear(h, p + "mlp.c_proj")
    return np.einsum("btc,vc->btv", ln(x, "transformer.ln_f"), sd["lm_head.weight"])
