"""NIfTI reading and writing: geometry round trip, label reading, and one-line errors for bad files."""

from __future__ import annotations

import gzip
import math

import nibabel as nib
import numpy as np
import pytest

from weakseg.data.formats.nifti import check_same_geometry, load_volume, save_volume
from weakseg.errors import WeaksegError


def oblique_affine() -> np.ndarray:
    """0.8 x 0.8 x 2.5 mm voxels, rotated 10 degrees about z, with an offset (ecosystem.md §6 test)."""
    a = math.radians(10)
    rot = np.array([[math.cos(a), -math.sin(a), 0], [math.sin(a), math.cos(a), 0], [0, 0, 1]])
    aff = np.eye(4)
    aff[:3, :3] = rot @ np.diag([0.8, 0.8, 2.5])
    aff[:3, 3] = (-12.5, 30.0, 7.25)
    return aff


def write_raw(path, array, affine=None, dtype=None):
    img = nib.Nifti1Image(np.asarray(array), np.eye(4) if affine is None else affine)
    if dtype is not None:
        img.set_data_dtype(dtype)
    nib.save(img, str(path))
    return path


def test_round_trip_keeps_oblique_anisotropic_affine_and_dtype(tmp_path):
    rng = np.random.default_rng(0)
    img = rng.normal(size=(6, 5, 4)).astype(np.float32)
    lab = rng.integers(0, 3, size=(6, 5, 4)).astype(np.uint8)
    src = nib.Nifti1Image(img, oblique_affine())
    src.set_sform(oblique_affine(), code=2)       # 'aligned'
    src.set_qform(oblique_affine(), code=1)       # 'scanner'
    nib.save(src, str(tmp_path / "src.nii.gz"))

    vol = load_volume(tmp_path / "src.nii.gz")
    assert vol.array.dtype == np.float32 and vol.shape == (6, 5, 4)
    np.testing.assert_allclose(vol.spacing, (0.8, 0.8, 2.5), atol=1e-6)
    save_volume(vol.array, vol, tmp_path / "img.nii.gz", dtype=np.float32)
    save_volume(lab, vol, tmp_path / "lab.nii.gz", dtype=np.uint8)

    back = nib.load(str(tmp_path / "img.nii.gz"))
    assert np.allclose(back.affine, oblique_affine(), atol=1e-5)
    assert int(back.header["sform_code"]) == 2 and int(back.header["qform_code"]) == 1
    assert back.get_data_dtype() == np.float32
    np.testing.assert_array_equal(back.get_fdata(dtype=np.float32), img)
    lab_back = load_volume(tmp_path / "lab.nii.gz", kind="label")
    assert nib.load(str(tmp_path / "lab.nii.gz")).get_data_dtype() == np.uint8
    assert lab_back.array.dtype == np.uint8
    np.testing.assert_array_equal(lab_back.array, lab)
    check_same_geometry(vol, lab_back, what="round trip")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["img.nii.gz", "lab.nii.gz", "src.nii.gz"]  # no temp left


def test_save_with_affine_and_no_header(tmp_path):
    save_volume(np.zeros((3, 3, 2)), (oblique_affine(), None), tmp_path / "x.nii", dtype=np.int16)
    back = load_volume(tmp_path / "x.nii", kind="label")
    assert back.array.dtype == np.int16 and np.allclose(back.affine, oblique_affine())


def test_float_stored_labels_are_read_as_integers(tmp_path):
    lab = np.array([0, 1, 2, 4], dtype=np.float32).reshape(1, 2, 2)
    vol = load_volume(write_raw(tmp_path / "seg.nii.gz", lab), kind="label")
    assert vol.array.dtype == np.int32
    np.testing.assert_array_equal(vol.array, lab.astype(np.int32))


def test_non_integer_labels_are_rejected(tmp_path):
    path = write_raw(tmp_path / "seg.nii.gz", np.array([0, 1.5, 2, 4], dtype=np.float32).reshape(1, 2, 2))
    with pytest.raises(WeaksegError, match=r"seg\.nii\.gz: label map holds non-integer values \(e\.g\. 1\.5\)"):
        load_volume(path, kind="label")


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_nan_or_inf_image_voxels_are_rejected(tmp_path, bad):
    arr = np.ones((2, 2, 2), dtype=np.float32)
    arr[0, 1, 1] = bad
    path = write_raw(tmp_path / "t1.nii.gz", arr)
    with pytest.raises(WeaksegError, match=r"t1\.nii\.gz: 1 NaN/Inf voxels"):
        load_volume(path)


def test_missing_file(tmp_path):
    with pytest.raises(WeaksegError, match=r"nope\.nii\.gz: file not found"):
        load_volume(tmp_path / "nope.nii.gz")


def test_truncated_gzip_gives_one_line(tmp_path):
    path = write_raw(tmp_path / "flair.nii.gz", np.random.default_rng(0).normal(size=(20, 20, 20)).astype(np.float32))
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(WeaksegError, match=r"flair\.nii\.gz: cannot read voxel data .*truncated or corrupt") as err:
        load_volume(path)
    assert "\n" not in str(err.value)


def test_garbage_file_gives_one_line(tmp_path):
    path = tmp_path / "t2.nii.gz"
    path.write_bytes(gzip.compress(b"not a nifti file at all" * 3))
    with pytest.raises(WeaksegError, match=r"t2\.nii\.gz: cannot read NIfTI header"):
        load_volume(path)


def test_check_same_geometry_names_the_difference(tmp_path):
    a = load_volume(write_raw(tmp_path / "a.nii.gz", np.ones((4, 4, 2), np.float32)))
    b = load_volume(write_raw(tmp_path / "b.nii.gz", np.ones((4, 4, 3), np.float32)))
    shifted = oblique_affine()
    c = load_volume(write_raw(tmp_path / "c.nii.gz", np.ones((4, 4, 2), np.float32), affine=shifted))
    with pytest.raises(WeaksegError, match=r"case 7: shape \(4, 4, 3\) differs from \(4, 4, 2\)"):
        check_same_geometry(b, a, what="case 7")
    with pytest.raises(WeaksegError, match=r"case 7: affine differs"):
        check_same_geometry(a, c, what="case 7")


def test_zero_qform_code_is_kept(tmp_path):
    aff = np.diag([-0.8, 0.9, 2.5, 1.0])
    aff[:3, 3] = (3, 4, 5)
    img = nib.Nifti1Image(np.zeros((3, 3, 3), np.float32), aff)
    img.set_qform(None, code=0)
    img.set_sform(aff, code=1)
    nib.save(img, str(tmp_path / "a.nii.gz"))
    save_volume(np.ones((3, 3, 3)), load_volume(tmp_path / "a.nii.gz"), tmp_path / "b.nii.gz", dtype=np.uint8)
    back = nib.load(str(tmp_path / "b.nii.gz"))
    assert (int(back.header["qform_code"]), int(back.header["sform_code"])) == (0, 1)
    assert np.allclose(back.affine, aff)
