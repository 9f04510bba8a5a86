"""The training loop's pieces: schedule, parameter groups, configuration, a short run, NaN handling."""
from __future__ import annotations

import argparse
import gc
import math
import weakref

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

from scratchformers.reference.config import GPTConfig
from scratchformers.reference.model import GPT
from scratchformers.train.checkpoint import load_checkpoint
from scratchformers.train.config import (
    TrainConfig,
    add_config_arguments,
    config_overrides,
    get_train_config,
)
from scratchformers.train.metrics import flops_per_token, peak_flops
from scratchformers.train.optim import lr_factor, make_optimizer, param_groups
from scratchformers.train.plots import read_log
from scratchformers.train import trainer as trainer_module
from scratchformers.train.batches import MemmapBatches
from scratchformers.train.hardware import FP16_FALLBACK, choose_amp_dtype
from scratchformers.train.signals import StopRequest
from scratchformers.train.trainer import Trainer


def tiny_config(data_dir: str, out_dir: str, **overrides) -> TrainConfig:
    """A model small enough for a few steps in well under a second each, on the CPU on any machine (these tests check
    float32 CPU runs; the CUDA tests below ask for ``device="cuda"``)."""
    values = dict(
        device="cpu", data_dir=data_dir, out_dir=out_dir, num_layers=1, num_heads=2, emb_dim=32, max_len=16,
        batch_size=4, max_steps=8, warmup_steps=2, eval_interval=4, eval_batches=2, log_interval=1, num_samples=0,
        plot=False, num_threads=1, learning_rate=1e-2, shakespeare_variant="tiny", dtype="float32",
    )
    values.update(overrides)
    return get_train_config("shakespeare-cpu", **values)


# ------------------------------------------------------------------------------------------------------ schedule


def test_lr_warmup_is_linear_up_to_the_peak():
    for schedule in ("cosine", "wsd"):
        factors = [lr_factor(s, warmup_steps=10, decay_steps=100, min_lr_factor=0.1, schedule=schedule)
                   for s in range(11)]
        assert factors == pytest.approx([(s + 1) / 10 for s in range(10)] + [1.0])  # then the peak


def test_lr_cosine_midpoint_end_and_floor():
    warmup, decay, floor = 100, 1100, 0.1
    assert lr_factor(600, warmup, decay, floor) == pytest.approx((1 + floor) / 2)  # cos(π/2) = 0
    assert lr_factor(decay, warmup, decay, floor) == pytest.approx(floor)
    assert lr_factor(decay + 5000, warmup, decay, floor) == pytest.approx(floor)
    quarter = lr_factor(350, warmup, decay, floor)
    assert quarter == pytest.approx(floor + 0.5 * (1 + math.cos(math.pi / 4)) * (1 - floor))


def test_lr_wsd_is_warmup_then_flat_then_a_linear_cool_down_to_the_floor():
    """1,000 steps, 100 of warm-up, the last 20 % (200 steps) cooling down to 0."""
    def f(step: int, **kw) -> float:
        return lr_factor(step, **{**dict(warmup_steps=100, decay_steps=1000, min_lr_factor=0.0, schedule="wsd",
                                         cooldown_frac=0.2), **kw})

    assert [f(s) for s in (99, 100, 500, 799, 800)] == [1.0] * 5  # stable at the peak until the cool-down
    assert [f(s) for s in (850, 900, 950, 999)] == pytest.approx([0.75, 0.5, 0.25, 0.005])  # (1000 - s) / 200
    assert f(1000) == 0.0 and f(5000) == 0.0
    assert f(900, min_lr_factor=0.1) == pytest.approx(0.1 + 0.9 * 0.5)  # to the floor, not to zero
    assert f(999, cooldown_frac=0.0) == 1.0  # no cool-down: constant to the end
    cool = [f(s) for s in range(800, 1001)]
    assert all(a > b for a, b in zip(cool, cool[1:]))  # strictly decreasing
    # a warm-up and a cool-down that overlap: the smaller ramp (a triangle)
    assert f(40, warmup_steps=50, decay_steps=100, cooldown_frac=0.6) == pytest.approx(41 / 50)
    assert f(49, warmup_steps=50, decay_steps=100, cooldown_frac=0.6) == pytest.approx(51 / 60)


