"""Training configuration: one flat dataclass, two presets, every field a command-line flag.

Like nanoGPT's ``config/*.py`` files, a preset is just a set of values; ``scratchformers train --preset NAME
--max-steps 100`` starts from the preset and overrides single fields. The flags are generated from the dataclass
(``batch_size`` becomes ``--batch-size``), so a new field is a new flag with no further code.

Step counts are *optimizer* steps. One step sees the global batch of ``batch_size · grad_accum_steps`` windows of
``max_len`` tokens on any number of processes: under ``torchrun`` the processes share it out (see
:func:`scratchformers.train.batches.split_global_batch`), so the learning rate keeps meaning what it was tuned for.
"""
from __future__ import annotations

import argparse
import inspect
import re
from dataclasses import MISSING, asdict, dataclass, fields
from typing import Any

from scratchformers.reference.config import GPTConfig
from scratchformers.reference.generate import check_sampling_arguments
from scratchformers.train.data import VARIANTS
from scratchformers.train.datasets import DEFAULT_BPE_MERGES, default_data_dir
from scratchformers.train.optim import (
    COOLDOWN_FRAC,
    MUON_LEARNING_RATE,
    MUON_MOMENTUM,
    MUON_WEIGHT_DECAY,
    check_optimizer,
    check_schedule,
    lr_factor,
    require_muon,
)


