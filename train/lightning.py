"""The same GPT, optimizer and schedule as a PyTorch Lightning module (the optional ``lightning`` extra).

    import lightning.pytorch as pl
    from scratchformers import generate
    from scratchformers.train.lightning import GPT2

    model = GPT2(max_len=256, emb_dim=192, num_layers=6, num_heads=6, vocab_size=50257, max_steps=5000)
    trainer = pl.Trainer(max_steps=5000, accumulate_grad_batches=10, gradient_clip_val=1.0)
    trainer.fit(model, train_loader)                # batches of (x, y), e.g. TokenWindowDataset
    model = GPT2.load_from_checkpoint(trainer.checkpoint_callback.best_model_path)
    print(generate(model, "ROMEO:", max_new_tokens=100, tokenizer=tokenizer))  # GPT2 is a GPT

The snippets of the 'Transformers From Scratch' notebook this library follows (``GPT2(**config)`` with its GPT-2
small config, ``pl.Trainer(...)``, ``trainer.fit``, ``GPT2.load_from_checkpoint`` and ``generate``) run as written in
tests/test_seed.py, but for one argument: its ``strategy="dp"`` (DataParallel) is refused by Lightning 2, which
removed it, and the test runs ``strategy="auto"``. On several GPUs write ``strategy="ddp"`` in a script, or
``strategy="ddp_notebook"`` in a notebook.

Lightning runs the loop (accumulation, clipping, precision, devices, checkpoints); this module only says what one
step computes and which optimizer and schedule to use: :func:`~scratchformers.train.optim.make_optimizer`'s AdamW
(or Muon beside AdamW, ``optimizer="muon"``) with the schedule of :func:`~scratchformers.train.optim.lr_factor`
(warmup, then cosine or ``schedule="wsd"``), stepped once per optimizer step.
"""
from __future__ import annotations

import pickle
from dataclasses import fields
from pathlib import Path
from typing import IO, Any

import torch

try:
    import lightning.pytorch as pl
except ImportError as error:  # an optional extra: say how to get it instead of a bare ModuleNotFoundError
    raise ImportError(
        "scratchformers.train.lightning needs PyTorch Lightning: pip install 'scratchformers[lightning]' "
        "(or pip install lightning). The built-in loop, `scratchformers train`, does not need it."
    ) from error

from scratchformers.reference.config import ARCHITECTURE_FIELDS, GPTConfig
from scratchformers.reference.model import GPT
from scratchformers.train.checkpoint import OUR_LOADER, CheckpointError, is_lightning_checkpoint, is_our_checkpoint
from scratchformers.train.optim import (
    COOLDOWN_FRAC,
    MUON_LEARNING_RATE,
    MUON_MOMENTUM,
    MUON_WEIGHT_DECAY,
    lr_factor,
    make_optimizer,
)


