"""Muon: the textbook step against torch's, the parameter groups, the combined optimizer (GradScaler, state), exact
resume in the trainer, and the one-line error of a torch without ``torch.optim.Muon``."""
from __future__ import annotations

import copy
import math

import pytest
import torch

from scratchformers.reference.config import GPTConfig
from scratchformers.reference.model import GPT
from scratchformers.reference.muon import muon_step, newton_schulz, shape_scale
from scratchformers.train.checkpoint import load_checkpoint
from scratchformers.train.config import TrainConfig, get_train_config
from scratchformers.train.optim import MuonAdamW, make_optimizer, muon_params, param_groups
from scratchformers.train.plots import read_log
from scratchformers.train.trainer import CLOCK_FIELDS, Trainer

BLOCK_MATRICES = ("attn.c_attn.weight", "attn.c_proj.weight", "mlp.c_fc.weight", "mlp.c_proj.weight")


def small_gpt(seed: int = 0) -> GPT:
    torch.manual_seed(seed)
    return GPT(GPTConfig(max_len=8, emb_dim=16, num_layers=2, num_heads=2, vocab_size=11))


# ----------------------------------------------------------------------------------------- the textbook step


@pytest.mark.parametrize("shape", [(48, 16), (16, 64), (32, 32)])  # tall (√3 scale), wide, square
@pytest.mark.parametrize("nesterov", [True, False])
def test_the_textbook_step_is_torchs_step(shape, nesterov):
    """Six steps on the same gradients, weight decay on: the same weights to float32 rounding (a few 1e-9 here),
    the same momentum buffer exactly."""
    torch.manual_seed(0)
    start = 0.02 * torch.randn(shape)
    param = torch.nn.Parameter(start.clone())
    torch_muon = torch.optim.Muon([param], lr=0.02, weight_decay=0.1, nesterov=nesterov)
    weight, buffer = start.clone(), torch.zeros(shape)
    for _ in range(6):
        grad = torch.randn(shape)
        param.grad = grad.clone()
        torch_muon.step()
        weight, buffer = muon_step(weight, grad, buffer, lr=0.02, weight_decay=0.1, nesterov=nesterov)
        torch.testing.assert_close(weight, param.detach(), rtol=1e-6, atol=1e-7)
        assert torch.equal(buffer, torch_muon.state[param]["momentum_buffer"])
    assert not torch.allclose(weight, start, atol=1e-3)  # it did move


def test_newton_schulz_orthogonalises():
    """The singular values of a random matrix spread over ~[0.1, 2.5] x its largest; after five steps they all lie
    near 1, and the singular vectors are the matrix's own (O = U S' Vᵀ, so Uᵀ O V is diagonal)."""
    torch.manual_seed(0)
    matrix = torch.randn(96, 32)  # tall: the iteration runs on its transpose
    orthogonal = newton_schulz(matrix).float()
    assert orthogonal.shape == (96, 32) and newton_schulz(matrix).dtype == torch.bfloat16
    singular = torch.linalg.svdvals(orthogonal)
    assert singular.min() > 0.6 and singular.max() < 1.25
    u, _, vt = torch.linalg.svd(matrix, full_matrices=False)
    core = u.T @ orthogonal @ vt.T  # (32, 32): S' if O shares M's singular vectors
    off_diagonal = core - torch.diag(torch.diagonal(core))
    assert off_diagonal.abs().max() < 0.05  # bfloat16 rounding, against diagonal entries near 1
    assert shape_scale(torch.Size([96, 32])) == pytest.approx(math.sqrt(3)) and shape_scale(torch.Size([32, 96])) == 1


# -------------------------------------------------------------------------------------------- the groups


