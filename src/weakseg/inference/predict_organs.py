"""Whole-volume prediction with a multi-organ run (``data.name=organs``): nnU-Net ``imagesTs`` in, one
label map per case out, on the input's exact grid (``weakseg predict``; ``smile.md`` §11, ``ecosystem.md`` §6).

Per case, exactly as training read its volumes (``weakseg.data.organs.read_organ_volume``): the CT is
reoriented to the closest RAS+ order (flips and axis swaps, no resampling), windowed to the run's HU
window and cut into axial slices; the 2D model runs on batches of slices; the slice outputs are decoded
as ``evaluate`` decodes them (``predict_label_maps``: K sigmoids -> argmax over classes above
``eval.threshold``, calibrated by ``smile.pos_weight`` where the run says so; K+1 softmax -> argmax);
the label map (in the training dataset's label values) is turned back to the input's voxel order and
written with the input's affine and header. Everything the preprocessing needs comes from the run's
checkpoint (``data_contract``, written since this module exists; older runs read the training
``dataset.json`` named by their config), never from the user.

Flip test-time augmentation (``tta``) averages the class probabilities of the identity, left-right,
up-down and both in-plane flips before decoding. ``probabilities`` writes the per-class probabilities as
one float32 4D NIfTI per case, ``probabilities/<case>.nii.gz`` of shape (I, J, K, C) on the input grid,
channel c named by ``probability_channels`` of ``predict_report.json`` (K calibrated sigmoids; or K+1
softmax channels, background first). At most one full-size volume per output channel is held in memory.

Every case is found and checked (channels, header geometry) before anything is written; the output
folder is built under a temporary name and renamed when complete.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

import weakseg
from weakseg.errors import WeaksegError
from weakseg.evaluation.decode import calibrated_sigmoid, decode_label_map, head_kind
from weakseg.evaluation.slices import FLIPS
from weakseg.inference.inputs import PredictRequest, find_input_cases

log = logging.getLogger(__name__)

#: default cap of pixels per batch (4 slices of 512 x 512) when --batch-size is not given
MAX_BATCH_PIXELS = 4 * 512 * 512


# ----------------------------------------------------------------------------------------------- contract
def run_contract(ckpt: dict[str, Any], cfg: Any, *, where: str) -> dict[str, Any]:
    """The organ run's data contract: stored in the checkpoint, else rebuilt from its training dataset.json."""
    from weakseg.data.organs import organ_contract   # noqa: PLC0415

    stored = ckpt.get("data_contract")
    if isinstance(stored, dict) and stored.get("kind") == "organs":
        return stored
    root = cfg.data.organs.root
    if not root or not (Path(root) / "dataset.json").is_file():
        raise WeaksegError(f"{where}: this run's checkpoint predates stored data contracts and its training "
                           f"dataset {root!r} (data.organs.root) has no dataset.json here; its labels and "
                           "channels are needed: restore that folder (or a copy of its dataset.json) at that path")
    return organ_contract(root, classes=cfg.data.organs.classes, hu_window=cfg.data.organs.hu_window)


