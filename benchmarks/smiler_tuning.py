"""Choose SMILEr's settings for a reproduction scale on validation volumes, never on the test fold (issue 21).

One SMILE run (round 0) of one (alpha, fold) cell of ``weakseg reproduce organs --preset <scale>`` is trained
with ``data.organs.valid_reference=truth``: its validation volumes (``data.organs.n_valid`` of the non-test
volumes, whose annotations the simulation also removed) are scored against their withheld full ground truth,
which training never sees. Every variant in VARIANTS then runs SMILEr from that round 0 and differs from the
scale's preset only by its overrides. Per variant and round: validation Dice (last checkpoint) decoded both
with raw sigmoids and with sigmoid(z - log pos_weight), since ``smile.calibrate_pos_weight`` changes the
decoding as well as the selection, the pseudo-label count and precision, and the wall time. Writes
``results/smiler_tuning_<scale>_a<alpha>_f<fold>.json``; nothing here reads the test fold.

    OMP_NUM_THREADS=1 python benchmarks/smiler_tuning.py --alpha 0.7 --fold 0          # ~4 min per variant
    OMP_NUM_THREADS=1 python benchmarks/smiler_tuning.py --variants preset gamma_0.5 --set train.steps=20 ...
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import RESULTS, ROOT, record  # noqa: E402

VARIANTS: dict[str, list[str]] = {
    "preset": [],
    "raw_sigmoids": ["smile.calibrate_pos_weight=false"],
    "gamma_0.5": ["smiler.gamma_max=0.5"],
    "gamma_0.8": ["smiler.gamma_max=0.8"],
    "tau_0.7": ["smiler.tau=0.7"],
    "tau_0.3": ["smiler.tau=0.3"],
    "init_smile": ["smiler.init=smile"],
    "scratch_full_budget": ["smiler.init=scratch", "smiler.round_steps=null"],     # the paper's retraining
    "rank_volume": ["smiler.rank_scope=volume"],
    "round_steps_500": ["smiler.round_steps=500"],
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", default="quick2", help="a scale of weakseg.reproduce.organs.SCALES")
    parser.add_argument("--fold", type=int, default=0)
    parser.add_argument("--alpha", type=float, default=0.7)
    parser.add_argument("--method", default="smiler", choices=["smiler", "smiler_mc"])
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="extra override for round 0 and every variant (recorded)")
    parser.add_argument("--runs-root", type=Path, default=ROOT / "runs" / "smiler_tuning")
    parser.add_argument("--out", type=Path, default=None, help="results JSON (default under results/)")
    args = parser.parse_args()

    from weakseg.config.io import load_config
    from weakseg.relabel.rounds import fit_smiler
    from weakseg.reproduce import organs
    from weakseg.training.loop import fit

    cell = args.runs_root / f"{args.scale}_a{args.alpha}_f{args.fold}"
    dataset = organs.prepare_data(args.runs_root / args.scale, args.scale)
    overlay, _ = organs.prepare_overlay(args.runs_root / args.scale, dataset, args.alpha, args.fold)
    common = [*organs.SCALES[args.scale]["overrides"], f"data.organs.root={dataset.resolve()}",
              f"data.organs.fold={args.fold}", f"data.organs.status_overlay={overlay.resolve()}",
              "data.organs.valid_reference=truth", *args.overrides]
    round0 = cell / "smile"
    cfg0 = load_config("organs/smile", common)
    t0 = time.time()
    if not _finished(round0, cfg0.train.steps):
        fit(cfg0, round0, resume=(round0 / "checkpoints" / "last.pt").is_file(), progress=False)
    out: dict[str, Any] = {"round0": {"run_dir": str(round0), "valid": _valid_scores(round0),
                                      "wall_time_s": round(time.time() - t0, 1)}, "variants": {}}
    print(f"{'smile (round 0)':22s} {_line(out['round0']['valid'])}", flush=True)
    path = args.out or RESULTS / f"smiler_tuning_{args.scale}_a{args.alpha}_f{args.fold}_{args.method}.json"
    for name in args.variants:
        cfg = load_config(f"organs/{args.method}", [*common, *organs.SCALES[args.scale].get("smiler_overrides", []),
                                                     *VARIANTS[name], f"smiler.round0_run={round0.resolve()}"])
        run_dir = cell / f"{args.method}_{name}"
        t0 = time.time()
        fit_smiler(cfg, run_dir, resume=True, progress=False, log=lambda m: None)
        summary = json.loads((run_dir / "smiler_rounds.json").read_text())
        rounds = []
        for r in summary["rounds"]:
            rounds.append({"round": r["round"], "gamma": r["gamma"],
                           "valid": _valid_scores(run_dir / f"round_{r['round']}"),
                           "pseudo": {c: {k: s.get(k) for k in ("n_pseudo", "precision", "recall")}
                                      for c, s in r["classes"].items()}})
        out["variants"][name] = {"overrides": VARIANTS[name], "run_dir": str(run_dir),
                                 "wall_time_s": round(time.time() - t0, 1), "rounds": rounds}
        for r in rounds:
            prec = " ".join(f"{c[:4]} {_f(p['precision'])}" for c, p in r["pseudo"].items())
            print(f"{name:22s} round {r['round']} {_line(r['valid'])}  precision {prec}", flush=True)
        path.write_text(json.dumps(record("smiler_tuning", scale=args.scale, alpha=args.alpha, fold=args.fold,
                                          method=args.method, common_overrides=common, **out), indent=2) + "\n")
    print(f"wrote {path}")
    return 0


def _finished(run_dir: Path, steps: int) -> bool:
    from weakseg.training.checkpoint import load_checkpoint
    last = run_dir / "checkpoints" / "last.pt"
    return last.is_file() and int(load_checkpoint(last)["step"]) >= steps


def _valid_scores(run_dir: Path) -> dict[str, dict[str, float | None]]:
    """Validation Dice of a run's last checkpoint, decoded with raw and with pos_weight-calibrated sigmoids."""
    import torch

    from weakseg.evaluation.organs import predict_label_maps, score_slice_set
    from weakseg.inference.load import load_run

    run = load_run(run_dir, which="last", device="cpu")
    valid = run.data.split("valid")
    out = {}
    for name, pw in (("raw", None), ("calibrated", run.cfg.smile.pos_weight)):
        pred = predict_label_maps(run.method.segment, valid, device=torch.device("cpu"), pos_weight=pw)
        s = score_slice_set(pred, valid)
        out[name] = {"mean_dice": s["foreground_mean"]["Dice"],
                     **{f"dice_{c}": s["mean"][str(i)]["Dice"] for i, c in enumerate(valid.class_names, 1)}}
    return out


def _f(v: float | None) -> str:
    return "n/a" if v is None else f"{v:.2f}"


def _line(scores: dict[str, dict[str, float | None]]) -> str:
    return "  ".join(f"{k}: mean {_f(v['mean_dice'])} (" + " ".join(
        _f(v[f"dice_{c}"]) for c in ("liver", "stomach", "pancreas")) + ")" for k, v in scores.items())


if __name__ == "__main__":
    raise SystemExit(main())
