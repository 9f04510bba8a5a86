"""The readable reference path: every piece of GPT-2 written plainly in NumPy and torch.

Read it top to bottom: tokenizers (``bpe``, ``bytebpe``), positional encodings, attention, LayerNorm, GELU,
blocks, the GPT model and its configs, generation. Each fast component in :mod:`scratchformers.fast` is tested
against the module of the same name here.
"""
