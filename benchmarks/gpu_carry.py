"""A training run's state in files small enough to come back from a GPU window and travel into the next one.

A device call returns at most 8 files of 16 MiB (64 MiB together) and carries at most 64 MiB of working tree in.
GenSeg at the published width has 23.2 M parameters: ``last.pt`` with its Adam moments is about 280 MB, and even
the fp32 weights alone (93 MB) do not fit. What fits, and what this module writes:

- ``state.pt``: everything of ``last.pt`` except the weights and the optimiser states, exactly (step, config, data
  streams, RNG states, noise generator, best-so-far, method state), the small tensors of the weights exactly
  (buffers such as spectral-norm vectors, biases), and the run's validation curve over all windows;
- ``weights_NN.pt``: every floating tensor of >= ``MIN_ROUNDED`` elements as float16 of ``tensor / scale`` with
  its float32 ``scale = max |tensor|`` (relative rounding <= 2^-11 of the tensor's largest value), in shards of at
  most ``SHARD_BYTES``.

Resuming from these files is a *continuation*, not ``--resume``'s exact resumption: the weights are rounded once
(``rounding`` in ``state.pt`` gives the worst relative error) and Adam restarts with empty moments (its bias
correction makes the first updates full-size again). Everything else (data order, random streams, step count,
best-so-far) continues exactly. Loaded with ``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import torch

from weakseg.training.checkpoint import load_checkpoint, save_checkpoint

SHARD_BYTES = 15 * 2**20          # under the device's 16 MiB per returned file
MIN_ROUNDED = 4096                # smaller tensors (biases, spectral-norm vectors) stay exact in state.pt
CARRY_FORMAT = 1


def _rounded(t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(float16 tensor / scale, float32 scale); scale = max |t| so float16 never overflows."""
    scale = t.detach().abs().max().float()
    if not torch.isfinite(scale) or scale == 0:
        scale = torch.ones((), dtype=torch.float32)
    return (t.detach().float() / scale).to(torch.float16), scale


def export_run(last_pt: str | Path, out_dir: str | Path, *, curve: list[dict[str, Any]] | None = None,
               windows: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """Write ``state.pt`` and ``weights_NN.pt`` for ``last_pt`` into ``out_dir``; returns what was written."""
    ckpt = load_checkpoint(last_pt)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    for old in out.glob("weights_*.pt"):
        old.unlink()
    exact: dict[str, dict[str, torch.Tensor]] = {}
    rounded: list[tuple[str, torch.Tensor, torch.Tensor]] = []
    worst = 0.0
    for model, sd in ckpt["models"].items():
        exact[model] = {}
        for key, t in sd.items():
            if t.is_floating_point() and t.numel() >= MIN_ROUNDED:
                q, scale = _rounded(t)
                err = ((q.float() * scale - t.float()).abs().max() / scale).item()
                worst = max(worst, err)
                rounded.append((f"{model}/{key}", q, scale))
            else:
                exact[model][key] = t
    shards: list[dict[str, Any]] = [{}]
    size = 0
    for name, q, scale in rounded:
        nbytes = q.numel() * q.element_size()
        if size and size + nbytes > SHARD_BYTES:
            shards.append({})
            size = 0
        shards[-1][name] = {"q": q, "scale": scale}
        size += nbytes
    files = []
    for i, shard in enumerate(shards):
        path = save_checkpoint({"kind": "weights", "tensors": shard}, out / f"weights_{i:02d}.pt")
        files.append(path.name)
    state = {k: v for k, v in ckpt.items() if k not in ("models", "optimizers", "format", "weakseg_version")}
    state |= {"kind": "state", "carry_format": CARRY_FORMAT, "exact": exact, "weight_files": files,
              "rounding": {"dtype": "float16 x float32 per-tensor scale", "max_rel_error": worst,
                           "tensors": len(rounded), "elements": sum(q.numel() for _, q, _ in rounded)},
              "curve": list(curve or []), "windows": list(windows or [])}
    save_checkpoint(state, out / "state.pt")
    sizes = {p.name: p.stat().st_size for p in sorted(out.glob("*.pt"))}
    return {"files": sizes, "total_mib": round(sum(sizes.values()) / 2**20, 2), "step": int(ckpt["step"]),
            "best": ckpt.get("best"), "rounding": state["rounding"]}


def read_state(carry_dir: str | Path) -> dict[str, Any]:
    """``state.pt`` of a carried folder (step, best, curve, windows, ...)."""
    state = load_checkpoint(Path(carry_dir) / "state.pt")
    if state.get("kind") != "state" or state.get("carry_format") != CARRY_FORMAT:
        raise ValueError(f"{carry_dir}/state.pt is not a carried run state of format {CARRY_FORMAT}; "
                         "export it again with this version of benchmarks/gpu_carry.py")
    return state


def import_run(carry_dir: str | Path, run_dir: str | Path) -> dict[str, Any]:
    """Rebuild ``run_dir/checkpoints/last.pt`` from a carried folder, with no optimiser state; returns the state.

    ``weakseg train CONFIG --out run_dir --resume`` (or ``fit(..., resume=True)``) then continues the run.
    """
    carry = Path(carry_dir)
    state = read_state(carry)
    models: dict[str, dict[str, torch.Tensor]] = {m: dict(sd) for m, sd in state["exact"].items()}
    for name in state["weight_files"]:
        shard = load_checkpoint(carry / name)
        if shard.get("kind") != "weights":
            raise ValueError(f"{carry / name} is not a weight shard of a carried run")
        for key, item in shard["tensors"].items():
            model, _, param = key.partition("/")
            models.setdefault(model, {})[param] = item["q"].float() * item["scale"]
    payload = {k: v for k, v in state.items()
               if k not in ("kind", "carry_format", "exact", "weight_files", "rounding", "curve", "windows")}
    payload |= {"models": models, "optimizers": {}}
    save_checkpoint(payload, Path(run_dir) / "checkpoints" / "last.pt")
    return state


def curve_from_metrics(metrics_jsonl: str | Path, *, since_step: int = 0) -> list[dict[str, Any]]:
    """The validation records of a run's ``metrics.jsonl`` after ``since_step`` (``time`` dropped)."""
    import json

    path = Path(metrics_jsonl)
    if not path.is_file():
        return []
    out = []
    for line in path.read_text().splitlines():
        rec = json.loads(line)
        if rec.get("split") == "valid" and rec.get("step", 0) > since_step:
            out.append({k: v for k, v in rec.items() if k not in ("time", "split")
                        and (v is None or not isinstance(v, float) or math.isfinite(v))})
    return out
