"""Checkpoints: everything needed to continue a run exactly, written so that a crash never leaves a broken file.

A checkpoint is one ``torch.save`` dict of tensors and plain Python values::

    format, version        "scratchformers-checkpoint", 2
    step                   optimizer steps completed
    best_val_loss          the lowest validation loss so far (float, inf before the first evaluation)
    model                  the model's state_dict
    optimizer              AdamW's state_dict (moments, step counts, hyper-parameters)
    scaler                 the fp16 GradScaler's state_dict, or None
    batches                the training batches' generator state (the data position, shared by all processes)
    rng                    per process: torch CPU, CUDA and Python ``random`` states
    train_config           TrainConfig as a dict
    model_config           GPTConfig as a dict
    data                   the dataset's metadata (meta.json: tokenizer record, vocabulary size, ...)

Only tensors and primitive containers are stored, so loading uses ``torch.load(weights_only=True)``, which cannot
run code hidden in a malicious file. Writing goes to a temporary file in the same folder, flushed to disk, then
``os.replace``-d over the target (:func:`~scratchformers.reference.jsonfile.write_atomically`): a rename is atomic,
so ``last.pt`` is always either the old or the new checkpoint, never half of one, even when the process is killed
mid-write.
"""
from __future__ import annotations

import errno
import pickle
import random
import zipfile
from pathlib import Path
from typing import Any

import torch
from torch import nn

from scratchformers.reference.jsonfile import write_atomically

FORMAT = "scratchformers-checkpoint"
VERSION = 2
REQUIRED_KEYS = ("step", "model", "train_config", "model_config")


class CheckpointError(ValueError):
    """A checkpoint file that is corrupt, truncated, not ours, or does not fit the model."""


class DiskFullError(OSError):
    """The disk filled up while a checkpoint was being written; the file it was to replace is untouched."""

    def __str__(self) -> str:
        return str(self.strerror)  # the message alone, without OSError's "[Errno 28]" prefix


