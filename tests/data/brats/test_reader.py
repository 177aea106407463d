"""BraTS folder discovery in both namings, and every bad input -> one message, nothing written."""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pytest

from weakseg.data.brats.convert import BratsConvertOptions, convert_brats
from weakseg.data.brats.reader import DEFAULT_CHANNELS, find_brats_subjects, load_subject
from weakseg.data.brats.synthetic import write_synthetic_brats
from weakseg.errors import WeaksegError

SMALL = (24, 24, 8)


def test_2017_layout_with_grades(tmp_path):
    write_synthetic_brats(tmp_path, n_subjects=3, n_lgg=1, naming="2017", shape=SMALL)
    subs = find_brats_subjects(tmp_path)
    assert [(s.subject_id, s.grade) for s in subs] == [
        ("Brats17_SYN_000_1", "HGG"), ("Brats17_SYN_001_1", "HGG"), ("Brats17_SYN_002_1", "LGG")]
    assert all(not s.problems for s in subs)
    assert sorted(subs[0].files) == ["flair", "seg", "t1", "t1ce", "t2"]
    assert subs[0].files["t1"].name == "Brats17_SYN_000_1_t1.nii.gz"
    assert subs[0].files["t1ce"].name == "Brats17_SYN_000_1_t1ce.nii.gz"


@pytest.mark.parametrize(("naming", "first"), [("2020", "BraTS20_Training_001"), ("2021", "BraTS2021_00000")])
def test_2020_and_2021_layouts(tmp_path, naming, first):
    write_synthetic_brats(tmp_path, n_subjects=2, naming=naming, shape=SMALL)
    (tmp_path / "name_mapping.csv").write_text("x\n")          # the 2020 download ships CSVs at the top
    subs = find_brats_subjects(tmp_path)
    assert [s.subject_id for s in subs][0] == first and len(subs) == 2
    assert all(s.grade is None and not s.problems for s in subs)


def test_channels_follow_the_requested_order(tmp_path):
    write_synthetic_brats(tmp_path, n_subjects=1, n_tumour_free=0, shape=SMALL)
    subj = find_brats_subjects(tmp_path)[0]
    ref = load_subject(subj, channels=DEFAULT_CHANNELS)
    other = load_subject(subj, channels=("t2", "flair", "t1", "t1ce"))
    assert ref.channels == ("flair", "t1ce", "t1", "t2")
    np.testing.assert_array_equal(other.images[0], ref.images[3])   # t2
    np.testing.assert_array_equal(other.images[1], ref.images[0])   # flair
    np.testing.assert_array_equal(other.images[3], ref.images[1])   # t1ce


def test_modality_matched_by_exact_suffix(tmp_path):
    """Pitfall #5: without a t1 file, the t1ce file must not be taken for t1."""
    write_synthetic_brats(tmp_path, n_subjects=1, n_lgg=0, shape=SMALL)
    folder = tmp_path / "HGG" / "Brats17_SYN_000_1"
    (folder / "Brats17_SYN_000_1_t1.nii.gz").unlink()
    (folder / "notes_t1ce_backup.txt").write_text("not nifti")
    subj = find_brats_subjects(tmp_path)[0]
    assert "t1" not in subj.files and subj.files["t1ce"].name.endswith("_t1ce.nii.gz")
    assert subj.problems == ["missing 't1' file (expected Brats17_SYN_000_1_t1.nii.gz)"]


def test_two_files_for_one_modality(tmp_path):
    write_synthetic_brats(tmp_path, n_subjects=1, n_lgg=0, shape=SMALL)
    folder = tmp_path / "HGG" / "Brats17_SYN_000_1"
    img = nib.load(str(folder / "Brats17_SYN_000_1_t2.nii.gz"))
    nib.save(img, str(folder / "Brats17_SYN_000_1_t2.nii"))
    assert "two files for 't2'" in find_brats_subjects(tmp_path)[0].problems[0]


# ---------------------------------------------------------------------------------------------- bad input
def make_source(tmp_path, n=2):
    src = tmp_path / "src"
    write_synthetic_brats(src, n_subjects=n, n_lgg=0, n_tumour_free=0, shape=SMALL)
    return src, src / "HGG" / "Brats17_SYN_000_1", "Brats17_SYN_000_1"


def rewrite(path, array=None, affine=None, dtype=None):
    img = nib.load(str(path))
    arr = np.asanyarray(img.dataobj) if array is None else array
    out = nib.Nifti1Image(arr, img.affine if affine is None else affine)
    out.set_data_dtype(dtype or arr.dtype)
    nib.save(out, str(path))


