"""Shared test set-up.

Triton decides at kernel-definition time whether to compile for the GPU or to interpret on the CPU, so
``TRITON_INTERPRET=1`` must be in the environment before any module defining a ``@triton.jit`` kernel is imported.
Without CUDA we set it here, first thing, so the kernel parity tests run on CPU tensors in CI.
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
ROOT = Path(__file__).resolve().parent.parent

# The test models are tiny: one thread avoids OpenMP hand-off costs that dominate them on a 2-core CI box.
torch.set_num_threads(1)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Skip tests marked ``gpu`` cleanly when there is no CUDA device."""
    if CUDA:
        return
    skip_gpu = pytest.mark.skip(reason="needs a CUDA GPU")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip_gpu)


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
