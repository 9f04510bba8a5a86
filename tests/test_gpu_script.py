"""benchmarks/gpu/check.py without a GPU: its dry run from a bare copy of the checkout, its parts, its charts.

The dry run goes through every section (parity tests, attention, LayerNorm, the GPT-2 step, the trainer, the host-sync
loop, softmax), the first phase's worker processes, the report and the charts on CPU, with the Triton interpreter and
tiny shapes, in a subprocess started as the GPU machine starts it: from a copy of the working tree, nothing installed,
only PYTHONPATH set. Its timings mean nothing and are not checked; what is checked is that every item produced the row
it should, with the status it should, and that the files are there.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parent.parent
GPU_CHECK = ROOT / "benchmarks" / "gpu"
sys.path.insert(0, str(GPU_CHECK))

import check  # noqa: E402
import harness  # noqa: E402
import jobs  # noqa: E402
import parity  # noqa: E402

ATTENTION_IMPLS = {"ours-flash", "sdpa", "sdpa-flash", "sdpa-cudnn", "sdpa-efficient", "sdpa-math", "reference",
                   "reference+triton-softmax"}
CHARTS = {"gpu-attention.png", "gpu-rowwise.png", "gpu-training.png"}
FILES = CHARTS | {"gpu_check.json", "gpu_check.md", "gpu_check.log"}


def run_check(checkout: Path, *args: str, timeout: float = 400, **env: str) -> subprocess.CompletedProcess:
    """``python <checkout>/benchmarks/gpu/check.py ARGS`` with PYTHONPATH=<checkout> as the only way to the package."""
    environ = {key: value for key, value in os.environ.items() if key not in ("OUT", "TRITON_INTERPRET")}
    environ.update({"PYTHONPATH": str(checkout), **env})
    return subprocess.run([sys.executable, str(checkout / "benchmarks" / "gpu" / "check.py"), *args],
                          capture_output=True, text=True, timeout=timeout, env=environ, cwd=checkout)


@pytest.fixture(scope="module")
def dry_run(bare_checkout: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict, str, Path]:
    out = tmp_path_factory.mktemp("gpu-dry-run")
    result = run_check(bare_checkout, "--dry-run", "--out", str(out))
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return out, json.loads((out / "gpu_check.json").read_text()), result.stdout, bare_checkout


def test_dry_run_files_summary_and_bare_checkout(dry_run: tuple[Path, dict, str, Path]) -> None:
    out, data, stdout, checkout = dry_run
    meta = data["meta"]
    assert meta["run"]["state"] == "complete" and meta["run"]["dry_run"] is True
    assert meta["torch"] == torch.__version__ and meta["date"] and meta["name"].startswith("CPU")
    assert Path(meta["package_files"]) == checkout / "fast" / "attention.py"  # the copy, through PYTHONPATH alone
    assert {p.name for p in out.iterdir()} == FILES  # within what the device tool returns (8 files)
    assert all((out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for name in CHARTS)
    report = (out / "gpu_check.md").read_text()
    for heading in ("## Summary", "## GPU tests", "## Attention", "## LayerNorm", "## GPT-2 (124M) training step",
                    "## The trainer", "## Host syncs", "## Softmax", "**Dry run**"):
        assert heading in report
    assert all(f"![{name}]({name})" in report for name in CHARTS)
    for section in check.TIMED:  # progress lines with timings
        assert f"] {section}: done in" in stdout
    summary = stdout[stdout.index("GPU check on CPU"):].splitlines()  # printed last, and atop the report
    assert summary[0].endswith("DRY RUN, numbers meaningless") and len(summary) >= 7
    assert "\n".join(summary) in report and "\n".join(summary) in (out / "gpu_check.log").read_text()
    warm = data["timing"]["first_phase"]["jobs"]  # the dry run's one compile-ahead worker, every section's first job
    assert list(warm) == ["warm-dry-run"] and warm["warm-dry-run"]["status"] == "ok", warm


def test_dry_run_parity_rows(dry_run: tuple[Path, dict, str, Path]) -> None:
    rows = dry_run[1]["parity"]
    assert len(rows) == 2 and all(r["test"].startswith(parity.TEST_FILE + "::") for r in rows)
    assert all(r["status"] == "skipped: needs a CUDA GPU" for r in rows), rows  # tests/conftest.py's reason


def test_dry_run_attention_rows(dry_run: tuple[Path, dict, str, Path]) -> None:
    rows = dry_run[1]["attention"]
    assert len(rows) == len(ATTENTION_IMPLS) * 2  # every implementation, fwd and fwd+bwd
    assert {r["impl"] for r in rows} == ATTENTION_IMPLS and {r["mode"] for r in rows} == {"fwd", "fwd+bwd"}
    for r in rows:
        if r["impl"] == "sdpa-math":  # the dry run's limit lets bf16 (T, T) tensors through but not float32 ones
            assert r["status"].startswith("skipped: memory"), r
        elif r["impl"] in ("sdpa-efficient", "sdpa-cudnn"):  # no CPU kernel: the refusal is recorded, not raised
            assert r["status"].startswith(("ok", "skipped: refused")), r
        else:
            assert r["status"] == "ok", r
            assert r["ms"] > 0 and r["tflops"] > 0
            assert r["mode"] == "fwd+bwd" or r["max_abs_diff"] < 0.05  # bf16 output against SDPA's


def test_dry_run_bandwidth_rows(dry_run: tuple[Path, dict, str, Path]) -> None:
    for section in ("layernorm", "softmax"):
        rows = dry_run[1][section]
        assert {(r["impl"], r["mode"]) for r in rows} == {("copy", "fwd"), ("torch", "fwd"), ("torch", "bwd"),
                                                          ("ours-triton", "fwd"), ("ours-triton", "bwd")}
        assert all(r["status"] == "ok" and r["gbps"] > 0 and r["pct_peak"] is None for r in rows)  # CPU: no peak


def test_dry_run_model_rows(dry_run: tuple[Path, dict, str, Path]) -> None:
    rows = {r["variant"]: r for r in dry_run[1]["model"]}
    assert set(rows) == {"torch-eager", "fast-eager", "torch-compiled", "fast-compiled"}
    assert all(r["status"] == "ok" and r["tokens_per_s"] > 0 and r["mfu"] is None for r in rows.values())
    # Same seed, same data, same function: the first loss of every variant is about ln(vocab) and they agree.
    losses = [r["loss"] for r in rows.values()]
    assert all(abs(loss - math.log(256)) < 0.5 for loss in losses)
    assert max(losses) - min(losses) < 1e-2


def test_dry_run_trainer_row(dry_run: tuple[Path, dict, str, Path]) -> None:
    """The gpt2-owt preset through `scratchformers train`, shrunk: it trains, evaluates, samples and says so."""
    (row,) = dry_run[1]["trainer"]
    assert row["status"] == "ok", row.get("output_tail", row)
    assert row["returncode"] == 0 and "--preset gpt2-owt" in row["command"] and "--no-compile" in row["command"]
    assert [r["step"] for r in row["train_log"]] == [1] and math.isfinite(row["train_log"][0]["loss"])
    assert [r["step"] for r in row["eval_log"]] == [0, 1]
    assert row["samples"] and {"last.pt", "best.pt", "log.jsonl", "samples.txt"} <= set(row["files"])


def test_dry_run_host_sync_row(dry_run: tuple[Path, dict, str, Path]) -> None:
    """Two trainer runs that differ only in --sync-every-step, their steady log windows compared."""
    (row,) = dry_run[1]["hostsync"]
    assert row["status"] == "ok", row
    assert "--sync-every-step" in row["command"] and "--preset gpt2-owt" in row["command"]
    for variant in ("synced", "sync-free"):
        assert row[variant]["ms_per_step"] > 0 and len(row[variant]["window_ms"]) == 1  # step 3 of 3, logged each
        assert math.isfinite(row[variant]["loss"])
    assert row["speedup"] == pytest.approx(row["synced"]["ms_per_step"] / row["sync-free"]["ms_per_step"])


def test_replot_redraws_from_json(dry_run: tuple[Path, dict, str, Path], tmp_path: Path) -> None:
    assert check.main(["--replot", str(dry_run[0] / "gpu_check.json"), "--out", str(tmp_path)]) == 0
    assert {p.name for p in tmp_path.glob("*.png")} == CHARTS


def test_replot_rejects_other_json(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    path = tmp_path / "cpu.json"
    path.write_text(json.dumps({"benchmarks": []}))
    assert check.main(["--replot", str(path)]) == 1
    assert "not a gpu_check.json" in capsys.readouterr().err


def test_hard_stop_still_writes_the_report(bare_checkout: Path, tmp_path: Path) -> None:
    """Past --budget-s + --hard-stop-after-s the run stops wherever it is (here: collecting the parity tests)."""
    result = run_check(bare_checkout, "--dry-run", "--sections", "parity", "--no-warm", "--budget-s", "0",
                       "--hard-stop-after-s", "1", "--out", str(tmp_path), timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]
    data = json.loads((tmp_path / "gpu_check.json").read_text())
    assert data["meta"]["run"]["state"].startswith("stopped at the hard limit")
    assert (tmp_path / "gpu_check.md").is_file() and "stopped at the hard limit" in result.stdout


@pytest.mark.skipif(torch.cuda.is_available(), reason="on a GPU machine this would start the real check")
def test_without_cuda_exits_2(bare_checkout: Path, tmp_path: Path) -> None:
    result = run_check(bare_checkout, "--out", str(tmp_path), timeout=120)
    assert result.returncode == 2
    assert "needs a CUDA GPU" in result.stderr and "--dry-run" in result.stderr
    assert not list(tmp_path.iterdir())


def test_another_checkout_on_the_path_is_refused(bare_checkout: Path, tmp_path: Path) -> None:
    """The copy's check.py with this repository on PYTHONPATH would measure another tree: it says so and stops."""
    result = run_check(bare_checkout, "--dry-run", "--out", str(tmp_path), timeout=120, PYTHONPATH=str(ROOT))
    assert result.returncode == 2
    assert f"not from this checkout ({bare_checkout})" in result.stderr and "PYTHONPATH=" in result.stderr


