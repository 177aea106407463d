"""BraTS preprocessing for the translation method (``genseg.md`` §10, with the §10.3 defaults).

Pure array functions; reading files, the patient splits and writing the converted dataset live in
``reader``, ``splits`` and ``convert`` beside this module.

- Orientation: every volume is reoriented to the closest canonical RAS+ grid (nibabel orientation
  transforms, decided from the affine), so array axis 0 runs patient left -> right whatever the storage
  orientation, and axial slices are ``[:, :, z]``. A scan stored in another orientation gives the same
  hemisphere slices.
- Hemispheres: axial slice ``z`` of the canonical grid ``(X, Y, Z)`` becomes an image ``(H=Y, W)``
  (rows run posterior -> anterior, columns left -> right); ``x_lo`` is the patient's left half
  (canonical x in ``[m - W, m)``), ``x_hi`` the right half (``[m, m + W)``), with ``W = ceil(X / 2)``
  and ``m = W`` (grid centre, the reference) or the centre of the brain's x-extent (``midline="brain"``;
  columns outside the grid are zero-padded).
- Slice kinds: P if brain_frac > b and tumour area / brain area > t_area; A if brain_frac > b and no
  tumour pixel; otherwise OTHER (dropped from training, kept for validation/test volume rebuild).
  Fractions are true areas on one brain mask (any modality != 0), pitfall #4.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Literal

import numpy as np
from nibabel.affines import voxel_sizes
from nibabel.orientations import (
    aff2axcodes,
    apply_orientation,
    axcodes2ornt,
    inv_ornt_aff,
    io_orientation,
    ornt_transform,
)

from weakseg.errors import WeaksegError

log = logging.getLogger(__name__)

KIND_A, KIND_P, KIND_OTHER = 0, 1, -1
SIDES: tuple[str, str] = ("x_lo", "x_hi")
Normalization = Literal["per_modality", "pooled"]
Midline = Literal["grid", "brain"]


# ----------------------------------------------------------------------------------------------- orientation
def to_canonical(array: np.ndarray, affine: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Reorient a volume to the closest canonical RAS+ grid (as ``nibabel.as_closest_canonical``).

    Shape:
        array: (I, J, K[, ...]) storage order -> returns (X, Y, Z[, ...]) and the (4, 4) canonical affine.
    """
    ornt = io_orientation(affine)
    out = apply_orientation(array, ornt)
    return out, affine @ inv_ornt_aff(ornt, array.shape[:3])


def from_canonical(array: np.ndarray, affine: np.ndarray) -> np.ndarray:
    """Inverse of ``to_canonical``: a canonical-grid array back to the storage order of ``affine``.

    Shape:
        array: (X, Y, Z[, ...]) -> returns (I, J, K[, ...]).
    """
    back = ornt_transform(axcodes2ornt(("R", "A", "S")), io_orientation(affine))
    return apply_orientation(array, back)


# ----------------------------------------------------------------------------------------------- intensities
def brain_mask(images: np.ndarray) -> np.ndarray:
    """Brain = voxels where any modality is non-zero (BraTS is skull-stripped on an exact-0 background).

    Shape:
        images: (C, *S) -> returns (*S) bool.
    """
    return (images != 0).any(0)


def normalise(images: np.ndarray, brain: np.ndarray, *, mode: Normalization = "per_modality",
              clip: bool = True) -> np.ndarray:
    """Brain voxels -> ``(x - mu) / (5 sigma)``, background 0, optionally clipped to [-1, 1].

    ``per_modality`` (ours, pitfall #3): one mu/sigma per modality on brain voxels; ``pooled`` (the
    reference): one mu/sigma over all modalities' brain voxels.

    Shape:
        images: (C, *S) float; brain: (*S) bool -> returns (C, *S) float32.
    """
    if mode not in ("per_modality", "pooled"):
        raise WeaksegError(f"normalization {mode!r}: use 'per_modality' or 'pooled'")
    out = np.zeros(images.shape, dtype=np.float32)
    if not brain.any():
        return out
    vals = images[:, brain].astype(np.float64)                            # (C, n_brain)
    if mode == "pooled":
        mu = np.full((images.shape[0], 1), vals.mean())
        sd = np.full((images.shape[0], 1), vals.std())
    else:
        mu = vals.mean(1, keepdims=True)                                  # (C, 1)
        sd = vals.std(1, keepdims=True)
    sd = np.where(sd > 0, sd, 1.0)      # a constant modality maps to 0 instead of dividing by zero
    normed = (vals - mu) / (5.0 * sd)
    if clip:
        normed = np.clip(normed, -1.0, 1.0)
    out[:, brain] = normed
    return out