def test_lr_is_monotone_after_warmup():
    for schedule in ("cosine", "wsd"):
        factors = [lr_factor(s, 20, 200, 0.1, schedule) for s in range(20, 260)]
        assert all(a >= b for a, b in zip(factors, factors[1:]))


def test_lr_rejects_negative_step_and_unknown_schedules():
    with pytest.raises(ValueError, match="negative"):
        lr_factor(-1, 10, 100, 0.1)
    with pytest.raises(ValueError, match="schedule must be 'cosine' or 'wsd', got 'linear'"):
        lr_factor(1, 10, 100, 0.1, "linear")


# ------------------------------------------------------------------------------------------------ param groups


def test_param_groups_decay_only_matrices():
    model = GPT(GPTConfig(max_len=8, emb_dim=16, num_layers=2, num_heads=2, vocab_size=11))
    decay, no_decay = param_groups(model, 0.1)
    assert decay["weight_decay"] == 0.1 and no_decay["weight_decay"] == 0.0
    assert all(p.dim() >= 2 for p in decay["params"]) and all(p.dim() == 1 for p in no_decay["params"])
    # every parameter exactly once; the tied token table (also the LM head) is counted once
    grouped = {id(p) for p in decay["params"] + no_decay["params"]}
    assert grouped == {id(p) for p in model.parameters()}
    assert len(decay["params"]) + len(no_decay["params"]) == len(list(model.parameters()))
    assert any(p is model.transformer.wte.weight for p in decay["params"])
    assert any(p is model.transformer.h[0].ln_1.weight for p in no_decay["params"])


def test_weight_decay_leaves_biases_alone():
    """With zero gradients, AdamW's update is the decay alone: matrices shrink, 1-D parameters do not move."""
    model = GPT(GPTConfig(max_len=8, emb_dim=16, num_layers=1, num_heads=2, vocab_size=11))
    with torch.no_grad():
        for p in model.parameters():
            p.fill_(1.0)
    optimizer = make_optimizer(model, learning_rate=0.1, weight_decay=0.5)
    for p in model.parameters():
        p.grad = torch.zeros_like(p)
    optimizer.step()
    assert torch.allclose(model.transformer.h[0].attn.c_attn.weight, torch.tensor(1 - 0.1 * 0.5))
    assert torch.equal(model.transformer.h[0].attn.c_attn.bias, torch.ones(48))
    assert torch.equal(model.transformer.ln_f.weight, torch.ones(16))


def test_the_cpu_optimizer_is_fused_and_takes_adamws_steps():
    """The fused AdamW on the CPU (3x faster steps there) updates the weights as the step-by-step AdamW does."""
    torch.manual_seed(0)
    models = [GPT(GPTConfig(max_len=8, emb_dim=16, num_layers=1, num_heads=2, vocab_size=11)) for _ in range(2)]
    models[1].load_state_dict(models[0].state_dict())
    fused = make_optimizer(models[0], learning_rate=1e-2, weight_decay=0.1, betas=(0.9, 0.99), device_type="cpu")
    plain = torch.optim.AdamW(param_groups(models[1], 0.1), lr=1e-2, betas=(0.9, 0.99), foreach=False)
    assert fused.defaults["fused"] is True
    for _ in range(5):
        grads = [torch.randn_like(p) for p in models[0].parameters()]
        for model in models:
            for p, g in zip(model.parameters(), grads):
                p.grad = g.clone()
        fused.step()
        plain.step()
    for a, b in zip(models[0].parameters(), models[1].parameters()):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


# ------------------------------------------------------------------------------------------------ configuration


def test_gpt2_owt_preset_has_the_seed_hyperparameters():
    c = get_train_config("gpt2-owt")
    assert (c.max_len, c.batch_size, c.grad_accum_steps, c.max_steps) == (1024, 12, 10, 600_000)
    assert (c.learning_rate, c.warmup_steps, c.min_lr_factor, c.weight_decay) == (6e-4, 2000, 0.1, 0.1)
    assert (c.dropout, c.beta1, c.beta2, c.grad_clip) == (0.0, 0.9, 0.95, 1.0)
    assert (c.attention, c.layernorm, c.dtype, c.compile) == ("fast", "fast", "bfloat16", True)
    assert (c.num_layers, c.num_heads, c.emb_dim) == (12, 12, 768)
    assert (c.optimizer, c.schedule) == ("adamw", "cosine")


