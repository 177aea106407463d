"""Wall time of the README's first command (`make demo` = `weakseg demo`) from scratch, with its printed table.

Runs ``weakseg demo`` into a fresh temporary folder (no finished run to reuse) and writes
``results/bench_demo.json``: wall and CPU seconds, the machine's load, the demo's own output and its per-method
training and evaluation seconds (``timings``, from the demo's ``demo_summary.json``). ``weakseg demo`` prints
its up-front estimate from this file.

    PYTHONPATH=src python benchmarks/bench_demo.py
"""

from __future__ import annotations

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


def main() -> int:
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
