"""The model's reference attention backend: the exercise's contract is the backend's."""
from scratchformers.reference.attention import scaled_dot_product_attention


def attention(q, k, v, causal=False, attention_mask=None, dropout_p=0.0):
    return scaled_dot_product_attention(q, k, v, causal=causal, attention_mask=attention_mask, dropout_p=dropout_p)