class GPT2(GPT, pl.LightningModule):
    """A :class:`~scratchformers.reference.model.GPT` that is also a LightningModule: the model with its recipe.

    Keyword arguments are the :class:`~scratchformers.reference.config.GPTConfig` fields (``max_len``,
    ``emb_dim``, ``num_layers``, ``num_heads``, ``model_dim``, ``vocab_size``, ``dropout``, ``weight_decay``, ...)
    plus the optimizer's, with the meanings of :class:`~scratchformers.train.config.TrainConfig`'s fields:
    ``learning_rate``, ``warmup_steps``, ``max_steps`` (where the schedule reaches its floor; defaults to the
    Trainer's ``max_steps``), ``min_lr_factor``, ``beta1``, ``beta2``, ``optimizer`` ("adamw" or "muon"),
    ``muon_learning_rate``, ``muon_momentum``, ``muon_weight_decay``, ``schedule`` ("cosine" or "wsd") and
    ``cooldown_frac``. All are saved in the checkpoint, so ``GPT2.load_from_checkpoint(path)`` rebuilds the model
    without arguments.

    It *is* a GPT (a subclass, not a wrapper around one): the same ``state_dict`` keys (``transformer.wte.weight``,
    ...), so a checkpoint's weights load into a plain GPT, and everything that takes a GPT takes it, as that
    notebook expects: ``generate(GPT2.load_from_checkpoint(path), prompt=..., max_new_tokens=..., temperature=...)``,
    ``save_hf_gpt2``, ``forward_with_attention``. The reference package stays free of Lightning.
    """

    def __init__(
        self,
        learning_rate: float = 6e-4,
        warmup_steps: int = 2000,
        max_steps: int | None = None,
        min_lr_factor: float = 0.1,
        beta1: float = 0.9,
        beta2: float = 0.95,
        optimizer: str = "adamw",
        muon_learning_rate: float = MUON_LEARNING_RATE,
        muon_momentum: float = MUON_MOMENTUM,
        muon_weight_decay: float = MUON_WEIGHT_DECAY,
        schedule: str = "cosine",
        cooldown_frac: float = COOLDOWN_FRAC,
        **model_config: Any,
    ) -> None:
        super().__init__(GPTConfig(**model_config))
        self.save_hyperparameters()
        self._ids_checked = False

    @classmethod
    def load_from_checkpoint(cls, checkpoint_path: str | Path | IO, *args: Any, **kwargs: Any) -> GPT2:
        """Lightning's ``load_from_checkpoint``, with clear errors for a file that is not a Lightning checkpoint
        (instead of ``KeyError: 'pytorch-lightning_version'``), naming the loader that reads it, and for keyword
        arguments that would read the weights as another model (``num_heads=4`` on a 2-head checkpoint splits the
        same weights into other heads). Implementations (``attention="fast"``, ...) and ``dropout`` may change."""
        overrides = {name: value for name, value in kwargs.items() if name in ARCHITECTURE_FIELDS}
        if overrides:
            cls._check_architecture(checkpoint_path, overrides)
        try:
            return super().load_from_checkpoint(checkpoint_path, *args, **kwargs)
        except (KeyError, pickle.UnpicklingError, RuntimeError, EOFError) as error:
            if not isinstance(checkpoint_path, (str, Path)) or is_lightning_checkpoint(checkpoint_path):
                raise
            if is_our_checkpoint(checkpoint_path):
                raise CheckpointError(f"{checkpoint_path} was written by `scratchformers train`, not by Lightning; "
                                      f"{OUR_LOADER}") from None
            reason = (str(error).strip().splitlines() or [""])[0]
            raise CheckpointError(f"{checkpoint_path} is not a Lightning checkpoint ({type(error).__name__}: "
                                  f"{reason})") from None

    @staticmethod
    def _check_architecture(checkpoint_path: str | Path | IO, overrides: dict[str, Any]) -> None:
        """Lightning merges keyword arguments into the checkpoint's hyper-parameters before any hook sees them, so
        the saved values are read here first (memory-mapped: the weights are not read)."""
        saved = torch.load(checkpoint_path, map_location="cpu", weights_only=True, mmap=True)["hyper_parameters"]
        names = {f.name for f in fields(GPTConfig)}
        model = GPTConfig(**{name: value for name, value in saved.items() if name in names})
        changed = [f"{name}={value!r} (the checkpoint's is {getattr(model, name)!r})"
                   for name, value in overrides.items() if value != getattr(model, name)]
        if changed:
            raise CheckpointError(f"{checkpoint_path} holds another model than the one asked for: "
                                  f"{'; '.join(changed)}. Load it without those arguments")

    def _check_ids(self, x: torch.Tensor, y: torch.Tensor) -> None:
        """On the first batch only (one host sync): every token id must have a row in the embedding table."""
        if self._ids_checked:
            return
        top = int(torch.maximum(x.max(), y.max()))
        if top >= self.config.vocab_size:
            raise ValueError(f"the data holds token id {top}, but this GPT2 has vocab_size={self.config.vocab_size}:"
                             f" build it with vocab_size of at least {top + 1} (the data's vocabulary)")
        self._ids_checked = True

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> torch.Tensor:
        x, y = batch  # (B, T), (B, T)
        self._check_ids(x, y)
        _, loss = self(x, y)
        self.log("train_loss", loss, prog_bar=True)
        self.log("lr", self.optimizers().param_groups[0]["lr"])
        return loss

    def validation_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> torch.Tensor:
        x, y = batch
        self._check_ids(x, y)
        _, loss = self(x, y)
        self.log("val_loss", loss, prog_bar=True)
        return loss

    def configure_optimizers(self) -> dict[str, Any]:
        """AdamW (decay on ≥2-D weights only, fused on CUDA and the CPU), or Muon for the blocks' matrices beside it,
        and the schedule as a factor of each group's peak rate, per step."""
        hp = self.hparams
        optimizer = make_optimizer(self, hp.learning_rate, self.config.weight_decay, (hp.beta1, hp.beta2),
                                   self.device.type, hp.optimizer, hp.muon_learning_rate, hp.muon_momentum,
                                   hp.muon_weight_decay)
        decay_steps = hp.max_steps or self.trainer.max_steps
        if decay_steps is None or decay_steps < 1:
            raise ValueError("GPT2 needs max_steps (here or in pl.Trainer(max_steps=...)) to shape the schedule")

        def factor(step: int) -> float:  # LambdaLR multiplies each group's peak (its initial lr) by this
            return lr_factor(step, hp.warmup_steps, decay_steps, hp.min_lr_factor, hp.schedule, hp.cooldown_frac)

        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}

    def generate(self, prompt: Any, max_new_tokens: int, **kwargs: Any) -> Any:
        """:func:`scratchformers.reference.generate.generate` with this model (same arguments)."""
        from scratchformers.reference.generate import generate

        return generate(self, prompt, max_new_tokens, **kwargs)
