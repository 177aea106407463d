"""Slice-level vs volume-level scores on synthetic BraTS, without and with training augmentation (issue 16).

One synthetic BraTS set (``weakseg.data.brats.synthetic``, seed 0) with healthy subjects in every split is
converted once; then for each seed, the same method trains the same number of steps with
``data.brats.augment=false`` and ``=true`` (everything else from ``configs/brats/brats_<method>.yaml`` plus the
small-scale overrides below). best.pt is selected on the brats preset's volume metric
(``volume/dice_pooled`` on the validation volumes). Each run's best and last checkpoints are scored on the
test split by ``weakseg evaluate``'s code: slice level (P and A hemisphere slices: ``dice_hard_global``,
``dice_per_image``, ``fp_image_rate``) and volume level (every slice of each test patient: per-volume Dice,
pooled Dice with healthy volumes, false-positive voxels on the healthy test brains).

Runs go through ``python -m weakseg train`` in a subprocess each (one thread), under ``--work``; a finished
run is reused and an unfinished one resumed, so the script can be stopped and started again. Writes
``results/brats_volume_table.json`` (every run, provenance) and ``results/brats_volume_table.md``.

    OMP_NUM_THREADS=1 nice python benchmarks/brats_volume_table.py                      # 3 seeds, ~15 min
    OMP_NUM_THREADS=1 nice python benchmarks/brats_volume_table.py --seeds 0            # one seed
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import RESULTS, ROOT, record  # noqa: E402

# 16 subjects of 64 x 64 x 20 voxels (slices 64 x 32), 5 of them tumour-free; split by hand so that
# validation and test each hold tumour and healthy brains (train sees 1 healthy subject's A slices).
N_SUBJECTS, N_HEALTHY, SHAPE = 16, 5, (64, 64, 20)
SPLIT = {"train": list(range(0, 7)) + [11], "valid": [7, 8, 12], "test": [9, 10, 13, 14, 15]}   # subject indices
SCALE = ["model.width=0.25", "model.depth=4", "train.batch_size=8", "eval.batch_size=64", "train.log_every=50"]
METRICS = {   # column -> (metric path in eval_test.json, format)
    "slice Dice (P slices)": ("dice_hard_global", "{:.3f}"),
    "slice Dice per image": ("dice_per_image/mean", "{:.3f}"),
    "A slices with FP": ("fp_image_rate", "{:.2f}"),
    "volume Dice (tumour vols)": ("volume/dice_per_volume/mean", "{:.3f}"),
    "volume Dice pooled (+healthy)": ("volume/dice_pooled", "{:.3f}"),
    "healthy FP voxels": ("volume/healthy_fp_voxels", "{:.0f}"),
}


def prepare(work: Path, labelled_fraction: float) -> Path:
    """Write and convert the synthetic set once; returns the converted folder."""
    from weakseg.data.brats.convert import BratsConvertOptions, convert_brats
    from weakseg.data.brats.synthetic import write_synthetic_brats

    conv = work / "conv"
    if (conv / "index.json").is_file():
        return conv
    subjects = write_synthetic_brats(work / "src", n_subjects=N_SUBJECTS, n_lgg=0, naming="2020", shape=SHAPE,
                                     n_tumour_free=N_HEALTHY, seed=0)
    ids = [s.subject_id for s in subjects]
    split = {k: [ids[i] for i in v] for k, v in SPLIT.items()}
    (work / "split.json").write_text(json.dumps(split, indent=1))
    convert_brats(work / "src", conv, options=BratsConvertOptions(split_file=str(work / "split.json"),
                                                                  labelled_fraction=labelled_fraction))
    return conv


def train(run: Path, method: str, conv: Path, seed: int, augment: bool, steps: int, eval_every: int,
          extra: list[str]) -> float:
    """Train (or resume, or reuse) one run; returns its wall time in seconds (0 when reused)."""
    last = run / "checkpoints" / "last.pt"
    if last.is_file():
        import torch

        if int(torch.load(last, weights_only=True, map_location="cpu")["step"]) >= steps:
            return 0.0
    cmd = [sys.executable, "-m", "weakseg", "train", f"configs/brats/brats_{method}.yaml", "--out", str(run),
           "--no-progress"]
    sets = [f"data.brats.root={conv}", f"data.brats.augment={str(augment).lower()}", f"train.seed={seed}",
            f"train.steps={steps}", f"train.eval_every={eval_every}", f"train.checkpoint_every={eval_every}",
            "train.device=cpu", *SCALE, *extra]
    if last.is_file():
        cmd = [sys.executable, "-m", "weakseg", "train", "--out", str(run), "--resume", "--no-progress"]
        sets = []
    for s in sets:
        cmd += ["--set", s]
    t = time.perf_counter()
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": os.pathsep.join([str(ROOT / "src"),
                                                                               os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
    if proc.returncode:
        raise RuntimeError(f"{' '.join(cmd)}\n{proc.stderr[-2000:]}")
    return time.perf_counter() - t


def score(run: Path) -> dict[str, Any]:
    from weakseg.inference.report import evaluate_run
    from weakseg.training.logging import flatten_scalars

    out = {}
    for which in ("best", "last"):
        rep = evaluate_run(run, split="test", which=which, device="cpu")
        flat = flatten_scalars(rep["metrics"])
        out[which] = {"step": rep["checkpoint_step"], "selection": rep["selection"],
                      **{col: flat.get(path) for col, (path, _) in METRICS.items()},
                      "volume_per_case": rep["metrics"]["volume"]["per_case"]}
    return out


def _mean_std(values: list[float]) -> str:
    vals = [v for v in values if v is not None]
    if not vals:
        return "n/a"
    if len(vals) == 1:
        return f"{vals[0]:.3g}"
    return f"{statistics.mean(vals):.3g} ± {statistics.stdev(vals):.2g}"


def markdown(rows: list[dict[str, Any]], meta: dict[str, Any]) -> str:
    lines = [f"# Synthetic BraTS: slice vs volume scores, without / with augmentation ({meta['method']})", "",
             f"{N_SUBJECTS} synthetic subjects ({N_HEALTHY} tumour-free) of {SHAPE[0]}x{SHAPE[1]}x{SHAPE[2]} voxels; "
             f"test split: {meta['test_counts']}. {meta['steps']} steps per run, seeds {meta['seeds']}, scale "
             f"`{' '.join(SCALE + meta['extra_sets'])}`, labelled fraction {meta['labelled_fraction']}. "
             "best.pt selected on `volume/dice_pooled` of the validation volumes. Test scores of best.pt (and last.pt below). "
             "Slice level: P and A hemisphere slices as in training; volume level: every slice of every test "
             "patient, predicted as `weakseg predict` does. Healthy FP voxels: predicted tumour voxels summed "
             "over the healthy test brains.", "",
             "Command: `" + meta["command"] + "`", ""]
    cols = list(METRICS)
    for which in ("best", "last"):
        lines += [f"## {which}.pt, per seed", "", "| augment | seed | step | " + " | ".join(cols) + " |",
                  "|---|---|---|" + "---|" * len(cols)]
        for r in rows:
            s = r["scores"][which]
            cells = [(METRICS[c][1].format(s[c]) if s[c] is not None else "n/a") for c in cols]
            lines.append(f"| {'on' if r['augment'] else 'off'} | {r['seed']} | {s['step']} | "
                         + " | ".join(cells) + " |")
        lines += ["", f"## {which}.pt, mean ± std over seeds", "", "| augment | runs | " + " | ".join(cols) + " |",
                  "|---|---|" + "---|" * len(cols)]
        for aug in (False, True):
            group = [r["scores"][which] for r in rows if r["augment"] == aug]
            if group:
                lines.append(f"| {'on' if aug else 'off'} | {len(group)} | "
                             + " | ".join(_mean_std([g[c] for g in group]) for c in cols) + " |")
        lines.append("")
    walls = [r["train_seconds"] for r in rows if r["train_seconds"]]
    if walls:
        lines.append(f"Training wall time per run (one thread, shared machine): {min(walls):.0f}-{max(walls):.0f} s.")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--method", default="seg_only", choices=["seg_only", "ae", "mean_teacher", "genseg"])
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--steps", type=int, default=1200)
    p.add_argument("--eval-every", type=int, default=200)
    p.add_argument("--labelled-fraction", type=float, default=0.3)
    p.add_argument("--work", type=Path, default=Path("/tmp/weakseg_brats_volume_table"))
    p.add_argument("--name", default="brats_volume_table", help="results/<name>.json and .md")
    p.add_argument("--set", dest="extra", action="append", default=[], metavar="KEY=VALUE",
                   help="more config overrides for every run, e.g. data.brats.augment_shift=0 (use another --work)")
    args = p.parse_args(argv)

    args.work.mkdir(parents=True, exist_ok=True)
    conv = prepare(args.work, args.labelled_fraction)
    index = json.loads((conv / "index.json").read_text())
    rows = []
    for seed in args.seeds:
        for augment in (False, True):
            run = args.work / "runs" / f"{args.method}_aug{int(augment)}_s{seed}"
            wall = train(run, args.method, conv, seed, augment, args.steps, args.eval_every, args.extra)
            rows.append({"method": args.method, "seed": seed, "augment": augment, "run": str(run),
                         "train_seconds": round(wall, 1), "scores": score(run)})
            b = rows[-1]["scores"]["best"]
            print(f"seed {seed} augment {'on ' if augment else 'off'}: best step {b['step']}: "
                  + ", ".join(f"{c} {b[c]:.3f}" if b[c] is not None else f"{c} n/a" for c in METRICS), flush=True)
    meta = {"method": args.method, "steps": args.steps, "seeds": args.seeds, "extra_sets": args.extra,
            "labelled_fraction": args.labelled_fraction, "test_counts": index["splits"]["test"]["counts"],
            "command": "OMP_NUM_THREADS=1 python " + " ".join([Path(sys.argv[0]).as_posix(), *sys.argv[1:]])}
    out = record("brats_volume_table", config=f"configs/brats/brats_{args.method}.yaml", scale=SCALE,
                 synthetic={"n_subjects": N_SUBJECTS, "n_healthy": N_HEALTHY, "shape": SHAPE, "seed": 0,
                            "split_indices": SPLIT},
                 **meta, runs=rows)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"{args.name}.json").write_text(json.dumps(out, indent=1) + "\n")
    (RESULTS / f"{args.name}.md").write_text(markdown(rows, {**meta, "command": out["command"]}))
    print(f"wrote {RESULTS / (args.name + '.json')} and .md")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
