"""Clutter calibration of the issue-20 MNIST presets (``genseg.md`` §16 allows it once; published settings unknown).

Each probe trains the seg-only baseline at the ``medium`` scale (width 0.25, batch 8, the medium step budget)
on one ``*_v2`` preset with one clutter setting (``n_clutter`` x ``size_clutter``) and records its VALIDATION
curve (pooled soft Dice ``dice_soft_global``, the published metric, every ``--eval-every`` steps). Test data is
never read. A probe is one JSON file under ``results/mnist_calibration/`` (command, config, seed, commit,
machine, date, curve); the summary ``results/mnist_calibration.json`` lists every probe per preset with its
distance to the published seg-only Dice (R2: 0.61 simple, 0.36 hard, 0.15 at 128) and the probe closest to it.

    OMP_NUM_THREADS=1 PYTHONPATH=src python benchmarks/calibrate_mnist_clutter.py \\
        --preset mnist48_simple_v2 --clutter 8x10 12x10 --seed 0
    PYTHONPATH=src python benchmarks/calibrate_mnist_clutter.py --summary-only

Probes already stored are skipped (``--redo`` retrains them); an interrupted probe resumes from its run folder.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import RESULTS, record  # noqa: E402

TARGETS = {"mnist48_simple_v2": 0.61, "mnist48_hard_v2": 0.36, "mnist128_v2": 0.15}   # R2 seg-only (genseg.md §14)
TOLERANCE = 0.05
METRIC = "dice_soft_global"
CURVE_KEYS = ("dice_soft_global", "dice_hard_global", "dice_per_image/mean", "fp_image_rate", "fp_area")
PROBES = RESULTS / "mnist_calibration"
SUMMARY = RESULTS / "mnist_calibration.json"


def probe_name(preset: str, n_clutter: int, size_clutter: int, seed: int) -> str:
    return f"{preset}__c{n_clutter}x{size_clutter}__seed{seed}"


def parse_clutter(text: str) -> tuple[int, int]:
    """'12x10' -> (12, 10): n_clutter patches of size_clutter x size_clutter pixels."""
    try:
        n, w = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise SystemExit(f"--clutter {text!r}: expected N x W, e.g. 12x10") from None
    return n, w


def overrides(preset: str, n_clutter: int, size_clutter: int, seed: int, steps: int, eval_every: int) -> list[str]:
    from weakseg.reproduce.mnist import SCALES

    medium = SCALES["medium"]
    return [f"data.preset={preset}", f"data.mnist.n_clutter={n_clutter}", f"data.mnist.size_clutter={size_clutter}",
            *medium["overrides"], *medium["per_preset"].get(preset, []), f"train.steps={steps}",
            f"train.eval_every={eval_every}", f"train.checkpoint_every={eval_every}", f"train.seed={seed}"]


def read_curve(run_dir: Path) -> list[dict[str, Any]]:
    """The validation rows of a run's ``metrics.jsonl``: step -> the calibration metrics."""
    rows = {}
    for line in (run_dir / "metrics.jsonl").read_text().splitlines():
        r = json.loads(line)
        if r.get("split") == "valid":
            rows[r["step"]] = {"step": r["step"], **{k: r.get(k) for k in CURVE_KEYS}}   # a resumed run: last wins
    return [rows[s] for s in sorted(rows)]