def n4_correct(image: np.ndarray, mask: np.ndarray, *, spacing: Sequence[float] = (1.0, 1.0, 1.0),
               iterations: Sequence[int] = (50, 50, 50, 10)) -> np.ndarray:
    """SimpleITK N4 bias-field correction inside ``mask`` (the brain mask, pitfall #2); background kept.

    Shape:
        image, mask: (X, Y, Z) -> returns (X, Y, Z) float32.
    """
    import SimpleITK as sitk  # noqa: PLC0415 (optional path; SimpleITK is slow to import)

    if not mask.any():
        return image.astype(np.float32)
    # GetImageFromArray reads the array as (z, y, x): both image and mask are reversed alike, and the
    # spacing is given reversed so the B-spline grid has the right physical size.
    img = sitk.GetImageFromArray(image.astype(np.float32))
    img.SetSpacing([float(s) for s in spacing][::-1])
    msk = sitk.GetImageFromArray(mask.astype(np.uint8))
    msk.CopyInformation(img)
    f = sitk.N4BiasFieldCorrectionImageFilter()
    f.SetMaximumNumberOfIterations([int(i) for i in iterations])
    out = sitk.GetArrayFromImage(f.Execute(img, msk)).astype(np.float32)
    out[~mask] = image[~mask]
    return out


# ----------------------------------------------------------------------------------------------- hemispheres
@dataclass(frozen=True)
class HemisphereLayout:
    """Where a canonical grid ``(X, Y, Z)`` is cut.

    x_lo = canonical x in [midline - width, midline), x_hi = [midline, midline + width).
    """

    canonical_shape: tuple[int, int, int]
    midline: int
    width: int
    flip_x_hi: bool = False

    @property
    def slice_shape(self) -> tuple[int, int]:
        return self.canonical_shape[1], self.width

    def to_dict(self) -> dict:
        return asdict(self)


def hemisphere_layout(brain: np.ndarray, *, midline: Midline = "grid", flip_x_hi: bool = False) -> HemisphereLayout:
    """Cut position for a canonical brain mask ``(X, Y, Z)``."""
    x = brain.shape[0]
    width = (x + 1) // 2
    if midline == "grid":
        m = width
    elif midline == "brain":
        cols = np.nonzero(brain.any((1, 2)))[0]
        m = int(math.floor((cols[0] + cols[-1] + 1) / 2 + 0.5)) if cols.size else width
    else:
        raise WeaksegError(f"midline {midline!r}: use 'grid' or 'brain'")
    return HemisphereLayout(tuple(int(s) for s in brain.shape[:3]), m, width, flip_x_hi)


def split_hemispheres(volume: np.ndarray, layout: HemisphereLayout) -> np.ndarray:
    """Cut a canonical volume into axial hemisphere slices.

    Shape:
        volume: (X, Y, Z) or (C, X, Y, Z) -> returns (Z, 2, H=Y, W) or (Z, 2, C, H, W); axis 1 is
        (x_lo, x_hi).
    """
    vol = volume[None] if volume.ndim == 3 else volume                   # (C, X, Y, Z)
    x, w, m = vol.shape[1], layout.width, layout.midline
    pad_lo, pad_hi = max(0, w - m), max(0, m + w - x)
    if pad_lo or pad_hi:
        vol = np.pad(vol, ((0, 0), (pad_lo, pad_hi), (0, 0), (0, 0)))
    m += pad_lo
    lo = vol[:, m - w:m].transpose(3, 0, 2, 1)                           # (Z, C, Y, W)
    hi = vol[:, m:m + w].transpose(3, 0, 2, 1)                           # (Z, C, Y, W)
    if layout.flip_x_hi:
        hi = hi[..., ::-1]
    out = np.stack([lo, hi], axis=1)                                     # (Z, 2, C, Y, W)
    return out[:, :, 0] if volume.ndim == 3 else out


def merge_hemispheres(slices: np.ndarray, layout: HemisphereLayout, *, fill: float = 0) -> np.ndarray:
    """Inverse of ``split_hemispheres``; grid columns covered by neither half get ``fill``.

    Shape:
        slices: (Z, 2, H, W) or (Z, 2, C, H, W) -> returns (X, Y, Z) or (C, X, Y, Z).
    """
    s = slices[:, :, None] if slices.ndim == 4 else slices               # (Z, 2, C, H, W)
    x, _, _ = layout.canonical_shape
    w, m = layout.width, layout.midline
    pad_lo, pad_hi = max(0, w - m), max(0, m + w - x)
    lo, hi = s[:, 0], s[:, 1]                                            # (Z, C, H, W)
    if layout.flip_x_hi:
        hi = hi[..., ::-1]
    full = np.concatenate([lo, hi], axis=-1).transpose(1, 3, 2, 0)       # (C, 2W, Y, Z)
    out = np.full((s.shape[2], x + pad_lo + pad_hi, *full.shape[2:]), fill, dtype=slices.dtype)
    start = m + pad_lo - w
    out[:, start:start + 2 * w] = full
    out = out[:, pad_lo:pad_lo + x]                                      # (C, X, Y, Z)
    return out[0] if slices.ndim == 4 else out