def test_bench_gpu_starts_the_check() -> None:
    from scratchformers.train.commands.bench import benchmarks_dir, command

    args = argparse.Namespace(gpu=True, quick=False, json=None, extra=["--", "--dry-run"])
    assert command(args, benchmarks_dir()) == [sys.executable, str(GPU_CHECK / "check.py"), "--dry-run"]


def test_budget_shares_time_between_sections() -> None:
    now = [0.0]
    budget = harness.Budget(100.0, clock=lambda: now[0])
    assert budget.open_section(4, 10) == pytest.approx(40.0)  # 4 of 10 weights
    now[0] = 10.0  # the section used 10 s of its 40
    assert budget.allows(29.0) and not budget.allows(31.0) and budget.section_left() == pytest.approx(30.0)
    assert budget.open_section(1, 6) == pytest.approx(15.0)  # 90 s left, 1 of the 6 remaining weights
    now[0] = 100.0
    assert not budget.allows()


def test_harness_records_every_outcome() -> None:
    now = [0.0]
    settings = harness.Settings(device=torch.device("cpu"))
    budget = harness.Budget(10.0, clock=lambda: now[0])
    saves = []
    h = harness.Harness(settings, budget, save=lambda: saves.append(1))
    rows: list[dict] = []

    def fail(error: Exception):
        def measure() -> dict:
            raise error
        return measure

    h.record(rows, {"item": "ok"}, lambda: {"ms": h.bench(lambda: torch.ones(8).sum())})
    h.record(rows, {"item": "skip"}, fail(harness.Skip("memory: too big")))
    h.record(rows, {"item": "oom"}, fail(torch.cuda.OutOfMemoryError("CUDA out of memory")))
    h.record(rows, {"item": "error"}, fail(ValueError("bad\n  shape")))
    h.record(rows, {"item": "late"}, lambda: {"ms": 1.0}, needs_s=20.0)
    statuses = [r["status"] for r in rows]
    assert statuses == ["ok", "skipped: memory: too big", "skipped: out of memory", "error: ValueError: bad shape",
                        "skipped: time budget"]
    assert rows[0]["ms"] > 0 and "ms" not in rows[4] and len(saves) == 5


