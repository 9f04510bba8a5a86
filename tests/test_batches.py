"""Batches from a prepared dataset: shapes, the one-token shift, determinism, checkpointable generator."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import example, given, settings
from hypothesis import strategies as st
from torch.utils.data import DataLoader

from scratchformers.train.batches import (
    MemmapBatches,
    StepBatches,
    TokenWindowDataset,
    split_global_batch,
)

N_TRAIN, N_VAL, B, T = 5000, 700, 4, 16


@pytest.fixture(scope="module")
def arange_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A prepared dataset whose token at position i is i: every window reveals where it was cut."""
    out = tmp_path_factory.mktemp("arange")
    np.arange(N_TRAIN, dtype=np.uint16).tofile(out / "train.bin")
    np.arange(N_VAL, dtype=np.uint16).tofile(out / "val.bin")
    meta = {"tokenizer": {"kind": "char", "chars": ""}, "vocab_size": N_TRAIN, "dtype": "uint16",
            "tokens": {"train": N_TRAIN, "val": N_VAL}}
    (out / "meta.json").write_text(json.dumps(meta))
    return out


def stream(data_dir: Path, seed: int, split: str = "train", max_len: int = T, batch_size: int = B,
           device: str = "cpu") -> StepBatches:
    """The training stream of one process without accumulation: each ``next()`` is one random batch."""
    return StepBatches(MemmapBatches(data_dir, split, max_len, batch_size, device),
                       split_global_batch(batch_size, 1, 1), 0, seed)


def test_batch_shapes_and_shift(arange_dir: Path) -> None:
    batches = stream(arange_dir, seed=0)
    for _ in range(20):
        x, y = batches.next()
        assert x.shape == y.shape == (B, T) and x.dtype == y.dtype == torch.int64
        starts = x[:, :1]
        assert torch.equal(x, starts + torch.arange(T))  # a contiguous window of the file
        assert torch.equal(y, x + 1)  # the same window shifted by one token
        assert starts.min() >= 0 and y.max() <= N_TRAIN - 1


def test_every_start_is_reachable(arange_dir: Path) -> None:
    # max_len + 2 tokens leave room for the starts 0 and 1 only (the target needs one token past the window)
    batches = MemmapBatches(arange_dir, "val", N_VAL - 2, 64)
    x, _ = batches.read(batches.random_starts(torch.Generator().manual_seed(0)))
    assert set(x[:, 0].tolist()) == {0, 1}


def test_same_seed_same_batches(arange_dir: Path) -> None:
    a, b, c = stream(arange_dir, seed=7), stream(arange_dir, seed=7), stream(arange_dir, seed=8)
    xa = [a.next()[0] for _ in range(3)]
    xb = [b.next()[0] for _ in range(3)]
    xc = [c.next()[0] for _ in range(3)]
    assert all(torch.equal(p, q) for p, q in zip(xa, xb))
    assert not all(torch.equal(p, q) for p, q in zip(xa, xc))


def test_state_dict_round_trip_resumes_the_stream(arange_dir: Path, tmp_path: Path) -> None:
    run = stream(arange_dir, seed=3)
    run.next()
    torch.save(run.state_dict(), tmp_path / "state.pt")
    expected = [run.next() for _ in range(3)]

    resumed = stream(arange_dir, seed=99)
    resumed.load_state_dict(torch.load(tmp_path / "state.pt", weights_only=True))
    for x_expected, y_expected in expected:
        x, y = resumed.next()
        assert torch.equal(x, x_expected) and torch.equal(y, y_expected)


def test_fixed_batches_are_deterministic(arange_dir: Path) -> None:
    a = MemmapBatches(arange_dir, "val", T, B)
    b = MemmapBatches(arange_dir, "val", T, B)
    first = a.fixed_batches(3)
    a.read(a.random_starts(torch.Generator().manual_seed(1)))  # drawing other batches must not move these
    assert len(first) == 3
    for (x1, y1), (x2, y2), (x3, y3) in zip(first, a.fixed_batches(3), b.fixed_batches(3)):
        assert torch.equal(x1, x2) and torch.equal(x1, x3) and torch.equal(y1, y3)
        assert torch.equal(y1, x1 + 1)
    assert not torch.equal(first[0][0], first[1][0])


@settings(max_examples=50, deadline=None)
@given(seed=st.integers(0, 2**62))
@example(seed=1337)  # the trainer's default seed: once also the fixed batches' seed
def test_fixed_batches_are_never_the_random_stream(arange_dir: Path, seed: int) -> None:
    batches = stream(arange_dir, seed=seed)
    fixed = batches.source.fixed_batches(2)
    for x_fixed, _ in fixed:
        assert not torch.equal(batches.next()[0], x_fixed)


