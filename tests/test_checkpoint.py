"""Checkpoints: atomic writes, safe loading with clear errors, and exact resumption after a kill -9 or a Ctrl-C."""
from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from scratchformers.train.cli import main
from scratchformers.reference.config import GPTConfig
from scratchformers.reference.model import GPT
from scratchformers.train.checkpoint import (
    CheckpointError,
    capture_rng_state,
    load_checkpoint,
    load_model_state,
    model_from_checkpoint,
    restore_rng_state,
    save_checkpoint,
)
from scratchformers.train.plots import read_log
from scratchformers.train.trainer import CLOCK_FIELDS

# On the CPU on any machine: resumed runs must repeat the uninterrupted run's losses exactly (float32, one thread).
TINY_RUN = ["--device", "cpu", "--dtype", "float32", "--num-layers", "1", "--num-heads", "2", "--emb-dim", "32", "--max-len", "16",
            "--batch-size", "4", "--warmup-steps", "10", "--decay-steps", "300", "--learning-rate", "1e-2",
            "--dropout", "0.1", "--eval-interval", "40", "--eval-batches", "2", "--log-interval", "1",
            "--num-samples", "0", "--no-plot", "--num-threads", "1", "--no-progress"]


def minimal_state(**extra) -> dict:
    model = GPT(GPTConfig(max_len=8, emb_dim=8, num_layers=1, num_heads=2, vocab_size=5))
    return {"step": 3, "model": model.state_dict(), "train_config": {}, "model_config": model.config.to_dict(),
            **extra}


def start_training(data_dir: str, out_dir: Path, *extra: str) -> subprocess.Popen:
    command = [sys.executable, "-m", "scratchformers", "train", "--data-dir", data_dir, "--shakespeare-variant", "tiny",
               "--out-dir", str(out_dir), *TINY_RUN, *extra]
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def train_records(out_dir: Path) -> list[dict]:
    """The complete lines of the run's log so far (a line being written is skipped)."""
    path = out_dir / "log.jsonl"
    return read_log(path) if path.is_file() else []


def wait_for_step(proc: subprocess.Popen, out_dir: Path, step: int, timeout: float = 120.0) -> int:
    """Poll the log until a training step ≥ ``step`` is recorded; returns the latest step seen."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        steps = [r["step"] for r in train_records(out_dir) if r["kind"] == "train"]
        if steps and steps[-1] >= step:
            return steps[-1]
        assert proc.poll() is None, f"training exited early:\n{proc.communicate()[0]}"
        time.sleep(0.02)
    proc.kill()
    raise AssertionError(f"no step {step} within {timeout} s")


def eval_records(out_dir: Path) -> list[dict]:
    """The evaluations' figures, without their wall-clock time."""
    evals = [r for r in train_records(out_dir) if r["kind"] == "eval"]
    return [{k: v for k, v in r.items() if k not in CLOCK_FIELDS} for r in evals]


def losses(out_dir: Path) -> list[tuple[int, float]]:
    return [(r["step"], r["loss"]) for r in train_records(out_dir) if r["kind"] == "train"]


# ------------------------------------------------------------------------------------------- save and load


def test_round_trip_with_weights_only_loading(tmp_path):
    state = minimal_state(rng=capture_rng_state(), best_val_loss=float("inf"))
    save_checkpoint(tmp_path / "last.pt", state)
    loaded = load_checkpoint(tmp_path / "last.pt")
    assert loaded["step"] == 3 and loaded["best_val_loss"] == float("inf")
    assert all(torch.equal(loaded["model"][k], v) for k, v in state["model"].items())
    assert sorted(os.listdir(tmp_path)) == ["last.pt"]  # no temporary file left behind


def test_rng_states_restore(tmp_path):
    state = minimal_state()
    torch.manual_seed(0)
    random.seed(0)
    state["rng"] = capture_rng_state()
    expected = (torch.rand(3), random.random())
    save_checkpoint(tmp_path / "c.pt", state)
    restore_rng_state(load_checkpoint(tmp_path / "c.pt")["rng"])
    again = (torch.rand(3), random.random())
    assert torch.equal(expected[0], again[0]) and expected[1] == again[1]


def test_a_failed_write_keeps_the_previous_file(tmp_path, monkeypatch):
    save_checkpoint(tmp_path / "last.pt", minimal_state())
    before = (tmp_path / "last.pt").read_bytes()

    def crash(obj, handle, *args, **kwargs):
        handle.write(b"half a checkpoint")
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", crash)
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint(tmp_path / "last.pt", minimal_state(step=4))
    assert (tmp_path / "last.pt").read_bytes() == before
    assert sorted(os.listdir(tmp_path)) == ["last.pt"]


def test_truncated_file_is_explained(tmp_path):
    save_checkpoint(tmp_path / "last.pt", minimal_state())
    data = (tmp_path / "last.pt").read_bytes()
    (tmp_path / "last.pt").write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="corrupt or truncated"):
        load_checkpoint(tmp_path / "last.pt")


def test_garbage_file_is_explained(tmp_path):
    (tmp_path / "last.pt").write_bytes(b"this is not a checkpoint at all" * 10)
    with pytest.raises(CheckpointError, match="corrupt or truncated"):
        load_checkpoint(tmp_path / "last.pt")


class NotATensor:
    pass


def test_pickled_objects_are_refused(tmp_path):
    torch.save({"format": "scratchformers-checkpoint", "payload": NotATensor()}, tmp_path / "evil.pt")
    with pytest.raises(CheckpointError, match="weights_only"):
        load_checkpoint(tmp_path / "evil.pt")


