"""Shared bits of the training benchmarks: run record (machine, versions, commit, date), memory, presets.

Not a package module: the scripts import it from their own folder (``benchmarks/`` is on ``sys.path`` when a
script runs).
"""

from __future__ import annotations

import datetime as dt
import os
import platform
import resource
import shlex
import sys
from pathlib import Path
from typing import Any

import torch

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "results"

METHODS = {                         # benchmark name -> config file stem suffix (configs/mnist/<preset>_<suffix>.yaml)
    "seg_only": "seg_only", "ae": "ae", "mean_teacher": "mean_teacher", "genseg": "genseg",
    "genseg_sepdec": "genseg_sepdec",
}
# Published scale (genseg.md §4, §6): width 1.0, 20 P + 20 A per step. BraTS: 4 x 240 x 120 hemispheres, depth 5.
PRESETS = {"mnist48_simple": {"depth": 4}, "mnist128": {"depth": 5}, "brats": {"depth": 5}}


def git_commit() -> str:
    """The package's provenance commit (results/ edits are not "dirty"), in the benchmarks' "-dirty" spelling."""
    from weakseg.reproduce.provenance import git_commit as commit

    found = commit(ROOT)
    return found.replace("+dirty", "-dirty") if found else "unknown"


def machine() -> dict[str, Any]:
    info: dict[str, Any] = {
        "platform": platform.platform(), "processor": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(), "python": platform.python_version(),
        "load_average_1m": round(os.getloadavg()[0], 2),    # other jobs share this machine's cores
    }
    if torch.cuda.is_available():
        props = torch.cuda.get_device_properties(0)
        info["gpu"] = {"name": props.name, "memory_gib": round(props.total_memory / 2**30, 1),
                       "capability": f"{props.major}.{props.minor}", "count": torch.cuda.device_count()}
    return info


def record(benchmark: str, **fields: Any) -> dict[str, Any]:
    return {
        "benchmark": benchmark,
        "command": " ".join(shlex.quote(a) for a in [Path(sys.executable).name, *sys.argv]),
        **fields,
        "git_commit": git_commit(), "machine": machine(),
        "versions": {"torch": torch.__version__, "cuda": torch.version.cuda},
        "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
    }


def peak_memory_mib(device: torch.device) -> dict[str, float]:
    """CUDA: max allocated since the last reset. CPU: the process's peak resident set size (Linux KiB)."""
    if device.type == "cuda":
        return {"cuda_max_allocated_mib": round(torch.cuda.max_memory_allocated(device) / 2**20, 1)}
    return {"cpu_peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)}


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