@given(batch_size=st.integers(1, 16), grad_accum_steps=st.integers(1, 16), world_size=st.integers(1, 16))
def test_the_global_batch_is_kept_on_any_number_of_processes(batch_size: int, grad_accum_steps: int,
                                                              world_size: int) -> None:
    global_batch = batch_size * grad_accum_steps
    if global_batch % world_size:
        with pytest.raises(ValueError, match=f"cannot be shared equally by {world_size} processes") as error:
            split_global_batch(batch_size, grad_accum_steps, world_size)
        suggested = int(str(error.value).split("--grad-accum-steps ")[1].split(",")[0])
        split_global_batch(batch_size, suggested, world_size)  # the first suggestion works
        return
    split = split_global_batch(batch_size, grad_accum_steps, world_size)
    assert split.global_batch == global_batch == split.world_size * split.accum_steps * split.micro_batch
    assert 1 <= split.micro_batch <= batch_size and split.world_size == world_size
    if grad_accum_steps % world_size == 0:  # nanoGPT's split: the micro-batch is kept, accumulation divided
        assert (split.micro_batch, split.accum_steps) == (batch_size, grad_accum_steps // world_size)


def test_split_examples() -> None:
    assert split_global_batch(12, 10, 1).describe() == "120 windows (1 process × 10 micro-batches × 12 windows)"
    assert split_global_batch(12, 10, 2).describe() == "120 windows (2 processes × 5 micro-batches × 12 windows)"
    assert split_global_batch(12, 10, 8).describe() == "120 windows (8 processes × 3 micro-batches × 5 windows)"
    with pytest.raises(ValueError, match=r"use --grad-accum-steps 7, 14, 21, \.\.\. \(a multiple of 7\) or a number of "
                                         r"processes that divides 120 \(1, 2, 3, 4, 5, 6, 8, 10, 12, 15, 20, 24, 30, 40, "
                                         r"60, 120\)"):
        split_global_batch(12, 10, 7)


@pytest.mark.parametrize("world_size", [1, 2, 3, 6])
def test_processes_share_out_the_same_global_batches(arange_dir: Path, world_size: int) -> None:
    """Whatever the number of processes, together they read the windows one process reads alone, in order."""
    def windows(world: int, rank: int) -> list[torch.Tensor]:
        split = split_global_batch(B, 3, world)
        step_batches = StepBatches(MemmapBatches(arange_dir, "train", T, B), split, rank, seed=5)
        return [step_batches.next()[0][:, 0] for _ in range(2 * split.accum_steps)]  # two steps' window starts

    alone = torch.cat(windows(1, 0)).view(2, -1)  # (steps, global batch)
    shared = [torch.cat(windows(world_size, rank)).view(2, -1) for rank in range(world_size)]
    assert torch.equal(torch.cat(shared, dim=1), alone)


def test_step_batches_state_skips_nothing_and_repeats_nothing(arange_dir: Path) -> None:
    """A state taken between steps, with the next step's first micro-batch already read ahead, resumes with that
    micro-batch: the read-ahead is drawn again, not lost."""
    split = split_global_batch(B, 2, 1)
    run = StepBatches(MemmapBatches(arange_dir, "train", T, B), split, 0, seed=3)
    run.next(), run.next()
    run.prefetch()
    state = run.state_dict()
    expected = [run.next()[0] for _ in range(4)]
    resumed = StepBatches(MemmapBatches(arange_dir, "train", T, B), split, 0, seed=99)
    resumed.load_state_dict(state)
    assert all(torch.equal(resumed.next()[0], x) for x in expected)
    resumed.next()
    with pytest.raises(RuntimeError, match="middle of an optimizer step"):
        resumed.state_dict()


def test_token_window_dataset(arange_dir: Path) -> None:
    ds = TokenWindowDataset(arange_dir, "train", T)
    assert len(ds) == (N_TRAIN - 1) // T
    for i in (0, 1, len(ds) - 1):
        x, y = ds[i]
        assert torch.equal(x, torch.arange(i * T, i * T + T))
        assert torch.equal(y, x + 1)
    with pytest.raises(IndexError):
        ds[len(ds)]
    loader = DataLoader(ds, batch_size=B, shuffle=True, generator=torch.Generator().manual_seed(0))
    x, y = next(iter(loader))
    assert x.shape == y.shape == (B, T) and x.dtype == torch.int64
    starts = torch.cat([batch_x[:, 0] for batch_x, _ in loader])
    assert sorted(starts.tolist()) == [i * T for i in range(len(ds))]  # one pass covers every window once


def test_bad_arguments(arange_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="fewer than one window"):
        MemmapBatches(arange_dir, "val", N_VAL, B)
    with pytest.raises(ValueError, match="split"):
        TokenWindowDataset(arange_dir, "test", T)
    with pytest.raises(FileNotFoundError, match="scratchformers prepare"):
        MemmapBatches(tmp_path, "train", T, B)


@pytest.mark.gpu
def test_cuda_batches_match_cpu(arange_dir: Path) -> None:
    x_cpu, y_cpu = stream(arange_dir, seed=5).next()
    x, y = stream(arange_dir, seed=5, device="cuda").next()
    assert x.device.type == "cuda" and y.device.type == "cuda"
    assert torch.equal(x.cpu(), x_cpu) and torch.equal(y.cpu(), y_cpu)
