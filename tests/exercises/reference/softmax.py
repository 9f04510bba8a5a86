"""The library's NumPy softmax, as the exercise asks for it."""
from scratchformers.reference.np_softmax import softmax_forward


def softmax(x):
    return softmax_forward(x)
