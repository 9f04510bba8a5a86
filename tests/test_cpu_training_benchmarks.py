"""benchmarks/cpu_vs_nanogpt.py and benchmarks/cpu_sweep.py without nanoGPT and without minutes of training.

The side-by-side benchmark runs end to end against a stand-in nanoGPT checkout (a ``train.py`` that speaks
nanoGPT's command line and prints its lines) and a tiny model of ours, so that a renamed flag or a changed log line
breaks a test here instead of the next real comparison. The numbers are not asserted on, only that they are found,
compared and plotted.
"""
from __future__ import annotations

import json
import pickle
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from scratchformers.train.data import shakespeare

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"
sys.path.insert(0, str(BENCHMARKS))

import cpu_runs  # noqa: E402
import cpu_sweep  # noqa: E402
import cpu_vs_nanogpt  # noqa: E402
from cpu_runs import Point  # noqa: E402

START = 1_800_000_000.0  # a Unix time: when our stand-in run's process started
OURS_RECORDS = [  # our training log: its numbers, and when each was written
    {"kind": "eval", "step": 0, "train_loss": 4.3554, "val_loss": 4.3574, "time": START + 5.0},
    {"kind": "train", "step": 1, "loss": 4.3601, "lr": 2e-05, "time": START + 5.4},
    {"kind": "train", "step": 10, "loss": 3.858, "lr": 2e-04, "time": START + 9.0},
    {"kind": "eval", "step": 10, "train_loss": 3.8329, "val_loss": 3.8182, "time": START + 10.0},
]
NANOGPT_LINES = [
    (1.0, "Overriding: max_iters = 2000"),
    (2.0, "step 0: train loss 4.3500, val loss 4.3523"),
    (2.1, "iter 0: loss 4.3488, time 1541.22ms, mfu -100.00%"),
    (3.0, "iter 9: loss 3.8812, time 68.75ms, mfu 0.02%"),
    (4.0, "step 10: train loss 3.8797, val loss 3.8560"),
    (4.1, "saving checkpoint to out"),
]


def our_run(tmp_path: Path, records: list[dict]) -> cpu_runs.Run:
    """A finished run of ours whose training log holds ``records`` (its printed lines are not read)."""
    log = tmp_path / "log.jsonl"
    log.write_text("".join(json.dumps(r) + "\n" for r in records))
    return cpu_runs.Run("ours", [], [], 0, "finished", 12.0, started_at=START, log_jsonl=log)


def test_both_trainers_numbers_are_read(tmp_path: Path) -> None:
    """Ours from its log.jsonl, timed from the process start; nanoGPT's from its printed lines."""
    ours = our_run(tmp_path, OURS_RECORDS)
    assert ours.evals == [Point(5.0, 0, 4.3574), Point(10.0, 10, 3.8182)]
    assert [(p.t, p.step, p.value) for p in ours.train] == [(pytest.approx(5.4), 1, 4.3601),
                                                            (pytest.approx(9.0), 10, 3.858)]
    assert cpu_runs.eval_points(NANOGPT_LINES) == [Point(2.0, 0, 4.3523), Point(4.0, 10, 3.856)]
    assert [(p.step, p.value) for p in cpu_runs.train_points(NANOGPT_LINES)] == [(0, 4.3488), (9, 3.8812)]


def test_nanogpt_is_stopped_only_once_its_checkpoint_is_saved() -> None:
    t_star = 3.5  # NANOGPT_LINES: an evaluation at 4.0 s, then "saving checkpoint" (printed before the save)
    assert not cpu_vs_nanogpt.saved_past(NANOGPT_LINES, t_star)
    assert cpu_vs_nanogpt.saved_past([*NANOGPT_LINES, (4.6, "iter 10: loss 3.8, time 600.00ms, mfu 0.02%")], t_star)
    assert not cpu_vs_nanogpt.saved_past([*NANOGPT_LINES, (4.6, "iter 10: loss 3.8")], 4.0)  # no eval after t*


def test_the_fit_recipe_ends_its_schedule_at_t_star_at_the_readme_runs_speed() -> None:
    readme = cpu_runs.Run("nanogpt-readme", [], [(2.0, "step 0: train loss 4.3, val loss 4.3"),
                                                 (100.0, "step 2000: train loss 1.9, val loss 1.9")], 0, "finished", 100.0)
    assert cpu_vs_nanogpt.fit_arguments(readme, 330.0, quick=False) == [  # 20 iterations a second x 330 s
        "--max_iters=6500", "--lr_decay_iters=6500", "--eval_interval=250"]
    assert cpu_vs_nanogpt.fit_arguments(readme, 1.0, quick=True)[0] == "--max_iters=50"  # at least one interval
    with pytest.raises(SystemExit):
        cpu_vs_nanogpt.parse_args(["--nanogpt", ".", "--recipes", "nanogpt-fit,nanogpt-readme"])


