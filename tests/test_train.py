"""The training loop's pieces: schedule, parameter groups, configuration, a short run, NaN handling."""
from __future__ import annotations

import argparse
import json
import math

import pytest
import torch

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
from scratchformers.train.optim import lr_at, make_optimizer, param_groups
from scratchformers.train.prepare import prepare_shakespeare
from scratchformers.train.trainer import Trainer


@pytest.fixture(scope="module")
def char_data(tmp_path_factory: pytest.TempPathFactory) -> str:
    path = tmp_path_factory.mktemp("data") / "shakespeare_char"
    prepare_shakespeare(path, tokenizer="char", variant="tiny")
    return str(path)


def tiny_config(data_dir: str, out_dir: str, **overrides) -> TrainConfig:
    """A model small enough for a few steps in well under a second each."""
    values = dict(
        data_dir=data_dir, out_dir=out_dir, num_layers=1, num_heads=2, emb_dim=32, block_size=16, batch_size=4,
        max_steps=8, warmup_steps=2, eval_interval=4, eval_batches=2, log_interval=1, num_samples=0, plot=False,
        num_threads=1, learning_rate=1e-2, shakespeare_variant="tiny",
    )
    values.update(overrides)
    return get_train_config("shakespeare-cpu", **values)


def read_log(path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


# ------------------------------------------------------------------------------------------------------ schedule


def test_lr_warmup_is_linear_up_to_the_peak():
    lrs = [lr_at(s, 1.0, warmup_steps=10, decay_steps=100, min_lr_factor=0.1) for s in range(10)]
    assert lrs == pytest.approx([(s + 1) / 10 for s in range(10)])
    assert lr_at(10, 1.0, 10, 100, 0.1) == pytest.approx(1.0)  # the cosine starts at the peak


def test_lr_cosine_midpoint_end_and_floor():
    lr, warmup, decay, factor = 6e-4, 100, 1100, 0.1
    min_lr = lr * factor
    assert lr_at(600, lr, warmup, decay, factor) == pytest.approx((lr + min_lr) / 2)  # cos(π/2) = 0
    assert lr_at(decay, lr, warmup, decay, factor) == pytest.approx(min_lr)
    assert lr_at(decay + 5000, lr, warmup, decay, factor) == pytest.approx(min_lr)
    quarter = lr_at(350, lr, warmup, decay, factor)
    assert quarter == pytest.approx(min_lr + 0.5 * (1 + math.cos(math.pi / 4)) * (lr - min_lr))


def test_lr_is_monotone_after_warmup():
    lrs = [lr_at(s, 1e-3, 20, 200, 0.1) for s in range(20, 260)]
    assert all(a >= b for a, b in zip(lrs, lrs[1:]))


def test_lr_rejects_negative_step():
    with pytest.raises(ValueError, match="negative"):
        lr_at(-1, 1e-3, 10, 100, 0.1)


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


# ------------------------------------------------------------------------------------------------ configuration


def test_gpt2_owt_preset_has_the_seed_hyperparameters():
    c = get_train_config("gpt2-owt")
    assert (c.block_size, c.batch_size, c.grad_accum_steps, c.max_steps) == (1024, 12, 10, 600_000)
    assert (c.learning_rate, c.warmup_steps, c.min_lr_factor, c.weight_decay) == (6e-4, 2000, 0.1, 0.1)
    assert (c.dropout, c.beta1, c.beta2, c.grad_clip) == (0.0, 0.9, 0.95, 1.0)
    assert (c.attention, c.layernorm, c.dtype, c.compile) == ("fast", "fast", "bfloat16", True)
    assert (c.num_layers, c.num_heads, c.emb_dim) == (12, 12, 768)


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


def test_gradient_accumulation_equals_one_big_batch(char_data, tmp_path):
    """2 micro-batches of 4 windows give the loss and gradient of one batch of those 8 windows."""
    manual = Trainer(tiny_config(char_data, str(tmp_path / "a"), max_steps=1, grad_accum_steps=2), progress=False)
    (x1, y1), (x2, y2) = manual.batches.get_batch(), manual.batches.get_batch()
    _, loss = manual.model(torch.cat([x1, x2]), torch.cat([y1, y2]))  # (8, T)
    loss.backward()
    grad_norm = torch.nn.utils.clip_grad_norm_(manual.model.parameters(), math.inf).item()

    Trainer(tiny_config(char_data, str(tmp_path / "b"), max_steps=1, grad_accum_steps=2), progress=False).fit()
    first = [r for r in read_log(tmp_path / "b" / "log.jsonl") if r["kind"] == "train"][0]
    assert first["loss"] == pytest.approx(loss.item(), rel=1e-6)
    assert first["grad_norm"] == pytest.approx(grad_norm, rel=1e-5)


def test_nan_loss_stops_and_keeps_the_last_good_checkpoint(char_data, tmp_path, monkeypatch):
    calls = {"train": 0}
    original = GPT.forward

    def poisoned_forward(self, idx, targets=None, **kwargs):
        logits, loss = original(self, idx, targets, **kwargs)
        if self.training:
            calls["train"] += 1
            if calls["train"] > 5:  # steps 1-5 are fine, step 6 produces NaN
                loss = loss * float("nan")
        return logits, loss

    monkeypatch.setattr(GPT, "forward", poisoned_forward)
    out = tmp_path / "run"
    result = Trainer(tiny_config(char_data, str(out), max_steps=10, eval_interval=2), progress=False).fit()
    assert result.status == "diverged" and result.step == 5
    last = load_checkpoint(out / "last.pt")
    assert last["step"] == 4  # written at the step-4 evaluation, not overwritten afterwards
    assert all(torch.isfinite(t).all() for t in last["model"].values())
    events = [r for r in read_log(out / "log.jsonl") if r["kind"] == "event"]
    assert events == [{"kind": "event", "step": 6, "event": "diverged", "loss": "nan"}]


def test_float16_on_cpu_is_refused(char_data, tmp_path):
    with pytest.raises(ValueError, match="float16"):
        Trainer(tiny_config(char_data, str(tmp_path), dtype="float16"), progress=False)


def test_wrong_tokenizer_for_the_data_dir_is_refused(char_data, tmp_path):
    with pytest.raises(ValueError, match=r"holds shakespeare \(tiny, char tokenizer\) but .* --tokenizer char"):
        Trainer(tiny_config(char_data, str(tmp_path), tokenizer="gpt2"), progress=False)
