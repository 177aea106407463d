"""Volume prediction to NIfTI (``weakseg predict``): BraTS subject folders or nnU-Net ``imagesTs`` in, one
label map per case out, on the input grid with the input's affine and header (``genseg.md`` §10.7 ours,
``ecosystem.md`` §6).

Per case, exactly as training saw the data: the converted dataset's options (``index.json``: channel order,
normalisation, bias correction, clip, midline, flip) are applied by ``brats.preprocess.prepare_subject``;
the 2D model runs on the axial hemisphere slices in batches; the probabilities are stitched back with the stored
hemisphere layout and reoriented to the storage grid (``volume_from_slices``). A slice whose shape differs
from the training slices is run with MONAI's ``sliding_window_inference`` using the training slice as the
window (the models are fully convolutional, but windows keep the context they were trained on). Optional
flip test-time augmentation averages the probabilities of the identity, left-right, up-down and both flips,
then thresholds (mean probability > threshold, not the reference's AND vote). Voxels outside the brain
(every modality 0) are background unless ``restrict_to_brain=False``.

Every case is found and checked (files, header geometry, channel count) before anything is written; the
output folder is built under a temporary name and renamed when complete, so a problem met while reading
voxels (NaN, truncated data) also leaves nothing behind.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

import weakseg
from weakseg.data.brats.preprocess import prepare_subject, volume_from_slices
from weakseg.data.brats.reader import brain_problems, load_subject
from weakseg.data.formats.nifti import load_volume, save_volume
from weakseg.errors import WeaksegError
from weakseg.evaluation.slices import FLIPS, predict_slices
from weakseg.fsutil import check_destination, swap_in_folder
from weakseg.inference.inputs import InputCase, PredictRequest, find_input_cases

log = logging.getLogger(__name__)


# ----------------------------------------------------------------------------------------------- inputs
def _load_case(case: InputCase, channels: Sequence[str]) -> tuple[np.ndarray, np.ndarray, Any, np.ndarray | None]:
    """Images (C, I, J, K) float32, affine, header and (BraTS, when present) raw seg labels of one case."""
    if case.subject is not None:
        loaded = load_subject(case.subject, channels=channels, require_seg=case.seg is not None)
        return loaded.images, loaded.affine, loaded.header, loaded.seg
    vols = [load_volume(p, kind="image") for p in case.images]
    return np.stack([v.array for v in vols]), vols[0].affine, vols[0].header, None


# ----------------------------------------------------------------------------------------------- driver
def _brats_preprocessing(cfg: Any, converted: str | os.PathLike | None) -> tuple[Path, dict[str, Any]]:
    from weakseg.data.brats.dataset import read_index   # noqa: PLC0415

    if cfg.data.name != "brats":
        raise WeaksegError(f"predict: the run was trained on data.name={cfg.data.name!r}; volume prediction "
                           f"needs a run trained on BraTS (data.name=brats) or on organ CT (data.name=organs)")
    root = Path(converted or cfg.data.brats.root or "")
    if not (root / "index.json").is_file():
        raise WeaksegError(f"predict: the converted dataset {str(root)!r} (data.brats.root of the run) has no "
                           f"index.json; its preprocessing options are needed: pass --converted DST of "
                           f"`weakseg convert brats`")
    return root, read_index(root)


def predict_folder(
    run_dir: str | os.PathLike,
    input_dir: str | os.PathLike,
    out_dir: str | os.PathLike,
    *,
    checkpoint: str = "best",
    tta: bool = False,
    probabilities: bool = False,
    references: bool = False,
    batch_size: int | None = None,
    device: str = "auto",
    converted: str | os.PathLike | None = None,
    restrict_to_brain: bool = True,
    overwrite: bool = False,
    progress: bool | None = None,
    channels: Sequence[str] | None = None,
) -> dict[str, Any]:
    """Predict every case of ``input_dir`` with the run's model; write ``out_dir/<case>.nii.gz`` (uint8).

    Organs runs (``data.name=organs``) go to ``weakseg.inference.predict_organs.predict_organs_folder``
    (multi-label maps in the training dataset's label values); the rest of this docstring is BraTS's.

    Args:
        checkpoint: ``best`` or ``last``.
        probabilities: also write ``out_dir/probabilities/<case>.nii.gz`` (float32 tumour probability).
        references: BraTS input only: also write ``out_dir/references/<case>.nii.gz``, the target region
            of the subject's seg file as 0/1 (score with ``weakseg score OUT_DIR OUT_DIR/references``).
        batch_size: slices per forward pass (default ``eval.batch_size`` of the run).
        converted: the converted dataset whose ``index.json`` holds the preprocessing options (default
            the run's ``data.brats.root``).
        progress: tqdm bar per case (None: only on a terminal).
        channels: what an nnU-Net folder's files hold, in file order (``--channels``; default: its
            ``dataset.json``, see ``weakseg.inference.channels``).

    Returns a report (also written to ``out_dir/predict_report.json``).
    """
    from weakseg.config.io import config_from_dict, upgrade_stored_config   # noqa: PLC0415
    from weakseg.inference.load import read_run_checkpoint   # noqa: PLC0415

    t0 = time.perf_counter()
    req = PredictRequest(run_dir, input_dir, Path(out_dir), checkpoint=checkpoint, tta=tta,
                         probabilities=probabilities, batch_size=batch_size, device=device, overwrite=overwrite,
                         progress=progress, channels=channels)
    _check_request(req)
    ckpt_file, payload = read_run_checkpoint(run_dir, checkpoint)
    cfg = config_from_dict(upgrade_stored_config(payload["config"]))
    if cfg.data.name == "organs":
        from weakseg.inference.predict_organs import predict_organs_folder   # noqa: PLC0415

        if references or converted is not None:
            raise WeaksegError(f"--{'references' if references else 'converted'} is for BraTS runs; an organs "
                               "run's references are the labelsTs folder (weakseg score OUT_DIR labelsTs)")
        return predict_organs_folder(req)
    return _predict_brats_folder(req, cfg, ckpt_file, converted=converted, references=references,
                                 restrict_to_brain=restrict_to_brain, t0=t0)


def _check_request(req: PredictRequest) -> None:
    """Options and the output folder, checked before any model or volume is read."""
    if req.checkpoint not in ("best", "last"):
        raise WeaksegError(f"--checkpoint {req.checkpoint!r}: use best or last")
    if req.batch_size is not None and req.batch_size < 1:
        raise WeaksegError(f"--batch-size {req.batch_size}: give a positive number of slices")
    if req.out_dir.exists() and not req.overwrite:
        raise WeaksegError(f"{req.out_dir}: already exists; choose another output folder or pass --overwrite")
    check_destination(req.out_dir, verb=f"predict {req.out_dir}", flag="OUT_DIR")


def _predict_brats_folder(req: PredictRequest, cfg: Any, ckpt_file: Path, *, converted: str | os.PathLike | None,
                          references: bool, restrict_to_brain: bool, t0: float) -> dict[str, Any]:
    """The BraTS half of ``predict_folder``: cases found and checked, predicted into a temporary folder that
    replaces ``req.out_dir`` once every case and the report are written."""
    from weakseg.data.registry import DataBundle   # noqa: PLC0415
    from weakseg.inference.load import load_run   # noqa: PLC0415

    conv_root, index = _brats_preprocessing(cfg, converted)
    channels = tuple(index["channel_names"])
    kind, cases = find_input_cases(req.input_dir, channels, with_seg=references, given_channels=req.channels)
    if references and kind != "brats":
        raise WeaksegError("--references needs BraTS subject folders (their seg files); an nnU-Net imagesTs "
                           "folder has its references in labelsTs")

    # The run's own data are not needed to predict: a bundle from index.json builds the method.
    bundle = DataBundle(splits={}, class_names=tuple(index["class_names"]), in_channels=len(channels),
                        scoring="image_set")
    run = load_run(req.run_dir, which=req.checkpoint, device=req.device, data=bundle)
    predict = _BratsCasePredictor(
        segment=run.method.segment, device=run.device, options=index["options"],
        region=tuple(index["region_labels"]), window=tuple(int(s) for s in index["slice_shape"]),
        batch_size=req.batch_size or cfg.eval.batch_size, class_index=cfg.data.class_index, tta=req.tta,
        threshold=cfg.eval.threshold, restrict_to_brain=restrict_to_brain)

    out_dir = req.out_dir
    tmp = out_dir.parent / f"{out_dir.name}.tmp-{os.getpid()}"
    if tmp.exists():
        shutil.rmtree(tmp)
    try:
        tmp.mkdir(parents=True)
        records = [predict(case, channels, tmp, input_dir=req.input_dir, probabilities=req.probabilities,
                           references=references)
                   for case in _progress(cases, req.progress)]
        report = {
            "weakseg_version": weakseg.__version__, "run_dir": str(Path(req.run_dir).resolve()),
            "checkpoint": str(ckpt_file), "input": str(Path(req.input_dir).resolve()), "input_kind": kind,
            "converted": str(conv_root.resolve()), "channels": list(channels), "region_labels": list(predict.region),
            "labels": {"background": 0, index["class_names"][0]: 1}, "threshold": predict.threshold,
            "tta": req.tta, "flips": [list(f) for f in FLIPS] if req.tta else [[]],
            "restrict_to_brain": restrict_to_brain, "batch_size": predict.batch_size, "device": str(run.device),
            "cases": records, "seconds": round(time.perf_counter() - t0, 3),
        }
        (tmp / "predict_report.json").write_text(json.dumps(report, indent=1) + "\n")
        swap_in_folder(tmp, out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return report


@dataclass
class _BratsCasePredictor:
    """One BraTS case: preprocessed as the converted dataset was, predicted slice by slice, written back on the
    input grid (labels, optionally probabilities and the reference region)."""

    segment: Any
    device: Any
    options: dict[str, Any]                 # the converted dataset's preprocessing options (index.json)
    region: tuple[int, ...]
    window: tuple[int, ...]                 # the training slice shape
    batch_size: int
    class_index: int
    tta: bool
    threshold: float
    restrict_to_brain: bool

    def __call__(self, case: InputCase, channels: Sequence[str], folder: Path, *, input_dir: str | os.PathLike,
                 probabilities: bool, references: bool) -> dict[str, Any]:
        opts = self.options
        images, affine, header, seg = _load_case(case, channels)
        blank = brain_problems(images, seg, files=case.images, seg_file=case.seg)   # BraTS: checked already
        if blank:                # a blank case would be written as all background without a word
            raise WeaksegError(f"predict {input_dir}: case {case.case_id}: {blank[0]} (nothing written)")
        prep = prepare_subject(
            images, np.zeros(images.shape[1:], dtype=np.uint8), affine, region_labels=self.region,
            normalization=opts["normalization"], bias_correction=opts["bias_correction"], clip=opts["clip"],
            brain_threshold=opts["brain_threshold"], tumour_threshold=opts["tumour_threshold"],
            midline=opts["midline"], flip_x_hi=opts["flip_x_hi"])
        z, _, c, h, w = prep.images.shape                            # (Z, 2, C, H, W)
        probs = predict_slices(self.segment, prep.images.reshape(z * 2, c, h, w), batch_size=self.batch_size,
                               device=self.device, class_index=self.class_index, tta=self.tta,
                               window=self.window)                   # (2Z, H, W)
        prob_vol = volume_from_slices(probs.reshape(z, 2, h, w), prep.layout, affine)    # (I, J, K)
        if self.restrict_to_brain:
            prob_vol = np.where((images != 0).any(0), prob_vol, 0.0).astype(np.float32)
        labels = (prob_vol > self.threshold).astype(np.uint8)
        save_volume(labels, (affine, header), folder / f"{case.case_id}.nii.gz", dtype=np.uint8)
        if probabilities:
            save_volume(prob_vol, (affine, header), folder / "probabilities" / f"{case.case_id}.nii.gz",
                        dtype=np.float32)
        rec: dict[str, Any] = {"case_id": case.case_id, "input": [str(p) for p in case.images],
                               "shape": list(labels.shape), "tumour_voxels": int(labels.sum()),
                               "windowed": tuple(prep.layout.slice_shape) != self.window}
        if references:
            ref = np.isin(seg, np.asarray(self.region)).astype(np.uint8)
            save_volume(ref, (affine, header), folder / "references" / f"{case.case_id}.nii.gz", dtype=np.uint8)
            rec["reference_voxels"] = int(ref.sum())
        return rec


def _progress(items: Sequence[InputCase], on: bool | None):
    from tqdm import tqdm   # noqa: PLC0415

    return tqdm(items, desc="predict", unit="case", disable=None if on is None else not on)