@dataclass
class OrganPredictor:
    """A loaded organ model and its decoding; ``predict_volume`` runs it on one volume.

    ``segment``: (B, 1, H, W) -> logits (B, K or K+1, H, W).
    """

    segment: Callable[[Tensor], Tensor]
    contract: dict[str, Any]
    device: torch.device
    batch_size: int                 # slices per forward pass, at most (see ``slices_per_batch``)
    threshold: float = 0.5
    pos_weight: Sequence[float] | None = None
    tta: bool = False
    fixed_batch: bool = False       # True: ``batch_size`` exactly (--batch-size); False: capped by pixels

    def slices_per_batch(self, h: int, w: int) -> int:
        """``batch_size``, capped at ``MAX_BATCH_PIXELS`` pixels per batch unless fixed by the user.

        On CPU a batch of 4 CT slices (512 x 512) was both faster and three times leaner than 16
        (``results/bench_predict_organs_cpu.json``); small slices keep the run's ``eval.batch_size``.
        """
        if self.fixed_batch:
            return self.batch_size
        return max(1, min(self.batch_size, MAX_BATCH_PIXELS // max(1, h * w)))

    @property
    def class_names(self) -> list[str]:
        return list(self.contract["class_names"])

    def label_lut(self) -> np.ndarray:
        """Class id (0..K) -> the dataset's label value. Shape: (K+1,) uint8."""
        values = [0] + [int(self.contract["labels"][c]) for c in self.class_names]
        if max(values) > 255:
            raise WeaksegError(f"label values {values} do not fit uint8 label maps")
        return np.asarray(values, dtype=np.uint8)

    def _outputs(self, x: Tensor) -> tuple[Tensor, str]:
        """Per-channel probabilities of a batch (mean over the flips with ``tta``) and the head kind.

        Shape: x (B, 1, H, W) -> (B, C, H, W) float32, C = K (sigmoid) or K+1 (softmax).
        """
        k = len(self.class_names)
        acc, head = None, ""
        for f in (FLIPS if self.tta else ((),)):
            logits = self.segment(x.flip(f) if f else x).float()
            if f:
                logits = logits.flip(f)          # undo the flip on (B, C, H, W): same last two axes
            head = head_kind(logits.shape[1], k)
            prob = logits.softmax(1) if head == "softmax" else calibrated_sigmoid(logits, pos_weight=self.pos_weight)
            if not self.tta:         # evaluate's decoding bit for bit: a softmax head is argmaxed on its logits
                return (logits, "softmax_logits") if head == "softmax" else (prob, head)
            acc = prob if acc is None else acc + prob
        return acc / len(FLIPS), head

    def predict_slices(self, slices: np.ndarray, *, with_probabilities: bool = False,
                       on_batch: Callable[[int], None] | None = None) -> tuple[np.ndarray, np.ndarray | None]:
        """Class ids and (optionally) probabilities of a stack of windowed slices.

        Shape:
            slices: (D, H, W) float32 in [0, 1] -> ids (D, H, W) uint8 (0..K), probabilities (C, D, H, W)
            float32 or None.
        """
        d, h, w = slices.shape
        bs = self.slices_per_batch(h, w)
        ids = np.zeros((d, h, w), dtype=np.uint8)
        probs: np.ndarray | None = None
        with torch.inference_mode():
            for start in range(0, d, bs):
                x = torch.from_numpy(np.ascontiguousarray(slices[start:start + bs, None])).to(self.device)
                out, head = self._outputs(x)                                   # (B, C, H, W)
                if head.startswith("softmax"):
                    lab = out.argmax(1)
                else:
                    lab = decode_label_map(out, threshold=self.threshold)
                ids[start:start + x.shape[0]] = lab.to(torch.uint8).cpu().numpy()
                if with_probabilities:
                    p = out.softmax(1) if head == "softmax_logits" else out
                    if probs is None:
                        probs = np.zeros((p.shape[1], d, h, w), dtype=np.float32)
                    probs[:, start:start + x.shape[0]] = p.transpose(0, 1).cpu().numpy()
                if on_batch is not None:
                    on_batch(int(x.shape[0]))
        return ids, probs

    def predict_volume(self, image: np.ndarray, affine: np.ndarray, *, with_probabilities: bool = False,
                       on_batch: Callable[[int], None] | None = None) -> tuple[np.ndarray, np.ndarray | None]:
        """Label map (dataset label values) and optional probabilities of one CT volume, in its voxel order.

        Shape:
            image: (I, J, K) HU in the order of ``affine`` -> labels (I, J, K) uint8, probabilities
            (I, J, K, C) float32 or None.
        """
        from weakseg.data.formats.nifti import from_ras, to_ras   # noqa: PLC0415
        from weakseg.data.organs import window_hu   # noqa: PLC0415

        if image.ndim != 3:
            raise WeaksegError(f"organ prediction takes a 3D CT volume, got shape {image.shape}")
        zyx = window_hu(np.ascontiguousarray(to_ras(image, affine).transpose(2, 1, 0)), self.contract["hu_window"])
        ids, probs = self.predict_slices(zyx, with_probabilities=with_probabilities, on_batch=on_batch)
        labels = from_ras(self.label_lut()[ids].transpose(2, 1, 0), affine)          # (I, J, K)
        if probs is not None:
            probs = from_ras(probs.transpose(3, 2, 1, 0), affine)                    # (I, J, K, C), a view
        return np.ascontiguousarray(labels), probs

    def probability_channels(self, head: str) -> list[str]:
        return (["background"] if head == "softmax" else []) + self.class_names


def load_organ_predictor(run_dir: str | os.PathLike, *, checkpoint: str = "best", device: str = "auto",
                         batch_size: int | None = None, tta: bool = False) -> tuple[OrganPredictor, dict[str, Any]]:
    """The organ model of a run, ready to predict, and its checkpoint's config as a ``Config``.

    Runs whose checkpoint holds only a ``segmenter`` (every partial-label method, seg-only) rebuild that
    network alone, so neither the training data nor SMILEr's round files are needed; other methods
    (GenSeg's generator) are rebuilt with ``load_run`` on the contract.
    """
    from weakseg.config.io import config_from_dict, upgrade_stored_config   # noqa: PLC0415
    from weakseg.data.registry import DataBundle   # noqa: PLC0415
    from weakseg.inference.load import checkpoint_path, load_run   # noqa: PLC0415
    from weakseg.evaluation.decode import decode_pos_weight   # noqa: PLC0415
    from weakseg.methods.partial import SOFTMAX_METHODS   # noqa: PLC0415
    from weakseg.models.registry import create_model   # noqa: PLC0415
    from weakseg.training.checkpoint import load_checkpoint, version_hint   # noqa: PLC0415
    from weakseg.training.context import resolve_device   # noqa: PLC0415

    if checkpoint not in ("best", "last"):
        raise WeaksegError(f"--checkpoint {checkpoint!r}: use best or last")
    if batch_size is not None and batch_size < 1:
        raise WeaksegError(f"--batch-size {batch_size}: give a positive number of slices")
    path = checkpoint_path(run_dir, checkpoint)
    ckpt = load_checkpoint(path)
    cfg = config_from_dict(upgrade_stored_config(ckpt["config"]))
    if cfg.data.name != "organs":
        raise WeaksegError(f"{path}: not an organs run (data.name={cfg.data.name!r})")
    contract = run_contract(ckpt, cfg, where=str(path))
    dev = resolve_device(device)
    k = len(contract["class_names"])
    if set(ckpt["models"]) == {"segmenter"}:
        n_out = k + 1 if cfg.method in SOFTMAX_METHODS else k
        net = create_model(cfg.model.name, in_channels=len(contract["channel_names"]), num_classes=n_out,
                           width=cfg.model.width, depth=cfg.model.depth, **cfg.model.kwargs).to(dev)
        try:
            net.load_state_dict(ckpt["models"]["segmenter"])
        except RuntimeError as err:
            raise WeaksegError(f"{path}: weights of 'segmenter' do not fit the model built from its config "
                               f"({str(err).splitlines()[0][:160]}){version_hint(ckpt)}") from None
        segment: Callable[[Tensor], Tensor] = net.eval()
    else:
        bundle = DataBundle(splits={}, class_names=tuple(contract["class_names"]),
                            in_channels=len(contract["channel_names"]), scoring="organs",
                            value_range=(0.0, 1.0), contract=contract)
        segment = load_run(run_dir, which=checkpoint, device=device, data=bundle).method.segment
    predictor = OrganPredictor(segment, contract, dev, batch_size or cfg.eval.batch_size,
                               threshold=cfg.eval.threshold, pos_weight=decode_pos_weight(cfg), tta=tta,
                               fixed_batch=batch_size is not None)
    return predictor, {"cfg": cfg, "checkpoint": path, "step": ckpt.get("step")}


# ----------------------------------------------------------------------------------------------- driver
def predict_organs_folder(req: PredictRequest) -> dict[str, Any]:
    """Predict every case of an nnU-Net ``imagesTs``-style folder with an organs run (``predict_folder`` checked
    ``req`` and sends organs runs here).

    Writes ``out_dir/<case>.nii.gz`` (uint8, the training dataset's label values), with ``probabilities``
    ``out_dir/probabilities/<case>.nii.gz`` (float32, (I, J, K, C)), a ``dataset.json`` naming the labels
    (so ``weakseg score`` and nnU-Net tools read them) and ``predict_report.json``.

    ``req.channels``: what the input files hold, in file order (``--channels``); default: the input's
    ``dataset.json`` (``weakseg.inference.channels.plan_channels``). ``req.progress``: a tqdm bar over slices
    (None: only on a terminal).
    """
    from weakseg.fsutil import build_folder   # noqa: PLC0415

    t0 = time.perf_counter()
    run_dir, out_dir, root = req.run_dir, req.out_dir, Path(req.input_dir)
    tta, probabilities = req.tta, req.probabilities
    if out_dir.exists() and not req.overwrite:
        raise WeaksegError(f"{out_dir}: already exists; choose another output folder or pass --overwrite")
    predictor, meta = load_organ_predictor(run_dir, checkpoint=req.checkpoint, device=req.device,
                                           batch_size=req.batch_size, tta=tta)
    contract = predictor.contract
    if root.is_dir() and not any(p.name.endswith((".nii", ".nii.gz")) for p in root.iterdir()):
        raise WeaksegError(f"{root}: holds no NIfTI file; an organs run predicts an nnU-Net imagesTs folder "
                           "({case}_0000.nii.gz, the CT channel)")
    _, cases = find_input_cases(root, contract["channel_names"], given_channels=req.channels)
    if not cases:
        raise WeaksegError(f"{root}: no case found; name files {{case}}_0000.nii.gz")

    report: dict[str, Any] = {}

    def build(tmp: Path) -> None:
        records, head = predict_cases(predictor, cases, tmp, probabilities=probabilities, progress=req.progress)
        labels_json = dict(contract["labels"])
        write_labels_json(tmp, contract, description=f"weakseg predictions of {Path(run_dir).resolve()}")
        report.update({
            "weakseg_version": weakseg.__version__, "run_dir": str(Path(run_dir).resolve()),
            "checkpoint": str(meta["checkpoint"]), "checkpoint_step": meta["step"], "method": meta["cfg"].method,
            "input": str(root.resolve()), "input_kind": "nnunet", "channels": list(contract["channel_names"]),
            "labels": labels_json, "hu_window": contract["hu_window"], "orientation": "closest RAS+ (internal)",
            "threshold": predictor.threshold, "pos_weight": predictor.pos_weight, "tta": tta,
            "flips": [list(f) for f in FLIPS] if tta else [[]],
            "batch_size": predictor.batch_size if predictor.fixed_batch else
            f"at most {predictor.batch_size} slices and {MAX_BATCH_PIXELS} pixels",
            "device": str(predictor.device),
            "probabilities": ({"format": "nifti-4d (I, J, K, C) float32",
                               "channels": predictor.probability_channels(head)} if probabilities else None),
            "cases": records, "seconds": round(time.perf_counter() - t0, 3),
        })
        (tmp / "predict_report.json").write_text(json.dumps(report, indent=1) + "\n")

    build_folder(out_dir, build)
    return report


def predict_cases(predictor: OrganPredictor, cases: Sequence[Any], folder: Path, *, probabilities: bool = False,
                  progress: bool | None = None) -> tuple[list[dict[str, Any]], str]:
    """Predict ``cases`` (each with ``case_id`` and ``images``, the CT first) into ``folder``.

    Returns one record per case and the head kind (``sigmoid``/``softmax``; "" without probabilities).
    """
    from weakseg.data.formats.nifti import load_volume, save_volume   # noqa: PLC0415

    contract = predictor.contract
    ending = contract.get("file_ending", ".nii.gz")
    records: list[dict[str, Any]] = []
    head = ""
    bar = _bar(sum(_depth_after_ras(c.images[0]) for c in cases), progress)
    try:
        for case in cases:
            bar.set_postfix_str(case.case_id)
            vol = load_volume(case.images[0], kind="image")
            labels, probs = predictor.predict_volume(vol.array, vol.affine, with_probabilities=probabilities,
                                                     on_batch=bar.update)
            save_volume(labels, vol, folder / f"{case.case_id}{ending}", dtype=np.uint8)
            if probs is not None:
                head = "softmax" if probs.shape[-1] == len(predictor.class_names) + 1 else "sigmoid"
                save_volume(probs, vol, folder / "probabilities" / f"{case.case_id}.nii.gz", dtype=np.float32)
                del probs
            trained = contract.get("slice_shape")
            slice_shape = _slice_shape_after_ras(vol.shape, vol.affine)
            if trained and list(slice_shape) != list(trained):
                # fully convolutional: it runs, but on another field of view than training's (no resampling)
                log.warning(f"case {case.case_id}: axial slices of {slice_shape[0]} x {slice_shape[1]} voxels, the "
                            f"run was trained on {trained[0]} x {trained[1]}; predicted as they are, not resampled")
            records.append({"case_id": case.case_id, "input": [str(p) for p in case.images],
                            "shape": list(labels.shape), "slice_shape": list(slice_shape),
                            "training_slice_shape": trained,
                            "voxels": {c: int((labels == v).sum()) for c, v in contract["labels"].items()
                                       if c != "background"}})
    finally:
        bar.close()
    return records, head


def write_labels_json(folder: Path, contract: dict[str, Any], *, description: str) -> Path:
    """A ``dataset.json`` naming the predicted labels, so ``weakseg score`` and nnU-Net tools read them."""
    path = folder / "dataset.json"
    path.write_text(json.dumps(
        {"channel_names": {str(i): n for i, n in enumerate(contract["channel_names"])},
         "labels": dict(contract["labels"]), "numTraining": 0,
         "file_ending": contract.get("file_ending", ".nii.gz"), "description": description}, indent=1) + "\n")
    return path


def _slice_shape_after_ras(shape: Sequence[int], affine: np.ndarray) -> tuple[int, int]:
    """(H, W) of the axial slices training would cut: (A extent, R extent) once in RAS+."""
    import nibabel as nib   # noqa: PLC0415

    axes = nib.orientations.io_orientation(affine)[:, 0].tolist()     # input axis -> RAS axis
    return int(shape[axes.index(1)]), int(shape[axes.index(0)])


def _depth_after_ras(path: Path) -> int:
    """Number of axial slices of a volume once in RAS+ (its extent along the S axis), from the header."""
    import nibabel as nib   # noqa: PLC0415

    from weakseg.data.formats.nifti import read_header   # noqa: PLC0415

    shape, affine = read_header(path)
    axis = int(nib.orientations.io_orientation(affine)[:, 0].tolist().index(2))
    return int(shape[axis])


def _bar(total: int, on: bool | None):
    from tqdm.auto import tqdm   # noqa: PLC0415

    return tqdm(total=total, desc="predict", unit="slice", disable=None if on is None else not on,
                dynamic_ncols=True)
