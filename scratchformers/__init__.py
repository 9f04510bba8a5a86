"""scratchformers: GPT-2 built from scratch twice, a readable reference path and a fast Triton path.

The library lives in packages that mirror the repository's folders, each importing only those above it:

- :mod:`scratchformers.reference`: tokenizers, positional encodings, attention, LayerNorm, GELU, GPT-2 (NumPy / torch);
  it stands alone.
- :mod:`scratchformers.kernels`: the Triton kernels themselves, each with its algorithm explained.
- :mod:`scratchformers.fast`: drop-in modules over the kernels, same signatures and state_dict keys, registered as
  the ``"fast"`` backends of the reference model.
- :mod:`scratchformers.train`: data preparation, the training loop, checkpoints, sampling, plots and the command line
  (:mod:`scratchformers.train.cli`).
- :mod:`scratchformers.exercises`: stubs to write yourself, and the checks that ``scratchformers check`` grades them
  with (the test suite's own oracles, tolerances and hypothesis strategies).

This front door only re-exports the most used names (and, in a bare checkout, maps the folders: see below). Its
tokenizers are the fast ones, the trainers to use: ``WordBPE`` is :class:`scratchformers.fast.bpe.WordBPE` and
``ByteLevelBPE`` is :class:`scratchformers.fast.bytebpe.ByteLevelBPE`, subclasses of the reference classes in
:mod:`scratchformers.reference.bpe` and :mod:`scratchformers.reference.bytebpe` (the ones to read) with the same
merges, token ids and files. Both are pure Python (the byte-level one encodes with tiktoken): importing this package
imports neither Triton nor the kernels.
"""
from __future__ import annotations

import importlib.machinery
import importlib.util
import sys
from pathlib import Path

# Where reference/, fast/, kernels/ and train/ come from. From a wheel, pyproject's package-dir has put them inside
# this package. From a checkout (bare, with PYTHONPATH=<repo>, or installed with `pip install -e .`, whose finder
# cannot map folders that have no __init__.py) each of these folders, and nothing else of the repository, is mapped
# here as the subpackage of its name. The folders have no __init__.py: from the root, a plain `import kernels` (or
# fast, reference, train) always finds an installed package of that name before the repository's folder.
_ROOT = Path(__file__).resolve().parent.parent
_FOLDERS = ("reference", "fast", "kernels", "train", "exercises")
if (_ROOT / "pyproject.toml").is_file() and _ROOT.name not in ("site-packages", "dist-packages"):
    for _folder in _FOLDERS:
        _spec = importlib.machinery.ModuleSpec(f"{__name__}.{_folder}", None, is_package=True)
        _spec.submodule_search_locations = [str(_ROOT / _folder)]
        sys.modules[_spec.name] = globals()[_folder] = importlib.util.module_from_spec(_spec)

from scratchformers.fast.bpe import WordBPE
from scratchformers.fast.bytebpe import ByteLevelBPE
from scratchformers.reference.config import GPTConfig, count_parameters, get_config
from scratchformers.reference.generate import generate
from scratchformers.reference.gpt2_encoding import gpt2_encoding
from scratchformers.reference.model import GPT
from scratchformers.train.data import shakespeare

__version__ = "0.1.0"

__all__ = [
    "GPT",
    "ByteLevelBPE",
    "GPTConfig",
    "WordBPE",
    "__version__",
    "count_parameters",
    "generate",
    "get_config",
    "gpt2_encoding",
    "shakespeare",
]
