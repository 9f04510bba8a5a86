"""The library's Triton row softmax, as the exercise asks for it."""
from scratchformers.kernels.softmax import softmax_forward


def softmax(x):
    return softmax_forward(x)
