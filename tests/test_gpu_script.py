"""benchmarks/gpu/check.py without a GPU: its dry run from a bare copy of the checkout, its parts, its report.

The dry run goes through every section (the GPU tests, attention, LayerNorm, softmax, the GPT-2 step timer, the
trainer, the host-sync run), each in its own processes as on a GPU, then the report and the charts, on CPU with the
Triton interpreter and tiny shapes, started as the GPU machine starts it: from a copy of the working tree, nothing
installed, only PYTHONPATH set. Its timings mean nothing and are not checked; what is checked is that every item
produced the row it should, with the status it should, and that the files are there.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

ROOT = Path(__file__).resolve().parent.parent
GPU_CHECK = ROOT / "benchmarks" / "gpu"
sys.path.insert(0, str(GPU_CHECK))

import bench_attention  # noqa: E402
import bench_train_step  # noqa: E402
import check  # noqa: E402
import harness  # noqa: E402
import jobs  # noqa: E402
import machine  # noqa: E402
import parity  # noqa: E402
import report  # noqa: E402

ATTENTION_IMPLS = {"ours-flash", "sdpa", "sdpa-flash", "sdpa-cudnn", "sdpa-efficient", "sdpa-math", "reference",
                   "reference+triton-softmax"}
CHARTS = {"gpu-attention.png", "gpu-rowwise.png", "gpu-training.png"}
FILES = CHARTS | {"gpu_check.json", "gpu_check.md", "gpu_check.log"}
# What a GPU machine lacks of the test extras and the package's dependencies (GUIDE: it has torch, triton, pytest,
# hypothesis, pytest-benchmark, tiktoken, safetensors, tqdm, matplotlib and lightning).
ABSENT_ON_GPU_MACHINES = ("datasets", "nbformat", "nbclient", "ipykernel", "transformers", "tokenizers", "subword_nmt",
                          "threadpoolctl", "seaborn", "huggingface_hub")


def run_check(checkout: Path, *args: str, timeout: float = 400, **env: str) -> subprocess.CompletedProcess:
    """``python <checkout>/benchmarks/gpu/check.py ARGS`` with PYTHONPATH=<checkout> as the only way to the package."""
    environ = {key: value for key, value in os.environ.items() if key not in ("OUT", "TRITON_INTERPRET")}
    environ.update({"PYTHONPATH": str(checkout), **env})
    return subprocess.run([sys.executable, str(checkout / "benchmarks" / "gpu" / "check.py"), *args],
                          capture_output=True, text=True, timeout=timeout, env=environ, cwd=checkout)


@pytest.fixture(scope="module")
def gpu_test_ids() -> list[str]:
    return parity.collect()


@pytest.fixture(scope="module")
def dry_run(bare_checkout: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict, str, Path]:
    out = tmp_path_factory.mktemp("gpu-dry-run")
    result = run_check(bare_checkout, "--dry-run", "--out", str(out), TRITON_CACHE_AUTOTUNING="1")
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
    report_text = (out / "gpu_check.md").read_text()
    for heading in ("## Summary", "## GPU tests", "## Attention", "## LayerNorm", "## GPT-2 (124M) training step",
                    "## The trainer", "## Host syncs", "## Softmax", "## Where the time went", "**Dry run**"):
        assert heading in report_text
    assert all(f"![{name}]({name})" in report_text for name in CHARTS)
    for section in check.SECTIONS:  # one after another, each in its share, in this order
        assert f"] {section}: done in" in stdout
        assert data["timing"][section]["allotted_s"] > 0 and "error" not in data["timing"][section]
    assert list(data["timing"]) == list(check.SECTIONS)
    summary = stdout[stdout.index("GPU check on CPU"):].splitlines()  # printed last, and atop the report
    assert summary[0].endswith("DRY RUN, numbers meaningless") and len(summary) >= 8
    assert summary[2].startswith("attention B1 H2 T32 D16 bfloat16 causal")  # the headline first
    assert "\n".join(summary) in report_text and "\n".join(summary) in (out / "gpu_check.log").read_text()
    # Each section's own progress lines reach the log too, on the run's clock.
    assert "attention bfloat16 D16 causal T32:" in (out / "gpu_check.log").read_text()


def test_dry_run_names_its_code_without_git(dry_run: tuple[Path, dict, str, Path]) -> None:
    """The copy has no .git: the commit is unknown, but the hash of the code files names it."""
    out, data, _, checkout = dry_run
    code = data["meta"]["code"]
    assert not (checkout / ".git").exists() and code["git_commit"] is None
    assert (code["sha256"], code["files"]) == machine.code_sha256(checkout) == machine.code_sha256(ROOT)
    assert code["sha256"] in (out / "gpu_check.md").read_text()
    printed = run_check(checkout, "--code-hash", timeout=60)
    assert printed.returncode == 0 and printed.stdout.startswith(code["sha256"])


def test_dry_run_unsets_cached_autotuning(dry_run: tuple[Path, dict, str, Path]) -> None:
    """TRITON_CACHE_AUTOTUNING=1 would replay cached choices instead of timing our tiles: the run removes it."""
    assert dry_run[1]["meta"]["run"]["unset_env"] == ["TRITON_CACHE_AUTOTUNING"]
    environ = {"TRITON_CACHE_AUTOTUNING": "1", "PATH": "/bin"}
    assert check.clean_environment(environ) == ["TRITON_CACHE_AUTOTUNING"] and environ == {"PATH": "/bin"}
    assert check.clean_environment(environ) == []


def test_dry_run_parity_rows(dry_run: tuple[Path, dict, str, Path]) -> None:
    rows = dry_run[1]["parity"]
    assert len(rows) == 2 and all(r["test"].startswith(parity.TEST_FILE + "::") for r in rows)
    assert all(r["status"] == "skipped: needs a CUDA GPU" for r in rows), rows  # tests/conftest.py's reason
    assert [r["gib"] for r in rows] == [10.0, 10.0]  # the GPT-2-shape attention tests declare their float64 peak


def test_dry_run_attention_rows(dry_run: tuple[Path, dict, str, Path]) -> None:
    rows = dry_run[1]["attention"]
    assert len(rows) == len(ATTENTION_IMPLS) * 2  # every implementation, fwd and fwd+bwd
    assert {r["impl"] for r in rows} == ATTENTION_IMPLS and {r["mode"] for r in rows} == {"fwd", "fwd+bwd"}
    assert [(r["impl"], r["mode"]) for r in rows[:2]] == [("ours-flash", "fwd"), ("ours-flash", "fwd+bwd")]
    for r in rows:
        if r["impl"] == "sdpa-math":  # the dry run's limit lets bf16 (T, T) tensors through but not float32 ones
            assert r["status"].startswith("skipped: memory"), r
        elif r["impl"] in ("sdpa-efficient", "sdpa-cudnn"):  # no CPU kernel: the refusal is recorded, not raised
            assert r["status"].startswith(("ok", "skipped: refused")), r
        else:
            assert r["status"] == "ok", r
            assert r["ms"] > 0 and r["tflops"] > 0 and r["kernel_ms"] > 0 and r["kernel_tflops"] > 0
            assert r["mode"] == "fwd+bwd" or r["max_abs_diff"] < 0.05  # bf16 output against SDPA's
    assert all(r["tiles"]["_attn_fwd"].startswith("BLOCK_M=16 BLOCK_N=16") for r in rows[:2])  # the interpreter's


def test_dry_run_bandwidth_rows(dry_run: tuple[Path, dict, str, Path]) -> None:
    for section in ("layernorm", "softmax"):
        rows = dry_run[1][section]
        assert {(r["impl"], r["mode"]) for r in rows} == {("copy", "fwd"), ("torch", "fwd"), ("torch", "bwd"),
                                                          ("ours-triton", "fwd"), ("ours-triton", "bwd")}
        assert all(r["status"] == "ok" and r["gbps"] > 0 and r["kernel_gbps"] > 0 for r in rows)
        assert all(r["pct_peak"] is None and r["kernel_pct_peak"] is None for r in rows)  # CPU: no peak


def test_dry_run_model_rows(dry_run: tuple[Path, dict, str, Path]) -> None:
    """The step timer: every variant with AdamW, the eager ones with Muon too, eager ones first."""
    rows = dry_run[1]["model"]
    expected = [(bench_train_step.variant_name(path, compiled), optimizer)
                for path, compiled in bench_train_step.VARIANTS for optimizer in bench_train_step.OPTIMIZERS
                if optimizer == "adamw" or not compiled]
    assert [(r["variant"], r["optimizer"]) for r in rows] == expected
    assert ("fast-eager", "muon") in expected and ("fast-compiled", "muon") not in expected
    assert [r["variant"] for r in rows[:2]] == ["fast-eager", "fast-eager"]
    assert all(r["status"] == "ok" and r["tokens_per_s"] > 0 and r["mfu"] is None for r in rows)
    # Same seed, same data, same function: the first loss of every variant is about ln(vocab) and they agree.
    losses = [r["loss"] for r in rows]
    assert all(abs(loss - math.log(256)) < 0.5 for loss in losses)
    assert max(losses) - min(losses) < 1e-2


def test_dry_run_trainer_row(dry_run: tuple[Path, dict, str, Path]) -> None:
    """The gpt2-owt preset through `scratchformers train`, shrunk: it trains, evaluates, samples and says so."""
    (row,) = dry_run[1]["trainer"]
    assert row["status"] == "ok", row.get("output_tail", row)
    assert row["returncode"] == 0 and "--preset gpt2-owt" in row["command"] and "--no-compile" in row["command"]
    assert [r["step"] for r in row["train_log"]] == [1, 2, 3] and math.isfinite(row["train_log"][-1]["loss"])
    assert [r["step"] for r in row["eval_log"]] == [0, 3]
    assert row["samples"] and {"last.pt", "best.pt", "log.jsonl", "samples.txt"} <= set(row["files"])


def test_dry_run_host_sync_row(dry_run: tuple[Path, dict, str, Path]) -> None:
    """The trainer's run against the same command with --sync-every-step, their steady log windows compared."""
    (row,) = dry_run[1]["hostsync"]
    (trainer,) = dry_run[1]["trainer"]
    assert row["status"] == "ok", row
    same = trainer["command"].replace("$WORK/trainer", "$WORK/hostsync").replace("--num-samples 1", "--num-samples 0")
    assert row["command"] == same + " --sync-every-step --no-plot"  # samples and plot come after the timed steps
    assert row["sync-free"]["window_ms"] == [trainer["train_log"][-1]["ms_per_step"]]  # step 3 of 3, logged each
    for variant in ("synced", "sync-free"):
        assert row[variant]["ms_per_step"] > 0 and len(row[variant]["window_ms"]) == 1
        assert math.isfinite(row[variant]["loss"])
    assert row["speedup"] == pytest.approx(row["synced"]["ms_per_step"] / row["sync-free"]["ms_per_step"])


