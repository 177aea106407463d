"""``weakseg simulate-missing SRC DST``: a partially annotated copy of an nnU-Net raw dataset (smile.md §10).

DST gets links to SRC's images and labels, a ``dataset.json`` whose ``weakseg`` block marks every removed
(case, class) pair ``unknown``, and the manifest ``weakseg_simulation.json`` (the overlay of
``weakseg.data.simulate.simulate_missing``: settings, removed pairs, realised alpha, cases that lost every
annotation, the source and the untouched test cases). Label files keep the full ground truth by default:
weakseg never shows a hidden organ to training (the loader masks labels by status) and needs the truth
for evaluation and SMILEr's pseudo-label precision. ``--materialise`` writes zeroed label copies instead,
for software that reads the label files only (nnU-Net); weakseg then has no withheld truth for them.
With ``--fold K`` only the training volumes of fold K are touched (the same seeded split as
``data.organs.fold``); imagesTs is never touched.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
from pathlib import Path
from typing import Any


def add_parser(sub: Any) -> None:
    p = sub.add_parser("simulate-missing", help="hide a share alpha of the organ annotations of a dataset",
                       description="Write a partially annotated copy of an nnU-Net raw dataset plus a manifest of "
                                   "what was removed (smile.md §10). Test volumes are never touched.")
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
    p.set_defaults(run=run)


def _link(src: Path, dst: Path) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    os.symlink(src.resolve(), dst)


def simulate_dataset(src: Path, dst: Path, *, alpha: float, mode: str = "exact", seed: int = 0,
                     keep_at_least_one: bool = False, fold: int | None = None, n_folds: int = 5,
                     data_seed: int = 0, materialise: bool = False, overwrite: bool = False) -> dict[str, Any]:
    """Write the partial dataset and its manifest; returns the manifest."""
    from weakseg.data.formats.nifti import load_volume, save_volume
    from weakseg.data.formats.nnunet_raw import list_cases, read_dataset_json
    from weakseg.data.organs import MANIFEST_NAME, fold_split
    from weakseg.data.simulate import materialise_label, simulate_missing, write_overlay
    from weakseg.data.status import resolve_statuses
    from weakseg.errors import WeaksegError

    src, dst = Path(src), Path(dst)
    ds = read_dataset_json(src)
    cases = list_cases(src, "train", dataset=ds)
    ids = [c.case_id for c in cases]
    classes = list(ds.class_names)
    statuses = resolve_statuses(ds.weakseg, ids, classes)
    test_cases: list[str] = [c.case_id for c in list_cases(src, "test", dataset=ds)]
    train_cases = ids
    if fold is not None:
        split = fold_split(ids, n_folds=n_folds, fold=fold, seed=data_seed)
        train_cases = split["train"] + split["valid"]
        test_cases = split["test"] + test_cases
    overlay = simulate_missing(statuses, alpha=alpha, mode=mode, seed=seed, fold=fold,
                               keep_at_least_one=keep_at_least_one, train_cases=train_cases, class_names=classes)
    overlay["simulation"].update(source=str(src.resolve()), n_folds=n_folds if fold is not None else None,
                                 data_seed=data_seed, materialised=materialise, untouched_cases=sorted(test_cases))
    if dst.exists():
        if not overwrite:
            raise WeaksegError(f"{dst}: already exists; choose another destination or pass --overwrite")
        shutil.rmtree(dst)
    tmp = dst.parent / f"{dst.name}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        for folder in ("imagesTr", "imagesTs", "labelsTr", "labelsTs"):
            if not (src / folder).is_dir():
                continue
            (tmp / folder).mkdir(parents=True)
            for f in sorted((src / folder).iterdir()):
                if f.name.startswith("."):
                    continue
                case = f.name[: -len(ds.file_ending)] if f.name.endswith(ds.file_ending) else None
                hidden = overlay["cases"].get(case, {}).get("status", {}) if folder == "labelsTr" else {}
                if materialise and hidden:
                    vol = load_volume(f, kind="label")
                    status = {**statuses[case], **hidden}
                    save_volume(materialise_label(vol.array, status, classes), vol, tmp / folder / f.name,
                                dtype=vol.array.dtype)
                else:
                    _link(f, tmp / folder / f.name)
        raw = dict(ds.raw)
        block = dict(raw.get("weakseg") or {"format": 1})
        block_cases = {c: {**e, "status": dict(e.get("status", {}))} for c, e in (block.get("cases") or {}).items()}
        for case, entry in overlay["cases"].items():
            block_cases.setdefault(case, {"status": {}})
            block_cases[case].setdefault("status", {}).update(entry["status"])
        block["cases"] = dict(sorted(block_cases.items()))
        raw["weakseg"] = block
        (tmp / "dataset.json").write_text(json.dumps(raw, indent=2) + "\n")
        for extra in ("splits_final.json",):
            if (src / extra).is_file():
                shutil.copyfile(src / extra, tmp / extra)
        write_overlay(tmp / MANIFEST_NAME, overlay)
        os.replace(tmp, dst)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return overlay


def run(args: argparse.Namespace) -> int:
    manifest = simulate_dataset(args.src, args.dst, alpha=args.alpha, mode=args.mode, seed=args.seed,
                                keep_at_least_one=args.keep_at_least_one, fold=args.fold, n_folds=args.n_folds,
                                data_seed=args.data_seed, materialise=args.materialise, overwrite=args.overwrite)
    sim = manifest["simulation"]
    print(json.dumps({k: sim[k] for k in ("alpha", "mode", "fold", "n_train_cases", "removed_count",
                                          "realised_alpha", "n_cases_all_lost")}, indent=1))
    print(f"{sim['n_cases_all_lost']} of {sim['n_train_cases']} training volumes lost every annotation; "
          f"{len(sim['untouched_cases'])} test volumes untouched. Wrote {args.dst} and "
          f"{args.dst / 'weakseg_simulation.json'}")
    return 0