def test_every_field_is_a_flag_and_only_typed_flags_override():
    parser = argparse.ArgumentParser()
    add_config_arguments(parser)
    args = parser.parse_args(["--max-steps", "100", "--batch-size", "4", "--learning-rate", "3e-4", "--no-compile",
                              "--attention", "reference"])
    overrides = config_overrides(args)
    assert overrides == {"max_steps": 100, "batch_size": 4, "learning_rate": 3e-4, "compile": False,
                         "attention": "reference"}
    config = get_train_config("gpt2-owt", **overrides)
    assert (config.max_steps, config.batch_size, config.compile, config.grad_accum_steps) == (100, 4, False, 10)


def test_bad_config_values_are_clear_errors():
    with pytest.raises(ValueError, match="batch_size"):
        TrainConfig(batch_size=0)
    with pytest.raises(ValueError, match="dtype"):
        TrainConfig(dtype="float8")
    with pytest.raises(ValueError, match="divisible"):
        TrainConfig(emb_dim=30, num_heads=4)
    with pytest.raises(ValueError, match="unknown training preset"):
        get_train_config("gpt5")
    with pytest.raises(ValueError, match="optimizer must be 'adamw' or 'muon', got 'sgd'"):
        TrainConfig(optimizer="sgd")
    with pytest.raises(ValueError, match="schedule must be 'cosine' or 'wsd', got 'linear'"):
        TrainConfig(schedule="linear")
    with pytest.raises(ValueError, match="cooldown_frac must be between 0 and 1"):
        TrainConfig(cooldown_frac=1.5)
    with pytest.raises(ValueError, match="muon_momentum"):
        TrainConfig(muon_momentum=1.0)


def test_mfu_inputs():
    assert flops_per_token(100, 2, 8, 4) == 6 * 100 + 12 * 2 * 8 * 4
    assert peak_flops(torch.device("cpu")) is None


# ------------------------------------------------------------------------------------------------ the loop


def test_a_short_run_lowers_the_loss_and_logs_everything(char_data, tmp_path):
    config = tiny_config(char_data, str(tmp_path / "run"), max_steps=40, eval_interval=20, plot=True,
                         num_samples=1, sample_tokens=20)
    result = Trainer(config, progress=False).fit()
    assert result.status == "finished" and result.step == 40
    records = read_log(tmp_path / "run" / "log.jsonl")
    evals = [r for r in records if r["kind"] == "eval"]
    steps = [r for r in records if r["kind"] == "train"]
    assert [r["step"] for r in evals] == [0, 20, 40]
    assert evals[-1]["val_loss"] < evals[0]["val_loss"] - 0.5  # from ~ln(77) = 4.3 towards the unigram entropy
    assert evals[-1]["val_ppl"] == pytest.approx(math.exp(evals[-1]["val_loss"]))
    assert [r["step"] for r in steps] == list(range(1, 41))
    for key in ("loss", "lr", "grad_norm", "tokens_per_s", "ms_per_step", "mem_mb"):
        assert all(math.isfinite(r[key]) and r[key] > 0 for r in steps), key
    assert "mfu" not in steps[0]  # no peak FLOPs for a CPU
    assert result.val_loss == evals[-1]["val_loss"]
    best = load_checkpoint(tmp_path / "run" / "best.pt")
    assert best["best_val_loss"] == min(r["val_loss"] for r in evals[1:])
    assert load_checkpoint(tmp_path / "run" / "last.pt")["step"] == 40
    assert (tmp_path / "run" / "curves.png").stat().st_size > 10_000
    assert len(result.samples) == 1 and result.samples[0].startswith("\n") and len(result.samples[0]) == 21


