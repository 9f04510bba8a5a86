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

This front door only re-exports the most used names (and, in a bare checkout, maps the folders: see below).
"""
from __future__ import annotations

from pathlib import Path

# Where reference/, fast/, kernels/ and train/ come from. Installed (wheel or editable), pyproject's package-dir maps
# them onto scratchformers.*. In a bare checkout (PYTHONPATH=<repo>, nothing installed) the repository root joins this
# package's search path, so scratchformers.kernels is <repo>/kernels; never inside site-packages, where the parent
# folder holds every other installed package. The folders have no __init__.py: from the root, a plain `import
# kernels` (or fast, reference, train) always finds an installed package of that name before the repository's folder.
_ROOT = Path(__file__).resolve().parent.parent
if (_ROOT / "pyproject.toml").is_file() and (_ROOT / "kernels").is_dir() and _ROOT.name not in ("site-packages",
                                                                                                 "dist-packages"):
    __path__.append(str(_ROOT))

from scratchformers.reference.bpe import WordBPE
from scratchformers.reference.bytebpe import ByteLevelBPE
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