def test_value_at_interpolates_between_evaluations_and_holds_the_last() -> None:
    points = [Point(10.0, 0, 4.0), Point(20.0, 100, 3.0), Point(40.0, 200, 2.0)]
    assert cpu_runs.value_at(points, 5.0) is None
    assert cpu_runs.value_at(points, 15.0) == pytest.approx(3.5)
    assert cpu_runs.value_at(points, 30.0) == pytest.approx(2.5)
    assert cpu_runs.value_at(points, 99.0) == 2.0
    assert cpu_runs.time_to_reach(points, 2.5) == pytest.approx(30.0)
    assert cpu_runs.time_to_reach(points, 1.0) is None


def test_sweep_knobs_become_flags_the_cli_has() -> None:
    knobs = cpu_sweep.CANDIDATES["compile"].knobs(cpu_sweep.parse_set(["batch_size=8", "learning_rate=3e-3"]))
    flags = cpu_sweep.knob_flags(knobs)
    assert flags[flags.index("--batch-size") + 1] == "8" and "--compile" in flags
    assert flags[flags.index("--learning-rate") + 1] == "0.003"
    assert "--no-compile" in cpu_sweep.knob_flags(cpu_sweep.BASE)
    every_knob = {k: v for c in cpu_sweep.CANDIDATES.values() for k, v in c.knobs().items()}
    cpu_sweep.check_flags(cpu_runs.child_env(1), every_knob)  # SystemExit if the CLI lost one
    with pytest.raises(SystemExit, match="no --not-a-knob"):
        cpu_sweep.check_flags(cpu_runs.child_env(1), {"not_a_knob": 1})


def test_sweep_timing_separates_steps_evaluations_and_overhead(tmp_path: Path) -> None:
    # 2 s of start-up, a 1 s evaluation at step 0 and at step 30, 0.1 s per step; step 20 stalls for 2 s (the
    # host of a shared virtual machine was busy): the median step ignores it
    records = [{"kind": "eval", "step": 0, "val_loss": 4.0, "time": START + 3.0}]
    records += [{"kind": "train", "step": s, "loss": 3.0, "time": START + 3.0 + 0.1 * s + 2.0 * (s >= 20)}
                for s in range(1, 31)]
    records += [{"kind": "eval", "step": 30, "val_loss": 3.0, "time": START + 9.0}]
    timing = cpu_sweep.timing_of(our_run(tmp_path, records), warm=10, steps=30, eval_batches=10)
    assert timing["step_s"] == pytest.approx(0.1)
    assert timing["eval_batch_s"] == pytest.approx(1.0 / 20)
    assert timing["overhead_s"] == pytest.approx(2.0)


