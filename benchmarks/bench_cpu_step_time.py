"""CPU step time of the quick presets through ``weakseg train``, this checkout vs another source tree.

The issue's "no regression" figure: the same command (``weakseg train CONFIG --set ...``) runs with
``PYTHONPATH`` pointing at each source tree, both trees at the same time with one thread each, so that load
from other jobs on the shared cores hits both alike (run one after the other, the two trees differed by up
to 8x in either direction from load alone). The step time is the median of the per-step intervals of the
``metrics.jsonl`` time stamps (log every step; no evaluation or checkpoint inside the window), then the median
over repeats.

    PYTHONPATH=src python benchmarks/bench_cpu_step_time.py --baseline /path/to/main/src
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import RESULTS, ROOT, record  # noqa: E402

QUICK = ["model.width=0.25", "train.batch_size=8"]            # the quick scale of weakseg.reproduce.mnist


def _command(config: str, steps: int, out: str) -> list[str]:
    sets = [*QUICK, f"train.steps={steps}", "train.log_every=1", f"train.eval_every={10 * steps}",
            f"train.checkpoint_every={10 * steps}", "train.device=cpu", "data.mnist.n_train=1000",
            "data.mnist.n_valid=20", "data.mnist.n_test=20"]
    cmd = [sys.executable, "-m", "weakseg", "train", config, "--out", out, "--no-progress"]
    for s in sets:
        cmd += ["--set", s]
    return cmd


def step_times(trees: dict[str, Path], config: str, steps: int) -> dict[str, float]:
    """Median seconds per step of each tree, all trees running at once (one thread each)."""
    with tempfile.TemporaryDirectory() as tmp:
        procs = {name: subprocess.Popen(_command(config, steps, f"{tmp}/{name}"), cwd=ROOT,
                                        env={**os.environ, "PYTHONPATH": str(src), "OMP_NUM_THREADS": "1"},
                                        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
                 for name, src in trees.items()}
        out = {}
        for name, proc in procs.items():
            err = proc.communicate()[1]
            if proc.returncode:
                raise RuntimeError(f"{trees[name]}: {err[-800:]}")
            rows = [json.loads(x) for x in Path(f"{tmp}/{name}/metrics.jsonl").read_text().splitlines()]
            t = [r["time"] for r in rows if r["split"] == "train"]
            out[name] = statistics.median(b - a for a, b in zip(t[1:], t[2:]))   # skip the first (warm-up) step
        return out


def _tree_commit(tree: Path) -> str | None:
    """The git commit a source tree is checked out at (None outside git)."""
    out = subprocess.run(["git", "-C", str(tree), "rev-parse", "HEAD"], capture_output=True, text=True)
    return out.stdout.strip() or None


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--baseline", type=Path, required=True, help="the other source tree (e.g. main's src/)")
    p.add_argument("--configs", nargs="*", default=["configs/mnist/mnist48_simple_seg_only.yaml",
                                                     "configs/mnist/mnist48_simple_genseg.yaml"])
    p.add_argument("--steps", type=int, default=8)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--out", type=Path, default=RESULTS / "bench_cpu_step_time.json")
    args = p.parse_args(argv)
    trees = {"this": ROOT / "src", "baseline": args.baseline.resolve()}
    rows = []
    for config in args.configs:
        times: dict[str, list[float]] = {k: [] for k in trees}
        for _ in range(args.repeats):
            for name, value in step_times(trees, config, args.steps).items():
                times[name].append(value)
        med = {k: statistics.median(v) for k, v in times.items()}
        rows.append({"config": config, "scale": QUICK, "step_s_median": {k: round(v, 4) for k, v in med.items()},
                     "step_s_all": {k: [round(x, 4) for x in v] for k, v in times.items()},
                     "ratio_this_over_baseline": round(med["this"] / med["baseline"], 3)})
        print(f"{config:<50} this {med['this']:.3f} s/step  baseline {med['baseline']:.3f} s/step  "
              f"ratio {med['this'] / med['baseline']:.3f}", flush=True)
    rec = record("CPU step time of the quick presets (weakseg train), this checkout vs a baseline source tree",
                 trees={k: str(v) for k, v in trees.items()}, baseline_commit=_tree_commit(trees["baseline"]),
                 steps=args.steps, threads_per_run=1,
                 repeats=args.repeats, results=rows,
                 note="both trees run at once, one thread each, on shared cores; a ratio near 1 within the spread of "
                      "step_s_all is no regression")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(rec, indent=2) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
