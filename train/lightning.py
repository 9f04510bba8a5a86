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
step computes and which optimizer and schedule to use: AdamW over :func:`~scratchformers.train.optim.param_groups`
with the warmup + cosine schedule of :func:`~scratchformers.train.optim.lr_at`, stepped once per optimizer step.
"""
from __future__ import annotations

from typing import Any

import torch

try:
    import lightning.pytorch as pl
except ImportError as error:  # an optional extra: say how to get it instead of a bare ModuleNotFoundError
    raise ImportError(
        "scratchformers.train.lightning needs PyTorch Lightning: pip install 'scratchformers[lightning]' "
        "(or pip install lightning). The built-in loop, `scratchformers train`, does not need it."
    ) from error

from scratchformers.reference.config import GPTConfig
from scratchformers.reference.model import GPT
from scratchformers.train.optim import lr_at, make_optimizer


class GPT2(GPT, pl.LightningModule):
    """A :class:`~scratchformers.reference.model.GPT` that is also a LightningModule: the model with its recipe.

    Keyword arguments are the :class:`~scratchformers.reference.config.GPTConfig` fields (``max_len``,
    ``emb_dim``, ``num_layers``, ``num_heads``, ``model_dim``, ``vocab_size``, ``dropout``, ``weight_decay``, ...)
    plus the optimizer's: ``learning_rate``, ``warmup_steps``, ``max_steps`` (where the cosine reaches its floor;
    defaults to the Trainer's ``max_steps``), ``min_lr_factor``, ``beta1``, ``beta2``. All are saved in the
    checkpoint, so ``GPT2.load_from_checkpoint(path)`` rebuilds the model without arguments.

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
        **model_config: Any,
    ) -> None:
        super().__init__(GPTConfig(**model_config))
        self.save_hyperparameters()

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> torch.Tensor:
        x, y = batch  # (B, T), (B, T)
        _, loss = self(x, y)
        self.log("train_loss", loss, prog_bar=True)
        self.log("lr", self.optimizers().param_groups[0]["lr"])
        return loss

    def validation_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> torch.Tensor:
        x, y = batch
        _, loss = self(x, y)
        self.log("val_loss", loss, prog_bar=True)
        return loss

    def configure_optimizers(self) -> dict[str, Any]:
        """AdamW (decay on ≥2-D weights only, fused on CUDA) and the warmup + cosine schedule, per step."""
        hp = self.hparams
        optimizer = make_optimizer(self, hp.learning_rate, self.config.weight_decay, (hp.beta1, hp.beta2),
                                   self.device.type)
        decay_steps = hp.max_steps or self.trainer.max_steps
        if decay_steps is None or decay_steps < 1:
            raise ValueError("GPT2 needs max_steps (here or in pl.Trainer(max_steps=...)) to shape the schedule")

        def factor(step: int) -> float:  # LambdaLR multiplies the base learning rate by this
            return lr_at(step, hp.learning_rate, hp.warmup_steps, decay_steps, hp.min_lr_factor) / hp.learning_rate

        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Read checkpoints of the earlier module, which held its GPT in ``self.model`` (keys ``model.…``)."""
        state = checkpoint["state_dict"]
        if any(key.startswith("model.") for key in state):
            checkpoint["state_dict"] = {key.removeprefix("model."): value for key, value in state.items()}

    def generate(self, prompt: Any, max_new_tokens: int, **kwargs: Any) -> Any:
        """:func:`scratchformers.reference.generate.generate` with this model (same arguments)."""
        from scratchformers.reference.generate import generate

        return generate(self, prompt, max_new_tokens, **kwargs)
