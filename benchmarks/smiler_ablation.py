"""Why SMILEr does not beat SMILE on the quick organs benchmark: SMILEr variants from one SMILE run.

Every variant starts from the same finished SMILE run (round 0) of one (alpha, fold) cell of
``weakseg reproduce organs --preset quick`` and differs from the preset's SMILEr only by the overrides
listed in VARIANTS. ``control`` keeps the three retraining rounds but relabels almost nothing
(gamma_max = 1e-6: one pseudo-positive per image and class), which separates the cost of retraining
from the cost of the pseudo-labels. Two diagnostic variants edit each round's pseudo-labels with the
withheld ground truth of the simulation (``fit_smiler(pseudo_filter=...)``; never a training option):
``true_only`` keeps only the true pseudo-positives of the same selection (precision 1, same schedule), and
``hidden_truth`` hands every round all hidden true pixels (the schedule fed perfect, complete labels). If
``true_only`` closes the gap to the sigmoid oracle, the gap is the pseudo-labels' errors; if even
``hidden_truth`` does not, it is the schedule (continued 500-step rounds) and not the labels. Writes ``results/smiler_ablation_<preset>_a<alpha>_f<fold>.json``:
per variant the test scores (last checkpoint, like the table) and every round's pseudo-label counts
and precision against the withheld ground truth.

    python benchmarks/smiler_ablation.py --fold 1 --alpha 0.7      # ~4 minutes of one core per variant
    python benchmarks/smiler_ablation.py --preset quick2 --fold 0 --variants default control_no_pseudo \
        true_only hidden_truth --reproduce-runs-root RUNS      # the quick2 grid's runs root
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import RESULTS, ROOT, record  # noqa: E402

VARIANTS: dict[str, list[str]] = {
    "default": [],
    "control_no_pseudo": ["smiler.gamma_max=1e-6"],
    "predicted_label": ["smiler.candidate_set=predicted_label"],
    "predicted_label_negatives": ["smiler.candidate_set=predicted_label", "smiler.propagate_negatives=true"],
    "true_only": [],
    "hidden_truth": [],
}


def true_only(pseudo: Any, train: Any) -> Any:
    """The selection's true pseudo-positives only (withheld truth of the simulation)."""
    return pseudo & train.truth.bool()


def hidden_truth(pseudo: Any, train: Any) -> Any:
    """Every hidden true pixel of every missing (slice, class) pair, whatever was selected."""
    from weakseg.data.status import is_missing

    return train.truth.bool() & is_missing(train.status)[:, :, None, None].to(pseudo.device)