@dataclass
class TrainConfig:
    """Everything a training run needs; the defaults are the ``shakespeare-cpu`` preset."""

    # run and data
    name: str = "shakespeare-cpu"  # names the output folder out/<name>
    out_dir: str = ""  # "" → out/<name>
    # The dataset asked for: train refuses data whose meta.json records another one (see train/datasets.py).
    dataset: str = "shakespeare"  # "shakespeare" is prepared automatically; anything else must be prepared first
    data_dir: str = ""  # "" → data/shakespeare_[tiny_]<tokenizer>[<bpe_merges>], data/<dataset> otherwise
    tokenizer: str = "char"  # Shakespeare's tokenizer: "char", "gpt2" or "bpe"
    shakespeare_variant: str = "full"  # "full" (5.06 M characters) or "tiny" (1.1 M)
    bpe_merges: int = DEFAULT_BPE_MERGES  # merges of the word BPE, with tokenizer "bpe"
    # model (see GPTConfig)
    num_layers: int = 4  # transformer blocks
    num_heads: int = 4  # attention heads per block; emb_dim must divide by it
    emb_dim: int = 128  # d_model, the model's width (GPTConfig's emb_dim = model_dim); the MLP is 4 x wider
    max_len: int = 128  # the context length T (GPTConfig.max_len): tokens per training window
    vocab_size: int = 0  # 0 → the dataset's vocabulary size
    dropout: float = 0.0  # on attention weights, residual branches and embeddings while training
    bias: bool = True  # biases in the linear layers and LayerNorms, as in GPT-2
    attention: str = "torch_sdpa"  # "reference", "torch_sdpa" or "fast"
    layernorm: str = "torch"  # "reference", "torch" or "fast"
    gelu: str = "reference"  # "reference" (spelled out, op by op) or "torch" (F.gelu: the same function, fused)
    # optimisation
    batch_size: int = 16  # windows per micro-batch
    grad_accum_steps: int = 1  # micro-batches per optimizer step, shared out among the DDP processes
    max_steps: int = 2500  # optimizer steps in the run
    optimizer: str = "muon"  # "muon": Muon for the blocks' 2-D matrices, AdamW for the rest (torch>=2.9); or "adamw"
    learning_rate: float = 3e-3  # AdamW's peak rate, reached after warmup_steps, then the schedule's decay
    schedule: str = "wsd"  # "wsd": warm-up, stable at the peak, linear cool-down at the end; or "cosine" decay
    cooldown_frac: float = COOLDOWN_FRAC  # with --schedule wsd: the last fraction of decay_steps spent cooling down
    min_lr_factor: float = 0.0  # the schedule ends at each peak rate · min_lr_factor
    warmup_steps: int = 100  # linear warm-up from 0 to the peak rates
    decay_steps: int = 0  # 0 → max_steps: the schedule reaches its floor at the last step
    weight_decay: float = 0.1  # AdamW's decay of its ≥2-D parameters (not biases or LayerNorm gains)
    beta1: float = 0.9  # AdamW's first-moment decay
    beta2: float = 0.99  # AdamW's second-moment decay (GPT-2: 0.95)
    muon_learning_rate: float = 0.01  # with --optimizer muon: Muon's peak rate, on the same schedule
    muon_momentum: float = MUON_MOMENTUM  # with --optimizer muon: Muon's (Nesterov) momentum
    muon_weight_decay: float = MUON_WEIGHT_DECAY  # with --optimizer muon: Muon's decoupled decay of the block matrices
    grad_clip: float = 1.0  # 0 → no clipping (the norm is still logged)
    # evaluation, logging, checkpoints
    eval_interval: int = 500  # evaluate and save last.pt (and best.pt) every this many steps, and at the end
    eval_batches: int = 20  # fixed batches per split for each evaluation
    log_interval: int = 50  # print and log the training loss every this many steps
    # system
    device: str = "auto"  # "auto" → cuda if available, else cpu
    dtype: str = "auto"  # "float32", "bfloat16", "float16" (CUDA) or "auto": bf16 where native, else float32 / fp16
    compile: bool = False  # torch.compile the model (a C++ compiler on CPU; the first steps wait for it)
    sync_every_step: bool = False  # read loss and grad norm every step (a host sync each): NaN stops before its update
    num_threads: int = 0  # CPU threads for torch; 0 → every core this process may use (1 on a busy shared machine)
    seed: int = 1337  # initial weights, batches and samples
    # samples and plots at the end
    num_samples: int = 2  # samples printed and saved at the end (0: none)
    sample_tokens: int = 300  # tokens per sample
    sample_prompt: str = "\n"  # the text every sample starts from
    temperature: float = 0.8  # sampling temperature: below 1 sharper, above 1 flatter
    top_k: int = 0  # 0 → no top-k filter
    plot: bool = True  # draw the loss curves into the output folder at the end

    def __post_init__(self) -> None:
        positive = ("num_layers", "num_heads", "emb_dim", "max_len", "batch_size", "grad_accum_steps",
                    "max_steps", "eval_interval", "eval_batches", "log_interval", "bpe_merges")
        for name in positive:
            if getattr(self, name) < 1:
                raise ValueError(f"TrainConfig.{name} must be at least 1, got {getattr(self, name)}")
        for name in ("vocab_size", "warmup_steps", "decay_steps", "num_threads", "num_samples", "sample_tokens",
                     "top_k"):
            if getattr(self, name) < 0:
                raise ValueError(f"TrainConfig.{name} must not be negative, got {getattr(self, name)}")
        if self.learning_rate <= 0 or not 0.0 <= self.min_lr_factor <= 1.0:
            raise ValueError(
                f"need learning_rate > 0 and 0 <= min_lr_factor <= 1, got {self.learning_rate}, {self.min_lr_factor}"
            )
        self._check_optimizer()
        if self.dtype not in ("auto", "float32", "bfloat16", "float16"):
            raise ValueError(f"dtype must be 'auto', 'float32', 'bfloat16' or 'float16', got {self.dtype!r}")
        check_sampling_arguments(self.sample_tokens, self.temperature, self.top_k or None, None)
        if self.shakespeare_variant not in VARIANTS:
            raise ValueError(f"shakespeare_variant must be 'full' or 'tiny', got {self.shakespeare_variant!r}")
        self.model_config(vocab_size=max(self.vocab_size, 1))  # validates the model fields early

    def _check_optimizer(self) -> None:
        check_optimizer(self.optimizer)
        check_schedule(self.schedule)
        if not 0.0 <= self.cooldown_frac <= 1.0:
            raise ValueError(f"cooldown_frac must be between 0 and 1, got {self.cooldown_frac}")
        if self.muon_learning_rate <= 0 or not 0.0 <= self.muon_momentum < 1.0 or self.muon_weight_decay < 0:
            raise ValueError(f"need muon_learning_rate > 0, 0 <= muon_momentum < 1 and muon_weight_decay >= 0, got "
                             f"{self.muon_learning_rate}, {self.muon_momentum}, {self.muon_weight_decay}")
        if self.optimizer == "muon":
            require_muon()

    @property
    def total_decay_steps(self) -> int:
        """The step at which the schedule reaches its floor."""
        return self.decay_steps or self.max_steps

    def lr_factor(self, step: int) -> float:
        """The schedule at optimizer step ``step`` (0-based): the multiple of every parameter group's peak rate."""
        return lr_factor(step, self.warmup_steps, self.total_decay_steps, self.min_lr_factor, self.schedule,
                         self.cooldown_frac)

    def resolved_out_dir(self) -> str:
        """Where checkpoints, the log, samples and plots go."""
        return self.out_dir or f"out/{self.name}"

    def resolved_data_dir(self) -> str:
        """Where the prepared dataset is (or, for Shakespeare, will be prepared)."""
        return self.data_dir or default_data_dir(self)

    def model_config(self, vocab_size: int) -> GPTConfig:
        """The model's :class:`GPTConfig`: every field both configs have, by name (``max_len``, ``num_layers``, ...);
        ``vocab_size`` is used when the config's own is 0 (from the data)."""
        shared = {f.name for f in fields(GPTConfig)} & {f.name for f in fields(self)} - {"vocab_size"}
        return GPTConfig(**{name: getattr(self, name) for name in shared}, vocab_size=self.vocab_size or vocab_size)

    def to_dict(self) -> dict[str, Any]:
        """Plain values only, as stored in checkpoints (``torch.load(weights_only=True)`` reads them back)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> TrainConfig:
        """Inverse of :meth:`to_dict`; unknown keys are a clear error. A field that ``values`` lacks (a checkpoint
        saved before the field existed) takes what such runs trained with, :data:`SAVED_BEFORE_FIELD`, where that
        is not today's default."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"unknown TrainConfig fields {unknown}")
        return cls(**{**SAVED_BEFORE_FIELD, **values})


