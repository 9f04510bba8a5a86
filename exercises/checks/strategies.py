"""The hypothesis strategies that draw the cases of the parity checks, shared by the test suite and the grader.

Cases are drawn as small integers (shapes, lengths, flags) and a seed; the arrays are made from that random
seed with NumPy. Hypothesis shrinks integers towards their lower bounds, so a failing case shrinks to small shapes and
seed 0: the smallest failing case a learner is shown.
"""
from __future__ import annotations

from hypothesis import strategies as st

seeds = st.integers(0, 2**32 - 1)


def row_shapes(lead_dims: int = 3, lead: int = 4, last: int = 8) -> st.SearchStrategy[tuple[int, ...]]:
    """Shapes (..., N): up to ``lead_dims`` leading axes of 1 … ``lead``, then N in 1 … ``last``."""
    return st.tuples(st.lists(st.integers(1, lead), max_size=lead_dims), st.integers(1, last)).map(
        lambda parts: (*parts[0], parts[1]))


def attention_sizes(batch: int = 3, heads: int = 3, length: int = 6, head_dim: int = 5) -> st.SearchStrategy[dict]:
    """``dict(B, H, Tq, Tk, D)``: batch, heads, query and key lengths (independent: Tq < Tk and Tq > Tk both
    occur), head dimension."""
    return st.fixed_dictionaries(dict(B=st.integers(1, batch), H=st.integers(1, heads), Tq=st.integers(1, length),
                                      Tk=st.integers(1, length), D=st.integers(1, head_dim)))


# Word BPE: a small alphabet gives repeated pairs ("a a a") and ties; "</w>" ends every word.
bpe_words = st.text(alphabet="abcd", min_size=1, max_size=8)
bpe_vocabs = st.dictionaries(bpe_words.map(lambda word: " ".join(word) + " </w>"), st.integers(1, 9),
                             min_size=1, max_size=8)
