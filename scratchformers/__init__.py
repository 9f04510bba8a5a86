"""scratchformers: GPT-2 built from scratch twice, a readable reference path and a fast Triton path.

The library lives in four packages that mirror the repository's folders, each importing only those above it:

- :mod:`scratchformers.reference`: tokenizers, positional encodings, attention, LayerNorm, GELU, GPT-2 (NumPy / torch);
  it stands alone.
- :mod:`scratchformers.kernels`: the Triton kernels themselves, each with its algorithm explained.
- :mod:`scratchformers.fast`: drop-in modules over the kernels, same signatures and state_dict keys, registered as
  the ``"fast"`` backends of the reference model.
- :mod:`scratchformers.train`: data preparation, the training loop, checkpoints, sampling, plots and the command line
  (:mod:`scratchformers.train.cli`).

This front door only re-exports the most used names (and, in a bare checkout, maps the folders: see below).
"""
from __future__ import annotations

import importlib.machinery
import importlib.util
import sys
from pathlib import Path

# Where reference/, fast/, kernels/ and train/ come from. Installed (a wheel, or editable), pyproject's package-dir
# maps them onto scratchformers.*. In a bare checkout (PYTHONPATH=<repo>, nothing installed from it) each of these
# folders, and nothing else of the repository, is mapped here as the subpackage of its name. The folders have no
# __init__.py: from the root, a plain `import kernels` (or fast, reference, train) always finds an installed package
# of that name before the repository's folder.
_ROOT = Path(__file__).resolve().parent.parent
_FOLDERS = ("reference", "fast", "kernels", "train")


def _map_bare_checkout_folders() -> None:
    if not (_ROOT / "pyproject.toml").is_file() or _ROOT.name in ("site-packages", "dist-packages"):
        return
    for folder in _FOLDERS:
        name, path = f"{__name__}.{folder}", str(_ROOT / folder)
        installed = importlib.util.find_spec(name)  # an installed mapping (editable) of this very checkout?
        if installed is not None and list(installed.submodule_search_locations or []) == [path]:
            continue
        spec = importlib.machinery.ModuleSpec(name, None, is_package=True)
        spec.submodule_search_locations = [path]
        sys.modules[name] = globals()[folder] = importlib.util.module_from_spec(spec)


_map_bare_checkout_folders()

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
