"""DDP on CPU: two gloo processes train a few steps with gradient accumulation and end with identical weights."""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp

from scratchformers.reference.model import GPT
from scratchformers.train.checkpoint import load_checkpoint
from scratchformers.train.config import get_train_config
from scratchformers.train.ddp import DistContext, maybe_no_sync, setup_distributed
from scratchformers.train.prepare_shakespeare import prepare_shakespeare
from scratchformers.train.trainer import Trainer

WORLD_SIZE = 2

# Run under torchrun: records the window starts of every micro-batch this process reads, then trains via the CLI.
RECORDING_TRAINER = """
import json, os, sys
from scratchformers.train.cli import main
from scratchformers.train.batches import StepBatches

reads = []
init = StepBatches.__init__

def recording_init(self, source, *args, **kwargs):
    init(self, source, *args, **kwargs)
    read = source.read

    def recording_read(starts):
        reads.append(starts.tolist())
        return read(starts)

    source.read = recording_read  # the training stream's reads only, not the evaluation batches'

StepBatches.__init__ = recording_init
code = main(sys.argv[1:])
with open(os.path.join(os.environ["RECORD_DIR"], f"rank{os.environ['RANK']}.json"), "w") as handle:
    json.dump(reads, handle)
sys.exit(code)
"""


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
        max_len=16, batch_size=4, grad_accum_steps=4, max_steps=4, warmup_steps=1, eval_interval=2,
        eval_batches=2, log_interval=1, num_samples=0, plot=False, learning_rate=1e-2, shakespeare_variant="tiny",
        dtype="float32",
    )
    trainer = Trainer(config, progress=False)
    assert trainer.ctx.world_size == WORLD_SIZE and trainer.ctx.rank == rank
    assert trainer.batch_split.accum_steps == 2  # 4 micro-batches shared by 2 processes: each accumulates 2 (no_sync)
    assert isinstance(trainer.train_model, torch.nn.parallel.DistributedDataParallel)
    result = trainer.fit()
    assert result.status == "finished"
    torch.save(trainer.model.state_dict(), os.path.join(out_dir, f"rank{rank}.pt"))


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
    # the processes read different halves of each global batch, so identical weights mean synced gradients
    assert set(checkpoint["batches"]) == {"generator"} and len(checkpoint["rng"]) == WORLD_SIZE
    torch.manual_seed(1337)  # the runs' initial weights: training moved them
    initial = GPT(get_train_config("shakespeare-cpu", num_layers=1, num_heads=2, emb_dim=32, max_len=16)
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


def torchrun_windows(tmp_path: Path, data_dir: Path, nproc: int) -> tuple[list[list[int]], list[dict], dict]:
    """Train 3 steps of a 4 x 3 global batch under ``torchrun --nproc_per_node=nproc``; returns each step's
    windows (the starts read by all processes, in rank order), the training log and the final weights."""
    script, out = tmp_path / "recording_trainer.py", tmp_path / f"out{nproc}"
    script.write_text(RECORDING_TRAINER)
    record = tmp_path / f"record{nproc}"
    record.mkdir()
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}",
               str(script), "train", "--data-dir", str(data_dir), "--shakespeare-variant", "tiny", "--out-dir", str(out),
               "--device", "cpu", "--dtype", "float32", "--num-layers", "1", "--num-heads", "2", "--emb-dim", "32", "--max-len", "16", "--batch-size", "4",
               "--grad-accum-steps", "3", "--max-steps", "3", "--warmup-steps", "1", "--learning-rate", "1e-2",
               "--eval-interval", "3", "--eval-batches", "1", "--log-interval", "1", "--num-samples", "0",
               "--no-plot", "--num-threads", "1", "--no-progress"]
    done = subprocess.run(command, env={**os.environ, "RECORD_DIR": str(record)}, capture_output=True, text=True,
                          timeout=300, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    per_rank = [json.loads((record / f"rank{rank}.json").read_text()) for rank in range(nproc)]
    accum = 3 * 4 // nproc // len(per_rank[0][0])  # micro-batches per step and process
    steps = [sum((sum(reads[s * accum : (s + 1) * accum], []) for reads in per_rank), []) for s in range(3)]
    log = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    return steps, log, load_checkpoint(out / "last.pt")


def test_one_and_two_torchrun_processes_train_on_the_same_global_batch(tmp_path):
    """batch_size x grad_accum_steps is the global batch on any number of processes: 2 processes run 2
    micro-batches of 3 windows each (12 / 2 = 6 windows apiece) where 1 process runs 3 of 4, and together they
    read the very windows one process reads alone; the losses and weights agree to rounding."""
    data_dir = tmp_path / "data"
    prepare_shakespeare(data_dir, tokenizer="char", variant="tiny")
    alone, log1, last1 = torchrun_windows(tmp_path, data_dir, 1)
    shared, log2, last2 = torchrun_windows(tmp_path, data_dir, 2)
    assert [len(step) for step in alone] == [12, 12, 12]
    assert shared == alone
    # Losses and gradient norms agree to float rounding (the sums run in another order). The weights are not
    # compared: Adam divides by the gradient's running RMS, which turns the rounding noise of gradients that are
    # zero in exact arithmetic (the key bias: softmax ignores a shift common to all scores) into ±lr steps.
    figures = [[(r["loss"], r["grad_norm"]) for r in log if r["kind"] == "train"] for log in (log1, log2)]
    assert len(figures[0]) == 3
    assert [x for pair in figures[1] for x in pair] == pytest.approx([x for pair in figures[0] for x in pair],
                                                                     rel=1e-6)
    assert last1["step"] == last2["step"] == 3 and len(last2["rng"]) == 2
