"""Wall time of ``weakseg --help`` (and a few subcommands' --help) in fresh interpreters: the CLI's start-up cost.

Each figure is the median of ``--repeats`` cold runs (a new ``python -m weakseg`` process each; the OS file cache
is warm after the first). Target: under 1 s on the 2-core CPU machine. Writes ``results/bench_cli_help.json``.

    PYTHONPATH=src python benchmarks/bench_cli_help.py [--repeats 7]
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

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import RESULTS, ROOT, record  # noqa: E402

COMMANDS = (["--help"], ["demo", "--help"], ["train", "--help"], ["reproduce", "mnist", "--help"])


def time_once(argv: list[str]) -> float:
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "weakseg", *argv], cwd=ROOT, capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(ROOT / "src")})
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"weakseg {' '.join(argv)} failed ({proc.returncode}): {proc.stderr[-500:]}")
    return wall


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7, help="cold runs per command (default: %(default)s)")
    args = parser.parse_args()
    time_once(["--help"])                                    # fill the OS file cache once, not counted
    rows = {}
    for argv in COMMANDS:
        times = [time_once(argv) for _ in range(args.repeats)]
        rows["weakseg " + " ".join(argv)] = {"median_s": round(statistics.median(times), 3),
                                             "min_s": round(min(times), 3), "max_s": round(max(times), 3),
                                             "runs": len(times)}
        print(f"weakseg {' '.join(argv):<28} median {statistics.median(times):.3f} s "
              f"(min {min(times):.3f}, max {max(times):.3f}, {len(times)} runs)")
    out = record("cli_help", target_s=1.0, interpreter=sys.executable, repeats=args.repeats, results=rows,
                 load_average_1m_after=round(os.getloadavg()[0], 2))
    path = RESULTS / "bench_cli_help.json"
    path.write_text(json.dumps(out, indent=2) + "\n")
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