def test_muon_holds_exactly_the_blocks_2d_matrices_and_every_parameter_is_in_one_group():
    model = small_gpt()
    optimizer = make_optimizer(model, learning_rate=1e-2, weight_decay=0.1, optimizer="muon")
    assert isinstance(optimizer, MuonAdamW)
    names = {id(p): name for name, p in model.named_parameters()}
    decay, no_decay, muon = ([names[id(p)] for p in group["params"]] for group in optimizer.param_groups)
    assert sorted(muon) == sorted(f"transformer.h.{i}.{m}" for i in range(2) for m in BLOCK_MATRICES)
    assert sorted(decay) == ["transformer.wpe.weight", "transformer.wte.weight"]  # the token table is the head too
    assert all(".bias" in n or "ln_" in n for n in no_decay)
    grouped = decay + no_decay + muon
    assert len(grouped) == len(set(grouped)) == len(list(model.parameters()))  # each once; the tied table once
    assert [g["weight_decay"] for g in optimizer.param_groups] == [0.1, 0.0, 0.0]
    assert [g["lr"] for g in optimizer.param_groups] == [1e-2, 1e-2, 0.02]  # each group its own peak
    assert [id(p) for p in muon_params(model)] == [id(p) for p in optimizer.param_groups[2]["params"]]
    assert make_optimizer(model, 1e-2, 0.1).param_groups[0]["params"][0] is model.transformer.wte.weight  # AdamW


def step_with_gradients(optimizer: torch.optim.Optimizer, model: GPT, grads: list[torch.Tensor]) -> None:
    for p, g in zip(model.parameters(), grads):
        p.grad = g.clone()
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)


def test_the_combined_optimizer_takes_torchs_adamw_and_muon_steps():
    """MuonAdamW is nothing but the two: the same weights as a separate AdamW and Muon on the same groups."""
    models = [small_gpt(), small_gpt()]
    combined = make_optimizer(models[0], 1e-2, 0.1, betas=(0.9, 0.99), optimizer="muon", muon_momentum=0.9,
                              muon_weight_decay=0.05)
    matrices = muon_params(models[1])
    adamw = torch.optim.AdamW(param_groups(models[1], 0.1, exclude=matrices), lr=1e-2, betas=(0.9, 0.99), fused=True)
    muon = torch.optim.Muon(matrices, lr=0.02, momentum=0.9, weight_decay=0.05)
    for _ in range(4):
        grads = [torch.randn_like(p) for p in models[0].parameters()]
        step_with_gradients(combined, models[0], grads)
        for p, g in zip(models[1].parameters(), grads):
            p.grad = g.clone()
        adamw.step()
        muon.step()
    for a, b in zip(models[0].parameters(), models[1].parameters()):
        assert torch.equal(a, b)


def test_state_dict_round_trip_continues_exactly():
    """Saved after 3 steps, loaded into a fresh optimizer on a copy of the model: the next 3 steps are the same
    bits as the uninterrupted optimizer's, and a rate written into param_groups reaches both inner optimizers."""
    model = small_gpt()
    optimizer = make_optimizer(model, 1e-2, 0.1, optimizer="muon")
    grads = [[torch.randn_like(p) for p in model.parameters()] for _ in range(6)]
    for g in grads[:3]:
        step_with_gradients(optimizer, model, g)
    saved_model, saved_state = copy.deepcopy(model.state_dict()), copy.deepcopy(optimizer.state_dict())

    resumed_model = small_gpt(seed=1)
    resumed_model.load_state_dict(saved_model)
    resumed = make_optimizer(resumed_model, 1e-2, 0.1, optimizer="muon")
    resumed.load_state_dict(saved_state)
    assert resumed.muon.param_groups[0] is resumed.param_groups[2] and resumed.muon.state is resumed.state
    for opt in (optimizer, resumed):
        for group in opt.param_groups:
            group["lr"] *= 0.5
    for g in grads[3:]:
        step_with_gradients(optimizer, model, g)
        step_with_gradients(resumed, resumed_model, g)
    for a, b in zip(model.parameters(), resumed_model.parameters()):
        assert torch.equal(a, b)
    with pytest.raises(ValueError):  # an AdamW state is not a Muon + AdamW state
        resumed.load_state_dict(make_optimizer(small_gpt(), 1e-2, 0.1).state_dict())


