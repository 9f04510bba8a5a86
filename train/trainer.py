"""The training loop, as nanoGPT's ``train.py`` is, in one class: set-up, then :meth:`Trainer.fit`, whose loop holds
one optimizer step from top to bottom::

    lr ← peak · schedule(step), per parameter group      warmup, cosine or wsd, floor (see optim.py)
    for each of this process's micro-batches:            (DDP: all-reduce only on the last one)
        loss = model(x, y) / micro-batches               (autocast: bf16 on CUDA, fp16 + GradScaler without bf16)
        read the next micro-batch while the forward runs
        loss.backward()                                  gradients add up over the micro-batches
    clip the gradient norm, optimizer.step(), zero the gradients
    log (log steps); evaluate and write last.pt / best.pt (evaluation steps)

**The global batch** is ``batch_size × grad_accum_steps`` windows per optimizer step on any number of processes:
``torchrun`` with N processes shares it out (see :func:`~scratchformers.train.batches.split_global_batch`), it does
not multiply it by N. All processes draw it from one shared stream, so 1 and N processes train on the same windows.

**No host syncs in the hot loop.** The GPU runs behind the Python code that queues its work; anything that reads a
number back (``loss.item()``, a Python ``if`` on a tensor, a tensor built from a Python value) makes the CPU wait
for the GPU to catch up, and the GPU then idles while Python queues the next step. So the loss, the gradient norm
and the stop flag stay on the device and are read only at *check steps*: step 1, log steps (``log_interval``),
evaluation steps and the last step; batches are read one micro-batch ahead and copied without blocking.
Non-finite values are caught honestly all the same: every step ORs "loss or gradient norm not finite" into a flag
on the device, and a check step reads the flag. A check step that finds it set stops the run before that step's
update (status ``"diverged"``); if the bad value came from an earlier step, the weights were already updated with
it, so the run stops without writing another checkpoint: ``last.pt`` is from the last evaluation, a check step that
found everything finite. (With fp16, the GradScaler skips steps with inf/NaN gradients by itself and reads its flag
every step, one sync per step that fp16 training needs; only the loss is checked then.) ``sync_every_step=True``
makes every step a check step: a divergence then stops before its first bad update.

Every ``eval_interval`` steps the model is evaluated on fixed train and val batches and ``last.pt`` is written
(``best.pt`` too when the validation loss improved). Everything is logged to ``log.jsonl`` (one JSON object per
line; training and evaluation records carry their wall-clock ``time``, Unix seconds) and the console. :meth:`Trainer.resume` restores model, optimizer, data position and random states from
``last.pt`` and rewinds the log to it, so an interrupted run continues exactly as if it had never stopped.

Ctrl-C (SIGINT) and SIGTERM do not interrupt a step half-way: they set a flag, the step finishes, ``last.pt`` is
written and :meth:`Trainer.fit` returns with status ``"interrupted"`` (a second Ctrl-C aborts at once). A single
process honours the flag after the current step; DDP processes agree on it at the next check step.
"""
from __future__ import annotations

import contextlib
import json
import math
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import torch

from scratchformers.reference.config import ARCHITECTURE_FIELDS
from scratchformers.reference.generate import encode_prompt
from scratchformers.reference.model import GPT
from scratchformers.train import ddp
from scratchformers.train.batches import MemmapBatches, StepBatches, split_global_batch
from scratchformers.train.checkpoint import (
    CheckpointError,
    capture_rng_state,
    load_checkpoint,
    load_model_state,
    restore_rng_state,
    save_checkpoint,
)
from scratchformers.train.config import TrainConfig
from scratchformers.train.datasets import describe_data
from scratchformers.train.hardware import choose_amp_dtype, default_num_threads, set_up_backends
from scratchformers.train.meta import check_vocab
from scratchformers.train.metrics import flops_per_token, matmul_parameters, memory_mb, peak_flops
from scratchformers.train.optim import make_optimizer, set_lr
from scratchformers.train.plots import read_log
from scratchformers.train.progress import progress_bar, write
from scratchformers.train.run_data import ensure_data
from scratchformers.train.run_dir import RunLock, claim
from scratchformers.train.signals import StopRequest
from scratchformers.train.tokenizers import load_tokenizer

