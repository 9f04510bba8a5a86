"""DDP on CPU: two gloo processes train a few steps with gradient accumulation and end with identical weights."""
from __future__ import annotations

import os
import socket

import torch
import torch.multiprocessing as mp

from scratchformers.reference.model import GPT
from scratchformers.train.checkpoint import load_checkpoint
from scratchformers.train.config import get_train_config
from scratchformers.train.ddp import DistContext, maybe_no_sync, setup_distributed, unwrap_model
from scratchformers.train.prepare import prepare_shakespeare
from scratchformers.train.trainer import Trainer

WORLD_SIZE = 2


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def worker(rank: int, port: int, data_dir: str, out_dir: str) -> None:
    """One DDP process, as torchrun would start it: the environment says who it is."""
    os.environ.update(RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE=str(WORLD_SIZE),
                      LOCAL_WORLD_SIZE=str(WORLD_SIZE), MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    config = get_train_config(
        "shakespeare-cpu", data_dir=data_dir, out_dir=out_dir, device="cpu", num_layers=1, num_heads=2, emb_dim=32,
        block_size=16, batch_size=4, grad_accum_steps=2, max_steps=4, warmup_steps=1, eval_interval=2,
        eval_batches=2, log_interval=1, num_samples=0, plot=False, learning_rate=1e-2, shakespeare_variant="tiny",
    )
    trainer = Trainer(config, progress=False)
    assert trainer.ctx.world_size == WORLD_SIZE and trainer.ctx.rank == rank
    assert isinstance(trainer.train_model, torch.nn.parallel.DistributedDataParallel)
    result = trainer.fit()
    assert result.status == "finished"
    torch.save(unwrap_model(trainer.train_model).state_dict(), os.path.join(out_dir, f"rank{rank}.pt"))


def test_two_gloo_processes_end_with_identical_weights(tmp_path):
    data_dir = tmp_path / "data"
    prepare_shakespeare(data_dir, tokenizer="char", variant="tiny")
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    mp.spawn(worker, args=(free_port(), str(data_dir), str(out_dir)), nprocs=WORLD_SIZE, join=True)

    rank0 = torch.load(out_dir / "rank0.pt", weights_only=True)
    rank1 = torch.load(out_dir / "rank1.pt", weights_only=True)
    assert all(torch.equal(rank0[name], rank1[name]) for name in rank0)

    checkpoint = load_checkpoint(out_dir / "last.pt")
    assert checkpoint["step"] == 4
    assert all(torch.equal(checkpoint["model"][name], rank0[name]) for name in rank0)
    # each process drew its own batches (different sampler states), so identical weights mean synced gradients
    first, second = checkpoint["batches"]
    assert not torch.equal(first["generator"], second["generator"])
    torch.manual_seed(1337)  # the runs' initial weights: training moved them
    initial = GPT(get_train_config("shakespeare-cpu", num_layers=1, num_heads=2, emb_dim=32, block_size=16)
                  .model_config(vocab_size=checkpoint["model_config"]["vocab_size"]))
    assert not torch.equal(initial.state_dict()["transformer.h.0.attn.c_attn.weight"],
                           rank0["transformer.h.0.attn.c_attn.weight"])


def test_single_process_without_torchrun(monkeypatch):
    monkeypatch.delenv("RANK", raising=False)
    ctx = setup_distributed("cpu")
    assert ctx == DistContext() and ctx.is_main and not ctx.enabled


def test_no_sync_only_applies_to_ddp_models():
    model = torch.nn.Linear(2, 2)
    with maybe_no_sync(model, skip_sync=True):  # a plain model has no no_sync(); nothing to skip
        model(torch.ones(1, 2)).sum().backward()
    assert model.weight.grad is not None


def test_unwrap_returns_the_plain_model():
    model = torch.nn.Linear(2, 2)
    assert unwrap_model(model) is model