def test_foreign_torch_file_is_explained(tmp_path):
    torch.save({"state_dict": {"w": torch.zeros(2)}}, tmp_path / "other.pt")
    with pytest.raises(CheckpointError, match="not a scratchformers training checkpoint"):
        load_checkpoint(tmp_path / "other.pt")


def test_missing_file_is_a_file_not_found(tmp_path):
    with pytest.raises(FileNotFoundError, match="no checkpoint"):
        load_checkpoint(tmp_path / "nope.pt")


def test_architecture_mismatch_is_explained():
    small = GPT(GPTConfig(max_len=8, emb_dim=8, num_layers=1, num_heads=2, vocab_size=5))
    wider = GPT(GPTConfig(max_len=8, emb_dim=16, num_layers=1, num_heads=2, vocab_size=5))
    with pytest.raises(CheckpointError, match="shape mismatches"):
        load_model_state(wider, small.state_dict())
    deeper = GPT(GPTConfig(max_len=8, emb_dim=8, num_layers=2, num_heads=2, vocab_size=5))
    with pytest.raises(CheckpointError, match="missing"):
        load_model_state(deeper, small.state_dict())


def test_model_from_checkpoint_keeps_the_architecture():
    """Overrides choose implementations (attention, layernorm, gelu) and dropout; num_heads would read the same
    weights as other heads, so it is refused."""
    model = GPT(GPTConfig(max_len=8, emb_dim=8, num_layers=1, num_heads=2, vocab_size=5))
    state = {"model_config": model.config.to_dict(), "model": model.state_dict()}
    assert model_from_checkpoint(state, attention="torch_sdpa").config.attention == "torch_sdpa"
    with pytest.raises(ValueError, match=r"\['num_heads'\] define the model the weights belong to"):
        model_from_checkpoint(state, num_heads=4)


def test_resume_from_a_corrupt_checkpoint_is_a_clear_cli_error(char_data, tmp_path, capsys):
    (tmp_path / "last.pt").write_bytes(b"\x00" * 100)
    code = main(["train", "--resume", "--data-dir", char_data, "--out-dir", str(tmp_path), *TINY_RUN])
    assert code == 1
    assert "corrupt or truncated" in capsys.readouterr().err


# ------------------------------------------------------------------------------- interrupted runs, for real


def test_resume_after_kill_9_gives_the_same_losses(char_data, tmp_path):
    """Train uninterrupted; train again, SIGKILL it some steps after a checkpoint, resume: identical losses.

    Dropout is on, so the random state must come back too, and the data position (the sampler's generator).
    The killed run is given a huge max_steps (the schedule is pinned by --decay-steps) so the kill always lands
    mid-run; its resume sets max_steps back to 300.
    """
    reference = tmp_path / "reference"
    done = start_training(char_data, reference, "--max-steps", "300")

    killed = tmp_path / "killed"
    proc = start_training(char_data, killed, "--max-steps", "1000000")
    seen = wait_for_step(proc, killed, 55)  # the checkpoint is written at step 40
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    checkpoint_step = load_checkpoint(killed / "last.pt")["step"]
    assert checkpoint_step % 40 == 0 and checkpoint_step < seen  # some steps were lost and must be redone

    resumed = subprocess.run(
        [sys.executable, "-m", "scratchformers", "train", "--resume", "--out-dir", str(killed), "--max-steps", "300",
         "--no-progress"],
        capture_output=True, text=True, timeout=300, check=False,
    )
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert f"resuming at step {checkpoint_step}" in resumed.stdout
    assert done.wait(timeout=300) == 0, done.communicate()[0]

    expected, got = losses(reference), losses(killed)
    assert [step for step, _ in expected] == list(range(1, 301))
    assert got == expected  # exactly equal floats, and the log holds each step once
    assert eval_records(killed) == eval_records(reference)
    final_a, final_b = load_checkpoint(reference / "last.pt"), load_checkpoint(killed / "last.pt")
    assert all(torch.equal(final_a["model"][k], final_b["model"][k]) for k in final_a["model"])


def interrupt_training(data_dir: str, out: Path, sig: signal.Signals) -> int:
    """Start a run, send ``sig`` after step 5, check it saved and exited with 130; returns the saved step."""
    proc = start_training(data_dir, out, "--max-steps", "1000000")
    wait_for_step(proc, out, 5)
    proc.send_signal(sig)
    output, _ = proc.communicate(timeout=60)
    assert proc.returncode == 130, output
    assert "Traceback" not in output and "continue with --resume" in output
    records = train_records(out)
    last_step = [r["step"] for r in records if r["kind"] == "train"][-1]
    assert records[-1] == {"kind": "event", "step": last_step, "event": "interrupted"}
    assert load_checkpoint(out / "last.pt")["step"] == last_step  # the step in progress finished, then saved
    return last_step


def test_sigterm_saves_and_exits_cleanly(char_data, tmp_path):
    interrupt_training(char_data, tmp_path / "run", signal.SIGTERM)


def test_ctrl_c_saves_exits_cleanly_and_resumes(char_data, tmp_path):
    out = tmp_path / "run"
    last_step = interrupt_training(char_data, out, signal.SIGINT)
    again = subprocess.run(
        [sys.executable, "-m", "scratchformers", "train", "--resume", "--out-dir", str(out),
         "--max-steps", str(last_step + 3), "--no-progress"],
        capture_output=True, text=True, timeout=300, check=False,
    )
    assert again.returncode == 0, again.stdout + again.stderr
    steps = [r["step"] for r in train_records(out) if r["kind"] == "train"]
    assert steps == list(range(1, last_step + 4))
