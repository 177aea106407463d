"""NIfTI volumes in and out, with their geometry (``ecosystem.md`` §6).

Arrays stay in nibabel's ``(i, j, k)`` voxel order, matching the affine; nothing is reoriented here.
Labels are read with ``np.asanyarray(img.dataobj)`` (no float64 scaling) and must hold whole numbers.
Every failure a user can cause (missing file, truncated ``.nii.gz``, NaN/Inf voxels, non-integer labels)
is one ``WeaksegError`` line naming the file and the fix.
"""

from __future__ import annotations

import gzip
import os
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import nibabel as nib
import numpy as np
from nibabel.affines import voxel_sizes
from nibabel.filebasedimages import ImageFileError

from weakseg.errors import WeaksegError

VolumeKind = Literal["image", "label"]
NIFTI_SUFFIXES = (".nii.gz", ".nii")
# What nibabel / gzip raise on a truncated or corrupt file; turned into one WeaksegError line.
_READ_ERRORS = (EOFError, OSError, zlib.error, gzip.BadGzipFile, ImageFileError, ValueError, TypeError)


@dataclass
class Volume:
    """One NIfTI volume with its geometry.

    Shape:
        array: (I, J, K[, ...]) in nibabel voxel order; affine: (4, 4) voxel -> RAS+ world (mm);
        spacing: (3,) voxel sizes in mm from the affine.
    """

    array: np.ndarray
    affine: np.ndarray
    header: nib.Nifti1Header
    spacing: tuple[float, ...]
    path: Path | None = None

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.array.shape)


def strip_nifti_suffix(name: str) -> str | None:
    """``"a_t1.nii.gz" -> "a_t1"``; None when the name is not a NIfTI file."""
    for suffix in NIFTI_SUFFIXES:
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return None


def _open(path: Path) -> nib.Nifti1Image:
    if not path.exists():
        raise WeaksegError(f"{path}: file not found; check the path (NIfTI .nii or .nii.gz expected)")
    if not path.is_file():
        raise WeaksegError(f"{path}: not a file; give a NIfTI .nii or .nii.gz file")
    try:
        img = nib.load(str(path))
    except _READ_ERRORS as exc:
        raise WeaksegError(f"{path}: cannot read NIfTI header ({type(exc).__name__}: {exc}); "
                           f"the file is truncated or not NIfTI, re-copy or re-export it") from None
    if not isinstance(img, (nib.Nifti1Image, nib.Nifti2Image)):
        raise WeaksegError(f"{path}: {type(img).__name__} is not a NIfTI image; convert it to .nii.gz")
    return img


def read_header(path: str | os.PathLike) -> tuple[tuple[int, ...], np.ndarray]:
    """Shape and affine from the header only (no voxel data read). Cheap geometry checks use this."""
    img = _open(Path(path))
    return tuple(int(s) for s in img.shape), np.asarray(img.affine, dtype=np.float64)


def load_volume(path: str | os.PathLike, *, kind: VolumeKind = "image") -> Volume:
    """Read one NIfTI file.

    ``kind="image"``: float32 voxels (nibabel scaling applied), NaN/Inf rejected.
    ``kind="label"``: the stored integers, no float64 scaling; float-stored labels must hold whole
    numbers and are cast to int32.

    Shape:
        returns Volume.array (I, J, K[, ...]).
    """
    if kind not in ("image", "label"):
        raise ValueError(f"load_volume: kind must be 'image' or 'label', got {kind!r}")
    path = Path(path)
    img = _open(path)
    try:
        if kind == "image":
            array = img.get_fdata(dtype=np.float32)
        else:
            array = np.asanyarray(img.dataobj)
    except _READ_ERRORS as exc:
        raise WeaksegError(f"{path}: cannot read voxel data ({type(exc).__name__}: {exc}); the file is "
                           f"truncated or corrupt, re-copy or re-export it") from None
    if kind == "image":
        bad = ~np.isfinite(array)
        if bad.any():
            raise WeaksegError(f"{path}: {int(bad.sum())} NaN/Inf voxels; fix or re-export the image "
                               f"(weakseg does not guess values for them)")
    else:
        array = _as_integer_labels(array, path)
    return Volume(array=array, affine=np.asarray(img.affine, dtype=np.float64), header=img.header,
                  spacing=tuple(float(s) for s in voxel_sizes(img.affine)), path=path)


