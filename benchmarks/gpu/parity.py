"""GPU check, parity: every test marked ``gpu`` on the GPU, one ``pytest`` process per test, side by side.

``tests/test_gpu_parity.py`` comes first: it compares the compiled Triton kernels with float64 references at GPT-2
shapes in bfloat16, float16 and float32, forward and backward, and checks the kernel fixes of issue 18 at those shapes
(strided views of ``c_attn(x).split`` and views whose offsets pass 2³¹, LayerNorm with non-contiguous weight and bias,
constant rows). Then the ``gpu`` tests of the other files (the trainer on CUDA, the kernels' launch grid, ...), found
as the files that use the marker, so a new GPU test joins the check by being marked. Each test autotunes and
compiles its own kernel configurations, which is most of its time, so the tests run as separate processes side by side
(``jobs.run_jobs``), as many as there are CPU cores but one, and only while the GPU memory they declare fits the card.
A test that crashes its process (an illegal memory access poisons the CUDA context) costs only itself. The kernels
they compile stay in Triton's cache for the timed sections.

A test declares the GPU memory it may hold at its peak, CUDA context included, in its marker,
``@pytest.mark.gpu(gib=10)`` (or a module's ``pytestmark``); :data:`DEFAULT_GIB` otherwise. The declarations are read
from the source, so collecting them imports nothing.

Each process writes a JUnit XML file; its outcome becomes one row: ``passed``, ``failed: <message>``,
``skipped: <reason>``, ``error: <message>``, or, for a process that never finished, ``not finished (time budget)``
or ``not run (time budget)``.
"""
from __future__ import annotations

import ast
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

from harness import ROOT
from jobs import Job

NAME = "parity"
TEST_FILE = "tests/test_gpu_parity.py"
DEFAULT_GIB = 2.0  # a test that declares nothing: its CUDA context and tensors of GPT-2's activations' size
PYTEST = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"]


def gpu_test_files() -> list[str]:
    """The test files that mark tests ``gpu``, TEST_FILE first (read as text: nothing is imported)."""
    marked = sorted(str(path.relative_to(ROOT)) for path in (ROOT / "tests").glob("test_*.py")
                    if "mark.gpu" in path.read_text(encoding="utf-8"))
    return sorted(marked, key=lambda name: name != TEST_FILE)


def collect(timeout_s: float = 120.0) -> list[str]:
    """The node ids of the ``gpu`` tests, TEST_FILE's first, each file in its order (``pytest --collect-only``)."""
    files = gpu_test_files()
    result = subprocess.run([*PYTEST, "--collect-only", "-m", "gpu", *files], cwd=ROOT, capture_output=True,
                            text=True, timeout=timeout_s)
    ids = [line.strip() for line in result.stdout.splitlines() if line.startswith(tuple(f + "::" for f in files))]
    if not ids:
        raise RuntimeError(f"collecting the gpu tests of {', '.join(files)} found none (exit {result.returncode}): "
                           + " ".join((result.stdout + result.stderr).split())[-500:])
    return ids


def _gpu_gib(decorators: list[ast.expr]) -> float | None:
    """The ``gib`` of a ``pytest.mark.gpu(gib=...)`` among ``decorators``, or None."""
    for node in decorators:
        if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "gpu"
                and isinstance(node.func.value, ast.Attribute) and node.func.value.attr == "mark"):
            for keyword in node.keywords:
                if keyword.arg == "gib":
                    return float(ast.literal_eval(keyword.value))
    return None


def declared_gib(path: Path) -> dict[str, float]:
    """``{test function: GiB}`` for the tests of ``path`` that declare their memory (a module-level
    ``pytestmark = pytest.mark.gpu(gib=...)`` under the key ``""`` applies to the others)."""
    declared: dict[str, float] = {}
    for node in ast.parse(path.read_text(encoding="utf-8")).body:
        if isinstance(node, ast.FunctionDef):
            key, gib = node.name, _gpu_gib(node.decorator_list)
        elif isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "pytestmark"
                                                  for t in node.targets):
            marks = node.value.elts if isinstance(node.value, (ast.List, ast.Tuple)) else [node.value]
            key, gib = "", _gpu_gib(marks)
        else:
            continue
        if gib is not None:
            declared[key] = gib
    return declared


def gib_of(node_id: str, declarations: dict[str, dict[str, float]]) -> float:
    """The GPU memory test ``node_id`` declares (``file::name[params]``), else its module's, else DEFAULT_GIB."""
    file, name = node_id.split("::", 1)
    found = declarations.setdefault(file, declared_gib(ROOT / file) if (ROOT / file).is_file() else {})
    function = name.split("::")[-1].split("[")[0]
    return found.get(function, found.get("", DEFAULT_GIB))


def jobs(node_ids: list[str], xml_dir: Path, dry_run: bool) -> list[Job]:
    """One job per test, named ``parity-NN`` in collection order; the dry run runs the first two in one process
    (they skip on CPU), enough to exercise this."""
    declarations: dict[str, dict[str, float]] = {}
    groups = [node_ids[:2]] if dry_run else [[node] for node in node_ids]
    return [Job(job_name(i), [*PYTEST, f"--junitxml={xml_dir / f'{job_name(i)}.xml'}", *group],
                max(gib_of(node, declarations) for node in group), ROOT)
            for i, group in enumerate(groups)]


def job_name(index: int) -> str:
    return f"parity-{index:02d}"


def rows(node_ids: list[str], job_list: list[Job], results: dict[str, dict], xml_dir: Path) -> list[dict]:
    """One row per test that a job ran or was meant to run."""
    out = []
    for job in job_list:
        outcomes = read_junit(xml_dir / f"{job.name}.xml")
        result = results.get(job.name, dict(status="not started (deadline)", s=0.0))
        for node in (arg for arg in job.command if arg in node_ids):
            row = dict(test=node, job=job.name, job_s=result["s"], gib=job.gib)
            found = outcomes.get(node.split("::", 1)[1])
            if found is not None:
                row.update(found)
            elif result["status"] == "killed at the deadline":
                row["status"] = "not finished (time budget)"
            elif result["status"] == "not started (deadline)":
                row["status"] = "not run (time budget)"
            else:
                row["status"] = f"error: pytest ended with {result['status']} and no report"
                row["log"] = result.get("log", "")
            out.append(row)
    return out


def read_junit(path: Path) -> dict[str, dict]:
    """``{test name: {"status": ..., "s": seconds}}`` from a JUnit XML file; empty if there is none."""
    if not path.is_file():
        return {}
    outcomes = {}
    for case in ET.parse(path).getroot().iter("testcase"):
        status = "passed"
        for tag, word in (("failure", "failed"), ("error", "error"), ("skipped", "skipped")):
            found = case.find(tag)
            if found is not None:
                message = " ".join((found.get("message") or found.text or "").split())
                status = f"{word}: {message[:500]}"
                break
        outcomes[case.get("name", "")] = dict(status=status, s=round(float(case.get("time", 0.0)), 2))
    return outcomes


def counts(parity_rows: list[dict]) -> dict[str, int]:
    """How many tests ended each way: passed, failed, error, skipped, not run."""
    tally = {"passed": 0, "failed": 0, "error": 0, "skipped": 0, "not run": 0}
    for row in parity_rows:
        word = row["status"].split(":")[0]
        tally[word if word in tally else "not run"] += 1
    return tally
