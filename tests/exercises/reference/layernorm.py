"""The library's NumPy LayerNorm, as the exercise asks for it."""
from scratchformers.reference.np_layernorm import layer_norm_forward


def layer_norm(x, gamma, beta, eps=1e-5):
    return layer_norm_forward(x, gamma, beta, eps)[0]