def assert_fails_and_writes_nothing(tmp_path, src, pattern):
    dst = tmp_path / "out"
    with pytest.raises(WeaksegError, match=pattern) as err:
        convert_brats(src, dst, options=BratsConvertOptions(proportions=(1, 0, 0)))
    assert not dst.exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith("out")]    # no out.tmp-<pid> either
    return str(err.value)


def test_missing_modality_file(tmp_path):
    src, folder, sid = make_source(tmp_path)
    (folder / f"{sid}_t2.nii.gz").unlink()
    assert_fails_and_writes_nothing(tmp_path, src, rf"subject {sid} .*missing 't2' file \(expected {sid}_t2\.nii\.gz\)")


def test_missing_segmentation(tmp_path):
    src, folder, sid = make_source(tmp_path)
    (folder / f"{sid}_seg.nii.gz").unlink()
    assert_fails_and_writes_nothing(tmp_path, src, rf"subject {sid} .*missing 'seg' file")


def test_seg_shape_differs(tmp_path):
    src, folder, sid = make_source(tmp_path)
    seg = np.asanyarray(nib.load(str(folder / f"{sid}_seg.nii.gz")).dataobj)
    rewrite(folder / f"{sid}_seg.nii.gz", array=np.ascontiguousarray(seg[:, :, :-1]))
    assert_fails_and_writes_nothing(tmp_path, src, rf"{sid}_seg\.nii\.gz: shape seg \(24, 24, 7\) differs from flair")


def test_seg_affine_differs(tmp_path):
    src, folder, sid = make_source(tmp_path)
    aff = nib.load(str(folder / f"{sid}_seg.nii.gz")).affine.copy()
    aff[0, 3] += 2.0
    rewrite(folder / f"{sid}_seg.nii.gz", affine=aff)
    assert_fails_and_writes_nothing(tmp_path, src, rf"{sid}_seg\.nii\.gz: affine seg differs from flair")


def test_label_values_outside_brats_set(tmp_path):
    src, folder, sid = make_source(tmp_path)
    seg = np.asanyarray(nib.load(str(folder / f"{sid}_seg.nii.gz")).dataobj).copy()
    seg[seg == 4] = 3
    rewrite(folder / f"{sid}_seg.nii.gz", array=seg)
    assert_fails_and_writes_nothing(tmp_path, src, rf"{sid}_seg\.nii\.gz: label values \[3\] outside the BraTS set")


def test_nan_voxels(tmp_path):
    src, folder, sid = make_source(tmp_path)
    arr = nib.load(str(folder / f"{sid}_flair.nii.gz")).get_fdata(dtype=np.float32)
    arr[3, 4, 5] = np.nan
    rewrite(folder / f"{sid}_flair.nii.gz", array=arr, dtype=np.float32)
    assert_fails_and_writes_nothing(tmp_path, src, rf"subject {sid} .*{sid}_flair\.nii\.gz: 1 NaN/Inf voxels")


def test_truncated_file(tmp_path):
    src, folder, sid = make_source(tmp_path)
    path = folder / f"{sid}_t1ce.nii.gz"
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    assert_fails_and_writes_nothing(tmp_path, src, rf"{sid}_t1ce\.nii\.gz: cannot read voxel data .*truncated")


def test_empty_folder(tmp_path):
    (tmp_path / "src").mkdir()
    assert_fails_and_writes_nothing(tmp_path, tmp_path / "src", r"src: no BraTS subject folders found")


def test_missing_folder(tmp_path):
    assert_fails_and_writes_nothing(tmp_path, tmp_path / "nowhere", r"nowhere: BraTS folder not found")


def test_every_problem_of_every_subject_in_one_message(tmp_path):
    src, folder, sid = make_source(tmp_path, n=3)
    (folder / f"{sid}_t2.nii.gz").unlink()
    other = src / "HGG" / "Brats17_SYN_002_1"
    seg = np.asanyarray(nib.load(str(other / "Brats17_SYN_002_1_seg.nii.gz")).dataobj).copy()
    seg[0, 0, 0] = 7
    rewrite(other / "Brats17_SYN_002_1_seg.nii.gz", array=seg)
    msg = assert_fails_and_writes_nothing(tmp_path, src, r"2 problem\(s\), nothing written")
    lines = msg.splitlines()
    assert len(lines) == 3
    assert f"subject {sid}" in lines[1] and "missing 't2'" in lines[1]
    assert "subject Brats17_SYN_002_1" in lines[2] and "label values [7]" in lines[2]
