"""What the GPU check ran on: the device, the software versions, and the datasheet peaks that the percentages use.

Peak bf16 dense tensor-core FLOP/s come from :data:`scratchformers.train.metrics.PEAK_BF16_FLOPS` (the training
log's MFU uses the same table); peak HBM bandwidth from :data:`PEAK_GBPS` below. Both are matched against
``torch.cuda.get_device_name()``; an unknown GPU gets no percentage unless ``--peak-gbps`` gives one.
"""
from __future__ import annotations

import datetime
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
    ("H200", 4800),
    ("A100-PCIE-40GB", 1555),
    ("A100-SXM4-40GB", 1555),
    ("A100-PCIE-80GB", 1935),
    ("A100", 2039),  # SXM4 80GB
    ("L40S", 864),
    ("L4", 300),
]


def peak_bandwidth(name: str) -> float | None:
    """Datasheet peak memory bandwidth of the GPU called ``name``, in GB/s, or None if it is not in the table."""
    return next((gbps for key, gbps in PEAK_GBPS if key in name), None)


def git_commit(root: Path) -> str | None:
    """The checkout's commit, or None (a copy of the tree without .git, or no git)."""
    try:
        result = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return result.stdout.strip() or None


def describe(device: torch.device, root: Path, peak_gbps: float | None) -> dict:
    """Device, versions, date and peaks for the JSON's ``meta``; ``peak_gbps`` overrides the bandwidth table."""
    import triton

    from scratchformers.train.metrics import peak_flops

    info = dict(device=device.type, torch=torch.__version__, triton=triton.__version__, cuda=torch.version.cuda,
                python=platform.python_version(), platform=platform.platform(), git_commit=git_commit(root),
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
