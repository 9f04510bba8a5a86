"""scratchformers: GPT-2 built from scratch twice, a readable reference path and a fast Triton path.

The library lives in four packages that mirror the repository's folders:

- :mod:`scratchformers.reference`: tokenizers, positional encodings, attention, LayerNorm, GELU, GPT-2 (NumPy / torch).
- :mod:`scratchformers.fast`: drop-in modules over the Triton kernels, same signatures and state_dict keys.
- :mod:`scratchformers.kernels`: the Triton kernels themselves, each with its algorithm explained.
- :mod:`scratchformers.train`: data preparation, the training loop, checkpoints, sampling, plots.

This front-door module only re-exports the most used names; the CLI lives in :mod:`scratchformers.cli`.
"""
from __future__ import annotations

from scratchformers.encoding import gpt2_encoding

__version__ = "0.1.0"

__all__ = ["__version__", "gpt2_encoding"]
