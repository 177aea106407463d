"""Wall time of the README's first command (`make demo` = `weakseg demo`) from scratch, with its printed table.

Runs ``weakseg demo`` into a fresh temporary folder (no finished run to reuse) and writes
``results/bench_demo.json``: wall and CPU seconds, the machine's load, the demo's own output and its per-method
training and evaluation seconds (``timings``, from the demo's ``demo_summary.json``). ``weakseg demo`` prints
its up-front estimate from this file.

    PYTHONPATH=src python benchmarks/bench_demo.py
    PYTHONPATH=src python benchmarks/bench_demo.py --fresh-clone [--then "CMD" ...]

``--fresh-clone`` measures a new user's path instead: ``git clone`` of this repository's HEAD into a temporary
folder, then ``make install``, ``make demo``, ``.venv/bin/weakseg --help`` and each ``--then`` command (run with
bash in the clone, e.g. the README's first recipe), each step's wall time and exit status recorded under
``fresh_clone``. The demo's own figures (``timings``) come from the clone's ``runs/demo/demo_summary.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import RESULTS, ROOT, record  # noqa: E402


def fresh_clone(then: list[str]) -> int:
    steps = [("git clone", "git clone --quiet {root} ."), ("make install", "make install"), ("make demo", "make demo"),
             (".venv/bin/weakseg --help", ".venv/bin/weakseg --help"), *[(cmd, cmd) for cmd in then]]
    rows, demo_stdout, summary = [], "", {}
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as tmp:
        for name, cmd in steps:
            t0 = time.time()
            proc = subprocess.run(["bash", "-c", cmd.format(root=ROOT)], cwd=tmp, capture_output=True, text=True)
            rows.append({"step": name, "wall_s": round(time.time() - t0, 1), "exit_status": proc.returncode})
            print(f"{name}: {rows[-1]['wall_s']} s, exit status {proc.returncode}", flush=True)
            if name == "make demo":
                demo_stdout = proc.stdout
            if proc.returncode != 0:
                print(proc.stdout[-2000:], proc.stderr[-4000:], sep="\n")
                break
        summary_file = Path(tmp) / "runs" / "demo" / "demo_summary.json"
        summary = json.loads(summary_file.read_text()) if summary_file.is_file() else {}
    demo_row = next((r for r in rows if r["step"] == "make demo"), None)
    out = record("demo", fresh_clone=rows, wall_time_s=demo_row["wall_s"] if demo_row else None,
                 load_average_1m_before=round(load_before, 2), steps=summary.get("steps"),
                 methods=list(summary.get("timings", {})), timings=summary.get("timings"),
                 demo_output=demo_stdout.splitlines()[-30:])
    path = RESULTS / "bench_demo.json"
    path.write_text(json.dumps(out, indent=2) + "\n")
    print(f"wrote {path}")
    return max(r["exit_status"] for r in rows)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fresh-clone", action="store_true", help="time a new user's path from git clone on")
    parser.add_argument("--then", action="append", default=[], metavar="CMD",
                        help="with --fresh-clone: a further shell command run in the clone (repeatable)")
    args = parser.parse_args()
    if args.fresh_clone:
        return fresh_clone(args.then)
    with tempfile.TemporaryDirectory() as tmp:
        load_before = os.getloadavg()[0]
        t0 = time.time()
        proc = subprocess.run([sys.executable, "-m", "weakseg", "demo", "--out", str(Path(tmp) / "demo")],
                              cwd=ROOT, capture_output=True, text=True)
        wall = time.time() - t0
        summary_file = Path(tmp) / "demo" / "demo_summary.json"
        summary = json.loads(summary_file.read_text()) if summary_file.is_file() else {}
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        print(proc.stdout[-2000:], proc.stderr[-4000:], sep="\n")
        return proc.returncode
    out = record("demo", wall_time_s=round(wall, 1), cpu_time_s=round(usage.ru_utime + usage.ru_stime, 1),
                 load_average_1m_before=round(load_before, 2), steps=summary.get("steps"),
                 methods=list(summary.get("timings", {})), timings=summary.get("timings"),
                 demo_output=proc.stdout.splitlines()[-30:])
    path = RESULTS / "bench_demo.json"
    path.write_text(json.dumps(out, indent=2) + "\n")
    print("\n".join(out["demo_output"]))
    print(f"weakseg demo: {wall / 60:.1f} min wall, {out['cpu_time_s'] / 60:.1f} min CPU; wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