def test_bf16_autocast_on_the_cpu_learns_as_float32_does(char_data, tmp_path):
    """What dtype="auto" picks on a CPU with native bf16: float32 weights and optimizer, bf16 matmuls. After 40
    steps at lr 1e-2 the rounding has sent the two runs along different paths, as another seed would: the
    validation losses agree within 0.05 (float32 alone, seeds 1337, 1, 2, 3: 3.20 to 3.27; bf16 minus float32 per
    seed: -0.027, +0.037, 0.000, +0.001). Runs on any CPU (elsewhere bf16 is emulated)."""
    results = {}
    for dtype in ("float32", "bfloat16"):
        trainer = Trainer(tiny_config(char_data, str(tmp_path / dtype), max_steps=40, eval_interval=40, dtype=dtype,
                                      eval_batches=8), progress=False)
        results[dtype] = trainer.fit()
        assert all(p.dtype == torch.float32 for p in trainer.model.parameters())
    assert trainer.dtype == torch.bfloat16
    assert results["bfloat16"].val_loss < 3.6  # it learned: ~ln(77) = 4.3 at the start
    assert results["bfloat16"].val_loss == pytest.approx(results["float32"].val_loss, abs=0.05)


def test_gradient_accumulation_equals_one_big_batch(char_data, tmp_path):
    """2 micro-batches of 4 windows give the loss and gradient of one batch of those 8 windows."""
    manual = Trainer(tiny_config(char_data, str(tmp_path / "a"), max_steps=1, grad_accum_steps=2), progress=False)
    (x1, y1), (x2, y2) = manual.batches.next(), manual.batches.next()
    _, loss = manual.model(torch.cat([x1, x2]), torch.cat([y1, y2]))  # (8, T)
    loss.backward()
    grad_norm = torch.nn.utils.clip_grad_norm_(manual.model.parameters(), math.inf).item()

    Trainer(tiny_config(char_data, str(tmp_path / "b"), max_steps=1, grad_accum_steps=2), progress=False).fit()
    first = [r for r in read_log(tmp_path / "b" / "log.jsonl") if r["kind"] == "train"][0]
    assert first["loss"] == pytest.approx(loss.item(), rel=1e-6)
    assert first["grad_norm"] == pytest.approx(grad_norm, rel=1e-5)


def poison_training_from(monkeypatch: pytest.MonkeyPatch, first_bad_call: int) -> None:
    """Training forwards (one per step without accumulation) return a NaN loss from call ``first_bad_call`` on."""
    calls = {"train": 0}
    original = GPT.forward

    def poisoned_forward(self, idx, targets=None, **kwargs):
        logits, loss = original(self, idx, targets, **kwargs)
        if self.training:
            calls["train"] += 1
            if calls["train"] >= first_bad_call:
                loss = loss * float("nan")
        return logits, loss

    monkeypatch.setattr(GPT, "forward", poisoned_forward)


def test_nan_loss_stops_and_keeps_the_last_good_checkpoint(char_data, tmp_path, monkeypatch):
    poison_training_from(monkeypatch, 6)  # steps 1-5 are fine, step 6 produces NaN
    out = tmp_path / "run"
    result = Trainer(tiny_config(char_data, str(out), max_steps=10, eval_interval=2), progress=False).fit()
    assert result.status == "diverged" and result.step == 5
    last = load_checkpoint(out / "last.pt")
    assert last["step"] == 4  # written at the step-4 evaluation, not overwritten afterwards
    assert all(torch.isfinite(t).all() for t in last["model"].values())
    events = [r for r in read_log(out / "log.jsonl") if r["kind"] == "event"]
    assert events == [{"kind": "event", "step": 6, "event": "diverged", "since_step": 6, "loss": "nan",
                       "grad_norm": "nan"}]


def test_unknown_config_fields_are_refused():
    with pytest.raises(ValueError, match=r"unknown TrainConfig fields \['n_head'\]"):
        TrainConfig.from_dict({**TrainConfig().to_dict(), "n_head": 2})


def test_float16_on_cpu_is_refused(char_data, tmp_path):
    with pytest.raises(ValueError, match="float16"):
        Trainer(tiny_config(char_data, str(tmp_path), dtype="float16"), progress=False)


def test_wrong_tokenizer_for_the_data_dir_is_refused(char_data, tmp_path):
    with pytest.raises(ValueError, match=r"holds shakespeare \(tiny, char tokenizer\) but .* --tokenizer char"):
        Trainer(tiny_config(char_data, str(tmp_path), tokenizer="gpt2"), progress=False)


