"""A tiny partially annotated phantom for the organs tests (6 volumes of 6 x 32 x 32)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import nibabel as nib
import numpy as np

from weakseg.data.folds import fold_split
from weakseg.data.formats.nnunet_raw import list_cases, read_dataset_json
from weakseg.data.phantom import write_abdomen_dataset
from weakseg.data.simulate import simulate_missing, write_overlay
from weakseg.data.status import resolve_statuses

SHAPE = (6, 32, 32)


def make_phantom(root: Path, n_cases: int = 6, *, absent_rate: float = 0.0) -> Path:
    write_abdomen_dataset(root, n_cases, 0, shape=SHAPE, absent_rate=absent_rate)
    return root


def partial_source(root, *, prefix, seed, labels, lut, n_train=4, n_test=1, absent_rate=0.0):
    """A phantom stored as a source that annotates only some organs in its own label values.

    ``lut[v]`` is the source value of phantom value v (liver 1, stomach 2, pancreas 3); the full phantom
    maps of the test cases are kept in ``root/full_labelsTs`` as references.
    """
    write_abdomen_dataset(root, n_train, seed, n_test=n_test, shape=SHAPE, case_prefix=prefix,
                          absent_rate=absent_rate)
    lut = np.asarray(lut, dtype=np.uint8)
    if n_test:
        shutil.copytree(root / "labelsTs", root / "full_labelsTs")
    for folder in ("labelsTr", "labelsTs"):
        for f in sorted((root / folder).glob("*.nii.gz")) if (root / folder).is_dir() else []:
            img = nib.load(f)
            nib.save(nib.Nifti1Image(lut[np.asanyarray(img.dataobj)], img.affine, img.header), f)
    meta = json.loads((root / "dataset.json").read_text())
    meta["labels"] = labels
    cases = {c: {"status": {k: w for k, w in e["status"].items() if k in labels}}          # its own organs only
             for c, e in meta["weakseg"]["cases"].items()}
    meta["weakseg"]["cases"] = {c: e for c, e in cases.items() if e["status"]}
    (root / "dataset.json").write_text(json.dumps(meta))
    return root


def make_overlay(root: Path, path: Path, *, alpha: float = 0.7, fold: int = 0, n_folds: int = 3) -> dict:
    ds = read_dataset_json(root)
    ids = [c.case_id for c in list_cases(root, "train", dataset=ds)]
    split = fold_split(ids, n_folds=n_folds, fold=fold, seed=0)
    statuses = resolve_statuses(ds.weakseg, ids, ds.class_names)
    overlay = simulate_missing(statuses, alpha=alpha, fold=fold, train_cases=split["train"] + split["valid"],
                               class_names=ds.class_names)
    write_overlay(path, overlay)
    return overlay


def organs_overrides(root: Path, overlay: Path | None = None, **extra: object) -> list[str]:
    out = [f"data.organs.root={root}", "data.organs.n_folds=3", "data.organs.n_valid=1", "model.depth=3",
           "train.steps=3", "train.eval_every=100", "train.checkpoint_every=100", "train.batch_size=4",
           "train.device=cpu", "smiler.round_steps=2", "smiler.rounds=2", "smiler.mc_samples=2"]
    if overlay is not None:
        out.append(f"data.organs.status_overlay={overlay}")
    return out + [f"{k}={v}" for k, v in extra.items()]