# ----------------------------------------------------------------------------------------------- slice kinds
def classify_slices(brain: np.ndarray, tumour: np.ndarray, *, brain_threshold: float = 0.25,
                    tumour_threshold: float = 0.04) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """P / A / OTHER per hemisphere slice, from true area fractions on one brain mask.

    brain_frac = brain pixels / slice pixels; tumour_frac = tumour pixels / brain pixels.
    P: brain_frac > b and tumour_frac > t_area; A: brain_frac > b and no tumour pixel; else OTHER.

    Shape:
        brain, tumour: (N, H, W) bool -> returns kind (N,) int8, brain_frac (N,), tumour_frac (N,) float64.
    """
    n = brain.shape[0]
    brain_px = brain.reshape(n, -1).sum(1)                               # (N,)
    tumour_px = tumour.reshape(n, -1).sum(1)                             # (N,)
    brain_frac = brain_px / float(np.prod(brain.shape[1:]))
    tumour_frac = np.divide(tumour_px, brain_px, out=np.zeros(n), where=brain_px > 0)
    enough_brain = brain_frac > brain_threshold
    kind = np.full(n, KIND_OTHER, dtype=np.int8)
    kind[enough_brain & (tumour_px == 0)] = KIND_A
    kind[enough_brain & (tumour_frac > tumour_threshold)] = KIND_P
    return kind, brain_frac, tumour_frac


# ----------------------------------------------------------------------------------------------- per subject
@dataclass
class PreparedSubject:
    """One subject cut into hemisphere slices.

    Shape:
        images: (Z, 2, C, H, W) float32 or None (geometry-only pass); mask: (Z, 2, H, W) bool target
        region; kind: (Z, 2) int8; brain_area, tumour_area: (Z, 2) int64 pixels.
    """

    layout: HemisphereLayout
    images: np.ndarray | None
    mask: np.ndarray
    kind: np.ndarray
    brain_area: np.ndarray
    tumour_area: np.ndarray
    canonical_affine: np.ndarray
    axcodes: tuple[str, ...]


def prepare_subject(
    images: np.ndarray,
    seg: np.ndarray,
    affine: np.ndarray,
    *,
    region_labels: Sequence[int] = (1, 2, 4),
    normalization: Normalization = "per_modality",
    bias_correction: Literal["none", "n4"] = "none",
    clip: bool = True,
    brain_threshold: float = 0.25,
    tumour_threshold: float = 0.04,
    midline: Midline = "grid",
    flip_x_hi: bool = False,
    with_images: bool = True,
) -> PreparedSubject:
    """Reorient, (optionally N4-correct,) normalise and cut one subject into classified hemisphere slices.

    Shape:
        images: (C, I, J, K) storage order; seg: (I, J, K) raw BraTS labels; affine: (4, 4).
    """
    if bias_correction not in ("none", "n4"):
        raise WeaksegError(f"bias_correction {bias_correction!r}: use 'none' or 'n4'")
    canon = [to_canonical(ch, affine)[0] for ch in images]
    seg_c, canon_affine = to_canonical(seg, affine)
    vol = np.stack(canon)                                                # (C, X, Y, Z)
    brain = brain_mask(vol)                                              # (X, Y, Z)
    tumour = np.isin(seg_c, np.asarray(region_labels))                   # (X, Y, Z)
    layout = hemisphere_layout(brain, midline=midline, flip_x_hi=flip_x_hi)
    brain_s = split_hemispheres(brain, layout)                           # (Z, 2, H, W)
    tumour_s = split_hemispheres(tumour, layout)                         # (Z, 2, H, W)
    z = brain_s.shape[0]
    kind, _, _ = classify_slices(brain_s.reshape(2 * z, *brain_s.shape[2:]),
                                 tumour_s.reshape(2 * z, *tumour_s.shape[2:]),
                                 brain_threshold=brain_threshold, tumour_threshold=tumour_threshold)
    slices = None
    if with_images:
        if bias_correction == "n4":
            spacing = voxel_sizes(canon_affine)
            vol = np.stack([n4_correct(ch, brain, spacing=spacing) for ch in vol])
        slices = split_hemispheres(normalise(vol, brain, mode=normalization, clip=clip), layout)
    return PreparedSubject(
        layout=layout, images=slices, mask=tumour_s, kind=kind.reshape(z, 2),
        brain_area=brain_s.reshape(z, 2, -1).sum(-1), tumour_area=tumour_s.reshape(z, 2, -1).sum(-1),
        canonical_affine=canon_affine, axcodes=tuple(aff2axcodes(affine)),
    )


def volume_from_slices(slices: np.ndarray, layout: HemisphereLayout, affine: np.ndarray, *,
                       fill: float = 0) -> np.ndarray:
    """Hemisphere slices of one patient back to a volume on its original (storage) grid.

    Shape:
        slices: (Z, 2, H, W) or (Z, 2, C, H, W) -> returns (I, J, K) or (I, J, K, C) (NIfTI order).
    """
    canon = merge_hemispheres(slices, layout, fill=fill)                 # ([C,] X, Y, Z)
    if canon.ndim == 4:
        canon = np.moveaxis(canon, 0, -1)                                # (X, Y, Z, C)
    return from_canonical(canon, affine)