def test_nan_between_check_steps_is_caught_at_the_next_one(char_data, tmp_path, monkeypatch):
    """Figures are read at check steps only (1, 4, 8 here); a NaN at step 6 sets the device-side flag, the check
    at step 8 finds it, and the run stops without writing a checkpoint from poisoned weights."""
    poison_training_from(monkeypatch, 6)
    out = tmp_path / "run"
    result = Trainer(tiny_config(char_data, str(out), max_steps=12, eval_interval=4, log_interval=4),
                     progress=False).fit()
    assert result.status == "diverged" and result.step == 7  # steps 6 and 7 were applied before the check
    last = load_checkpoint(out / "last.pt")
    assert last["step"] == 4 and all(torch.isfinite(t).all() for t in last["model"].values())
    records = read_log(out / "log.jsonl")
    assert [r["step"] for r in records if r["kind"] == "train"] == [1, 4]
    assert records[-1] == {"kind": "event", "step": 8, "event": "diverged", "since_step": 5, "loss": "nan",
                           "grad_norm": "nan"}


class ValueReads(TorchDispatchMode):
    """Records every read of a tensor's value into Python (``.item()``, ``float(t)``, ``if t:``: on a GPU each one
    waits for the device) and every ``.tolist()`` of a floating-point tensor, except reads of AdamW's step
    counters, which live on the host on every device (fused AdamW on CUDA keeps them on the device and reads
    nothing)."""

    def __init__(self, optimizer: torch.optim.Optimizer, monkeypatch: pytest.MonkeyPatch) -> None:
        super().__init__()
        self.reads: list[tuple] = []
        self._host_counters = {id(state["step"]) for state in optimizer.state.values() if "step" in state}
        original_tolist = torch.Tensor.tolist

        def tolist(tensor: torch.Tensor):
            if tensor.is_floating_point():
                self.reads.append(("tolist", tuple(tensor.shape)))
            return original_tolist(tensor)

        monkeypatch.setattr(torch.Tensor, "tolist", tolist)

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if func is torch.ops.aten._local_scalar_dense.default and id(args[0]) not in self._host_counters:
            self.reads.append((str(func), tuple(args[0].shape)))
        return func(*args, **(kwargs or {}))


@pytest.mark.parametrize("optimizer", ["adamw", "muon"])  # Muon's step too stays on the device
def test_the_hot_loop_reads_nothing_back_between_check_steps(char_data, tmp_path, monkeypatch, optimizer):
    trainer = Trainer(tiny_config(char_data, str(tmp_path), grad_accum_steps=2, dropout=0.1, log_interval=100,
                                  eval_interval=100, max_steps=100, optimizer=optimizer), progress=False)
    stop = StopRequest()
    assert trainer.train_step(stop, check=True) is not None  # creates the optimizer's state
    with ValueReads(trainer.optimizer, monkeypatch) as reads:
        for _ in range(3):
            assert trainer.train_step(stop, check=False) is None
    assert reads.reads == [] and trainer.step == 4
    with ValueReads(trainer.optimizer, monkeypatch) as reads:
        figures = trainer.train_step(stop, check=True)
    assert reads.reads == [("tolist", (4,))]  # one read of [loss, non-finite flag, stop flag, grad norm]
    assert math.isfinite(figures.loss) and figures.grad_norm > 0 and figures.finite and not figures.stop_requested


