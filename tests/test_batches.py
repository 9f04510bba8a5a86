"""Batches from a prepared dataset: shapes, the one-token shift, determinism, checkpointable generator."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from scratchformers.train.batches import MemmapBatches, TokenWindowDataset

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


def test_batch_shapes_and_shift(arange_dir: Path) -> None:
    batches = MemmapBatches(arange_dir, "train", T, B, seed=0)
    for _ in range(20):
        x, y = batches.get_batch()
        assert x.shape == y.shape == (B, T) and x.dtype == y.dtype == torch.int64
        starts = x[:, :1]
        assert torch.equal(x, starts + torch.arange(T))  # a contiguous window of the file
        assert torch.equal(y, x + 1)  # the same window shifted by one token
        assert starts.min() >= 0 and y.max() <= N_TRAIN - 1


def test_every_start_is_reachable(arange_dir: Path) -> None:
    # block_size + 2 tokens leave room for the starts 0 and 1 only (the target needs one token past the window)
    batches = MemmapBatches(arange_dir, "val", N_VAL - 2, 64, seed=0)
    x, _ = batches.get_batch()
    assert set(x[:, 0].tolist()) == {0, 1}


def test_same_seed_same_batches(arange_dir: Path) -> None:
    a = MemmapBatches(arange_dir, "train", T, B, seed=7)
    b = MemmapBatches(arange_dir, "train", T, B, seed=7)
    c = MemmapBatches(arange_dir, "train", T, B, seed=8)
    xa = [a.get_batch()[0] for _ in range(3)]
    xb = [b.get_batch()[0] for _ in range(3)]
    xc = [c.get_batch()[0] for _ in range(3)]
    assert all(torch.equal(p, q) for p, q in zip(xa, xb))
    assert not all(torch.equal(p, q) for p, q in zip(xa, xc))


def test_state_dict_round_trip_resumes_the_stream(arange_dir: Path, tmp_path: Path) -> None:
    run = MemmapBatches(arange_dir, "train", T, B, seed=3)
    run.get_batch()
    torch.save(run.state_dict(), tmp_path / "state.pt")
    expected = [run.get_batch() for _ in range(3)]

    resumed = MemmapBatches(arange_dir, "train", T, B, seed=99)
    resumed.load_state_dict(torch.load(tmp_path / "state.pt", weights_only=True))
    for x_expected, y_expected in expected:
        x, y = resumed.get_batch()
        assert torch.equal(x, x_expected) and torch.equal(y, y_expected)


def test_fixed_batches_are_deterministic(arange_dir: Path) -> None:
    a = MemmapBatches(arange_dir, "val", T, B, seed=1)
    b = MemmapBatches(arange_dir, "val", T, B, seed=2)
    first = a.fixed_batches(3)
    a.get_batch()  # drawing training batches must not move the evaluation batches
    assert len(first) == 3
    for (x1, y1), (x2, y2), (x3, y3) in zip(first, a.fixed_batches(3), b.fixed_batches(3)):
        assert torch.equal(x1, x2) and torch.equal(x1, x3) and torch.equal(y1, y3)
        assert torch.equal(y1, x1 + 1)
    assert not torch.equal(first[0][0], first[1][0])


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
    x_cpu, y_cpu = MemmapBatches(arange_dir, "train", T, B, seed=5).get_batch()
    x, y = MemmapBatches(arange_dir, "train", T, B, device="cuda", seed=5).get_batch()
    assert x.device.type == "cuda" and y.device.type == "cuda"
    assert torch.equal(x.cpu(), x_cpu) and torch.equal(y.cpu(), y_cpu)