def save_checkpoint(path: str | Path, state: dict[str, Any]) -> None:
    """Write ``state`` (plus the format tag) to ``path`` atomically: temp file, fsync, ``os.replace``.

    Raises:
        DiskFullError: the disk filled up; ``path`` still holds the previous checkpoint, whole, and the partial
            temporary file is gone.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        write_atomically(path, lambda handle: torch.save({"format": FORMAT, "version": VERSION, **state}, handle))
    except (OSError, RuntimeError) as error:
        # torch's zip writer reports a short write as "[enforce fail at inline_container.cc:...] unexpected pos
        # ...", not as the OSError underneath; a full disk is the usual cause.
        full = getattr(error, "errno", None) == errno.ENOSPC or "inline_container" in str(error)
        if not full:
            raise
        kept = "the previous checkpoint is intact" if path.is_file() else "nothing was written"
        raise DiskFullError(errno.ENOSPC, f"disk full while writing {path}; {kept}") from None


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Read a checkpoint written by :func:`save_checkpoint`, safely (``weights_only=True``).

    Raises:
        FileNotFoundError: no file at ``path``.
        CheckpointError: the file is truncated/corrupt, holds arbitrary Python objects, or is not a
            scratchformers checkpoint (the message says which, and what to do).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint at {path}")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as error:  # a damaged file fails anywhere in the unpickler, with any exception type
        if is_lightning_checkpoint(path):
            raise CheckpointError(f"{path} is a PyTorch Lightning checkpoint; {LIGHTNING_LOADER}") from None
        if isinstance(error, pickle.UnpicklingError) and "global" in str(error):
            raise CheckpointError(
                f"{path} holds Python objects other than tensors and plain values, so it is not loaded "
                "(weights_only=True refuses to run code from a file). Only load checkpoints written by scratchformers."
            ) from None
        raise CheckpointError(
            f"{path} is corrupt or truncated and cannot be read ({type(error).__name__}: "
            f"{str(error).strip().splitlines()[-1] if str(error).strip() else ''}). "
            "Use the other checkpoint in the folder (best.pt / last.pt) or start again without --resume."
        ) from None
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        if is_lightning_checkpoint(path):
            raise CheckpointError(f"{path} is a PyTorch Lightning checkpoint; {LIGHTNING_LOADER}")
        raise CheckpointError(f"{path} is a readable torch file but not a scratchformers training checkpoint (no "
                              f"format={FORMAT!r} tag); {_what_to_use(state)}")
    if state.get("version") != VERSION:
        raise CheckpointError(
            f"{path} has checkpoint version {state.get('version')!r}; this code reads version {VERSION}"
        )
    missing = [key for key in REQUIRED_KEYS if key not in state]
    if missing:
        raise CheckpointError(f"{path} is missing {missing}; it was not written by the training loop")
    return state


LIGHTNING_LOADER = ("load it in Python with scratchformers.train.lightning.GPT2.load_from_checkpoint(path); the "
                    "scratchformers commands read the checkpoints that `scratchformers train` writes")


OUR_LOADER = ("load it with scratchformers.train.checkpoint.load_checkpoint(path) and model_from_checkpoint(state), "
              "or use it with `scratchformers sample --checkpoint PATH`")


def _pickle_mentions(path: str | Path, marker: bytes) -> bool:
    """Whether ``path`` is a torch zip file whose pickle holds ``marker`` (read without unpickling anything)."""
    try:
        with zipfile.ZipFile(path) as archive:
            pickles = [name for name in archive.namelist() if name.endswith("/data.pkl")]
            return any(marker in archive.read(name) for name in pickles)
    except (OSError, zipfile.BadZipFile):
        return False


def is_lightning_checkpoint(path: str | Path) -> bool:
    """Whether ``path`` is a checkpoint written by PyTorch Lightning (its pickle names Lightning's version key)."""
    return _pickle_mentions(path, b"pytorch-lightning_version")


def is_our_checkpoint(path: str | Path) -> bool:
    """Whether ``path`` is a checkpoint written by :func:`save_checkpoint` (its pickle holds the format tag)."""
    return _pickle_mentions(path, FORMAT.encode())


def _what_to_use(state: Any) -> str:
    """What reads a torch file that is neither our checkpoint nor Lightning's."""
    if isinstance(state, dict) and state and all(isinstance(value, torch.Tensor) for value in state.values()):
        return ("it holds bare weights (a state_dict) without the configuration and tokenizer a checkpoint records; "
                "load them with GPT(config).load_state_dict(...), or for Hugging Face GPT-2 weights use --hf DIR")
    return "for Hugging Face GPT-2 weights use --hf DIR"


def load_model_state(model: nn.Module, state_dict: dict[str, torch.Tensor], source: str = "checkpoint") -> None:
    """``model.load_state_dict`` with the architecture mismatch explained instead of a wall of key names."""
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state_dict))
    unexpected = sorted(set(state_dict) - set(expected))
    wrong_shape = [
        f"{name} {tuple(state_dict[name].shape)} vs model {tuple(tensor.shape)}"
        for name, tensor in expected.items()
        if name in state_dict and state_dict[name].shape != tensor.shape
    ]
    if missing or unexpected or wrong_shape:
        raise CheckpointError(
            f"the {source} does not fit this model: missing {missing[:3]}, unexpected {unexpected[:3]}, "
            f"shape mismatches {wrong_shape[:3]}. Build the model from the checkpoint's model_config "
            "(or keep the same model flags when resuming)."
        )
    model.load_state_dict(state_dict)


def capture_rng_state() -> dict[str, Any]:
    """Every random-number state a training step may consume: torch CPU, every CUDA device, Python's ``random``.

    (NumPy's global generator is not used by the loop, so it is not stored.)
    """
    state: dict[str, Any] = {"torch": torch.get_rng_state(), "python": random.getstate()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng_state(state: dict[str, Any]) -> None:
    """Inverse of :func:`capture_rng_state`."""
    torch.set_rng_state(state["torch"].cpu())
    random.setstate(_as_python_state(state["python"]))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([s.cpu() for s in state["cuda"]])


def _as_python_state(value: Any) -> Any:
    """``random.setstate`` wants tuples all the way down; serialisers may return lists."""
    return tuple(_as_python_state(v) for v in value) if isinstance(value, (list, tuple)) else value


def model_from_checkpoint(state: dict[str, Any], **overrides: Any) -> nn.Module:
    """The trained :class:`GPT` of a loaded checkpoint, in eval mode; ``overrides`` change GPTConfig fields
    that do not touch the weights (``attention``, ``layernorm``, ``gelu``, ``dropout``)."""
    from scratchformers.reference.config import ARCHITECTURE_FIELDS, GPTConfig
    from scratchformers.reference.model import GPT

    fixed = sorted(set(overrides) & set(ARCHITECTURE_FIELDS))
    if fixed:
        raise ValueError(f"model_from_checkpoint: {fixed} define the model the weights belong to and cannot change")
    model = GPT(GPTConfig.from_dict({**state["model_config"], **overrides}))
    load_model_state(model, state["model"])
    return model.eval()
