"""The training loop: nanoGPT's ``train.py`` as a small class.

One optimizer step::

    lr ← schedule(step)                                  warmup, cosine, floor (see optim.py)
    for each of grad_accum_steps micro-batches:          (DDP: all-reduce only on the last one)
        loss = model(x, y) / grad_accum_steps            (autocast: bf16 on CUDA)
        loss.backward()                                  gradients add up over the micro-batches
    stop if the loss is NaN/inf                          (the last good checkpoint stays on disk)
    clip the gradient norm, optimizer.step(), zero the gradients

Every ``eval_interval`` steps the model is evaluated on fixed train and val batches and ``last.pt`` is written
(``best.pt`` too when the validation loss improved). Everything is logged to ``log.jsonl`` (one JSON object per
line) and the console. ``resume=True`` restores model, optimizer, data position and random states from
``last.pt`` and rewinds the log to it, so an interrupted run continues exactly as if it had never stopped.

Ctrl-C (SIGINT) and SIGTERM do not interrupt a step half-way: they set a flag, the step finishes, ``last.pt`` is
written and :meth:`Trainer.fit` returns with status ``"interrupted"`` (a second Ctrl-C aborts at once).
"""
from __future__ import annotations

import contextlib
import json
import math
import os
import signal
import threading
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import torch
from tqdm import tqdm

from scratchformers.reference.model import GPT
from scratchformers.train import ddp
from scratchformers.train.batches import MemmapBatches
from scratchformers.train.checkpoint import (
    CheckpointError,
    capture_rng_state,
    load_checkpoint,
    load_model_state,
    restore_rng_state,
    save_checkpoint,
)
from scratchformers.train.config import TrainConfig
from scratchformers.train.metrics import flops_per_token, memory_mb, peak_flops
from scratchformers.train.optim import lr_at, make_optimizer, set_lr
from scratchformers.train.prepare import check_vocab, ensure_data

LOG_FILE = "log.jsonl"
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


@dataclass
class TrainResult:
    """How a run ended: ``status`` is ``"finished"``, ``"interrupted"`` (Ctrl-C/SIGTERM) or ``"diverged"``."""

    status: str
    step: int
    val_loss: float | None
    best_val_loss: float
    seconds: float  # the whole of fit(): training, evaluations, checkpoints, samples, plots
    ms_per_step: float  # training steps only
    out_dir: Path
    samples: list[str] = field(default_factory=list)


def resume_config(out_dir: str | Path, /, **overrides: Any) -> tuple[TrainConfig, dict[str, Any]]:
    """The configuration and state saved in ``out_dir/last.pt``, with ``overrides`` (e.g. a larger
    ``max_steps``) applied on top."""
    state = load_checkpoint(Path(out_dir) / "last.pt")
    return TrainConfig.from_dict({**state["train_config"], **overrides}), state