FILTERS = {"true_only": true_only, "hidden_truth": hidden_truth}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="quick", choices=["quick", "quick2", "full"])
    parser.add_argument("--fold", type=int, default=1)
    parser.add_argument("--alpha", type=float, default=0.7)
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    parser.add_argument("--runs-root", type=Path, default=ROOT / "runs" / "smiler_ablation")
    parser.add_argument("--reproduce-runs-root", type=Path, default=ROOT / "runs" / "reproduce",
                        help="the runs root of `weakseg reproduce organs` (its SMILE run is round 0)")
    args = parser.parse_args()

    import yaml

    from weakseg.config.io import apply_overrides, config_from_dict, dump_yaml, to_dict, upgrade_stored_config
    from weakseg.inference.report import evaluate_run
    from weakseg.relabel.rounds import fit_smiler

    # The preset's SMILE and SMILEr runs of this cell (trained here if missing; skipped when stored).
    cell = args.reproduce_runs_root / f"organs_{args.preset}" / f"alpha{args.alpha}" / f"fold{args.fold}"
    base_dir = cell / "smiler" / "seed0"
    if not (base_dir / "checkpoints" / "last.pt").is_file():
        # --redo: a result stored from another machine has no training folder here; retraining it gives the
        # same scores (seeded) and the folders the variants start from
        subprocess.run([sys.executable, "-m", "weakseg", "reproduce", "organs", "--preset", args.preset,
                        "--folds", str(args.fold), "--alphas", str(args.alpha), "--methods", "smile", "smiler",
                        "--runs-root", str(args.reproduce_runs_root), "--redo"], check=True, cwd=ROOT)
    # the stored run's config, completed with the values that reproduce it (runs made before issue 21 too)
    stored = upgrade_stored_config(yaml.safe_load((base_dir / "config.yaml").read_text()))
    base = to_dict(config_from_dict(stored))
    smile_test = evaluate_run(cell / "smile" / "seed0", split="test", which="last", write=False)["metrics"]
    # the same fold's sigmoid oracle (SMILE's head and loss on the full labels), where the grid has it
    oracle_dir = cell.parent.parent / "alpha0.0" / f"fold{args.fold}" / "oracle_sigmoid" / "seed0"
    oracle_test = (evaluate_run(oracle_dir, split="test", which="last", write=False)["metrics"]
                   if (oracle_dir / "checkpoints" / "last.pt").is_file() else stored_oracle(args.preset, args.fold))

    candidates = probe_candidates(cell / "smile" / "seed0")
    out: dict[str, Any] = {"smile": {k: v for k, v in smile_test.items() if k != "per_case"},
                           "oracle_sigmoid": None if oracle_test is None else
                           {k: v for k, v in oracle_test.items() if k != "per_case"},
                           "smile_test_decoded_as": candidates.pop("test_decoded_as"),
                           "smile_candidates": candidates, "variants": {}}
    print(f"SMILE on the test fold, true organ -> decoded label: {out['smile_test_decoded_as']}", flush=True)
    for c, rows in out["smile_candidates"].items():
        print(f"SMILE {c:9s} p on hidden true pixels (median) {_f(rows['median_p_on_hidden_truth'])}; "
              + "; ".join(f"p>{r['tau']}: n={r['n']} precision={_f(r['precision'])} truth {r['truth_labels']}"
                          for r in rows["thresholds"]), flush=True)
    path = RESULTS / f"smiler_ablation_{args.preset}_a{args.alpha}_f{args.fold}.json"
    earlier = {n: v.get("wall_time_s") for n, v in
               (json.loads(path.read_text())["variants"].items() if path.is_file() else [])}
    for name in args.variants:
        run_dir = args.runs_root / f"{args.preset}_a{args.alpha}_f{args.fold}" / name
        cfg = config_from_dict(apply_overrides(stored, VARIANTS[name]))
        t0, wall = time.time(), None
        if name == "default":
            run_dir = base_dir                       # the table's own SMILEr run
        else:
            done_before = (run_dir / "checkpoints" / "last.pt").is_file()
            fit_smiler(cfg, run_dir, resume=True, progress=False, pseudo_filter=FILTERS.get(name))
            dump_yaml(cfg, run_dir / "config.yaml")
            wall = earlier.get(name) if done_before else round(time.time() - t0, 1)   # trained by an earlier call
        test = evaluate_run(run_dir, split="test", which="last", write=False)["metrics"]
        rounds = json.loads((run_dir / "smiler_rounds.json").read_text())["rounds"]
        out["variants"][name] = {
            "overrides": VARIANTS[name], "pseudo_filter": name if name in FILTERS else None,
            "run_dir": str(run_dir), "wall_time_s": wall,
            "test": {k: v for k, v in test.items() if k != "per_case"},
            "rounds": [{"round": r["round"], "gamma": r["gamma"],
                        "classes": {c: {k: s.get(k) for k in ("n_pseudo", "tp", "fp", "precision", "recall",
                                                              "n_pseudo_kept")}
                                    for c, s in r["classes"].items()}} for r in rounds],
        }
        t = out["variants"][name]["test"]
        print(f"{name:28s} mean Dice {t['mean_dice']:.3f}  "
              + "  ".join(f"{c} {t[f'dice_{c}']:.3f}" for c in ("liver", "stomach", "pancreas")), flush=True)
    s = out["smile"]
    print(f"{'smile (round 0)':28s} mean Dice {s['mean_dice']:.3f}")
    if out["oracle_sigmoid"] is not None:
        print(f"{'oracle_sigmoid (alpha 0)':28s} mean Dice {out['oracle_sigmoid']['mean_dice']:.3f}")
    payload = record("smiler_ablation", preset=args.preset, alpha=args.alpha, fold=args.fold, seed=0,
                     base_config=base, **out)
    path.write_text(json.dumps(payload, indent=2) + "\n")
    print(f"wrote {path}")
    return 0


