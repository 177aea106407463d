"""Wall time of ``weakseg --help`` (and a few subcommands' --help) in fresh interpreters: the CLI's start-up cost.

Each figure is the median of ``--repeats`` cold runs (a new ``python -m weakseg`` process each; the OS file cache
is warm after the first). Target: under 1 s on the 2-core CPU machine. Writes ``results/bench_cli_help.json``.

    PYTHONPATH=src python benchmarks/bench_cli_help.py [--repeats 7] [--baseline-src /path/to/other/checkout/src]

``--baseline-src`` also times ``weakseg --help`` from another source tree (e.g. a checkout of the commit before
the lazy imports), interleaved with this tree's runs so that both see the same machine load.
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


def time_once(argv: list[str], src: Path = ROOT / "src") -> float:
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "weakseg", *argv], cwd=ROOT, capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(src)})
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"weakseg {' '.join(argv)} failed ({proc.returncode}): {proc.stderr[-500:]}")
    return wall


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7, help="cold runs per command (default: %(default)s)")
    parser.add_argument("--baseline-src", type=Path, default=None, help="another tree's src/ to time beside this one")
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
    baseline = None
    if args.baseline_src is not None:
        pairs = [(time_once(["--help"], args.baseline_src), time_once(["--help"])) for _ in range(args.repeats)]
        base, ours = [b for b, _ in pairs], [o for _, o in pairs]
        baseline = {"src": str(args.baseline_src), "help_median_s": round(statistics.median(base), 3),
                    "this_tree_help_median_s": round(statistics.median(ours), 3), "runs": len(pairs)}
        print(f"weakseg --help, interleaved: baseline {baseline['help_median_s']:.3f} s, this tree "
              f"{baseline['this_tree_help_median_s']:.3f} s (medians of {len(pairs)})")
    out = record("cli_help", target_s=1.0, interpreter=sys.executable, repeats=args.repeats, results=rows,
                 baseline=baseline, load_average_1m_after=round(os.getloadavg()[0], 2))
    path = RESULTS / "bench_cli_help.json"
    path.write_text(json.dumps(out, indent=2) + "\n")
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