def test_prefetch_reads_the_next_micro_batch_during_the_step(char_data, tmp_path, monkeypatch):
    """Each micro-batch is read while the previous one's forward has run and before its backward, with or without
    sync_every_step (which only adds reads of the figures). Both train on the same windows."""
    events: dict[bool, list[str]] = {}
    original_read, original_forward = MemmapBatches.read, GPT.forward
    current: list[str] = []

    def read(self, starts):
        current.append("read")
        return original_read(self, starts)

    def forward(self, idx, targets=None, **kwargs):
        current.append("forward")
        return original_forward(self, idx, targets, **kwargs)

    monkeypatch.setattr(MemmapBatches, "read", read)
    monkeypatch.setattr(GPT, "forward", forward)
    losses = {}
    for sync in (False, True):
        out = tmp_path / f"sync{sync}"
        trainer = Trainer(tiny_config(char_data, str(out), grad_accum_steps=2, max_steps=2, sync_every_step=sync,
                                      eval_batches=1), progress=False)
        current.clear()
        trainer.fit()
        events[sync] = list(current)
        losses[sync] = [r["loss"] for r in read_log(out / "log.jsonl") if r["kind"] == "train"]
    # evaluation forwards: 2 splits x 1 batch at steps 0 and 2
    eval_forwards = ["forward"] * 2
    assert events[False] == [*eval_forwards, "read", "forward", "read", "forward", "read", "forward", "read",
                             "forward", "read", *eval_forwards]  # the last read is step 3's, never used
    assert events[True] == events[False]
    assert losses[False] == losses[True] and len(losses[True]) == 2


def test_evaluation_batches_are_not_training_batches(char_data, tmp_path):
    """The fixed "train" evaluation batches come from a stream of their own: the first training windows are
    not among them (they were, when both streams had the seed 1337)."""
    trainer = Trainer(tiny_config(char_data, str(tmp_path), eval_batches=4), progress=False)
    evaluated = {tuple(row.tolist()) for x, _ in trainer.eval_sets["train"] for row in x}
    trained = {tuple(row.tolist()) for _ in range(4) for row in trainer.batches.next()[0]}
    assert len(evaluated) == 16 and len(trained) == 16
    assert not evaluated & trained


def test_start_up_line_states_the_global_batch_and_its_split(char_data, tmp_path, capsys):
    Trainer(tiny_config(char_data, str(tmp_path), grad_accum_steps=3, max_steps=1, eval_batches=1),
            progress=False).fit()
    out = capsys.readouterr().out
    assert "global batch 12 windows (1 process × 3 micro-batches × 4 windows) of 16 tokens = 192 tokens per step" in out
    assert "(float32, 1 threads)" in out


def test_a_global_batch_that_does_not_split_is_a_clear_error(char_data, tmp_path, monkeypatch):
    monkeypatch.setattr(trainer_module.ddp, "setup_distributed",
                        lambda device: trainer_module.ddp.DistContext(rank=0, world_size=3))
    with pytest.raises(ValueError, match=r"4 × 2 = 8 windows cannot be shared equally by 3 processes: use "
                                         r"--grad-accum-steps 3, 6, 9"):
        Trainer(tiny_config(char_data, str(tmp_path), grad_accum_steps=2), progress=False)


def test_resume_lets_go_of_the_checkpoint(char_data, tmp_path, monkeypatch):
    """Once the states are loaded nothing holds the checkpoint (GPT-2's is ~1.5 GB of host memory per process):
    the loaded tensors are freed before training continues."""
    from scratchformers.train.cli import main

    out = tmp_path / "run"
    Trainer(tiny_config(char_data, str(out), max_steps=2, eval_interval=2), progress=False).fit()
    loaded: list[weakref.ref] = []
    original_load = trainer_module.load_checkpoint

    def load_and_watch(path, *args, **kwargs):
        state = original_load(path, *args, **kwargs)
        loaded.extend(weakref.ref(t) for t in state["model"].values())
        return state

    alive_during_fit: list[int] = []
    original_fit = Trainer.fit

    def fit(self):
        gc.collect()
        alive_during_fit.append(sum(ref() is not None for ref in loaded))
        return original_fit(self)

    monkeypatch.setattr(trainer_module, "load_checkpoint", load_and_watch)
    monkeypatch.setattr(Trainer, "fit", fit)
    assert main(["train", "--resume", "--out-dir", str(out), "--max-steps", "3", "--no-progress"]) == 0
    assert loaded  # the resume did go through load_checkpoint
    assert alive_during_fit == [0]