def run_probe(preset: str, n_clutter: int, size_clutter: int, seed: int, args: argparse.Namespace) -> Path:
    from weakseg.config import load_config, to_dict
    from weakseg.metrics.jsonio import atomic_write_json
    from weakseg.reproduce.mnist import PRESET_CONFIG
    from weakseg.reproduce.runner import run_data_info
    from weakseg.training.loop import fit

    name = probe_name(preset, n_clutter, size_clutter, seed)
    out = PROBES / f"{name}.json"
    if out.is_file() and not args.redo:
        print(f"{name}: stored, skipped")
        return out
    steps = args.steps or _medium_steps(preset)
    sets = overrides(preset, n_clutter, size_clutter, seed, steps, args.eval_every)
    config = f"mnist/{PRESET_CONFIG[preset]}_seg_only"
    cfg = load_config(config, sets)
    run_dir = args.runs_root / name
    last = run_dir / "checkpoints" / "last.pt"
    if args.redo and run_dir.exists():
        import shutil
        shutil.rmtree(run_dir)
    print(f"{name}: training {steps} steps -> {run_dir}", flush=True)
    t0 = time.time()
    summary = fit(cfg, run_dir, resume=last.is_file(), progress=False)
    curve = read_curve(run_dir)
    values = [r[METRIC] for r in curve if r[METRIC] is not None]
    best = max(curve, key=lambda r: r[METRIC] if r[METRIC] is not None else -1.0)
    rec = record("clutter calibration probe: seg-only validation curve (issue 20, genseg.md §16)",
                 preset=preset, clutter={"n_clutter": n_clutter, "size_clutter": size_clutter}, seed=seed,
                 config_file=config, overrides=sets, config=to_dict(cfg), metric=METRIC, split="valid",
                 target=TARGETS.get(preset), steps=steps, eval_every=args.eval_every,
                 best={"step": best["step"], METRIC: best[METRIC]}, last=curve[-1] if curve else None,
                 plateau_mean_last3=sum(values[-3:]) / len(values[-3:]) if values else None,
                 wall_time_s=round(time.time() - t0, 1), train_wall_time_s=round(summary["wall_time_s"], 1),
                 data=run_data_info(run_dir), curve=curve)
    atomic_write_json(out, rec)
    print(f"{name}: best validation {METRIC} {best[METRIC]:.4f} at step {best['step']} "
          f"(target {TARGETS.get(preset)}); {rec['wall_time_s']:.0f} s", flush=True)
    return out


def _medium_steps(preset: str) -> int:
    from weakseg.reproduce.mnist import SCALES
    return int(SCALES["medium"]["steps"][preset])


def summarise() -> dict[str, Any]:
    """Every stored probe, per preset, with its distance to the target; the closest within tolerance is chosen."""
    probes = [json.loads(p.read_text()) for p in sorted(PROBES.glob("*.json"))]
    out: dict[str, Any] = {}
    for preset in sorted({p["preset"] for p in probes}):
        mine = sorted((p for p in probes if p["preset"] == preset),
                      key=lambda p: (p["clutter"]["n_clutter"], p["clutter"]["size_clutter"], p["seed"]))
        target = TARGETS.get(preset)
        rows = [{"clutter": f"{p['clutter']['n_clutter']}x{p['clutter']['size_clutter']}", "seed": p["seed"],
                 "steps": p["steps"], "best": p["best"][METRIC], "best_step": p["best"]["step"],
                 "plateau_mean_last3": p["plateau_mean_last3"], "off_target": round(p["best"][METRIC] - target, 4),
                 "wall_time_s": p["wall_time_s"], "file": f"mnist_calibration/{probe_name(preset, p['clutter']['n_clutter'], p['clutter']['size_clutter'], p['seed'])}.json"}
                for p in mine]
        close = [r for r in rows if abs(r["off_target"]) <= TOLERANCE]
        chosen = min(close, key=lambda r: abs(r["off_target"])) if close else None
        out[preset] = {"target": target, "tolerance": TOLERANCE, "probes": rows, "chosen": chosen}
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--preset", choices=sorted(TARGETS))
    p.add_argument("--clutter", nargs="*", default=[], help="probes as N x W, e.g. 8x10 12x10")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--steps", type=int, default=None, help="default: the medium scale's budget for the preset")
    p.add_argument("--eval-every", type=int, default=500)
    p.add_argument("--runs-root", type=Path, default=Path("/tmp/weakseg_calibration"))
    p.add_argument("--redo", action="store_true")
    p.add_argument("--summary-only", action="store_true")
    args = p.parse_args(argv)
    if not args.summary_only:
        if not args.preset or not args.clutter:
            p.error("--preset and --clutter are needed unless --summary-only")
        for text in args.clutter:
            run_probe(args.preset, *parse_clutter(text), args.seed, args)
    from weakseg.metrics.jsonio import atomic_write_json
    summary = summarise()
    atomic_write_json(SUMMARY, record("clutter calibration of the *_v2 presets: seg-only validation pooled soft Dice "
                                      "vs the published seg-only Dice", metric=METRIC, split="valid",
                                      targets=TARGETS, presets=summary))
    for preset, s in summary.items():
        print(f"{preset} (target {s['target']}):")
        for r in s["probes"]:
            print(f"  {r['clutter']:>6} seed {r['seed']}: best {r['best']:.4f} at {r['best_step']}, "
                  f"off {r['off_target']:+.3f}")
        print(f"  chosen: {s['chosen']['clutter'] if s['chosen'] else 'none within tolerance yet'}")
    print(f"wrote {SUMMARY}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