LOG_FILE = "log.jsonl"
# The log's measurements of the clock and of memory: they differ between any two runs of the same training.
CLOCK_FIELDS = ("tokens_per_s", "ms_per_step", "mfu", "mem_mb", "time")


class NothingToDo(Exception):
    """A resumed run that has already reached its ``max_steps``: there is nothing to train."""


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
    token_unit: str = "token"  # "character" with a character tokenizer: what a bit per token is per

    @property
    def val_bits(self) -> float | None:
        """The final validation loss in bits per token (per character with character tokens): nats / ln 2."""
        return None if self.val_loss is None else bits(self.val_loss)


def bits(nats: float) -> float:
    """A cross-entropy in nats as bits: nats / ln 2 (the unit of compression papers' bits per character)."""
    return nats / math.log(2)


@dataclass
class StepFigures:
    """What a check step reads back from the device: the step's loss (mean over all processes), its gradient norm
    before clipping, whether anything was non-finite since the last check, and whether any process got a stop
    signal."""

    loss: float
    grad_norm: float
    finite: bool
    stop_requested: bool


class Trainer:
    """Builds the model, optimizer and data from a :class:`TrainConfig` and runs :meth:`fit`.

    The output folder is claimed first, before anything else is read or written (see :mod:`.run_dir`): it is
    locked for this run until :meth:`fit` returns (or :meth:`release`), and a fresh run refuses a folder that holds
    another run's files unless ``overwrite``.

    Two handles on the model, as in nanoGPT: :attr:`model` is the GPT itself (its parameters, ``state_dict`` and
    sampling); :attr:`train_model` is what a training step calls, the same module compiled (``compile``) and wrapped
    in ``DistributedDataParallel`` (DDP runs).

    Args:
        config: the run's configuration.
        resume_state: a checkpoint dict to continue from, or None for a fresh run. :meth:`resume` reads it from
            ``last.pt`` and lets it go once it is loaded; a caller that passes its own dict holds on to it.
        progress: show a progress report (on process 0; see :mod:`.progress`).
        overwrite: a fresh run replaces a run found in the output folder (its files are removed first).
        allow_data_change: resume on data whose content differs from the data the checkpoint was trained on.
    """

    def __init__(self, config: TrainConfig, resume_state: dict[str, Any] | None = None, progress: bool = True,
                 overwrite: bool = False, allow_data_change: bool = False) -> None:
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
        self.batch_split = split_global_batch(config.batch_size, config.grad_accum_steps, self.ctx.world_size)
        self._lock: RunLock | None = ddp.on_main_or_raise(
            lambda: claim(self.out_dir, resuming=resume_state is not None, overwrite=overwrite), self.ctx)
        try:
            self._build(resume_state, allow_data_change)
        except BaseException:
            self.release()
            raise

    def _build(self, resume_state: dict[str, Any] | None, allow_data_change: bool) -> None:
        """Everything but the output folder: data, model, optimizer, batches, and the checkpoint's states."""
        config = self.config
        set_up_backends(self.device, config.num_threads)
        self.meta = ensure_data(config, self.ctx)
        self.token_unit = "character" if self.meta["tokenizer"].get("kind") == "char" else "token"
        self.model_config = config.model_config(vocab_size=self.meta["vocab_size"])
        check_vocab(self.meta, self.model_config.vocab_size)
        if resume_state is not None:
            self._check_resumed_data(resume_state.get("data", {}), allow_data_change)
        self.tokenizer = load_tokenizer(self.meta)
        if config.num_samples:
            try:  # the prompt of the final samples, checked now rather than after the whole run
                encode_prompt(config.sample_prompt, self.tokenizer)
            except ValueError as error:
                raise ValueError(f"--sample-prompt {config.sample_prompt!r}: {error}") from None

        torch.manual_seed(config.seed)  # the same initial weights in every process
        self.model = GPT(self.model_config).to(self.device)
        self.optimizer = make_optimizer(
            self.model, config.learning_rate, config.weight_decay, (config.beta1, config.beta2), self.device.type,
            config.optimizer, config.muon_learning_rate, config.muon_momentum, config.muon_weight_decay,
        )
        # From this run's config, not the checkpoint's groups: a resume may change the rates
        self.peak_lrs = [group["lr"] for group in self.optimizer.param_groups]
        self.dtype, self.dtype_note = choose_amp_dtype(config.dtype, self.device)
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=self.dtype == torch.float16)

        data_dir = config.resolved_data_dir()
        train_data = MemmapBatches(data_dir, "train", config.max_len, config.batch_size, self.device)
        self.batches = StepBatches(train_data, self.batch_split, self.ctx.rank, config.seed)
        self.eval_sets = {}  # process 0 evaluates, on batches of their own stream (never the training draws)
        if self.ctx.is_main:
            self.eval_sets = {split: MemmapBatches(data_dir, split, config.max_len, config.batch_size,
                                                   self.device).fixed_batches(config.eval_batches)
                              for split in ("train", "val")}

        self.step = 0
        self.best_val_loss = math.inf
        torch.manual_seed(config.seed + self.ctx.rank)  # dropout masks differ between processes
        if resume_state is not None:
            self._restore(resume_state)
        del resume_state  # the weights and states now live in the model and optimizer

        self.train_model = ddp.wrap_model(torch.compile(self.model) if config.compile else self.model, self.ctx)
        self.tokens_per_step = self.batch_split.global_batch * config.max_len  # over all processes
        self.flops_per_step = self.tokens_per_step / self.ctx.world_size * flops_per_token(
            matmul_parameters(self.model), config.num_layers, config.max_len, config.emb_dim
        )  # per process, as the peak is per device
        self.peak_flops = peak_flops(self.device)
        # Set on the device by any non-finite loss or gradient norm, read and cleared at check steps.
        self._nonfinite = torch.zeros((), dtype=torch.bool, device=self.device)
        self._last_checked_step = self.step

    @classmethod
    def resume(cls, out_dir: str | Path, /, progress: bool = True, allow_data_change: bool = False,
               **overrides: Any) -> Trainer:
        """Continue the run saved in ``out_dir/last.pt`` with its configuration, ``overrides`` (e.g. a larger
        ``max_steps``) applied on top. The checkpoint is freed once its states are loaded.

        Raises:
            CheckpointError: an override changes the model's architecture (``num_heads``, ...): the weights would
                be read as another model's.
            NothingToDo: the run has already reached ``max_steps``.
        """
        path = Path(out_dir) / "last.pt"
        state = load_checkpoint(path)
        saved = TrainConfig.from_dict(state["train_config"]).to_dict()  # every field, an older checkpoint's too
        changed = [f"--{name.replace('_', '-')} {value!r} (the checkpoint's {name} is {saved.get(name)!r})"
                   for name, value in overrides.items() if name in ARCHITECTURE_FIELDS and value != saved.get(name)]
        if changed:
            raise CheckpointError(f"{path} holds another model than the one asked for: {'; '.join(changed)}. "
                                  "A resumed run keeps its model: drop the flag, or train a new model into "
                                  "another --out-dir")
        config = TrainConfig.from_dict({**saved, **overrides})
        trained_with = saved["optimizer"]
        if config.optimizer != trained_with:
            raise CheckpointError(f"{path} was trained with --optimizer {trained_with}: a resumed run keeps its "
                                  "optimizer (the checkpoint holds its state); drop --optimizer, or train a new "
                                  "run into another --out-dir")
        if state["step"] >= config.max_steps:
            raise NothingToDo(f"{path} is at step {state['step']} and max_steps is {config.max_steps}; "
                              "pass a larger --max-steps to train further")
        return cls(config, resume_state=state, progress=progress, allow_data_change=allow_data_change)

    def release(self) -> None:
        """Unlock the output folder (:meth:`fit` does it when it returns; safe to call twice)."""
        if self._lock is not None:
            self._lock.release()
            self._lock = None

    def autocast(self) -> contextlib.AbstractContextManager:
        """``torch.autocast`` to the run's dtype, or nothing in float32."""
        if self.dtype == torch.float32:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=self.dtype)

    # ------------------------------------------------------------------------------------------- checkpoints

    def _check_resumed_data(self, saved: dict[str, Any], allow_data_change: bool) -> None:
        """Refuse to continue on data with other tokens, or (unless allowed) other content, than the checkpoint's
        (``saved``: the metadata of the data it was trained on)."""
        data_dir = self.meta["data_dir"]
        if saved.get("tokenizer") != self.meta["tokenizer"]:
            raise CheckpointError(
                f"the checkpoint was trained on {describe_data(saved)}, but {data_dir} holds "
                f"{describe_data(self.meta)}: the token ids would mean other tokens. Resume on the data it was "
                "trained on (the same --data-dir, --shakespeare-variant, --tokenizer)"
            )
        saved_hash, new_hash = (meta.get("source", {}).get("sha256") for meta in (saved, self.meta))
        if saved_hash != new_hash and not allow_data_change:
            raise CheckpointError(
                f"the data in {data_dir} changed since the checkpoint was written (content sha256 {saved_hash} "
                f"then, {new_hash} now); resume on the data it was trained on, or pass --allow-data-change to "
                "continue on the new data on purpose"
            )

    def _restore(self, state: dict[str, Any]) -> None:
        """Continue from a checkpoint: weights, optimizer, scaler, data position, random states, counters."""
        if len(state["rng"]) != self.ctx.world_size:
            raise CheckpointError(
                f"the checkpoint was written by a run with {len(state['rng'])} process(es) and this one has "
                f"{self.ctx.world_size}; an exact resume needs the same number (each process has its own random "
                "state for dropout)"
            )
        load_model_state(self.model, state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        if state.get("scaler"):
            self.scaler.load_state_dict(state["scaler"])
        self.batches.load_state_dict(state["batches"])
        restore_rng_state(state["rng"][self.ctx.rank])
        self.step = state["step"]
        self.best_val_loss = state["best_val_loss"]

    def save(self, *names: str) -> None:
        """Write the checkpoint as ``out_dir/<name>.pt`` for each name: everything :meth:`_restore` needs, as
        tensors and plain values (see :mod:`.checkpoint`). Process 0 writes; all processes must call, since each
        one's random state goes in."""
        rng = capture_rng_state()
        if self.ctx.enabled:
            gathered: list[Any] = [None] * self.ctx.world_size
            torch.distributed.all_gather_object(gathered, rng)
        state = {
            "step": self.step,
            "best_val_loss": self.best_val_loss,
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scaler": self.scaler.state_dict() if self.scaler.is_enabled() else None,
            "batches": self.batches.state_dict(),  # the same in every process: one shared stream
            "rng": gathered if self.ctx.enabled else [rng],
            "train_config": self.config.to_dict(),
            "model_config": self.model_config.to_dict(),
            "data": self.meta,
        }
        if self.ctx.is_main:
            for name in names:
                save_checkpoint(self.out_dir / f"{name}.pt", state)

    # ---------------------------------------------------------------------------------------------- logging

    def log(self, record: dict[str, Any], message: str | None = None) -> None:
        """Append ``record`` to ``log.jsonl`` and print ``message`` (process 0 only)."""
        if not self.ctx.is_main:
            return
        with open(self.log_path, "a") as handle:
            handle.write(json.dumps(record) + "\n")
        if message:
            write(message)

    def startup_line(self) -> str:
        """What the run is about to do: the step, model size, global batch and its split, device and dtype."""
        cfg = self.config
        threads = f", {cfg.num_threads} threads" if self.device.type == "cpu" else ""
        return (f"{'resuming at' if self.step else 'training from'} step {self.step}: "
                f"{self.model.num_parameters() / 1e6:.2f} M parameters; global batch {self.batch_split.describe()} "
                f"of {cfg.max_len} tokens = {self.tokens_per_step:,} tokens per step; on {self.device} "
                f"({self.dtype_note}{threads}) → {self.out_dir}")

    # -------------------------------------------------------------------------------------------- training

    def train_step(self, stop: StopRequest, check: bool) -> StepFigures | None:
        """One optimizer step. On a check step (``check``) the figures are read back and returned, and a
        non-finite value found there stops the step before the update (``finite`` is False, the weights are left
        alone); otherwise nothing is read from the device and None is returned."""
        cfg = self.config
        set_lr(self.optimizer, self.peak_lrs, cfg.lr_factor(self.step))
        accum = self.batch_split.accum_steps
        loss_sum = torch.zeros((), device=self.device)
        for micro in range(accum):
            x, y = self.batches.next()  # (b, T), (b, T)
            with ddp.maybe_no_sync(self.train_model, skip_sync=micro < accum - 1):
                with self.autocast():
                    _, loss = self.train_model(x, y)
                self.batches.prefetch()  # the CPU reads the next micro-batch while the GPU runs the forward
                self.scaler.scale(loss / accum).backward()  # gradients add up over the micro-batches
            loss_sum += loss.detach().float()
        loss = loss_sum / accum
        self.scaler.unscale_(self.optimizer)  # true gradients, so the clip threshold means what it says
        max_norm = cfg.grad_clip if cfg.grad_clip > 0 else math.inf
        grad_norm = torch.nn.utils.clip_grad_norm_(self.model.parameters(), max_norm)
        self._nonfinite |= ~torch.isfinite(loss)
        if not self.scaler.is_enabled():  # fp16: inf gradients are the scaler's business (it skips the step)
            self._nonfinite |= ~torch.isfinite(grad_norm)

        figures = None
        if check or (stop.requested and not self.ctx.enabled):
            # The one host sync of a check step: a single all-reduce and a single device-to-host copy.
            stop_flag = torch.tensor(float(stop.requested), device=self.device)
            flags = torch.stack([loss, self._nonfinite.float(), stop_flag])
            ddp.all_reduce_sum(flags, self.ctx)  # the summed loss; how many processes saw a non-finite value, a signal
            loss_total, nonfinite, stops, norm = torch.cat([flags, grad_norm.detach().float().view(1)]).tolist()
            self._nonfinite.zero_()
            figures = StepFigures(loss_total / self.ctx.world_size, norm, nonfinite == 0, stops > 0)
            self._last_checked_step = self.step + 1
            if not figures.finite:
                self.optimizer.zero_grad(set_to_none=True)
                return figures
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.optimizer.zero_grad(set_to_none=True)
        self.step += 1
        return figures

    @torch.no_grad()
    def evaluate(self) -> dict[str, float]:
        """Mean loss and perplexity exp(loss) on the fixed train and val batches (process 0 alone evaluates, so on
        the module inside DDP's wrapper: DDP's forward would wait for the other processes)."""
        model = self.train_model.module if self.ctx.enabled else self.train_model
        model.eval()
        result: dict[str, float] = {}
        for split, batches in self.eval_sets.items():
            losses = []
            for x, y in batches:
                with self.autocast():
                    _, loss = model(x, y)
                losses.append(loss.float())
            mean = torch.stack(losses).mean().item()
            result[f"{split}_loss"], result[f"{split}_ppl"] = mean, math.exp(min(mean, 80.0))
        model.train()
        if self.ctx.is_main:
            self.log({"kind": "eval", "step": self.step, **result, "time": round(time.time(), 3)},
                     f"step {self.step}: train loss {result['train_loss']:.4f}, val loss {result['val_loss']:.4f} "
                     f"({bits(result['val_loss']):.3f} bits per {self.token_unit}, perplexity "
                     f"{result['val_ppl']:.2f})")
        return result

    def fit(self) -> TrainResult:
        """Train from the current step to ``max_steps``; evaluate, save, sample and plot along the way. The output
        folder is unlocked when it returns, however it returns."""
        try:
            return self._fit()
        finally:
            self.release()

    def _fit(self) -> TrainResult:
        cfg, start = self.config, time.perf_counter()
        first_step, train_seconds, status, val_loss = self.step, 0.0, "finished", None
        if self.ctx.is_main:
            # A fresh log, or the old one cut back to the checkpoint's step (the steps run after it were lost with
            # the interruption and are about to be run again).
            kept = read_log(self.log_path) if first_step > 0 and self.log_path.is_file() else []
            self.log_path.write_text("".join(json.dumps(r) + "\n" for r in kept if r.get("step", 0) <= first_step))
            write(self.startup_line())
        if first_step == 0 and self.ctx.is_main:
            self.evaluate()
        bar = progress_bar(total=cfg.max_steps, initial=self.step, desc="training", unit="step",
                           disable=not self.progress)
        window_start, window_steps = time.perf_counter(), 0  # ms/step and tokens/s average over the log interval
        with StopRequest() as stop:
            while self.step < cfg.max_steps:
                step = self.step + 1  # the step about to run, 1-based
                log_now = step == 1 or step % cfg.log_interval == 0
                eval_now = step % cfg.eval_interval == 0 or step == cfg.max_steps
                unchecked_from = self._last_checked_step + 1
                t0 = time.perf_counter()
                figures = self.train_step(stop, check=cfg.sync_every_step or log_now or eval_now)
                train_seconds += time.perf_counter() - t0
                if figures is not None and not figures.finite:
                    status = "diverged"
                    where = (f"at step {step}" if unchecked_from == step
                             else f"between steps {unchecked_from} and {step}")
                    self.log({"kind": "event", "step": step, "event": "diverged", "since_step": unchecked_from,
                              "loss": str(figures.loss), "grad_norm": str(figures.grad_norm)},
                             f"a non-finite loss or gradient norm {where} (loss {figures.loss}, grad norm "
                             f"{figures.grad_norm}): stopping; the last good checkpoint {self.out_dir / 'last.pt'} "
                             "is kept")
                    break
                bar.update(1)
                window_steps += 1
                if log_now:
                    seconds = (time.perf_counter() - window_start) / window_steps
                    record = {"kind": "train", "step": step, "loss": figures.loss,
                              "lr": self.optimizer.param_groups[0]["lr"], "grad_norm": figures.grad_norm,
                              "tokens_per_s": self.tokens_per_step / seconds, "ms_per_step": 1000 * seconds,
                              "mem_mb": memory_mb(self.device), "time": round(time.time(), 3)}
                    mfu = ""
                    if self.peak_flops is not None:
                        record["mfu"] = self.flops_per_step / seconds / self.peak_flops
                        mfu = f", MFU {100 * record['mfu']:.1f}%"
                    self.log(record, f"step {step}: loss {figures.loss:.4f}, lr {record['lr']:.2e}, grad norm "
                                     f"{figures.grad_norm:.3f}, {record['ms_per_step']:.0f} ms/step, "
                                     f"{record['tokens_per_s']:,.0f} tokens/s{mfu}, {record['mem_mb']:,.0f} MiB")
                    window_start, window_steps = time.perf_counter(), 0
                if eval_now:
                    metrics = self.evaluate() if self.ctx.is_main else {}
                    val_loss = metrics.get("val_loss")
                    improved = torch.tensor(float(metrics.get("val_loss", math.inf) < self.best_val_loss),
                                            device=self.device)
                    if self.ctx.enabled:
                        torch.distributed.broadcast(improved, src=0)  # every process joins save()'s gather
                    if improved.item():
                        self.best_val_loss = val_loss if self.ctx.is_main else self.best_val_loss
                        self.save("last", "best")
                    else:
                        self.save("last")
                    window_start, window_steps = time.perf_counter(), 0
                if figures is not None and figures.stop_requested:
                    status = "interrupted"
                    if not eval_now:
                        self.save("last")
                    self.log({"kind": "event", "step": step, "event": "interrupted"},
                             f"interrupted at step {step}: saved {self.out_dir / 'last.pt'}; continue with --resume")
                    break
        bar.close()
        samples = self.sample() if status == "finished" and self.ctx.is_main and cfg.num_samples else []
        if self.ctx.is_main and cfg.plot:
            from scratchformers.train.plots import plot_log

            write(f"wrote {plot_log(self.log_path, self.out_dir / 'curves.png')}")
        ddp.cleanup_distributed(self.ctx)
        steps_run = max(self.step - first_step, 1)
        return TrainResult(status, self.step, val_loss, self.best_val_loss, time.perf_counter() - start,
                           1000 * train_seconds / steps_run, self.out_dir, samples, self.token_unit)

    def sample(self) -> list[str]:
        """``num_samples`` continuations of ``sample_prompt``, printed and written to ``samples.txt``."""
        from scratchformers.reference.generate import generate

        cfg = self.config
        samples = []
        with self.autocast():
            for i in range(cfg.num_samples):
                samples.append(generate(self.model, cfg.sample_prompt, cfg.sample_tokens, temperature=cfg.temperature,
                                        top_k=cfg.top_k or None, seed=cfg.seed + i, tokenizer=self.tokenizer))
        text = "\n".join(f"--- sample {i + 1} ---\n{s}\n" for i, s in enumerate(samples))
        (self.out_dir / "samples.txt").write_text(text)
        write(text)
        return samples