def _as_integer_labels(array: np.ndarray, path: Path) -> np.ndarray:
    if np.issubdtype(array.dtype, np.integer):
        return np.asarray(array)
    if np.issubdtype(array.dtype, np.bool_):
        return array.astype(np.uint8)
    if not np.issubdtype(array.dtype, np.floating):
        raise WeaksegError(f"{path}: label map has dtype {array.dtype}; store labels as integers")
    if not np.isfinite(array).all():
        raise WeaksegError(f"{path}: label map holds NaN/Inf values; labels must be whole numbers")
    frac = array != np.round(array)
    if frac.any():
        example = float(array[frac].flat[0])
        raise WeaksegError(f"{path}: label map holds non-integer values (e.g. {example}); labels must be "
                           f"whole numbers: was an image given as the label, or was it resampled linearly?")
    return array.astype(np.int32)


def save_volume(
    array: np.ndarray,
    like: Volume | tuple[np.ndarray, nib.Nifti1Header | None],
    path: str | os.PathLike,
    *,
    dtype: np.dtype | type | str = np.float32,
) -> Path:
    """Write ``array`` as NIfTI with the geometry of ``like`` (a Volume, or ``(affine, header)``).

    The affine and the sform/qform codes are copied from the source; scaling is reset so the stored
    values are the array's. Atomic: written to a temporary name in the target folder, then renamed.

    Shape:
        array: (I, J, K[, ...]) in the voxel order of ``like``'s affine.
    """
    path = Path(path)
    if strip_nifti_suffix(path.name) is None:
        raise WeaksegError(f"{path}: output must end in .nii.gz or .nii")
    if isinstance(like, Volume):
        affine, header = like.affine, like.header
    else:
        affine, header = like
    affine = np.asarray(affine, dtype=np.float64)
    data = np.asarray(array).astype(dtype, copy=False)
    hdr = header.copy() if header is not None else None
    img = nib.Nifti1Image(data, affine, header=hdr)
    img.set_data_dtype(data.dtype)
    img.header.set_slope_inter(np.nan, np.nan)
    # nibabel sets codes to 'aligned'/'scanner' defaults; keep the source's codes (0 stays 0).
    if header is not None:
        img.set_sform(affine, code=int(header["sform_code"]))
        img.set_qform(affine, code=int(header["qform_code"]))
    else:
        img.set_sform(affine, code=1)
        img.set_qform(affine, code=1)
    path.parent.mkdir(parents=True, exist_ok=True)
    suffix = ".nii.gz" if path.name.endswith(".nii.gz") else ".nii"
    tmp = path.parent / f".{path.name[: -len(suffix)]}.tmp-{os.getpid()}{suffix}"
    try:
        nib.save(img, str(tmp))
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return path


def check_same_geometry(a: Volume, b: Volume, *, what: str, atol: float = 1e-4) -> None:
    """Raise when two volumes do not share a grid (shape, then affine within ``atol`` mm)."""
    problem = geometry_problem(a.shape[:3], a.affine, b.shape[:3], b.affine, atol=atol)
    if problem:
        raise WeaksegError(f"{what}: {problem}")


def geometry_problem(shape_a: tuple[int, ...], affine_a: np.ndarray, shape_b: tuple[int, ...],
                     affine_b: np.ndarray, *, atol: float = 1e-4, names: tuple[str, str] = ("", "")) -> str:
    """Empty string when the grids agree, else a short description of the difference."""
    na = f" {names[0]}" if names[0] else ""
    nb = f" {names[1]}" if names[1] else ""
    if tuple(shape_a[:3]) != tuple(shape_b[:3]):
        return (f"shape{na} {tuple(shape_a[:3])} differs from{nb} {tuple(shape_b[:3])}; "
                f"resample both onto one grid first")
    if not np.allclose(affine_a, affine_b, atol=atol):
        diff = float(np.abs(np.asarray(affine_a) - np.asarray(affine_b)).max())
        return (f"affine{na} differs from{nb} (max difference {diff:.4g}); the files are not on the same "
                f"grid: re-register or fix the header")
    return ""


def to_ras(array: np.ndarray, affine: np.ndarray) -> np.ndarray:
    """The voxel array in the closest RAS+ order (as ``nibabel.as_closest_canonical``; a view: flips and
    axis swaps only, no resampling). Axes beyond the third are kept.

    Shape:
        array: (I, J, K, ...) in the order of ``affine`` -> (X, Y, Z, ...) RAS+.
    """
    ornt = nib.orientations.io_orientation(np.asarray(affine, dtype=np.float64))
    return nib.orientations.apply_orientation(array, ornt)


def from_ras(array: np.ndarray, affine: np.ndarray) -> np.ndarray:
    """Inverse of ``to_ras``: a RAS+ array back in the voxel order of ``affine`` (a view).

    Shape:
        array: (X, Y, Z, ...) RAS+ -> (I, J, K, ...) in the order of ``affine``.
    """
    ornt = nib.orientations.io_orientation(np.asarray(affine, dtype=np.float64))
    ras = nib.orientations.axcodes2ornt(("R", "A", "S"))
    return nib.orientations.apply_orientation(array, nib.orientations.ornt_transform(ras, ornt))