@pytest.mark.parametrize(
    "requested, bf16, expected",
    [
        ("auto", True, (torch.bfloat16, "bfloat16 autocast")),
        ("auto", False, (torch.float16, "float16 autocast with a gradient scaler")),
        ("bfloat16", True, (torch.bfloat16, "bfloat16 autocast")),
        ("bfloat16", False, (torch.float16, FP16_FALLBACK)),
        ("float16", True, (torch.float16, "float16 autocast with a gradient scaler")),
        ("float32", False, (torch.float32, "float32")),
    ],
)
def test_fp16_with_a_scaler_where_the_gpu_has_no_bf16(monkeypatch, requested, bf16, expected):
    """As nanoGPT: bf16 where the GPU has it natively, else fp16 (the trainer then enables the GradScaler)."""
    asked = []

    def is_bf16_supported(including_emulation: bool = True) -> bool:
        asked.append(including_emulation)
        return bf16

    monkeypatch.setattr(torch.cuda, "is_bf16_supported", is_bf16_supported)
    assert choose_amp_dtype(requested, torch.device("cuda", 0)) == expected
    assert asked == [False]  # emulated bf16 (V100, T4) does not count


@pytest.mark.parametrize("avx512_bf16, amx, expected", [
    (True, False, torch.bfloat16),  # AMD Zen 4, Intel Cooper Lake
    (False, True, torch.bfloat16),  # Intel Sapphire Rapids and later
    (True, True, torch.bfloat16),
    (False, False, torch.float32),  # AVX2 laptops: bf16 would be emulated, slower than float32
])
def test_auto_on_the_cpu_is_bf16_only_where_the_cpu_has_it(monkeypatch, avx512_bf16, amx, expected):
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: avx512_bf16)
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: amx)
    dtype, note = choose_amp_dtype("auto", torch.device("cpu"))
    assert dtype == expected and ("no native bf16" in note) == (expected == torch.float32)
    assert choose_amp_dtype("float32", torch.device("cpu")) == (torch.float32, "float32")  # asked for: honoured
    monkeypatch.delattr(torch.cpu, "_is_avx512_bf16_supported")  # a torch without the private probes
    monkeypatch.delattr(torch.cpu, "_is_amx_tile_supported")
    assert choose_amp_dtype("auto", torch.device("cpu"))[0] == torch.float32


def test_amp_dtype_on_cpu():
    assert choose_amp_dtype("float32", torch.device("cpu")) == (torch.float32, "float32")
    assert choose_amp_dtype("bfloat16", torch.device("cpu")) == (torch.bfloat16, "bfloat16 autocast")
    with pytest.raises(ValueError, match="float16"):
        choose_amp_dtype("float16", torch.device("cpu"))


def test_a_non_interactive_run_reports_progress_in_plain_lines(char_data, tmp_path, capsys):
    """stderr is not a terminal here (as in CI, nohup or a log file): no tqdm carriage returns, a plain line."""
    Trainer(tiny_config(char_data, str(tmp_path), max_steps=3), progress=True).fit()
    err = capsys.readouterr().err
    assert "\r" not in err
    assert err.splitlines()[-1].startswith("training: 3/3 steps (100%), ")


@pytest.mark.gpu
def test_no_host_syncs_between_check_steps_on_cuda(char_data, tmp_path):
    """On a GPU, CUDA's sync debug mode raises on any synchronising call during the steps between checks."""
    trainer = Trainer(tiny_config(char_data, str(tmp_path), device="cuda", grad_accum_steps=2, log_interval=100,
                                  eval_interval=100, max_steps=100), progress=False)
    stop = StopRequest()
    trainer.train_step(stop, check=True)
    trainer.train_step(stop, check=False)  # lazy initialisations (cuBLAS handles, pinned-memory pools) done
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        for _ in range(3):
            assert trainer.train_step(stop, check=False) is None
    finally:
        torch.cuda.set_sync_debug_mode("default")
    figures = trainer.train_step(stop, check=True)
    assert figures.finite and trainer.step == 6


@pytest.mark.gpu
def test_float16_on_cuda_trains_with_the_gradient_scaler(char_data, tmp_path):
    result_trainer = Trainer(tiny_config(char_data, str(tmp_path), device="cuda", dtype="float16", max_steps=4),
                             progress=False)
    assert result_trainer.scaler.is_enabled() and result_trainer.dtype == torch.float16
    result = result_trainer.fit()
    assert result.status == "finished" and math.isfinite(result.val_loss)
    assert load_checkpoint(tmp_path / "last.pt")["scaler"]["scale"] > 0
