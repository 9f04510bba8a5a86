"""The library's word BPE, as the exercise asks for it."""
from scratchformers.reference.bpe import get_stats, merge_vocab  # noqa: F401
