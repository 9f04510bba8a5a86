"""The benchmark suites in quick mode, so that CI runs every benchmark body and they cannot rot.

One run of ``scratchformers bench --quick --json`` (pytest-benchmark in a subprocess, a few rounds on small inputs),
then the JSON it wrote goes through ``benchmarks/plot_results.py``. The timings themselves are not asserted on.
"""
from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path
from types import ModuleType

import pytest

from scratchformers.train.cli import main
from scratchformers.train.commands import bench

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"
BLOCK_GROUPS = {f"{op}-{kind}" for op in ("attention", "layernorm", "softmax", "gelu")
                for kind in ("forward", "forward-backward")}


def load_plot_results() -> ModuleType:
    spec = importlib.util.spec_from_file_location("plot_results", BENCHMARKS / "plot_results.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict, ET.Element]:
    """The pytest-benchmark JSON and the JUnit XML summary of one quick run of every suite."""
    out = tmp_path_factory.mktemp("bench")
    cmd = [sys.executable, "-m", "scratchformers", "bench", "--quick", "--json", str(out / "quick.json"),
           "--", "-q", "-p", "no:cacheprovider", f"--junitxml={out / 'junit.xml'}"]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-5000:] + result.stderr[-3000:]
    data = json.loads((out / "quick.json").read_text())
    assert data["machine_info"]["scratchformers_bench_quick"] is True  # --quick reached the suites' conftest
    return data, ET.parse(out / "junit.xml").getroot().find("testsuite")


def test_every_benchmark_ran_none_skipped(quick_run: tuple[dict, ET.Element]) -> None:
    data, suite = quick_run
    assert int(suite.get("failures")) == int(suite.get("errors")) == int(suite.get("skipped")) == 0
    assert int(suite.get("tests")) == len(data["benchmarks"])  # every collected test timed something
    files = {b["fullname"].split("::")[0] for b in data["benchmarks"]}
    assert files == {f"benchmarks/{p.name}" for p in BENCHMARKS.glob("test_bench_*.py")}
    groups = {b["group"] for b in data["benchmarks"]}
    assert BLOCK_GROUPS <= groups
    assert {f"bytebpe-growth-{kind}-{encoder}" for kind in ("prose", "one-chunk")
            for encoder in ("reference", "fast")} <= groups  # both byte-level encoders, two sizes each
    for group in BLOCK_GROUPS:
        names = {b["params"]["impl"] for b in data["benchmarks"] if b["group"] == group}
        assert names == {"numpy", "torch-reference", "torch-functional"}
    assert all(b["stats"]["rounds"] >= 1 and b["stats"]["min"] > 0 for b in data["benchmarks"])


def test_plot_results_one_png_per_group(quick_run: tuple[dict, ET.Element], tmp_path: Path, capsys) -> None:
    data, _ = quick_run
    path = tmp_path / "quick.json"
    path.write_text(json.dumps(data))
    assert load_plot_results().main([str(path), "--out", str(tmp_path / "png"), "--prefix", "quick-"]) == 0
    groups = {b["group"] for b in data["benchmarks"]}
    assert {p.name for p in (tmp_path / "png").glob("*.png")} == {f"quick-{g}.png" for g in groups}
    rows = [line.split("|")[1:-1] for line in capsys.readouterr().out.splitlines()[2:]]
    assert len(rows) == len(data["benchmarks"])
    ratios: dict[str, list[float]] = {}
    for group, _name, _time, ratio in rows:
        ratios.setdefault(group.strip(), []).append(float(ratio))
    for group_ratios in ratios.values():  # fastest first, at 1.00, the others slower
        assert group_ratios[0] == 1.0 and group_ratios == sorted(group_ratios)


def test_plot_results_rejects_other_json(tmp_path: Path, capsys) -> None:
    path = tmp_path / "log.json"
    path.write_text(json.dumps({"loss": [1.0]}))
    assert load_plot_results().main([str(path)]) == 1
    assert "not a pytest-benchmark JSON" in capsys.readouterr().err


def test_bench_without_benchmarks_folder(monkeypatch, tmp_path: Path, capsys) -> None:
    monkeypatch.setattr(bench, "benchmarks_dir", lambda: tmp_path / "benchmarks")  # as from a wheel install
    assert main(["bench", "--quick"]) == 1
    assert "clone" in capsys.readouterr().err


def test_bench_gpu_takes_its_own_options(capsys) -> None:
    assert main(["bench", "--gpu", "--json", "x.json"]) == 2
    assert "--gpu -- --out DIR" in capsys.readouterr().err
