"""hide a share alpha of the organ annotations of a dataset

``weakseg simulate-missing SRC DST``: a partially annotated copy of an nnU-Net raw dataset (smile.md §10).

The arguments go to ``weakseg.data.simulate.write_partial_dataset`` (what DST holds, links versus
``--materialise``, ``--fold``); this module prints the realised simulation and where it was written.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

DESCRIPTION = ("Write a partially annotated copy of an nnU-Net raw dataset plus a manifest of what was removed "
               "(smile.md §10). Test volumes are never touched.")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("src", type=Path, help="nnU-Net raw dataset folder (dataset.json, imagesTr, labelsTr)")
    p.add_argument("dst", type=Path, help="new folder for the partial dataset")
    p.add_argument("--alpha", type=float, required=True, help="share of annotations to remove per class, 0..1")
    p.add_argument("--mode", default="exact", choices=["exact", "bernoulli"],
                   help="exact: round(alpha*N) volumes per class; bernoulli: each (volume, class) with prob alpha")
    p.add_argument("--seed", type=int, default=0, help="simulation seed")
    p.add_argument("--keep-at-least-one", action="store_true", help="no volume loses every annotation")
    p.add_argument("--fold", type=int, default=None,
                   help="touch only the training volumes of this cross-validation fold (its test fold stays whole)")
    p.add_argument("--n-folds", type=int, default=5, help="folds of the split (as data.organs.n_folds)")
    p.add_argument("--data-seed", type=int, default=0, help="seed of the fold split (as data.data_seed)")
    p.add_argument("--materialise", action="store_true",
                   help="write label copies with the removed organs zeroed (for nnU-Net) instead of links")
    p.add_argument("--overwrite", action="store_true", help="replace DST if it exists")


def run(args: argparse.Namespace) -> int:
    from weakseg.data.simulate import write_partial_dataset

    manifest = write_partial_dataset(args.src, args.dst, alpha=args.alpha, mode=args.mode, seed=args.seed,
                                     keep_at_least_one=args.keep_at_least_one, fold=args.fold,
                                     n_folds=args.n_folds, data_seed=args.data_seed, materialise=args.materialise,
                                     overwrite=args.overwrite)
    sim = manifest["simulation"]
    print(json.dumps({k: sim[k] for k in ("alpha", "mode", "fold", "n_train_cases", "removed_count",
                                          "realised_alpha", "n_cases_all_lost")}, indent=1))
    print(f"{sim['n_cases_all_lost']} of {sim['n_train_cases']} training volumes lost every annotation; "
          f"{len(sim['untouched_cases'])} test volumes untouched. Wrote {args.dst} and "
          f"{args.dst / 'weakseg_simulation.json'}")
    return 0
