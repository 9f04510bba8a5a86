"""Shared test set-up.

Triton decides at kernel-definition time whether to compile for the GPU or to interpret on the CPU, so
``TRITON_INTERPRET=1`` must be in the environment before any module defining a ``@triton.jit`` kernel is imported.
Without CUDA we set it here, first thing, so the kernel parity tests run on CPU tensors in CI.

Two markers follow from that choice, made once per test process:

- ``gpu``: needs CUDA; skipped without it.
- ``interpreter``: runs the Triton kernels on CPU tensors, which only the interpreter can do; skipped where CUDA is
  present and the interpreter is off (the kernels were compiled for the GPU, and ``test_gpu_parity.py`` checks them
  there). ``CUDA_VISIBLE_DEVICES= python -m pytest`` runs the whole CPU suite on such a machine, as CI does.
"""
from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import torch

if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")

import pytest  # noqa: E402

CUDA = torch.cuda.is_available()
INTERPRETING = os.environ.get("TRITON_INTERPRET") == "1"
ROOT = Path(__file__).resolve().parent.parent
NEEDS_INTERPRETER = ("runs the Triton kernels on CPU tensors, which needs the interpreter; here CUDA is present and "
                     "the kernels are compiled for the GPU (tests/test_gpu_parity.py checks them there). Run these "
                     "as CI does with `CUDA_VISIBLE_DEVICES= python -m pytest`")

# The test models are tiny: one thread avoids OpenMP hand-off costs that dominate them on a 2-core CI box.
torch.set_num_threads(1)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Skip ``gpu`` tests without CUDA and ``interpreter`` tests without the interpreter, each with its reason."""
    skips = {"gpu": None if CUDA else pytest.mark.skip(reason="needs a CUDA GPU"),
             "interpreter": None if INTERPRETING else pytest.mark.skip(reason=NEEDS_INTERPRETER)}
    for item in items:
        for marker, skip in skips.items():
            if skip is not None and marker in item.keywords:
                item.add_marker(skip)


@pytest.fixture(scope="session")
def char_data(tmp_path_factory: pytest.TempPathFactory) -> str:
    """The tiny Shakespeare prepared with character tokens, shared read-only by the training tests."""
    from scratchformers.train.prepare_shakespeare import prepare_shakespeare

    path = tmp_path_factory.mktemp("data") / "shakespeare_char"
    prepare_shakespeare(path, tokenizer="char", variant="tiny")
    return str(path)


@pytest.fixture(scope="session")
def bare_checkout(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the working tree as git sees it (tracked files and new ones not ignored; what a GPU machine gets),
    with nothing installed from it: run things from it with ``PYTHONPATH=<copy>``. Tests must not modify it."""
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=ROOT,
                            capture_output=True, check=True).stdout.split(b"\0")
    copy = tmp_path_factory.mktemp("bare") / "checkout"
    for name in filter(None, (entry.decode() for entry in listed)):
        source = ROOT / name
        if source.is_file():  # a tracked file deleted in the working tree is not copied
            (copy / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source, copy / name)
    return copy
