"""Synthetic 3-organ abdomen phantom and its nnU-Net raw layout (smile.md §16.1, §17.9)."""

from __future__ import annotations

import json

import nibabel as nib
import numpy as np
import pytest
from scipy import ndimage

from weakseg.data.phantom import LABELS, ORGANS, make_abdomen, to_nifti_array, write_abdomen_dataset
from weakseg.data.status import check_label_statuses, resolve_statuses

BETA_RANGE = {"liver": (0.05, 0.07), "stomach": (0.015, 0.02), "pancreas": (0.002, 0.004)}  # smile.md §16.1


@pytest.mark.parametrize("seed", range(6))
def test_organ_fractions_in_range_disjoint_and_connected(seed: int) -> None:
    image, label, meta = make_abdomen(seed, (16, 64, 64))
    assert image.shape == label.shape == (16, 64, 64)
    assert image.dtype == np.int16 and label.dtype == np.uint8
    assert set(np.unique(label)) == {0, 1, 2, 3}
    for organ, (lo, hi) in BETA_RANGE.items():
        mask = label == LABELS[organ]
        assert lo <= mask.mean() <= hi, f"{organ} beta {mask.mean():.4f}"
        assert meta["beta"][organ] == pytest.approx(mask.mean())
        assert ndimage.label(mask)[1] == 1, f"{organ} is one connected piece"
        others = (label != 0) & ~mask
        assert not (ndimage.binary_dilation(mask) & others).any(), f"{organ} touches another organ"
    assert (image[label == 0] < -500).any() and (image[label > 0] > -1100).all()


def test_intensities_are_ct_like() -> None:
    image, label, meta = make_abdomen(1, (16, 64, 64), noise_hu=0.0)
    liver = float(np.median(image[label == 1]))
    pancreas = float(np.median(image[label == 3]))
    assert 50 <= liver <= 70 and 35 <= pancreas <= 55
    assert image.min() == -1000                                                 # air outside the body


def test_deterministic_and_absent_organs() -> None:
    a = make_abdomen(7, (16, 64, 64))
    b = make_abdomen(7, (16, 64, 64))
    assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])
    _, label, meta = make_abdomen(7, (16, 64, 64), absent=("stomach",))
    assert not (label == 2).any() and meta["absent"] == ["stomach"] and meta["beta"]["stomach"] == 0
    keep = a[1] != 2
    assert np.array_equal(label[keep], a[1][keep])                              # other organs unchanged
    with pytest.raises(ValueError, match="'spleen'"):
        make_abdomen(0, absent=("spleen",))


def test_write_dataset_nnunet_layout_and_affine(tmp_path) -> None:
    ds = write_abdomen_dataset(tmp_path, 4, seed=3, absent_rate=0.5, shape=(8, 32, 32), n_test=1)
    on_disk = json.loads((tmp_path / "dataset.json").read_text())
    assert on_disk == ds
    assert ds["labels"] == {"background": 0, "liver": 1, "stomach": 2, "pancreas": 3}
    assert ds["numTraining"] == 4 and ds["file_ending"] == ".nii.gz" and ds["channel_names"] == {"0": "CT"}
    train = sorted(p.name for p in (tmp_path / "imagesTr").iterdir())
    assert train == [f"abd_{i:04d}_0000.nii.gz" for i in range(1, 5)]
    assert sorted(p.name for p in (tmp_path / "labelsTs").iterdir()) == ["abd_0005.nii.gz"]
    assert [e["label"] for e in ds["training"]] == [f"./labelsTr/abd_{i:04d}.nii.gz" for i in range(1, 5)]

    cases = [f"abd_{i:04d}" for i in range(1, 5)]
    statuses = resolve_statuses(ds["weakseg"], cases, list(ORGANS))
    assert any("absent" in st.values() for st in statuses.values())            # absent_rate 0.5: some recorded
    for case in cases:
        img = nib.load(tmp_path / "imagesTr" / f"{case}_0000.nii.gz")
        lab = nib.load(tmp_path / "labelsTr" / f"{case}.nii.gz")
        assert img.shape == lab.shape == (32, 32, 8)                            # (x, y, z): slice axis last
        np.testing.assert_allclose(nib.affines.voxel_sizes(img.affine), (0.8, 0.8, 2.5))
        assert nib.aff2axcodes(img.affine) == ("R", "A", "S")
        np.testing.assert_allclose(img.affine, lab.affine)
        assert img.get_data_dtype() == np.int16 and lab.get_data_dtype() == np.uint8
        label_zyx = to_nifti_array(np.asanyarray(lab.dataobj))                  # back to (z, y, x)
        assert label_zyx.shape == (8, 32, 32)
        check_label_statuses(label_zyx, statuses[case], list(ORGANS), case_id=case)  # absent organs have no voxels
        for organ, st in statuses[case].items():
            assert ((label_zyx == LABELS[organ]).any()) == (st == "mask")


def test_written_arrays_match_generator_orientation(tmp_path) -> None:
    sitk = pytest.importorskip("SimpleITK")
    write_abdomen_dataset(tmp_path, 1, seed=0, absent_rate=0.0, shape=(8, 32, 32))
    nib_img = nib.load(tmp_path / "imagesTr" / "abd_0001_0000.nii.gz")
    itk_img = sitk.ReadImage(str(tmp_path / "imagesTr" / "abd_0001_0000.nii.gz"))
    assert itk_img.GetSpacing() == pytest.approx((0.8, 0.8, 2.5))
    zyx = sitk.GetArrayFromImage(itk_img)                                       # SimpleITK: (z, y, x)
    assert zyx.shape == (8, 32, 32)
    assert np.array_equal(zyx, to_nifti_array(np.asanyarray(nib_img.dataobj)))


def test_v1_stays_the_phantom_the_stored_results_were_made_with() -> None:
    # Checksum taken before the v2 preset was added (issue 21); the organs_quick results depend on v1's bytes.
    import hashlib

    image, label, _ = make_abdomen(3, (8, 32, 32))
    assert make_abdomen(3, (8, 32, 32), preset="v1")[0].tobytes() == image.tobytes()
    digest = hashlib.sha256(image.tobytes() + label.tobytes()).hexdigest()
    assert digest == "7a69a7507ad04340fd95e7385b155beef03fd12def941160743763d4d9e8bb24"
