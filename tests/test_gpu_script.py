"""benchmarks/gpu.py without a GPU: its dry run, its harness, its import shim and its charts.

The dry run goes through every section (attention, LayerNorm, softmax, the GPT-2 step), the compile-ahead workers,
the report and the plots on CPU, with the Triton interpreter and tiny shapes, in a subprocess as a user would run it.
Its timings mean nothing and are not checked; what is checked is that every item produced the row it should, with
the status it should, and that the files are there.
"""
from __future__ import annotations

import json
import math
import os
import site
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parent.parent
BENCHMARKS = ROOT / "benchmarks"
sys.path.insert(0, str(BENCHMARKS))

import gpu_harness  # noqa: E402
import gpu_warm  # noqa: E402
import plot_gpu  # noqa: E402

ATTENTION_IMPLS = {"ours-flash", "sdpa-flash", "sdpa-efficient", "sdpa-math", "reference", "reference+triton-softmax"}
CHARTS = {"gpu-attention-fwd-bfloat16.png", "gpu-attention-fwd-bwd-bfloat16.png", "gpu-layernorm.png",
          "gpu-softmax.png", "gpu-model.png"}


def run_script(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    env = {key: value for key, value in os.environ.items() if key != "OUT"}
    return subprocess.run([sys.executable, str(BENCHMARKS / "gpu.py"), *args], capture_output=True, text=True,
                          timeout=timeout, env=env, cwd=ROOT)


@pytest.fixture(scope="module")
def dry_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict, str]:
    out = tmp_path_factory.mktemp("gpu-dry-run")
    result = run_script("--dry-run", "--out", str(out))
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return out, json.loads((out / "gpu_benchmark.json").read_text()), result.stdout