def default_num_threads() -> int:
    """The CPU cores this process may use, shared among the DDP processes on this machine."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return max(1, cores // int(os.environ.get("LOCAL_WORLD_SIZE", "1")))


class StopRequest:
    """SIGINT/SIGTERM set :attr:`requested` instead of raising, so the current step can finish cleanly.

    After the first signal, SIGINT is back to its default: a second Ctrl-C raises ``KeyboardInterrupt`` at once.
    """

    def __init__(self) -> None:
        self.requested = False
        self._previous: dict[int, Any] = {}

    def _handle(self, signum: int, frame: Any) -> None:
        self.requested = True
        signal.signal(signal.SIGINT, signal.default_int_handler)

    def __enter__(self) -> StopRequest:
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)


class Trainer:
    """Builds the model, optimizer and data from a :class:`TrainConfig` and runs :meth:`fit`.

    Args:
        config: the run's configuration.
        resume_state: a checkpoint dict (from :func:`resume_config`) to continue from, or None for a fresh run.
        progress: show a tqdm progress bar (on process 0).
    """

    def __init__(self, config: TrainConfig, resume_state: dict[str, Any] | None = None, progress: bool = True) -> None:
        self.ctx = ddp.setup_distributed(config.device)
        self.device = self.ctx.device
        if self.device.type == "cpu" and config.num_threads == 0:
            # Resolved once and saved with the config: a resumed run uses the same count (and so the same
            # floating-point summation order) even on a machine with more cores.
            config = replace(config, num_threads=default_num_threads())
        self.config = config
        self.out_dir = Path(config.resolved_out_dir())
        self.log_path = self.out_dir / LOG_FILE
        self.progress = progress and self.ctx.is_main
        self._set_up_backends()

        self.meta = ensure_data(config, self.ctx)
        self.model_config = config.model_config(vocab_size=self.meta["vocab_size"])
        check_vocab(self.meta, self.model_config.vocab_size)

        torch.manual_seed(config.seed)  # the same initial weights in every process
        self.model = GPT(self.model_config).to(self.device)
        self.optimizer = make_optimizer(
            self.model, config.learning_rate, config.weight_decay, (config.beta1, config.beta2), self.device.type
        )
        self.dtype = self._amp_dtype()
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=self.dtype == torch.float16)

        data_dir = config.resolved_data_dir()
        self.batches = MemmapBatches(
            data_dir, "train", config.block_size, config.batch_size, self.device, seed=config.seed + self.ctx.rank
        )
        self.eval_sets = {}  # process 0 evaluates
        if self.ctx.is_main:
            val = MemmapBatches(data_dir, "val", config.block_size, config.batch_size, self.device)
            self.eval_sets = {"train": self.batches.fixed_batches(config.eval_batches),
                              "val": val.fixed_batches(config.eval_batches)}

        self.step = 0
        self.best_val_loss = math.inf
        torch.manual_seed(config.seed + self.ctx.rank)  # dropout masks differ between processes
        if resume_state is not None:
            self._restore(resume_state)

        self.compiled = torch.compile(self.model) if config.compile else self.model
        self.train_model = ddp.wrap_model(self.compiled, self.ctx)
        self.tokens_per_step = config.batch_size * config.block_size * config.grad_accum_steps  # per process
        # matmul weights: every parameter but the position table; the token table counts, it is also the LM head
        matmul_params = self.model.num_parameters(non_embedding=True) + self.model.transformer.wte.weight.numel()
        self.flops_per_step = self.tokens_per_step * flops_per_token(
            matmul_params, config.num_layers, config.block_size, config.emb_dim
        )
        self.peak_flops = peak_flops(self.device)

    # ------------------------------------------------------------------------------------------------ set-up

    def _set_up_backends(self) -> None:
        if self.device.type == "cuda":
            torch.set_float32_matmul_precision("high")  # TF32 tensor cores for float32 matmuls (8x on an A100)
        else:
            torch.set_num_threads(self.config.num_threads)

    def _amp_dtype(self) -> torch.dtype:
        """The autocast dtype: ``auto`` is bf16 on CUDA (where the GPU supports it), float32 elsewhere."""
        name = self.config.dtype
        if name == "auto":
            cuda_bf16 = self.device.type == "cuda" and torch.cuda.is_bf16_supported()
            name = "bfloat16" if cuda_bf16 else "float32"
        if name == "float16" and self.device.type != "cuda":
            raise ValueError("dtype='float16' (with a GradScaler) is for CUDA; use float32 or bfloat16 on CPU")
        return DTYPES[name]

    def autocast(self) -> contextlib.AbstractContextManager:
        if self.dtype == torch.float32:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=self.dtype)

    def _restore(self, state: dict[str, Any]) -> None:
        """Continue from a checkpoint: weights, optimizer, scaler, data position, random states, counters."""
        saved_tok, tok = state.get("tokenizer", {}).get("tokenizer"), self.meta["tokenizer"]
        if saved_tok != tok:
            raise CheckpointError(
                f"the checkpoint was trained on data with tokenizer {saved_tok!r}, but {self.meta['data_dir']} "
                f"holds {tok.get('kind')!r} tokens; resume with the same --data-dir"
            )
        if len(state["batches"]) != self.ctx.world_size:
            raise CheckpointError(
                f"the checkpoint was written by a run with {len(state['batches'])} process(es) and this one has "
                f"{self.ctx.world_size}; an exact resume needs the same number (each process has its own data stream)"
            )
        load_model_state(self.model, state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        if state.get("scaler"):
            self.scaler.load_state_dict(state["scaler"])
        self.batches.load_state_dict(state["batches"][self.ctx.rank])
        restore_rng_state(state["rng"][self.ctx.rank])
        self.step = state["step"]
        self.best_val_loss = state["best_val_loss"]

    def _gather(self, value: Any) -> list[Any]:
        """``value`` from every process, in rank order (for per-process states in the checkpoint)."""
        if not self.ctx.enabled:
            return [value]
        gathered: list[Any] = [None] * self.ctx.world_size
        torch.distributed.all_gather_object(gathered, value)
        return gathered

    def checkpoint_state(self) -> dict[str, Any]:
        """Everything :meth:`_restore` needs, as tensors and plain values (see :mod:`.checkpoint`)."""
        return {
            "step": self.step,
            "best_val_loss": self.best_val_loss,
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scaler": self.scaler.state_dict() if self.scaler.is_enabled() else None,
            "batches": self._gather(self.batches.state_dict()),
            "rng": self._gather(capture_rng_state()),
            "train_config": self.config.to_dict(),
            "model_config": self.model_config.to_dict(),
            "tokenizer": self.meta,
        }

    def save(self, *names: str) -> None:
        """Write the checkpoint as ``out_dir/<name>.pt`` for each name (process 0 writes; all must call)."""
        state = self.checkpoint_state()
        if self.ctx.is_main:
            for name in names:
                save_checkpoint(self.out_dir / f"{name}.pt", state)

    # ---------------------------------------------------------------------------------------------- logging

    def _start_log(self, resuming: bool) -> None:
        """A fresh ``log.jsonl``, or, when resuming, the old one cut back to the checkpoint's step (the steps run
        after it were lost with the interruption and are about to be run again)."""
        if not self.ctx.is_main:
            return
        self.out_dir.mkdir(parents=True, exist_ok=True)
        kept = []
        if resuming and self.log_path.is_file():
            for line in self.log_path.read_text().splitlines():
                with contextlib.suppress(json.JSONDecodeError):
                    record = json.loads(line)
                    if record.get("step", 0) <= self.step:
                        kept.append(line + "\n")
        self.log_path.write_text("".join(kept))

    def log(self, record: dict[str, Any], message: str | None = None) -> None:
        """Append ``record`` to ``log.jsonl`` and print ``message`` (process 0 only)."""
        if not self.ctx.is_main:
            return
        with open(self.log_path, "a") as handle:
            handle.write(json.dumps(record) + "\n")
        if message:
            tqdm.write(message)

    # -------------------------------------------------------------------------------------------- training

    def train_step(self, stop: StopRequest) -> tuple[float, float, bool]:
        """One optimizer step; returns (mean loss, gradient norm before clipping, stop requested anywhere).

        A NaN/inf loss returns at once without touching the weights.
        """
        cfg = self.config
        lr = lr_at(self.step, cfg.learning_rate, cfg.warmup_steps, cfg.total_decay_steps, cfg.min_lr_factor)
        set_lr(self.optimizer, lr)
        loss_sum = torch.zeros((), device=self.device)
        for micro in range(cfg.grad_accum_steps):
            x, y = self.batches.get_batch()  # (B, T), (B, T)
            with ddp.maybe_no_sync(self.train_model, skip_sync=micro < cfg.grad_accum_steps - 1):
                with self.autocast():
                    _, loss = self.train_model(x, y)
                self.scaler.scale(loss / cfg.grad_accum_steps).backward()
            loss_sum += loss.detach().float()
        # One all-reduce tells every process the mean loss and whether any of them got a stop signal.
        stats = torch.stack([loss_sum / cfg.grad_accum_steps, torch.tensor(float(stop.requested), device=self.device)])
        ddp.all_reduce_sum(stats, self.ctx)
        loss_value, stop_requested = stats[0].item() / self.ctx.world_size, stats[1].item() > 0
        if not math.isfinite(loss_value):
            self.optimizer.zero_grad(set_to_none=True)
            return loss_value, math.nan, stop_requested
        self.scaler.unscale_(self.optimizer)  # true gradients, so the clip threshold means what it says
        max_norm = cfg.grad_clip if cfg.grad_clip > 0 else math.inf
        grad_norm = torch.nn.utils.clip_grad_norm_(self.model.parameters(), max_norm).item()
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.optimizer.zero_grad(set_to_none=True)
        self.step += 1
        return loss_value, grad_norm, stop_requested

    @torch.no_grad()
    def evaluate(self) -> dict[str, float]:
        """Mean loss and perplexity exp(loss) on the fixed train and val batches."""
        self.compiled.eval()
        result: dict[str, float] = {}
        for split, batches in self.eval_sets.items():
            losses = []
            for x, y in batches:
                with self.autocast():
                    _, loss = self.compiled(x, y)
                losses.append(loss.item())
            mean = sum(losses) / len(losses)
            result[f"{split}_loss"], result[f"{split}_ppl"] = mean, math.exp(min(mean, 80.0))
        self.compiled.train()
        return result

    def _evaluate_and_log(self) -> dict[str, float]:
        metrics = self.evaluate() if self.ctx.is_main else {}
        if self.ctx.is_main:
            self.log({"kind": "eval", "step": self.step, **metrics},
                     f"step {self.step}: train loss {metrics['train_loss']:.4f}, val loss {metrics['val_loss']:.4f} "
                     f"(perplexity {metrics['val_ppl']:.2f})")
        return metrics

    def _evaluate_and_save(self) -> float | None:
        """Evaluate on process 0, broadcast whether val improved, write ``last`` (and ``best``)."""
        metrics = self._evaluate_and_log()
        improved = torch.tensor(float(metrics.get("val_loss", math.inf) < self.best_val_loss), device=self.device)
        if self.ctx.enabled:
            torch.distributed.broadcast(improved, src=0)
        if improved.item():
            self.best_val_loss = metrics["val_loss"] if self.ctx.is_main else self.best_val_loss
            self.save("last", "best")
        else:
            self.save("last")
        return metrics.get("val_loss")

    def _log_step(self, loss: float, grad_norm: float, seconds: float) -> None:
        record = {
            "kind": "train",
            "step": self.step,
            "loss": loss,
            "lr": self.optimizer.param_groups[0]["lr"],
            "grad_norm": grad_norm,
            "tokens_per_s": self.tokens_per_step * self.ctx.world_size / seconds,
            "ms_per_step": 1000 * seconds,
            "mem_mb": memory_mb(self.device),
        }
        mfu = ""
        if self.peak_flops is not None:
            record["mfu"] = self.flops_per_step / seconds / self.peak_flops
            mfu = f", MFU {100 * record['mfu']:.1f}%"
        self.log(record, f"step {self.step}: loss {loss:.4f}, lr {record['lr']:.2e}, grad norm {grad_norm:.3f}, "
                         f"{record['ms_per_step']:.0f} ms/step, {record['tokens_per_s']:,.0f} tokens/s{mfu}, "
                         f"{record['mem_mb']:,.0f} MiB")

    def fit(self) -> TrainResult:
        """Train from the current step to ``max_steps``; evaluate, save, sample and plot along the way."""
        cfg, start = self.config, time.perf_counter()
        resuming, first_step, train_seconds = self.step > 0, self.step, 0.0
        self._start_log(resuming)
        if self.ctx.is_main:
            params = self.model.num_parameters()
            threads = f", {cfg.num_threads} threads" if self.device.type == "cpu" else ""
            tqdm.write(f"{'resuming at' if resuming else 'training from'} step {self.step}: {params / 1e6:.2f} M "
                       f"parameters, {self.tokens_per_step * self.ctx.world_size:,} tokens per step, on "
                       f"{self.device} ({self.dtype}{threads}), {self.ctx.world_size} process(es) → {self.out_dir}")
        if not resuming:
            self._evaluate_and_log()
        status, val_loss = "finished", None
        bar = tqdm(total=cfg.max_steps, initial=self.step, disable=not self.progress, unit="step", dynamic_ncols=True)
        window_start, window_steps = time.perf_counter(), 0  # ms/step and tokens/s average over the log interval
        with StopRequest() as stop:
            while self.step < cfg.max_steps:
                t0 = time.perf_counter()
                loss, grad_norm, stop_requested = self.train_step(stop)
                train_seconds += time.perf_counter() - t0
                if not math.isfinite(loss):
                    status = "diverged"
                    self.log({"kind": "event", "step": self.step + 1, "event": "diverged", "loss": str(loss)},
                             f"loss is {loss} at step {self.step + 1}: stopping; the last good checkpoint "
                             f"{self.out_dir / 'last.pt'} is kept")
                    break
                bar.update(1)
                window_steps += 1
                if self.step % cfg.log_interval == 0 or self.step == 1:
                    self._log_step(loss, grad_norm, (time.perf_counter() - window_start) / window_steps)
                    window_start, window_steps = time.perf_counter(), 0
                if self.step % cfg.eval_interval == 0 or self.step == cfg.max_steps:
                    val_loss = self._evaluate_and_save()
                    window_start, window_steps = time.perf_counter(), 0
                if stop_requested:
                    status = "interrupted"
                    if self.step % cfg.eval_interval != 0 and self.step != cfg.max_steps:
                        self.save("last")
                    self.log({"kind": "event", "step": self.step, "event": "interrupted"},
                             f"interrupted at step {self.step}: saved {self.out_dir / 'last.pt'}; "
                             "continue with --resume")
                    break
        bar.close()
        samples = self.sample() if status == "finished" and self.ctx.is_main and cfg.num_samples else []
        if self.ctx.is_main and cfg.plot:
            from scratchformers.train.plots import plot_log

            tqdm.write(f"wrote {plot_log(self.log_path, self.out_dir / 'curves.png')}")
        ddp.cleanup_distributed(self.ctx)
        steps_run = max(self.step - first_step, 1)
        return TrainResult(status, self.step, val_loss, self.best_val_loss, time.perf_counter() - start,
                           1000 * train_seconds / steps_run, self.out_dir, samples)

    def sample(self) -> list[str]:
        """``num_samples`` continuations of ``sample_prompt``, printed and written to ``samples.txt``."""
        from scratchformers.reference.generate import generate
        from scratchformers.train.tokenizers import load_tokenizer

        cfg, tokenizer = self.config, load_tokenizer(self.meta)
        samples = []
        with self.autocast():
            for i in range(cfg.num_samples):
                samples.append(generate(self.model, cfg.sample_prompt, cfg.sample_tokens, temperature=cfg.temperature,
                                        top_k=cfg.top_k or None, seed=cfg.seed + i, tokenizer=tokenizer))
        text = "\n".join(f"--- sample {i + 1} ---\n{s}\n" for i, s in enumerate(samples))
        (self.out_dir / "samples.txt").write_text(text)
        tqdm.write(text)
        return samples


def train(config: TrainConfig, resume: bool = False, progress: bool = True) -> TrainResult:
    """Run training with ``config``; ``resume=True`` continues from ``out_dir/last.pt`` (its config wins)."""
    state = None
    if resume:
        config, state = resume_config(config.resolved_out_dir())
    return Trainer(config, resume_state=state, progress=progress).fit()
