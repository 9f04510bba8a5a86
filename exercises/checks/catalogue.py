"""The exercises in reading order, and where their stubs are.

Each exercise has a stub, ``exercises/<name>.py`` (installed as ``scratchformers/exercises/<name>.py``), and its
checks, ``exercises/checks/<name>.py``, whose ``EXERCISE`` is what ``scratchformers check <name>`` runs.
"""
from __future__ import annotations

import importlib
from pathlib import Path

from scratchformers.exercises.checks.core import Exercise

ORDER = (
    "bpe",
    "bytebpe",
    "positional",
    "softmax",
    "softmax_backward",
    "layernorm",
    "layernorm_backward",
    "gelu",
    "attention",
    "multihead_attention",
    "gpt2_forward",
    "online_softmax",
    "triton_softmax",
)


def exercise(name: str) -> Exercise:
    """The exercise called ``name`` (one of :data:`ORDER`); ``KeyError`` for any other name."""
    if name not in ORDER:
        raise KeyError(name)
    return importlib.import_module(f"scratchformers.exercises.checks.{name}").EXERCISE


def stub(name: str) -> Path:
    """The shipped stub of exercise ``name``: ``<name>.py`` in the folder above this one (``exercises/`` in a
    checkout, ``scratchformers/exercises/`` when installed from a wheel)."""
    return Path(__file__).resolve().parent.parent / f"{name}.py"