def test_report_states_each_flop_convention(dry_run: tuple[Path, dict, str, Path]) -> None:
    text = (dry_run[0] / "gpu_check.md").read_text()
    attention = text[text.index("## Attention"):text.index("## LayerNorm")]
    model = text[text.index("## GPT-2 (124M)"):text.index("## The trainer")]
    assert "halved when causal" in attention and "End to end includes the host's launch path" in attention
    assert "counts the full T × T attention although the model is causal" in model


def test_replot_redraws_from_json(dry_run: tuple[Path, dict, str, Path], tmp_path: Path) -> None:
    assert check.main(["--replot", str(dry_run[0] / "gpu_check.json"), "--out", str(tmp_path)]) == 0
    assert {p.name for p in tmp_path.glob("*.png")} == CHARTS


def test_replot_rejects_other_json(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    path = tmp_path / "cpu.json"
    path.write_text(json.dumps({"benchmarks": []}))
    assert check.main(["--replot", str(path)]) == 1
    assert "not a gpu_check.json" in capsys.readouterr().err


def test_a_short_budget_still_ends_with_the_report(bare_checkout: Path, tmp_path: Path) -> None:
    """With about 8 s for two sections, each gets its share and no more: what it did not reach is recorded as skipped,
    or it was stopped at the end of its time; the run goes on and writes its files."""
    result = run_check(bare_checkout, "--dry-run", "--sections", "attention,softmax", "--budget-s", "25",
                       "--out", str(tmp_path), timeout=200)
    assert result.returncode == 0, result.stderr[-3000:]
    data = json.loads((tmp_path / "gpu_check.json").read_text())
    assert data["meta"]["run"]["state"] == "complete" and (tmp_path / "gpu_check.md").is_file()
    for name in ("attention", "softmax"):
        timing = data["timing"][name]
        error = timing.get("error", "")
        assert error.startswith("killed at the end of its") or error in ("", "not run: no time left"), timing
        assert error or len(data[name]) in (16, 5)  # every item has its row: measured or skipped


def test_run_process_kills_the_whole_group_at_its_limit(tmp_path: Path) -> None:
    """A section that overruns is killed with what it started (a grandchild here), and says so."""
    marker = tmp_path / "grandchild-alive"
    grandchild = "import sys, time; time.sleep(4); open(sys.argv[1], 'w')"
    code = ("import subprocess, sys, time\n"
            f"subprocess.Popen([sys.executable, '-c', {grandchild!r}, sys.argv[1]])\n"
            "print('started', flush=True)\n"
            "time.sleep(60)\n")
    returncode, output, seconds = jobs.run_process([sys.executable, "-c", code, str(marker)], 3.0)
    assert returncode is None and "started" in output and seconds < 30
    time.sleep(3)
    assert not marker.exists()  # the grandchild died with its group
    assert jobs.run_process([sys.executable, "-c", "print('hi')"], 30)[:2] == (0, "hi\n")


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


def test_the_shares_and_the_report_fit_the_default_budget() -> None:
    assert list(check.SHARES) == list(check.SECTIONS)
    assert sum(check.SHARES.values()) + check.RESERVE_S <= check.DEFAULT_BUDGET_S


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
    budget = harness.Budget(10.0, clock=lambda: now[0])
    saved: list[dict] = []
    h = harness.Harness(harness.Settings(dry_run=True), budget, save=saved.append)
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
    assert rows[0]["ms"] > 0 and "ms" not in rows[4] and saved == rows


def test_kernel_time_leaves_out_the_l2_flush() -> None:
    """On CUDA: every GPU kernel but those launched inside the flush's profiler range."""
    from torch.autograd import DeviceType

    def event(name: str, device: DeviceType, device_us: float = 0.0, cpu_us: float = 0.0) -> SimpleNamespace:
        return SimpleNamespace(name=name, device_type=device, device_time_total=device_us, cpu_time_total=cpu_us,
                               cpu_parent=None)

    events = [event(harness.FLUSH, DeviceType.CPU, device_us=50, cpu_us=7), event("fill", DeviceType.CUDA, 50),
              event("ours::attention", DeviceType.CPU, device_us=30, cpu_us=90), event("_attn_fwd", DeviceType.CUDA, 30)]
    assert harness.kernel_us(events, cuda=True) == 30
    assert harness.kernel_us(events, cuda=False) == 90  # CPU: the operators' own time, outside the flush


def test_without_kernel_times_the_end_to_end_time_stands_alone() -> None:
    """A profiler that cannot trace (no CUPTI on the machine, say) leaves kernel_ms None, logged once."""
    lines: list[str] = []
    h = harness.Harness(harness.Settings(dry_run=True), harness.Budget(10.0), log=lines.append)
    assert h.kernel_ms(lambda: 1 / 0) is None and h.kernel_ms(lambda: 1 / 0) is None
    assert len(lines) == 1 and "ZeroDivisionError" in lines[0]
    assert h.rate(2.0, None, 4e6) == dict(ms=2.0, gbps=2.0, pct_peak=None, kernel_ms=None, kernel_gbps=None,
                                          kernel_pct_peak=None)


def test_pruned_autotuning_keeps_the_first_candidates_of_each_kernels_own_pruning() -> None:
    assert harness._first(lambda configs, named, **kwargs: configs[::-1], 2)([1, 2, 3], {}, HEAD_DIM=64) == [3, 2]
    assert harness._first(None, 1)([1, 2], {}) == [1]
    assert harness.prune_autotuning(3) == 3  # the three autotuned flash-attention kernels


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


def test_job_names_are_unique(gpu_test_ids: list[str]) -> None:
    """Results are keyed by job name: a repeated name would lose a job (and leave it running)."""
    same = [jobs.Job("softmax-bfloat16-n1024", [sys.executable, "-c", "pass"])] * 2
    with pytest.raises(ValueError, match="repeated: softmax-bfloat16-n1024"):
        jobs.run_jobs(same, seconds=5, parallel=2)
    names = [job.name for job in parity.jobs(gpu_test_ids, ROOT, dry_run=False)]
    assert len(names) == len(set(names)) == len(gpu_test_ids)


def test_gpu_tests_declare_their_memory(gpu_test_ids: list[str], tmp_path: Path) -> None:
    """Read from the source: a test's own ``gpu(gib=...)``, else its module's, else the default."""
    path = tmp_path / "test_sample.py"
    path.write_text("import pytest\n"
                    "pytestmark = [pytest.mark.slow, pytest.mark.gpu(gib=4)]\n"
                    "@pytest.mark.gpu(gib=12.5)\n"
                    "@pytest.mark.parametrize('x', [1, 2])\n"
                    "def test_big(x): pass\n"
                    "def test_small(): pass\n")
    assert parity.declared_gib(path) == {"": 4.0, "test_big": 12.5}
    declarations = {"t.py": parity.declared_gib(path), "u.py": {}}
    assert [parity.gib_of(node, declarations) for node in ("t.py::test_big[1]", "t.py::test_small", "u.py::test")] == [
        12.5, 4.0, parity.DEFAULT_GIB]
    real: dict[str, dict[str, float]] = {}
    gib = {node.split("::")[1]: parity.gib_of(node, real) for node in gpu_test_ids}
    assert gib["test_attention_gpt2_shape_bf16[True]"] >= 8 and gib["test_attention_row_offsets_past_int32_bf16"] >= 6
    assert gib["test_layernorm_gpt2_shape[dtype0]"] == parity.DEFAULT_GIB


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


def test_the_headline_shape_comes_first_against_sdpas_best_backend() -> None:
    assert bench_attention.grid(harness.Settings())[0] == bench_attention.HEADLINE
    assert {k: getattr(bench_attention.HEADLINE, k) for k in report.HEADLINE} == report.HEADLINE
    assert (bench_attention.HEADLINE.B, bench_attention.HEADLINE.H) == (12, 12)
    shape = dict(dtype="bfloat16", D=64, causal=True, T=1024, B=12, H=12, status="ok")
    rows = [dict(shape, impl=impl, mode=mode, ms=ms, tflops=1 / ms, kernel_ms=ms / 2, kernel_tflops=2 / ms)
            for mode in ("fwd", "fwd+bwd") for impl, ms in (("ours-flash", 1.0), ("sdpa", 1.5), ("sdpa-cudnn", 0.8))]
    (line,) = report.attention_summary(rows)
    assert line.startswith("attention B12 H12 T1024 D64 bfloat16 causal")
    assert "sdpa-cudnn 1.25 (2.5 kernel); ours 0.80x as fast" in line  # against the best, not the default


def test_code_hash_follows_the_code_and_nothing_else(tmp_path: Path) -> None:
    for name in ("kernels/a.py", "tests/test_a.py", "pyproject.toml"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text("x = 1\n")
    first = machine.code_sha256(tmp_path)
    assert first[1] == 3
    for name in ("kernels/__pycache__/a.cpython-311.pyc", "kernels/__pycache__/b.py", "benchmarks/results/gpu.json",
                 "train/.venv/lib.py", "notes.py"):  # caches, outputs, virtual environments, files outside the code
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text("y = 2\n")
    assert machine.code_sha256(tmp_path) == first
    (tmp_path / "kernels" / "a.py").write_text("x = 2\n")
    assert machine.code_sha256(tmp_path)[0] != first[0]
    assert machine.code_identity(tmp_path)["git_commit"] is None
    identity = machine.code_identity(ROOT)
    assert len(identity["git_commit"] or "") == 40 and isinstance(identity["git_dirty"], bool)


@pytest.mark.parametrize("name,tflops", [("NVIDIA H100 80GB HBM3", 989), ("NVIDIA H100 NVL", 835),
                                         ("NVIDIA H100 PCIe", 756), ("NVIDIA H200", 989), ("NVIDIA H200 NVL", 835),
                                         ("NVIDIA GH200 480GB", 989), ("NVIDIA A100-SXM4-80GB", 312),
                                         ("NVIDIA GeForce GTX 1080", None)])
def test_peak_flops_of_each_hopper_board(name: str, tflops: float | None) -> None:
    from scratchformers.train.metrics import peak_flops_of

    assert peak_flops_of(name) == (tflops * 1e12 if tflops else None)


def test_the_suite_collects_where_optional_packages_are_missing(tmp_path: Path) -> None:
    """`python -m pytest` on a GPU machine (a bare checkout without the test extras' Jupyter, HF or seaborn
    packages) collects without errors: what needs a missing package skips with a reason."""
    block = "; ".join(f"sys.modules[{name!r}] = None" for name in ABSENT_ON_GPU_MACHINES)
    code = (f"import sys; {block}\nimport pytest\n"
            "sys.exit(pytest.main(['--collect-only', '-q', '-p', 'no:cacheprovider', 'tests']))")
    environ = {key: value for key, value in os.environ.items() if key != "TRITON_INTERPRET"}
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300,
                            env=environ)
    assert result.returncode == 0 and "error" not in result.stdout.splitlines()[-1], result.stdout[-3000:]
    assert "SKIPPED" in result.stdout and "test_notebook.py" in result.stdout