def stored_oracle(preset: str, fold: int) -> dict[str, Any] | None:
    """The fold's sigmoid-oracle test scores from the grid's stored result (its training folder may live on
    another machine: the scores were made the same way, test fold, last checkpoint)."""
    from weakseg.reproduce.organs import ORACLE_ALPHA
    from weakseg.reproduce.runner import RunSpec, result_path

    path = result_path(RESULTS / f"organs_{preset}",
                       RunSpec(f"alpha{ORACLE_ALPHA}/fold{fold}", "oracle_sigmoid", 0, "organs/oracle_sigmoid"))
    return json.loads(path.read_text())["test"] if path.is_file() else None


def probe_candidates(smile_run: Path, taus: tuple[float, ...] = (0.5, 0.7, 0.9)) -> dict[str, Any]:
    """Where the SMILE model's candidates lie: per class, on the ignored pixels of the training slices
    where the class is missing, the candidates p_k > tau with their precision and the true label under
    them (background and each organ; also for those where k wins the argmax, as in decoding), and the
    median p_k on the hidden true pixels of the class; under ``test_decoded_as``, per true organ of the test
    fold, the labels its voxels are decoded to."""
    import torch

    from weakseg.data.registry import build_data
    from weakseg.data.status import is_missing, status_targets_from_masks
    from weakseg.inference.load import load_run
    from weakseg.losses.partial_label import ce_targets
    from weakseg.evaluation.decode import decode_pos_weight
    from weakseg.relabel.scoring import probability_scores

    run = load_run(smile_run, which="last", device="cpu")
    train = build_data(run.cfg).split("train")
    _, weight0 = status_targets_from_masks(train.masks, train.status, has_mask=train.has_mask)
    prob = probability_scores(run.method.models["segmenter"], train.images, batch_size=run.cfg.eval.batch_size,
                              pos_weight=decode_pos_weight(run.cfg))
    truth = train.truth.bool()
    label = ce_targets(truth)                                                   # (N, H, W) label map
    winner = prob.argmax(1)                                                     # (N, H, W) decoded organ
    missing = is_missing(train.status)
    names = ["background", *train.class_names]
    out: dict[str, Any] = {}
    for c, name in enumerate(train.class_names):
        ignored = missing[:, c, None, None] & (weight0[:, c] == 0)
        hidden = truth[:, c] & ignored
        rows = []
        for tau in taus:
            cand = ignored & (prob[:, c] > tau)
            n = int(cand.sum())
            counts = torch.bincount(label[cand], minlength=len(names)).tolist()
            decoded = cand & (winner == c)                          # where k also wins the argmax (decoding)
            rows.append({"tau": tau, "n": n, "precision": int((cand & hidden).sum()) / n if n else None,
                         "truth_labels": dict(zip(names, counts, strict=True)),
                         "decoded_truth_labels": dict(zip(names, torch.bincount(label[decoded], minlength=len(
                             names)).tolist(), strict=True))})
        median = float(prob[:, c][hidden].median()) if bool(hidden.any()) else None
        out[name] = {"median_p_on_hidden_truth": median, "thresholds": rows}
    out["test_decoded_as"] = _test_confusion(run, names)
    return out


def _test_confusion(run: Any, names: list[str]) -> dict[str, dict[str, int]]:
    """Per true organ of the test fold: how many of its voxels the decoded prediction gives each label."""
    import torch

    from weakseg.evaluation.organs import predict_label_maps

    test = run.data.split("test")
    from weakseg.evaluation.decode import decode_pos_weight

    pred = predict_label_maps(run.method.segment, test, device=torch.device("cpu"),
                              pos_weight=decode_pos_weight(run.cfg))                           # (N, H, W)
    truth = test.truth.bool()
    return {name: dict(zip(names, torch.bincount(pred[truth[:, c]], minlength=len(names)).tolist(), strict=True))
            for c, name in enumerate(names[1:])}


def _f(v: float | None) -> str:
    return "n/a" if v is None else f"{v:.2f}"


if __name__ == "__main__":
    raise SystemExit(main())
