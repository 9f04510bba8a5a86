"""Attention in torch with einsum, masked_fill(-inf) and nan_to_num for the rows that see nothing."""
import math

import torch
import torch.nn.functional as F


def attention(q, k, v, causal=False, attention_mask=None, dropout_p=0.0):
    Tq, Tk = q.shape[-2], k.shape[-2]
    scores = torch.einsum("bhqd,bhkd->bhqk", q, k) / math.sqrt(q.shape[-1])
    hidden = torch.zeros(Tq, Tk, dtype=torch.bool, device=q.device)
    if causal:
        hidden = torch.ones(Tq, Tk, dtype=torch.bool, device=q.device).triu(Tk - Tq + 1)
    if attention_mask is not None:
        hidden = hidden | (attention_mask == 0)[:, None, None, :]
    weights = torch.softmax(scores.masked_fill(hidden, float("-inf")), dim=-1).nan_to_num(0.0)
    return torch.einsum("bhqk,bhkd->bhqd", F.dropout(weights, dropout_p), v), weights
