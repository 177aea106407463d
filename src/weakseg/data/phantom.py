"""Synthetic 3-organ abdominal CT phantom, written in the nnU-Net raw layout (smile.md §16.1).

Two presets (``preset=``), each reproducible from its seed:

- ``v1`` (default, the original phantom): a large (liver), a medium (stomach) and a small, low-contrast
  (pancreas) organ inside an elliptic body with a spine, CT-like Hounsfield units, seeded per-case jitter
  and anisotropic voxels. Organ volume fractions (beta) mirror real imbalance: liver about 5-7 %, stomach
  1.5-2 %, pancreas 0.2-0.4 % of the grid. The organs never touch and the pancreas (45 HU) lies in a 40 HU
  body: 5 HU of contrast under 15 HU of noise.
- ``v2`` (``weakseg.data.phantom_v2``): organs that touch (liver-stomach, stomach-pancreas), a
  pancreas in retroperitoneal fat (45 against -100 HU), unlabelled kidneys and aorta at the pancreas's HU,
  two-ellipsoid organs with per-volume shapes bent by a smooth displacement field. Fractions at
  24 x 64 x 64: liver 3-7 %, stomach 0.9-2.4 %, pancreas 0.2-0.7 %.

Nothing is downloaded; tests and the benchmarks build their data with this module.

Geometry: the in-memory arrays are (D, H, W) = (z, y, x) with ``spacing`` (dz, dy, dx) in mm. On disk
the NIfTI array is stored in RAS+ order (x, y, z) with the affine diag(dx, dy, dz) (slice axis last, as
clinical CT is), so ``nibabel`` reports voxel sizes (dx, dy, dz) and axis codes ('R', 'A', 'S');
``SimpleITK.GetArrayFromImage`` returns the (z, y, x) array back.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from scipy import ndimage

from weakseg.data.voxel_grid import voxel_axes

ORGANS: tuple[str, ...] = ("liver", "stomach", "pancreas")
LABELS: dict[str, int] = {"background": 0, "liver": 1, "stomach": 2, "pancreas": 3}
PRESETS: tuple[str, ...] = ("v1", "v2")

# Normalised coordinates: each axis of the grid spans [-1, 1], increasing with the array index. Per organ:
# centre (z, y, x), radii (z, y, x), in-plane rotation range (deg), mean HU. y > 0 is anterior, x > 0 is
# the patient's right (RAS+), so the liver sits on the right, the stomach anterior left, the pancreas
# posterior and central, the spine posterior midline.
_ORGAN_SPEC: dict[str, dict[str, Any]] = {
    "liver": {"centre": (0.0, 0.0, 0.45), "radii": (0.70, 0.407, 0.407), "rot": 12.0, "hu": 60.0},
    "stomach": {"centre": (0.1, 0.25, -0.45), "radii": (0.473, 0.265, 0.265), "rot": 15.0, "hu": 20.0},
    "pancreas": {"centre": (-0.1, -0.36, -0.24), "radii": (0.186, 0.093, 0.336), "rot": 15.0, "hu": 45.0},
}
_BODY_RADII = (0.78, 0.94)      # (y, x) of the elliptic cylinder
_SPINE = {"centre": (-0.62, 0.0), "radius": 0.11, "hu": 400.0}
_BODY_HU, _AIR_HU = 40.0, -1000.0
_JITTER_CENTRE, _JITTER_RADIUS, _JITTER_HU = 0.04, 0.04, 5.0
_MAX_TRIES = 200


def _ellipsoid(axes: tuple[np.ndarray, ...], centre: Sequence[float], radii: Sequence[float],
               angle_deg: float) -> np.ndarray:
    """Ellipsoid rotated by ``angle_deg`` about z (in the axial plane). Shape: (D, H, W) bool."""
    z, y, x = axes
    a = math.radians(angle_deg)
    dy, dx = y - centre[1], x - centre[2]
    yr = math.cos(a) * dy - math.sin(a) * dx                                # (1, H, W)
    xr = math.sin(a) * dy + math.cos(a) * dx
    return ((z - centre[0]) / radii[0]) ** 2 + (yr / radii[1]) ** 2 + (xr / radii[2]) ** 2 <= 1.0


def make_abdomen(
    seed: int,
    shape: Sequence[int] = (16, 64, 64),
    spacing: Sequence[float] = (2.5, 0.8, 0.8),
    *,
    absent: Sequence[str] = (),
    noise_hu: float = 15.0,
    preset: str = "v1",
) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    """One synthetic abdominal CT volume of ``preset`` (``v1`` or ``v2``, see the module docstring).

    ``v1``: organs are painted large to small with seeded jitter of centres (±0.04 of the half-extent), radii
    (±4 %), in-plane rotation and mean HU; a placement where organs would overlap or touch is redrawn, so
    the organs are disjoint (not even face-adjacent) and inside the body. ``absent`` organs are left out
    (resection-like cases). The stomach gets an air pocket (-1000 HU, still labelled stomach) in about half
    the cases. ``v2``: ``weakseg.data.phantom_v2.make_abdomen_v2``.

    Returns:
        image: (D, H, W) int16 HU; label: (D, H, W) uint8 with ``LABELS`` values; meta: seed, shape,
        spacing, absent organs and realised fractions ``beta``.
    """
    if preset not in PRESETS:
        raise ValueError(f"make_abdomen: preset must be one of {', '.join(PRESETS)}, got {preset!r}")
    shape = tuple(int(s) for s in shape)
    if len(shape) != 3 or min(shape) < 4:
        raise ValueError(f"make_abdomen: shape must be (D, H, W) with every size >= 4, got {shape}")
    if len(spacing) != 3 or min(spacing) <= 0:
        raise ValueError(f"make_abdomen: spacing must be three positive mm values (dz, dy, dx), got {spacing}")
    unknown = [o for o in absent if o not in ORGANS]
    if unknown:
        raise ValueError(f"make_abdomen: unknown organ {unknown[0]!r} in absent; organs are {', '.join(ORGANS)}")
    if preset == "v2":
        from weakseg.data.phantom_v2 import make_abdomen_v2
        return make_abdomen_v2(seed, shape, spacing, absent=absent, noise_hu=noise_hu)
    rng = np.random.default_rng(seed)
    axes = voxel_axes(shape)
    _, y, x = axes
    body = np.broadcast_to((y / _BODY_RADII[0]) ** 2 + (x / _BODY_RADII[1]) ** 2 <= 1.0, shape)
    spine = np.broadcast_to((y - _SPINE["centre"][0]) ** 2 + (x - _SPINE["centre"][1]) ** 2
                            <= _SPINE["radius"] ** 2, shape)
    inside = body & ~spine

    masks: dict[str, np.ndarray] = {}
    for _ in range(_MAX_TRIES):
        masks = {}
        for organ in ORGANS:
            spec = _ORGAN_SPEC[organ]
            centre = np.asarray(spec["centre"]) + rng.uniform(-_JITTER_CENTRE, _JITTER_CENTRE, 3)
            radii = np.asarray(spec["radii"]) * rng.uniform(1 - _JITTER_RADIUS, 1 + _JITTER_RADIUS, 3)
            angle = rng.uniform(-spec["rot"], spec["rot"])
            masks[organ] = _ellipsoid(axes, centre, radii, angle)
        # disjoint (not even face-adjacent) and inside the body, off the spine; else redraw
        grown = {o: ndimage.binary_dilation(masks[o]) for o in ORGANS[:-1]}
        touching = any((grown[a] & masks[b]).any() for i, a in enumerate(ORGANS[:-1]) for b in ORGANS[i + 1:])
        if not touching and not (np.stack(list(masks.values())).any(0) & ~inside).any():
            break
    else:
        raise RuntimeError(f"make_abdomen: no disjoint placement in {_MAX_TRIES} draws for seed {seed}, shape {shape}")

    air_pocket = None
    if rng.random() < 0.5:
        spec = _ORGAN_SPEC["stomach"]
        pocket_centre = (spec["centre"][0], spec["centre"][1] + 0.5 * spec["radii"][1], spec["centre"][2])
        air_pocket = _ellipsoid(axes, pocket_centre, [0.35 * r for r in spec["radii"]], 0.0) & masks["stomach"]

    image = np.full(shape, _AIR_HU, dtype=np.float64)
    image[body] = _BODY_HU + rng.uniform(-_JITTER_HU, _JITTER_HU)
    image[spine & body] = _SPINE["hu"]
    label = np.zeros(shape, dtype=np.uint8)
    for organ in ORGANS:                                              # large to small
        hu = _ORGAN_SPEC[organ]["hu"] + rng.uniform(-_JITTER_HU, _JITTER_HU)  # drawn even when absent, so
        if organ in absent:                                           # the other organs do not change
            continue
        image[masks[organ]] = hu
        label[masks[organ]] = LABELS[organ]
    if air_pocket is not None and "stomach" not in absent:
        image[air_pocket] = _AIR_HU
    image += rng.normal(0.0, noise_hu, shape)
    image = np.clip(np.rint(image), -1024, 3071).astype(np.int16)

    n = label.size
    meta = {
        "seed": int(seed),
        "shape": list(shape),
        "spacing": [float(s) for s in spacing],
        "axes": "zyx",
        "absent": sorted(set(absent)),
        "beta": {organ: float((label == LABELS[organ]).sum() / n) for organ in ORGANS},
        "air_pocket": air_pocket is not None and "stomach" not in absent,
    }
    return image, label, meta


def nifti_affine(spacing: Sequence[float], shape: Sequence[int]) -> np.ndarray:
    """RAS+ affine of the on-disk (x, y, z) array for in-memory spacing (dz, dy, dx), centred at 0 mm."""
    dz, dy, dx = (float(s) for s in spacing)
    d, h, w = (int(s) for s in shape)
    affine = np.diag([dx, dy, dz, 1.0])
    affine[:3, 3] = [-(w - 1) / 2 * dx, -(h - 1) / 2 * dy, -(d - 1) / 2 * dz]
    return affine


def to_nifti_array(volume: np.ndarray) -> np.ndarray:
    """(z, y, x) in-memory array -> (x, y, z) on-disk array (and back: the transpose is its own inverse)."""
    return np.ascontiguousarray(volume.transpose(2, 1, 0))


def _save_nifti(array_zyx: np.ndarray, spacing: Sequence[float], path: Path) -> None:
    import nibabel as nib

    affine = nifti_affine(spacing, array_zyx.shape)
    img = nib.Nifti1Image(to_nifti_array(array_zyx), affine)
    img.set_data_dtype(array_zyx.dtype)
    img.set_qform(affine, code=1)
    img.set_sform(affine, code=1)
    img.header.set_xyzt_units("mm")
    nib.save(img, str(path))


def _write_json(path: Path, data: dict[str, Any]) -> None:
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        json.dump(data, fh, indent=2, allow_nan=False)
        fh.write("\n")
    os.replace(tmp, path)


def write_abdomen_dataset(
    root: str | os.PathLike[str],
    n_cases: int,
    seed: int,
    *,
    absent_rate: float = 0.1,
    shape: Sequence[int] = (16, 64, 64),
    spacing: Sequence[float] = (2.5, 0.8, 0.8),
    n_test: int = 0,
    noise_hu: float = 15.0,
    case_prefix: str = "abd",
    preset: str = "v1",
) -> dict[str, Any]:
    """Write ``n_cases`` training (and ``n_test`` test) phantoms in the nnU-Net v2 raw layout.

    Files: ``imagesTr/{case}_0000.nii.gz``, ``labelsTr/{case}.nii.gz`` (and ``imagesTs``/``labelsTs`` for
    test cases), ``dataset.json`` with ``labels`` {background, liver, stomach, pancreas}, the ``weakseg``
    block recording ``absent`` statuses, and an MSD-style ``training`` list. With probability
    ``absent_rate`` a case lacks one organ (chosen uniformly), recorded as status ``absent``. ``preset``
    names the phantom (``v1``, ``v2``); case seeds do not depend on it.

    Returns the ``dataset.json`` content.
    """
    if n_cases < 1 or n_test < 0:
        raise ValueError(f"write_abdomen_dataset: need n_cases >= 1 and n_test >= 0, got {n_cases}, {n_test}")
    if not 0.0 <= absent_rate <= 1.0:
        raise ValueError(f"write_abdomen_dataset: absent_rate must be in [0, 1], got {absent_rate}")
    root = Path(root)
    dirs = {name: root / name for name in ("imagesTr", "labelsTr", "imagesTs", "labelsTs")}
    for name, folder in dirs.items():
        if name.endswith("Tr") or n_test:
            folder.mkdir(parents=True, exist_ok=True)
    seeds = np.random.SeedSequence(seed).spawn(n_cases + n_test)
    width = max(4, len(str(n_cases + n_test)))
    cases: dict[str, Any] = {}
    training, test = [], []
    for i, ss in enumerate(seeds):
        case = f"{case_prefix}_{i + 1:0{width}d}"
        case_rng = np.random.default_rng(ss)
        absent = (ORGANS[int(case_rng.integers(len(ORGANS)))],) if case_rng.random() < absent_rate else ()
        case_seed = int(case_rng.integers(2**31 - 1))
        image, label, _ = make_abdomen(case_seed, shape, spacing, absent=absent, noise_hu=noise_hu, preset=preset)
        split = "Tr" if i < n_cases else "Ts"
        _save_nifti(image, spacing, dirs[f"images{split}"] / f"{case}_0000.nii.gz")
        _save_nifti(label, spacing, dirs[f"labels{split}"] / f"{case}.nii.gz")
        if absent:
            cases[case] = {"status": {organ: "absent" for organ in absent}}
        entry = {"image": [f"./images{split}/{case}_0000.nii.gz"], "label": f"./labels{split}/{case}.nii.gz"}
        (training if split == "Tr" else test).append(entry)
    dataset = {
        "name": "weakseg_abdomen_phantom",
        "description": f"synthetic 3-organ abdominal CT phantom (weakseg.data.phantom"
                       f"{'' if preset == 'v1' else ', preset ' + preset}), seed {seed}, shape {list(shape)} "
                       f"(z, y, x), spacing {list(spacing)} mm, absent_rate {absent_rate}",
        "channel_names": {"0": "CT"},
        "labels": dict(LABELS),
        "numTraining": n_cases,
        "file_ending": ".nii.gz",
        "weakseg": {"format": 1, "default_status": "mask", "cases": cases},
        "training": training,
    }
    if test:
        dataset["test"] = test
    _write_json(root / "dataset.json", dataset)
    return dataset