def test_the_gradient_scaler_steps_it_and_skips_an_inf_step():
    """What fp16 training on CUDA does, here on the CPU: a loss scaled by 2^16 gives the same update once the scaler
    has unscaled it; an inf gradient skips the step of both optimizers, momentum and all."""
    torch.manual_seed(0)
    x = torch.randint(0, 11, (2, 8))
    models = [small_gpt(), small_gpt()]
    optimizers = [make_optimizer(m, 1e-2, 0.1, optimizer="muon") for m in models]
    scaler = torch.amp.GradScaler("cpu", init_scale=2.0 ** 16)
    _, loss = models[0](x, x)
    loss.backward()
    optimizers[0].step()
    _, loss = models[1](x, x)
    scaler.scale(loss).backward()
    scaler.unscale_(optimizers[1])
    scaler.step(optimizers[1])
    scaler.update()
    for a, b in zip(models[0].parameters(), models[1].parameters()):
        assert torch.equal(a, b)

    before = copy.deepcopy(models[1].state_dict()), copy.deepcopy(optimizers[1].state_dict()["state"])
    optimizers[1].zero_grad()
    _, loss = models[1](x, x)
    scaler.scale(loss).backward()
    models[1].transformer.h[0].mlp.c_fc.weight.grad[0, 0] = math.inf
    scaler.step(optimizers[1])
    scaler.update()
    assert scaler.get_scale() == 2.0 ** 15  # backed off
    assert all(torch.equal(v, models[1].state_dict()[k]) for k, v in before[0].items())
    after = optimizers[1].state_dict()["state"]
    assert all(torch.equal(before[1][i][key], after[i][key]) for i in after for key in after[i])


# ---------------------------------------------------------------------------------------------- the trainer


def muon_config(data_dir: str, out_dir: str, **overrides) -> TrainConfig:
    values = dict(
        device="cpu", data_dir=data_dir, out_dir=out_dir, num_layers=1, num_heads=2, emb_dim=32, max_len=16,
        batch_size=4, max_steps=12, decay_steps=12, warmup_steps=2, eval_interval=6, eval_batches=2, log_interval=1,
        num_samples=0, plot=False, num_threads=1, learning_rate=1e-2, shakespeare_variant="tiny", dtype="float32",
        dropout=0.1, optimizer="muon", muon_learning_rate=0.05, schedule="wsd", cooldown_frac=0.5,
    )
    values.update(overrides)
    return get_train_config("shakespeare-cpu", **values)


def test_an_interrupted_muon_run_resumes_exactly(char_data, tmp_path):
    """12 steps in one go; 6 steps, then a resume to 12: the same losses, evaluations and final weights, bit for
    bit (float32, one thread; dropout on, so the random states come back too; the wsd schedule pinned by
    decay_steps). And Muon learns: the validation loss falls."""
    whole, parts = tmp_path / "whole", tmp_path / "parts"
    Trainer(muon_config(char_data, str(whole)), progress=False).fit()
    Trainer(muon_config(char_data, str(parts), max_steps=6), progress=False).fit()
    resumed = Trainer.resume(parts, progress=False, max_steps=12)
    assert resumed.step == 6 and isinstance(resumed.optimizer, MuonAdamW)
    assert resumed.peak_lrs == [1e-2, 1e-2, 0.05]
    resumed.fit()

    logs = {run: [{k: v for k, v in r.items() if k not in CLOCK_FIELDS} for r in read_log(run / "log.jsonl")]
            for run in (whole, parts)}
    assert logs[parts] == logs[whole]  # every loss, rate, gradient norm and evaluation, exactly
    assert [r["step"] for r in logs[whole] if r["kind"] == "train"] == list(range(1, 13))
    final = {run: load_checkpoint(run / "last.pt") for run in logs}
    assert all(torch.equal(final[whole]["model"][k], final[parts]["model"][k]) for k in final[whole]["model"])
    evals = [r["val_loss"] for r in logs[whole] if r["kind"] == "eval"]
    assert evals[-1] < evals[0] - 0.5


# ---------------------------------------------------------------------------------- a torch without Muon


def test_a_torch_without_muon_is_a_one_line_error(monkeypatch):
    monkeypatch.delattr(torch.optim, "Muon")
    for make in (lambda: TrainConfig(optimizer="muon"),
                 lambda: make_optimizer(small_gpt(), 1e-2, 0.1, optimizer="muon")):
        with pytest.raises(ImportError) as error:
            make()
        message = str(error.value)
        assert "\n" not in message and "torch.optim.Muon" in message and "torch 2.9" in message
        assert f"this is torch {torch.__version__}" in message and "--optimizer adamw" in message
    assert TrainConfig(optimizer="adamw").optimizer == "adamw"  # AdamW does not need it