def test_dry_run_meta_and_files(dry_run: tuple[Path, dict, str]) -> None:
    out, data, stdout = dry_run
    meta = data["meta"]
    assert meta["run"]["state"] == "complete" and meta["run"]["dry_run"] is True
    assert meta["torch"] == torch.__version__ and meta["date"] and meta["name"].startswith("CPU")
    assert Path(meta["package_files"]) == ROOT / "fast" / "attention.py"  # this checkout, through the shim
    assert {p.name for p in out.glob("*.png")} == CHARTS
    assert all((out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for name in CHARTS)
    report = (out / "gpu_benchmark.md").read_text()
    for heading in ("## Attention", "## LayerNorm", "## Softmax", "## GPT-2 (124M) training step", "**Dry run**"):
        assert heading in report
    assert all(f"![{name}]({name})" in report for name in CHARTS)
    for section in ("attention", "layernorm", "softmax", "model"):  # progress lines with timings
        assert f"] {section}: done in" in stdout
    jobs = data["timing"]["warm"]["jobs"]
    assert len(jobs) == 4 and all(job["status"] == "ok" for job in jobs.values()), jobs


def test_dry_run_attention_rows(dry_run: tuple[Path, dict, str]) -> None:
    rows = dry_run[1]["attention"]
    assert len(rows) == 2 * len(ATTENTION_IMPLS) * 2  # causal and not, every implementation, fwd and fwd+bwd
    assert {r["impl"] for r in rows} == ATTENTION_IMPLS and {r["mode"] for r in rows} == {"fwd", "fwd+bwd"}
    for r in rows:
        if r["impl"] == "sdpa-math":  # the dry run's limit lets bf16 (T, T) tensors through but not float32 ones
            assert r["status"].startswith("skipped: memory"), r
        elif r["impl"] == "sdpa-efficient":  # no CPU kernel: the refusal is recorded, not raised
            assert r["status"].startswith(("ok", "skipped: refused")), r
        else:
            assert r["status"] == "ok", r
            assert r["ms"] > 0 and r["tflops"] > 0
            assert r["mode"] == "fwd+bwd" or r["max_abs_diff"] < 0.05  # bf16 output against SDPA's


def test_dry_run_bandwidth_rows(dry_run: tuple[Path, dict, str]) -> None:
    for section in ("layernorm", "softmax"):
        rows = dry_run[1][section]
        assert {(r["impl"], r["mode"]) for r in rows} == {("copy", "fwd"), ("torch", "fwd"), ("torch", "bwd"),
                                                          ("ours-triton", "fwd"), ("ours-triton", "bwd")}
        assert all(r["status"] == "ok" and r["gbps"] > 0 and r["pct_peak"] is None for r in rows)  # CPU: no peak


def test_dry_run_model_rows(dry_run: tuple[Path, dict, str]) -> None:
    rows = {r["variant"]: r for r in dry_run[1]["model"]}
    assert set(rows) == {"torch-eager", "fast-eager", "torch-compiled", "fast-compiled"}
    assert all(r["status"] == "ok" and r["tokens_per_s"] > 0 and r["mfu"] is None for r in rows.values())
    # Same seed, same data, same function: the first loss of every variant is about ln(vocab) and they agree.
    losses = [r["loss"] for r in rows.values()]
    assert all(abs(loss - math.log(256)) < 0.5 for loss in losses)
    assert max(losses) - min(losses) < 1e-2


def test_plot_gpu_redraws_from_json(dry_run: tuple[Path, dict, str], tmp_path: Path) -> None:
    assert plot_gpu.main([str(dry_run[0] / "gpu_benchmark.json"), "--out", str(tmp_path)]) == 0
    assert {p.name for p in tmp_path.glob("*.png")} == CHARTS


def test_plot_gpu_rejects_other_json(tmp_path: Path, capsys) -> None:
    path = tmp_path / "cpu.json"
    path.write_text(json.dumps({"benchmarks": []}))
    assert plot_gpu.main([str(path)]) == 1
    assert "not a gpu_benchmark.json" in capsys.readouterr().err


@pytest.mark.skipif(torch.cuda.is_available(), reason="on a GPU machine this would start the real benchmark")
def test_without_cuda_exits_2(tmp_path: Path) -> None:
    result = run_script("--out", str(tmp_path), timeout=120)
    assert result.returncode == 2
    assert "needs a CUDA GPU" in result.stderr and "--dry-run" in result.stderr
    assert not list(tmp_path.iterdir())


def test_budget_shares_time_between_sections() -> None:
    now = [0.0]
    budget = gpu_harness.Budget(100.0, clock=lambda: now[0])
    assert budget.open_section(4, 10) == pytest.approx(40.0)  # 4 of 10 weights
    now[0] = 10.0  # the section used 10 s of its 40
    assert budget.allows(29.0) and not budget.allows(31.0)
    assert budget.open_section(1, 6) == pytest.approx(15.0)  # 90 s left, 1 of the 6 remaining weights
    now[0] = 100.0
    assert not budget.allows()


def test_harness_records_every_outcome() -> None:
    now = [0.0]
    settings = gpu_harness.Settings(device=torch.device("cpu"))
    budget = gpu_harness.Budget(10.0, clock=lambda: now[0])
    saves = []
    harness = gpu_harness.Harness(settings, budget, save=lambda: saves.append(1))
    rows: list[dict] = []

    def fail(error: Exception):
        def measure() -> dict:
            raise error
        return measure

    harness.record(rows, {"item": "ok"}, lambda: {"ms": harness.bench(lambda: torch.ones(8).sum())})
    harness.record(rows, {"item": "skip"}, fail(gpu_harness.Skip("memory: too big")))
    harness.record(rows, {"item": "oom"}, fail(torch.cuda.OutOfMemoryError("CUDA out of memory")))
    harness.record(rows, {"item": "error"}, fail(ValueError("bad\n  shape")))
    harness.record(rows, {"item": "late"}, lambda: {"ms": 1.0}, needs_s=20.0)
    statuses = [r["status"] for r in rows]
    assert statuses == ["ok", "skipped: memory: too big", "skipped: out of memory", "error: ValueError: bad shape",
                        "skipped: time budget"]
    assert rows[0]["ms"] > 0 and "ms" not in rows[4] and len(saves) == 5


def test_warm_up_reports_each_job_and_kills_at_the_deadline() -> None:
    commands = {"ok": "pass", "fails": "print('boom'); raise SystemExit(3)", "slow": "import time; time.sleep(60)",
                "queued": "pass"}
    lines: list[str] = []
    results = gpu_warm.warm_up(list(commands), lambda job: [sys.executable, "-c", commands[job]], seconds=3.0,
                               parallel=3, heavy={"slow", "queued"}, heavy_slots=1, progress=lines.append)
    assert results["ok"]["status"] == "ok"
    assert results["fails"]["status"] == "failed (exit 3)" and "boom" in results["fails"]["log"]
    assert results["slow"]["status"] == "killed at the deadline" and results["slow"]["s"] < 30
    assert results["queued"]["status"] == "not started (deadline)"  # waits for the one heavy slot
    assert len(lines) == 2  # one progress line per finished job


def test_import_shim_uses_the_checkout_it_is_in(tmp_path: Path) -> None:
    """A bare copy of the tree, the project not installed (site-packages on PYTHONPATH, without its .pth hooks)."""
    for folder in ("benchmarks", "scratchformers", "reference", "fast", "kernels", "train", "pyproject.toml"):
        subprocess.run(["cp", "-r", str(ROOT / folder), str(tmp_path / folder)], check=True)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(site.getsitepackages()))
    probe = ("import sys; sys.path.insert(0, {bench!r}); {shim}"
             "import scratchformers.fast.attention as a, scratchformers.reference.model as m; print(a.__file__)")
    bench = str(tmp_path / "benchmarks")
    bare = subprocess.run([sys.executable, "-S", "-c", probe.format(bench=bench, shim="")], capture_output=True,
                          text=True, env=env, cwd=bench)
    assert bare.returncode != 0 and "No module named 'scratchformers'" in bare.stderr  # really not installed
    shimmed = subprocess.run([sys.executable, "-S", "-c", probe.format(bench=bench, shim="import gpu_repo; "
                              "gpu_repo.use_checkout(); ")], capture_output=True, text=True, env=env, cwd=bench)
    assert shimmed.returncode == 0, shimmed.stderr[-2000:]
    assert Path(shimmed.stdout.strip()) == tmp_path / "fast" / "attention.py"
