"""Seeded synthetic BraTS-layout volumes for tests and the demo (``genseg.md`` §11).

Each subject is built on a canonical RAS+ grid ``(X, Y, Z)`` at 1 mm, then stored in a chosen
orientation (default ``LPS`` axes, like real BraTS files) with the affine adjusted so the world
geometry is unchanged:

- brain: an ellipsoid on a background of exactly 0, with a smooth texture; every modality has its own
  intensity scale and offset (so pooled and per-modality normalisation differ);
- tumour: nested ellipsoids in one hemisphere on a subset of slices: oedema (2) outside, enhancing
  shell (4), necrotic core (1); subject 1 has no label 1; the last ``n_tumour_free`` subjects have none;
- one small-tumour slice per tumour subject: a 2x2 oedema patch two slices beyond the tumour, below
  the default 4% area threshold;
- optional smooth multiplicative bias field (for the N4 option).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
from nibabel.orientations import apply_orientation, axcodes2ornt, inv_ornt_aff, ornt_transform
from scipy.ndimage import gaussian_filter

from weakseg.data.formats.nifti import save_volume

Naming = Literal["2017", "2020", "2021"]
# (scale, offset) per modality, and how each tissue shifts the normalised intensity.
_MODALITY_LOOK: dict[str, tuple[float, float]] = {
    "flair": (220.0, 60.0), "t1": (420.0, 300.0), "t1ce": (610.0, 120.0), "t2": (160.0, 520.0)}
_TISSUE_SHIFT: dict[str, dict[int, float]] = {
    "flair": {2: 0.8, 4: 0.5, 1: 0.3}, "t1": {2: -0.15, 4: -0.1, 1: -0.3},
    "t1ce": {2: 0.05, 4: 1.0, 1: -0.2}, "t2": {2: 0.6, 4: 0.4, 1: 0.7}}


@dataclass
class SyntheticSubject:
    """What was generated for one subject (ground truth for tests)."""

    subject_id: str
    folder: Path
    grade: str | None
    axcodes: str
    tumour_side: str | None       # 'x_lo' (patient left) or 'x_hi' (right) on the canonical grid; None if healthy
    has_core: bool
    tumour_slices: tuple[int, ...]  # canonical z of the main tumour
    small_tumour_slice: int | None  # canonical z of the small oedema patch


def storage_affine(shape_c: tuple[int, int, int], axcodes: str, *, origin: tuple[float, float, float] = (0, 0, 0)
                   ) -> tuple[np.ndarray, np.ndarray]:
    """Transform and affine storing a canonical 1 mm grid in orientation ``axcodes`` (e.g. 'LPS', 'SRA').

    Returns (orientation transform from RAS to ``axcodes``, storage affine).
    """
    canon = np.eye(4)
    canon[:3, 3] = origin
    t = ornt_transform(axcodes2ornt(("R", "A", "S")), axcodes2ornt(tuple(axcodes)))
    return t, canon @ inv_ornt_aff(t, shape_c)


def _ellipsoid(shape: tuple[int, int, int], centre: np.ndarray, radii: np.ndarray) -> np.ndarray:
    grid = np.stack(np.meshgrid(*[np.arange(s) for s in shape], indexing="ij"), -1)   # (X, Y, Z, 3)
    return (((grid - centre) / radii) ** 2).sum(-1) <= 1.0


def _subject_id(naming: Naming, i: int) -> str:
    if naming == "2017":
        return f"Brats17_SYN_{i:03d}_1"
    if naming == "2020":
        return f"BraTS20_Training_{i + 1:03d}"
    return f"BraTS2021_{i:05d}"


def write_synthetic_brats(
    root: str | os.PathLike,
    *,
    n_subjects: int = 6,
    n_lgg: int = 2,
    naming: Naming = "2017",
    shape: tuple[int, int, int] = (48, 48, 16),
    seed: int = 0,
    n_tumour_free: int = 1,
    storage_axcodes: str = "LPS",
    orientations: Mapping[int, str] | None = None,
    bias_field: bool = False,
) -> list[SyntheticSubject]:
    """Write ``n_subjects`` BraTS-layout subjects under ``root``; returns what each one holds.

    ``naming="2017"`` writes ``HGG/`` and ``LGG/`` (the last ``n_lgg`` subjects are LGG); ``"2020"`` and
    ``"2021"`` write subject folders directly under ``root``. ``orientations`` maps a subject index to
    other storage axcodes (e.g. ``{0: "PSL"}``) to test orientation handling.
    """
    if shape[0] % 2 or min(shape) < 8:
        raise ValueError(f"synthetic BraTS shape {shape}: use an even X and sides >= 8")
    if naming not in ("2017", "2020", "2021"):
        raise ValueError(f"naming {naming!r}: use '2017', '2020' or '2021'")
    root = Path(root)
    rng = np.random.default_rng(seed)
    orientations = dict(orientations or {})
    shp = np.asarray(shape, dtype=float)
    out = []
    for i in range(n_subjects):
        sid = _subject_id(naming, i)
        grade = ("LGG" if i >= n_subjects - n_lgg else "HGG") if naming == "2017" else None
        folder = root / grade / sid if grade else root / sid
        centre = (shp - 1) / 2 + rng.uniform(-0.5, 0.5, 3) * np.array([0.0, 1.0, 0.0])
        brain = _ellipsoid(shape, centre, shp * np.array([0.42, 0.45, 0.6]))
        texture = gaussian_filter(rng.normal(size=shape), 1.5)
        texture = 0.6 + 0.25 * texture / (texture.std() + 1e-8)
        seg = np.zeros(shape, dtype=np.uint8)
        healthy = i >= n_subjects - n_tumour_free
        side, has_core, t_slices, small_z = None, False, (), None
        if not healthy:
            side = "x_lo" if i % 2 == 0 else "x_hi"      # alternate, so both hemispheres occur
            tc = np.array([shp[0] * (0.27 if side == "x_lo" else 0.73), centre[1] + rng.uniform(-3, 3), centre[2]])
            radii = shp * np.array([0.14, 0.17, 0.22])
            has_core = i != 1
            seg[_ellipsoid(shape, tc, radii) & brain] = 2
            seg[_ellipsoid(shape, tc, radii * 0.65) & brain] = 4
            if has_core:
                seg[_ellipsoid(shape, tc, radii * 0.35) & brain] = 1
            t_slices = tuple(int(z) for z in np.nonzero(seg.any((0, 1)))[0])
            small_z = t_slices[-1] + 2
            if small_z < shape[2]:
                x0, y0 = int(round(tc[0])), int(round(tc[1]))
                seg[x0:x0 + 2, y0:y0 + 2, small_z] = 2 * brain[x0:x0 + 2, y0:y0 + 2, small_z]
            else:
                small_z = None
        field = 1.0
        if bias_field:
            x = np.linspace(-1, 1, shape[0])[:, None, None]
            field = 1.0 + 0.25 * x + 0.1 * np.linspace(-1, 1, shape[1])[None, :, None]
        axcodes = orientations.get(i, storage_axcodes)
        t, affine = storage_affine(shape, axcodes, origin=(-shp[0] / 2, -shp[1] / 2, -shp[2] / 2))
        folder.mkdir(parents=True, exist_ok=True)
        for m, (scale, offset) in _MODALITY_LOOK.items():
            tissue = texture.copy()
            for lab, shift in _TISSUE_SHIFT[m].items():
                tissue[seg == lab] += shift
            vals = (offset + scale * np.clip(tissue, 0.05, None)) * field * rng.uniform(0.9, 1.1)
            img = np.where(brain, np.maximum(np.round(vals), 1), 0).astype(np.int16)   # exact-0 background
            save_volume(apply_orientation(img, t), (affine, None), folder / f"{sid}_{m}.nii.gz", dtype=np.int16)
        save_volume(apply_orientation(seg, t), (affine, None), folder / f"{sid}_seg.nii.gz", dtype=np.uint8)
        out.append(SyntheticSubject(sid, folder, grade, axcodes, side, has_core, t_slices, small_z))
    return out
