"""What the GPU check ran on and what it measured: the device, the software versions, the datasheet peaks that the
percentages use, and the code itself.

Peak bf16 dense tensor-core FLOP/s come from :data:`scratchformers.train.metrics.PEAK_BF16_FLOPS` (the training
log's MFU uses the same table); peak HBM bandwidth from :data:`PEAK_GBPS` below. Both are matched against
``torch.cuda.get_device_name()``; an unknown GPU gets no percentage unless ``--peak-gbps`` gives one.

The code is named twice: ``git rev-parse HEAD`` where the checkout has its ``.git`` (and whether tracked files differ
from it), and always the SHA-256 of the code files themselves (:func:`code_sha256`), because the copy that reaches a
GPU machine may have no ``.git``. ``python benchmarks/gpu/check.py --code-hash`` prints the same hash for any
checkout, so a result can be matched with the commit it measured.
"""
from __future__ import annotations

import datetime
import hashlib
import platform
import subprocess
from pathlib import Path

import torch

# Datasheet peak HBM bandwidth in GB/s (10^9 bytes/s). The first key found in the device name wins.
PEAK_GBPS: list[tuple[str, float]] = [
    ("H100 PCIe", 2000),
    ("H100 NVL", 3900),
    ("H100", 3350),  # SXM5, HBM3 ("NVIDIA H100 80GB HBM3")
    ("GH200", 4000),
    ("H200", 4800),  # SXM and NVL
    ("A100-PCIE-40GB", 1555),
    ("A100-SXM4-40GB", 1555),
    ("A100-PCIE-80GB", 1935),
    ("A100", 2039),  # SXM4 80GB
    ("L40S", 864),
    ("L4", 300),
]
# The folders whose Python files make the code hash, and the files beside them (outputs, caches and virtual
# environments are not code: a run writing its results into the checkout does not change the hash).
CODE_FOLDERS = ("scratchformers", "reference", "fast", "kernels", "train", "exercises", "benchmarks", "tests", "tools")
CODE_FILES = ("pyproject.toml",)


def peak_bandwidth(name: str) -> float | None:
    """Datasheet peak memory bandwidth of the GPU called ``name``, in GB/s, or None if it is not in the table."""
    return next((gbps for key, gbps in PEAK_GBPS if key in name), None)


def code_files(root: Path) -> list[Path]:
    """The files :func:`code_sha256` reads: every ``*.py`` under :data:`CODE_FOLDERS` (``__pycache__`` and hidden
    folders aside) and :data:`CODE_FILES`, sorted by their path relative to ``root``."""
    found = [root / name for name in CODE_FILES if (root / name).is_file()]
    for folder in CODE_FOLDERS:
        for path in (root / folder).rglob("*.py"):
            parts = path.relative_to(root).parts
            if not any(part == "__pycache__" or part.startswith(".") for part in parts):
                found.append(path)
    return sorted(found, key=lambda path: path.relative_to(root).as_posix())


def code_sha256(root: Path) -> tuple[str, int]:
    """SHA-256 over each code file's relative path and bytes, and the number of files."""
    digest = hashlib.sha256()
    files = code_files(root)
    for path in files:
        digest.update(path.relative_to(root).as_posix().encode() + b"\0")
        digest.update(path.read_bytes() + b"\0")
    return digest.hexdigest(), len(files)


def _git(root: Path, *args: str) -> str | None:
    try:
        result = subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return result.stdout if result.returncode == 0 else None


def code_identity(root: Path) -> dict:
    """``sha256`` and ``files`` of :func:`code_sha256`; ``git_commit`` and ``git_dirty`` (tracked files changed since
    that commit) where ``root`` is a git checkout, else None."""
    sha, count = code_sha256(root)
    commit = _git(root, "rev-parse", "HEAD") if (root / ".git").exists() else None
    status = _git(root, "status", "--porcelain", "--untracked-files=no") if commit else None
    return dict(sha256=sha, files=count, git_commit=commit.strip() if commit else None,
                git_dirty=bool(status.strip()) if status is not None else None)


def describe(device: torch.device, root: Path, peak_gbps: float | None) -> dict:
    """Device, versions, date, peaks and code for the JSON's ``meta``; ``peak_gbps`` overrides the bandwidth table."""
    import triton

    from scratchformers.train.metrics import peak_flops

    info = dict(device=device.type, torch=torch.__version__, triton=triton.__version__, cuda=torch.version.cuda,
                python=platform.python_version(), platform=platform.platform(), code=code_identity(root),
                date=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"))
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        info.update(name=props.name, memory_gib=round(props.total_memory / 2**30, 1),
                    sm_count=props.multi_processor_count, capability=f"{props.major}.{props.minor}",
                    cudnn=torch.backends.cudnn.version(), driver=_driver_version())
    else:
        info.update(name=f"CPU ({platform.processor() or platform.machine()}), Triton interpreter", memory_gib=None,
                    sm_count=None, capability=None, cudnn=None, driver=None)
    flops = peak_flops(device)
    info["peak_bf16_tflops"] = flops / 1e12 if flops else None
    info["peak_gbps"] = peak_gbps if peak_gbps is not None else peak_bandwidth(info["name"])
    return info


def _driver_version() -> str | None:
    try:
        result = subprocess.run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                                capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return result.stdout.strip().splitlines()[0] if result.returncode == 0 and result.stdout.strip() else None
