"""Import ``scratchformers.*`` from this checkout, installed or not.

A GPU machine may get a bare copy of the repository (torch and Triton installed, the project not), and ``pip install
-e .`` needs build tools from the network. pyproject's ``package-dir`` maps the top-level folders onto the package,

    scratchformers.reference -> reference/      scratchformers.kernels -> kernels/
    scratchformers.fast      -> fast/           scratchformers.train   -> train/

and :func:`use_checkout` does the same at import time with a finder placed first on ``sys.meta_path``, so the
benchmark always measures the tree it was started from, even where another copy is installed. ``scratchformers``
itself becomes an empty package over ``scratchformers/``: its ``__init__`` re-exports the tokenizers, whose
dependencies (tiktoken, regex) a GPU machine need not have, and the benchmark needs none of it.
"""
from __future__ import annotations

import importlib.abc
import importlib.machinery
import importlib.util
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FOLDERS = {"scratchformers": "scratchformers", "scratchformers.reference": "reference", "scratchformers.fast": "fast",
           "scratchformers.kernels": "kernels", "scratchformers.train": "train"}


class _EmptyPackage(importlib.abc.Loader):
    """Loads a package without running its ``__init__.py``; its submodules import as usual."""

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> None:
        return None

    def exec_module(self, module: object) -> None:
        return None


class CheckoutFinder(importlib.abc.MetaPathFinder):
    """Finds the five ``scratchformers`` packages in the folders of a checkout at ``root``."""

    def __init__(self, root: Path) -> None:
        self.folders = {name: root / folder for name, folder in FOLDERS.items()}

    def find_spec(self, fullname: str, path: object = None, target: object = None
                  ) -> importlib.machinery.ModuleSpec | None:
        folder = self.folders.get(fullname)
        if folder is None:
            return None
        if fullname == "scratchformers":
            spec = importlib.machinery.ModuleSpec(fullname, _EmptyPackage(), is_package=True)
            spec.submodule_search_locations = [str(folder)]
            return spec
        return importlib.util.spec_from_file_location(fullname, folder / "__init__.py",
                                                      submodule_search_locations=[str(folder)])


def use_checkout(root: Path = ROOT) -> None:
    """Make ``import scratchformers.<package>`` load ``root``'s folders. Call it before anything imports them."""
    loaded = sorted(name for name in sys.modules if name == "scratchformers" or name.startswith("scratchformers."))
    if loaded:
        raise RuntimeError(f"use_checkout() must run before scratchformers is imported; already loaded: {loaded}")
    if not any(isinstance(finder, CheckoutFinder) for finder in sys.meta_path):
        sys.meta_path.insert(0, CheckoutFinder(root))
