"""Shared set-up of the CPU benchmark suites (pytest-benchmark).

    pytest benchmarks                          # full sizes: a few minutes per suite on 2 cores
    pytest benchmarks --quick                  # small inputs, few rounds: well under a minute
    SCRATCHFORMERS_BENCH_QUICK=1 pytest benchmarks     # the same switch as an environment variable

Every benchmark module reads ``SCRATCHFORMERS_BENCH_QUICK`` when it is imported, to choose its sizes. ``--quick``
sets that variable in :func:`pytest_configure`, which runs before any benchmark module is collected, so the option
and the variable are one switch. Any value other than empty or ``0`` counts as on; it is normalised to ``1``.
"""
from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
import torch

QUICK_ENV = "SCRATCHFORMERS_BENCH_QUICK"


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.getgroup("scratchformers").addoption(
        "--quick",
        action="store_true",
        help=f"small inputs and few rounds, a smoke test of every benchmark (same as {QUICK_ENV}=1)",
    )


def pytest_configure(config: pytest.Config) -> None:
    quick = config.getoption("quick") or os.environ.get(QUICK_ENV, "") not in ("", "0")
    os.environ[QUICK_ENV] = "1" if quick else "0"


def pytest_report_header(config: pytest.Config) -> str:
    if os.environ[QUICK_ENV] == "1":
        return "scratchformers benchmarks: QUICK mode (small inputs: the timings are a smoke test, not results)"
    return "scratchformers benchmarks: full mode"


def pytest_benchmark_update_machine_info(config: pytest.Config, machine_info: dict) -> None:
    """Record the mode and the torch build in ``--benchmark-json`` files, so quick runs cannot pass for results."""
    machine_info["scratchformers_bench_quick"] = os.environ[QUICK_ENV] == "1"
    machine_info["torch"] = torch.__version__


@pytest.fixture(scope="module")
def single_thread() -> Iterator[None]:
    """Run torch, OpenMP and NumPy's BLAS on one thread for the module, so that implementations compare like for
    like: on a small shared machine thread hand-offs dominate small operations and swing the timings."""
    from threadpoolctl import threadpool_limits

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    with threadpool_limits(limits=1):
        yield
    torch.set_num_threads(threads)