def test_jobs_report_each_job_fit_memory_and_stop_at_the_deadline() -> None:
    def job(name: str, code: str, gib: float = 0.0) -> jobs.Job:
        return jobs.Job(name, [sys.executable, "-c", code], gib)

    lines: list[str] = []
    results = jobs.run_jobs([job("slow", "import time; time.sleep(60)", gib=6), job("big", "pass", gib=5),
                             job("ok", "pass", gib=1), job("fails", "print('boom'); raise SystemExit(3)")],
                            seconds=4.0, parallel=3, memory_gib=10, progress=lines.append)
    assert results["ok"]["status"] == "ok"  # started past "big", which did not fit beside "slow"
    assert results["fails"]["status"] == "failed (exit 3)" and "boom" in results["fails"]["log"]
    assert results["slow"]["status"] == "killed at the deadline" and results["slow"]["s"] < 30
    assert results["big"]["status"] == "not started (deadline)"
    assert len(lines) == 2  # one progress line per finished job


def test_parity_rows_from_junit(tmp_path: Path) -> None:
    """Each test's outcome comes from its process's JUnit file, or from how the process ended."""
    (tmp_path / "test_sample.py").write_text(
        "import pytest\n"
        "def test_passes(): pass\n"
        "def test_fails(): assert 1 == 2, 'one is not two'\n"
        "@pytest.mark.skip(reason='not here')\n"
        "def test_skips(): pass\n")
    ids = [f"test_sample.py::{name}" for name in ("test_passes", "test_fails", "test_skips", "test_killed",
                                                  "test_queued")]
    job_list = [jobs.Job("parity-00", [*parity.PYTEST, f"--junitxml={tmp_path / 'parity-00.xml'}", *ids[:3]]),
                jobs.Job("parity-01", [*parity.PYTEST, ids[3]]), jobs.Job("parity-02", [*parity.PYTEST, ids[4]])]
    subprocess.run(job_list[0].command, cwd=tmp_path, capture_output=True, check=False)
    results = {"parity-00": dict(status="failed (exit 1)", s=1.0),
               "parity-01": dict(status="killed at the deadline", s=9.0)}
    rows = {r["test"]: r["status"] for r in parity.rows(ids, job_list, results, tmp_path)}
    assert rows == {ids[0]: "passed", ids[1]: rows[ids[1]], ids[2]: "skipped: not here",
                    ids[3]: "not finished (time budget)", ids[4]: "not run (time budget)"}
    assert rows[ids[1]].startswith("failed: AssertionError: one is not two")
    assert parity.counts(parity.rows(ids, job_list, results, tmp_path)) == dict(passed=1, failed=1, error=0,
                                                                                  skipped=1, **{"not run": 2})
