"""Bad input for ``weakseg convert`` / ``export`` / ``predict``: one line naming the file and the problem,
exit status 2, nothing written (no output folder, no ``*.tmp-<pid>`` left)."""

from __future__ import annotations

import json
import shutil

import nibabel as nib
import numpy as np
import pytest

from tests.brats_toy import write_untrained_brats_run
from weakseg.cli.main import main
from weakseg.data.formats.nifti import save_volume
from weakseg.data.formats.nnunet_raw import write_nnunet_dataset

SID = "BraTS20_Training_001"


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    """A clean source, its conversion and an untrained seg_only run (a real checkpoint, built not trained)."""
    return write_untrained_brats_run(tmp_path_factory.mktemp("errs"), shape=(24, 24, 8))


@pytest.fixture
def src(base, tmp_path):
    shutil.copytree(base / "src", tmp_path / "src")
    return tmp_path / "src"


def rewrite(path, *, array=None, affine=None, dtype=None):
    img = nib.load(str(path))
    arr = np.asanyarray(img.dataobj) if array is None else array
    save_volume(arr, (img.affine if affine is None else affine, img.header), path,
                dtype=dtype or img.get_data_dtype())


def fails(capsys, argv, out, pattern):
    """Run the CLI; exit 2, one stderr line matching ``pattern``, and ``out`` not written."""
    import re

    assert main([str(a) for a in argv]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err, err
    assert re.search(pattern, err), err
    assert not out.exists()
    assert not list(out.parent.glob(f"{out.name}.tmp-*"))
    return err


# ------------------------------------------------------------------------------------------- convert brats
def test_convert_missing_modality(src, tmp_path, capsys):
    (src / SID / f"{SID}_t1.nii.gz").unlink()
    fails(capsys, ["convert", "brats", src, tmp_path / "out"], tmp_path / "out",
          rf"subject {SID} .*missing 't1' file \(expected {SID}_t1\.nii\.gz\)")


def test_convert_seg_shape_mismatch(src, tmp_path, capsys):
    seg = np.asanyarray(nib.load(str(src / SID / f"{SID}_seg.nii.gz")).dataobj)
    rewrite(src / SID / f"{SID}_seg.nii.gz", array=np.ascontiguousarray(seg[:, :, :-1]))
    fails(capsys, ["convert", "brats", src, tmp_path / "out"], tmp_path / "out",
          rf"{SID}_seg\.nii\.gz: shape seg \(24, 24, 7\) differs")


def test_convert_seg_affine_mismatch(src, tmp_path, capsys):
    aff = nib.load(str(src / SID / f"{SID}_seg.nii.gz")).affine.copy()
    aff[1, 3] += 3.0
    rewrite(src / SID / f"{SID}_seg.nii.gz", affine=aff)
    fails(capsys, ["convert", "brats", src, tmp_path / "out"], tmp_path / "out",
          rf"{SID}_seg\.nii\.gz: affine seg differs from flair")


def test_convert_labels_outside_set(src, tmp_path, capsys):
    seg = np.asanyarray(nib.load(str(src / SID / f"{SID}_seg.nii.gz")).dataobj).copy()
    seg[seg == 4] = 3
    rewrite(src / SID / f"{SID}_seg.nii.gz", array=seg)
    fails(capsys, ["convert", "brats", src, tmp_path / "out"], tmp_path / "out",
          rf"{SID}_seg\.nii\.gz: label values \[3\] outside the BraTS set")


def test_convert_nan_voxels(src, tmp_path, capsys):
    arr = nib.load(str(src / SID / f"{SID}_flair.nii.gz")).get_fdata(dtype=np.float32)
    arr[5, 5, 3] = np.nan
    rewrite(src / SID / f"{SID}_flair.nii.gz", array=arr, dtype=np.float32)
    fails(capsys, ["convert", "brats", src, tmp_path / "out"], tmp_path / "out",
          rf"{SID}_flair\.nii\.gz: 1 NaN/Inf voxels")


def test_convert_truncated_file(src, tmp_path, capsys):
    path = src / SID / f"{SID}_t2.nii.gz"
    path.write_bytes(path.read_bytes()[:300])
    fails(capsys, ["convert", "brats", src, tmp_path / "out"], tmp_path / "out",
          rf"{SID}_t2\.nii\.gz: cannot read .*truncated")


def test_convert_empty_folder(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    fails(capsys, ["convert", "brats", tmp_path / "empty", tmp_path / "out"], tmp_path / "out",
          r"empty: no BraTS subject folders found")


# ------------------------------------------------------------------------------------------- convert nnunet
@pytest.mark.parametrize("key", ["channel_names", "labels", "numTraining", "file_ending"])
def test_convert_nnunet_missing_key(tmp_path, capsys, key):
    root = tmp_path / "Dataset900_X"
    write_nnunet_dataset(root, [{"case_id": "c0", "affine": np.eye(4), "channels": [np.zeros((4, 4, 3), np.float32)],
                                 "label": np.zeros((4, 4, 3), np.uint8)}],
                         channel_names=["CT"], labels={"background": 0, "liver": 1})
    data = json.loads((root / "dataset.json").read_text())
    del data[key]
    (root / "dataset.json").write_text(json.dumps(data))
    fails(capsys, ["convert", "nnunet", root, tmp_path / "idx"], tmp_path / "idx",
          rf"dataset\.json: missing required key\(s\) '{key}'")


def test_convert_nnunet_good_and_export(base, tmp_path, capsys):
    assert main(["export", "nnunet", str(base / "conv"), str(tmp_path / "Dataset501_B")]) == 0
    assert main(["convert", "nnunet", str(tmp_path / "Dataset501_B"), str(tmp_path / "idx")]) == 0
    index = json.loads((tmp_path / "idx" / "index.json").read_text())
    assert {c["status"]["tumour"] for c in index["cases"]} <= {"mask", "present", "absent"}
    capsys.readouterr()
    fails(capsys, ["export", "nnunet", tmp_path / "nothing", tmp_path / "D2"], tmp_path / "D2",
          r"nothing: no index\.json")


# ------------------------------------------------------------------------------------------- predict
def test_predict_run_without_checkpoint(base, src, tmp_path, capsys):
    (tmp_path / "emptyrun").mkdir()
    fails(capsys, ["predict", tmp_path / "emptyrun", src, tmp_path / "out"], tmp_path / "out",
          r"emptyrun: no checkpoint best\.pt")


def test_predict_wrong_channel_count(base, tmp_path, capsys):
    ts = tmp_path / "imagesTs"
    for i in range(3):
        save_volume(np.ones((8, 8, 8), np.float32), (np.eye(4), None), ts / f"case7_{i:04d}.nii.gz")
    fails(capsys, ["predict", base / "run", ts, tmp_path / "out", "--channels", "flair,t1ce,t1,t2"], tmp_path / "out",
          r"case case7: 3 channel file\(s\) .*model takes 4")


def test_predict_missing_modality(base, src, tmp_path, capsys):
    (src / SID / f"{SID}_flair.nii.gz").unlink()
    fails(capsys, ["predict", base / "run", src, tmp_path / "out"], tmp_path / "out",
          rf"subject {SID} .*missing 'flair' file")


def test_predict_nan_voxels_leave_nothing(base, src, tmp_path, capsys):
    sid = "BraTS20_Training_002"           # the second case: the first is predicted before the NaN is met
    arr = nib.load(str(src / sid / f"{sid}_t1ce.nii.gz")).get_fdata(dtype=np.float32)
    arr[4, 4, 4] = np.inf
    rewrite(src / sid / f"{sid}_t1ce.nii.gz", array=arr, dtype=np.float32)
    fails(capsys, ["predict", base / "run", src, tmp_path / "out", "--no-progress"], tmp_path / "out",
          rf"{sid}_t1ce\.nii\.gz: 1 NaN/Inf voxels")


def test_predict_truncated_input(base, src, tmp_path, capsys):
    path = src / SID / f"{SID}_t2.nii.gz"
    path.write_bytes(path.read_bytes()[:200])
    fails(capsys, ["predict", base / "run", src, tmp_path / "out"], tmp_path / "out",
          rf"{SID}_t2\.nii\.gz: cannot read")


def test_predict_references_need_matching_seg(base, src, tmp_path, capsys):
    aff = nib.load(str(src / SID / f"{SID}_seg.nii.gz")).affine.copy()
    aff[0, 0] *= 2
    rewrite(src / SID / f"{SID}_seg.nii.gz", affine=aff)
    fails(capsys, ["predict", base / "run", src, tmp_path / "out", "--references"], tmp_path / "out",
          rf"{SID}_seg\.nii\.gz: affine seg differs")


def test_predict_empty_input(base, tmp_path, capsys):
    (tmp_path / "in").mkdir()
    fails(capsys, ["predict", base / "run", tmp_path / "in", tmp_path / "out"], tmp_path / "out",
          r"in: no BraTS subject folders found")