# What a run saved before these fields existed trained with: AdamW on the cosine, where today's defaults (the
# shakespeare-cpu preset's) are Muon on wsd. Muon's own fields and cooldown_frac do not act under these values.
SAVED_BEFORE_FIELD: dict[str, Any] = {"optimizer": "adamw", "schedule": "cosine"}


PRESETS: dict[str, dict[str, Any]] = {
    # The README's default: a 4-layer, 128-wide character-level model (0.8 M parameters) on the full embedded
    # Shakespeare, 2,500 steps of 16 x 128 characters (5.1 M characters, about 1.1 passes over the 4.6 M training
    # characters), in bf16 autocast where the CPU has it. Muon (peak rate 0.01) trains the blocks' matrices and
    # AdamW (3e-3) the rest, on a warmup-stable-decay schedule that cools down to zero over the last 20 % of the
    # steps. The best use of ~7 minutes on 2 CPU cores that benchmarks/cpu_sweep.py found (its table:
    # benchmarks/RESULTS.md); benchmarks/cpu_vs_nanogpt.py compares it with nanoGPT's CPU recipe at equal wall time.
    "shakespeare-cpu": {},
    # GPT-2 small (124 M) on OpenWebText with the seed's (and nanoGPT's) hyper-parameters, on the fast path.
    # GPT-2's 50,257 tokens are padded to 50,304 (a multiple of 64) for faster matmuls, as in nanoGPT.
    "gpt2-owt": dict(
        name="gpt2-owt",
        dataset="openwebtext",
        tokenizer="gpt2",
        optimizer="adamw",  # the seed's recipe (shakespeare-cpu's optimizer and schedule are Muon and wsd)
        schedule="cosine",
        muon_learning_rate=MUON_LEARNING_RATE,  # with --optimizer muon: Muon's usual 0.02, not tuned at this scale
        num_layers=12,
        num_heads=12,
        emb_dim=768,
        max_len=1024,
        vocab_size=50304,
        dropout=0.0,
        attention="fast",
        layernorm="fast",
        batch_size=12,
        grad_accum_steps=10,
        max_steps=600_000,
        learning_rate=6e-4,
        min_lr_factor=0.1,
        warmup_steps=2000,
        decay_steps=600_000,
        weight_decay=0.1,
        beta1=0.9,
        beta2=0.95,
        grad_clip=1.0,
        eval_interval=2000,
        eval_batches=200,
        log_interval=10,
        dtype="bfloat16",
        compile=True,
        sample_prompt="The meaning of life is",
        num_samples=3,
        sample_tokens=100,
        top_k=200,
    ),
}


def get_train_config(preset: str = "shakespeare-cpu", **overrides: Any) -> TrainConfig:
    """The preset's :class:`TrainConfig` with ``overrides`` applied."""
    if preset not in PRESETS:
        raise ValueError(f"unknown training preset {preset!r}; choose one of {', '.join(PRESETS)}")
    return TrainConfig(**{**PRESETS[preset], **overrides})


def field_comments() -> dict[str, str]:
    """Each :class:`TrainConfig` field's comment on its line in the source: the flags' help."""
    declarations = (re.match(r"\s+(\w+): [^=]+=.*?#\s*(.*)$", line)
                    for line in inspect.getsource(TrainConfig).splitlines())
    return {match.group(1): match.group(2) for match in declarations if match}


def add_config_arguments(parser: argparse.ArgumentParser) -> None:
    """One ``--flag`` per :class:`TrainConfig` field, its help the field's comment. Unset flags are absent from
    the parsed namespace (they default to ``argparse.SUPPRESS``), so only what the user typed overrides the preset."""
    group = parser.add_argument_group(
        "training configuration", "each flag overrides one field of the preset; the values shown are shakespeare-cpu's"
    )
    comments = field_comments()
    for f in fields(TrainConfig):
        flag = "--" + f.name.replace("_", "-")
        default = f.default if f.default is not MISSING else None
        text = f"{comments.get(f.name, '')} (default {default!r})".strip().replace("%", "%%")
        if isinstance(default, bool):
            group.add_argument(flag, dest=f.name, action=argparse.BooleanOptionalAction, default=argparse.SUPPRESS,
                               help=text)
        else:
            group.add_argument(flag, dest=f.name, type=type(default), default=argparse.SUPPRESS, metavar=f.name.upper(),
                               help=text)


def config_overrides(args: argparse.Namespace) -> dict[str, Any]:
    """The :class:`TrainConfig` fields set on the command line."""
    names = {f.name for f in fields(TrainConfig)}
    return {name: value for name, value in vars(args).items() if name in names}

