"""Score an organs run's held-out fold against full reference label maps (``weakseg evaluate --references``).

On a really partial dataset the training label files hold only what each source annotated, so
``evaluate --split test`` can score a test-fold volume only on its annotated organs (the others are
``unknown``: not scored). When complete references of those volumes exist elsewhere (a fully annotated
copy, an expert's re-annotation), this module predicts the fold's volumes from the training dataset's
``imagesTr`` exactly as ``weakseg predict`` does, writes the maps on their input grid and scores them with
``weakseg score``'s code against ``REFERENCES/<case><file_ending>``, every class as ``mask``.

Output (built under a temporary name, renamed when complete): ``OUT/<case>.nii.gz`` predictions,
``OUT/summary.json`` (nnU-Net's layout, extended) and ``OUT/summary.csv``; ``OUT`` defaults to
``RUN_DIR/eval_<split>_references``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from weakseg.errors import WeaksegError


def evaluate_against_references(run_dir: str | os.PathLike, references: str | os.PathLike, *, split: str = "test",
                                which: str = "best", device: str = "auto", out: str | os.PathLike | None = None,
                                overwrite: bool = False, progress: bool | None = None) -> dict[str, Any]:
    """Predict the volumes of ``split`` of an organs run and score them against full references.

    Returns the summary (also written to ``OUT/summary.json``, with ``OUT/summary.csv``).
    """
    from weakseg.data.folds import fold_split   # noqa: PLC0415
    from weakseg.data.formats.nnunet_raw import list_cases, read_dataset_json   # noqa: PLC0415
    from weakseg.fsutil import build_folder   # noqa: PLC0415
    from weakseg.inference.predict_organs import (   # noqa: PLC0415
        load_organ_predictor,
        predict_cases,
        write_labels_json,
    )
    from weakseg.inference.load import checkpoint_path   # noqa: PLC0415
    from weakseg.metrics import score_folders, write_summary   # noqa: PLC0415
    from weakseg.training.checkpoint import load_checkpoint   # noqa: PLC0415

    refs = Path(references)
    if not refs.is_dir():
        raise WeaksegError(f"--references {refs}: folder not found; give the folder of full reference label maps "
                           "(<case>.nii.gz, the training dataset's label values)")
    cfg = load_checkpoint(checkpoint_path(run_dir, which))["config"]
    if cfg.get("data", {}).get("name") != "organs":
        raise WeaksegError(f"--references scores organs runs; {run_dir} was trained on "
                           f"data.name={cfg.get('data', {}).get('name')!r} (BraTS: weakseg predict --references)")
    predictor, meta = load_organ_predictor(run_dir, checkpoint=which, device=device)
    o, seed = meta["cfg"].data.organs, meta["cfg"].data.data_seed
    if not o.root or not (Path(o.root) / "dataset.json").is_file():
        raise WeaksegError(f"{run_dir}: its training dataset {o.root!r} (data.organs.root) is not here; the "
                           f"fold's images are read from it")
    ds = read_dataset_json(o.root)
    cases = list_cases(o.root, "train", dataset=ds)
    ids = fold_split([c.case_id for c in cases], n_folds=o.n_folds, fold=o.fold, seed=seed, n_valid=o.n_valid)
    if split not in ids:
        raise WeaksegError(f"--split {split!r}: use train, valid or test")
    chosen = [c for c in cases if c.case_id in set(ids[split])]
    lacking = [c.case_id for c in chosen if not (refs / f"{c.case_id}{ds.file_ending}").is_file()]
    if lacking:
        raise WeaksegError(f"--references {refs}: no reference for {len(lacking)} {split} case(s) "
                           f"({', '.join(lacking[:5])}{' ...' if len(lacking) > 5 else ''}); give "
                           f"<case>{ds.file_ending} for every one")
    out_dir = Path(out) if out is not None else Path(run_dir) / f"eval_{split}_references"
    if out_dir.exists() and not overwrite:
        raise WeaksegError(f"{out_dir}: already exists; pass --overwrite or another --out")
    summary: dict[str, Any] = {}

    def build(tmp: Path) -> None:
        predict_cases(predictor, chosen, tmp, progress=progress)
        write_labels_json(tmp, predictor.contract, description=f"weakseg {split} fold of {Path(run_dir).resolve()}")
        summary.update(score_folders(tmp, refs, labels=predictor.contract["labels"], file_ending=ds.file_ending,
                                     case_ids=[c.case_id for c in chosen]))
        summary["weakseg"].update({"run_dir": str(Path(run_dir).resolve()), "checkpoint": which, "split": split,
                                   "checkpoint_step": meta["step"], "references": str(refs.resolve())})
        write_summary(summary, tmp / "summary.json", tmp / "summary.csv")

    build_folder(out_dir, build)
    return summary