def test_a_muon_candidate_trains_and_reaches_the_report(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """The sweep's optimizer flags go through to a real (2-step, float32) training run and into its table."""
    out = tmp_path / "sweep"
    assert cpu_sweep.main(["--out", str(out), "loss", "muon-wsd", "--set", "dtype=float32", "--set", "num_layers=1",
                           "--steps", "2", "--evals", "1", "--eval-batches", "1"]) == 0
    result = json.loads((out / "loss.json").read_text())["muon-wsd+dtype=float32+num_layers=1@2"]
    assert result["returncode"] == 0 and result["final_val"] is not None and result["steps"] == 2
    assert (result["knobs"]["optimizer"], result["knobs"]["schedule"]) == ("muon", "wsd")
    assert cpu_sweep.main(["--out", str(out), "report"]) == 0
    row = next(line for line in (out / "sweep.md").read_text().splitlines() if line.startswith("| muon-wsd"))
    assert "--optimizer muon" in row and "--schedule wsd" in row and "--cooldown-frac 0.2" in row
    # Run again into the same folders: the sweep replaces its own runs (--overwrite) and reads only the new log.
    first_eval = (out / "runs" / "loss-2" / "muon-wsd+dtype=float32+num_layers=1" / "log.jsonl").read_text()
    assert cpu_sweep.main(["--out", str(out), "loss", "muon-wsd", "--set", "dtype=float32", "--set", "num_layers=1",
                           "--steps", "2", "--evals", "1", "--eval-batches", "1"]) == 0
    again = json.loads((out / "loss.json").read_text())["muon-wsd+dtype=float32+num_layers=1@2"]
    assert again["returncode"] == 0 and again["final_val"] == result["final_val"]  # same seed, same run
    assert (out / "runs" / "loss-2" / "muon-wsd+dtype=float32+num_layers=1" / "log.jsonl").read_text() != first_eval


def test_an_earlier_runs_log_is_not_read_as_this_ones(tmp_path: Path) -> None:
    """A run refused at start-up leaves the folder's old log.jsonl: its records predate the process, and are skipped."""
    stale = [{**record, "time": record["time"] - 3600} for record in OURS_RECORDS]
    assert our_run(tmp_path, stale).evals == [] and our_run(tmp_path, stale).train == []


FAKE_TRAIN = '''
"""Stand-in for nanoGPT's train.py: its command line, its data checks, its printed lines; no model."""
import math, os, pickle, sys, time
exec(open("configurator.py").read())
config = {}
for arg in sys.argv[1:]:
    if "=" not in arg:
        exec(open(arg).read(), {}, config)
    else:
        key, value = arg[2:].split("=")
        config[key] = value
data = os.path.join("data", config["dataset"])
meta = pickle.load(open(os.path.join(data, "meta.pkl"), "rb"))
assert meta["vocab_size"] == len(meta["stoi"]) == len(meta["itos"])
for split in ("train", "val"):
    assert os.path.getsize(os.path.join(data, split + ".bin")) > 0
os.makedirs(config["out_dir"], exist_ok=True)
start = time.time()
for it in range(int(config["max_iters"]) + 1):
    loss = 4.0 * math.exp(-0.2 * (time.time() - start))
    if it % int(config["eval_interval"]) == 0:
        print(f"step {it}: train loss {loss:.4f}, val loss {loss:.4f}", flush=True)
        print(f"saving checkpoint to {config['out_dir']}", flush=True)  # as nanoGPT: the message, then the save
        with open(os.path.join(config["out_dir"], "ckpt.pt"), "w") as ckpt:
            ckpt.write("half of the ")
            ckpt.flush()
            time.sleep(0.3)
            ckpt.write("weights")
    print(f"iter {it}: loss {loss:.4f}, time 20.00ms, mfu 0.00%", flush=True)
    time.sleep(0.02)
'''


FAKE_SAMPLE = '''
"""Stand-in for nanoGPT's sample.py: fails, as torch.load would, on a checkpoint that was cut off mid-write."""
import sys
out_dir = next(arg.split("=", 1)[1] for arg in sys.argv[1:] if arg.startswith("--out_dir="))
if open(out_dir + "/ckpt.pt").read() != "half of the weights":
    sys.exit("RuntimeError: PytorchStreamReader failed reading zip archive")
print("Overriding: device = cpu")
print("ROMEO:\\nA fake sample.")
'''


@pytest.fixture
def fake_nanogpt(tmp_path: Path) -> Path:
    root = tmp_path / "nanoGPT"
    (root / "config").mkdir(parents=True)
    (root / "train.py").write_text(FAKE_TRAIN)
    (root / "sample.py").write_text(FAKE_SAMPLE)
    (root / "model.py").write_text("")
    (root / "configurator.py").write_text("")
    (root / "config" / "train_shakespeare_char.py").write_text("eval_interval = 250\nmax_iters = 5000\n")
    return root


def test_side_by_side_runs_end_to_end_on_a_stand_in_nanogpt(fake_nanogpt: Path, tmp_path: Path) -> None:
    work, out = tmp_path / "work", tmp_path / "results"
    tiny = ["--max-steps", "6", "--eval-interval", "3", "--eval-batches", "2", "--batch-size", "2",
            "--max-len", "16", "--num-layers", "1", "--num-heads", "1", "--emb-dim", "16", "--warmup-steps", "2",
            "--num-samples", "1", "--sample-tokens", "20"]
    code = cpu_vs_nanogpt.main(["--nanogpt", str(fake_nanogpt), "--quick", "--threads", "1", "--work-dir", str(work),
                                "--out", str(out), "--budget-s", "600", "--ours", *tiny])
    assert code == 0
    report = json.loads((out / "cpu_vs_nanogpt.json").read_text())
    assert list(report["runs"]) == ["ours", "nanogpt-readme", "nanogpt-long", "nanogpt-fit"]
    fit = [arg for arg in report["runs"]["nanogpt-fit"]["command"] if arg.startswith("--max_iters=")][-1]
    assert int(fit.split("=")[1]) % cpu_vs_nanogpt.QUICK_FIT_EVAL_INTERVAL == 0
    ours = report["runs"]["ours"]
    assert ours["stop"] == "finished" and [e["step"] for e in ours["evals"]] == [0, 3, 6]
    cmp = report["comparison"]
    assert cmp["t_star_s"] == pytest.approx(ours["evals"][-1]["t"], abs=0.01) and cmp["ours_step"] == 6
    for name in ("nanogpt-readme", "nanogpt-long", "nanogpt-fit"):
        theirs = cmp["nanogpt"][name]
        assert theirs["val_at_t_star"] is not None
        assert theirs["ratio_ours_over_theirs"] == pytest.approx(cmp["ours_val"] / theirs["val_at_t_star"])
    assert cmp["ratio_vs_best"] == pytest.approx(
        cmp["ours_val"] / min(r["val_at_t_star"] for r in cmp["nanogpt"].values()))
    assert report["samples"]["nanogpt-long"] == "ROMEO:\nA fake sample."
    assert report["data"] == {"characters": 1_115_394, "train_tokens": 1_003_854, "val_tokens": 111_540,
                              "vocab_size": 77}
    markdown = (out / "cpu_vs_nanogpt.md").read_text()
    assert "QUICK SMOKE TEST" in markdown and "**Result:**" in markdown
    assert (out / "cpu_vs_nanogpt.png").stat().st_size > 0

    # nanoGPT's data is our prepared data, token for token, with nanoGPT's meta.pkl
    nano, ours_data = work / "data" / "shakespeare_char", work / "data" / "shakespeare_tiny_char"
    meta = pickle.loads((nano / "meta.pkl").read_bytes())
    val = np.fromfile(nano / "val.bin", dtype=np.uint16)
    assert (nano / "train.bin").read_bytes() == (ours_data / "train.bin").read_bytes()
    assert "".join(meta["itos"][int(i)] for i in val[:200]) == shakespeare("tiny")[1_003_854:1_004_054]

    (out / "cpu_vs_nanogpt.png").unlink()
    assert cpu_vs_nanogpt.main(["--report-only", "--out", str(out)]) == 0
    assert (out / "cpu_vs_nanogpt.png").is_file()


def test_a_folder_that_is_not_nanogpt_gets_a_one_line_error(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit):
        cpu_vs_nanogpt.main(["--nanogpt", str(tmp_path)])
    assert "not a nanoGPT checkout (no train.py" in capsys.readouterr().err


def test_plan_pool_gives_candidates_of_the_same_work_their_median_timing() -> None:
    """Two Muon rates do the same work per step (their timings differ only by the VM's noise); another batch size
    does not."""
    def timed(step_s: float, **knobs) -> dict:
        return {"knobs": {**cpu_sweep.BASE, **knobs}, "step_s": step_s, "eval_batch_s": 0.01, "overhead_s": 2.0}

    timing = {"a": timed(0.10, muon_learning_rate=0.02), "b": timed(0.14, muon_learning_rate=0.05),
              "c": timed(0.12, muon_learning_rate=0.03), "d": timed(0.30, batch_size=32)}
    pooled = cpu_sweep.pooled(timing)
    assert [pooled[k]["step_s"] for k in "abcd"] == [0.12, 0.12, 0.12, 0.30]
    assert [pooled[k]["pooled_over"] for k in "abcd"] == [3, 3, 3, 1]


def test_the_gpt2_scale_candidates_train_on_gpt2_tokens(tmp_path: Path) -> None:
    """--tokenizer gpt2 prepares the corpus with GPT-2's tokens, and the gpt2s-* candidates train on it."""
    out = tmp_path / "sweep"
    assert cpu_sweep.main(["--out", str(out), "--tokenizer", "gpt2", "loss", "gpt2s-muon", "--set", "num_layers=1",
                           "--set", "dtype=float32", "--steps", "2", "--evals", "1", "--eval-batches", "1"]) == 0
    result = json.loads((out / "loss.json").read_text())["gpt2s-muon+num_layers=1+dtype=float32@2"]
    assert result["returncode"] == 0 and result["final_val"] is not None
    meta = json.loads((out / "data" / "shakespeare_tiny_gpt2" / "meta.json").read_text())
    assert meta["tokenizer"] == {"kind": "gpt2"} and meta["vocab_size"] == 50257
