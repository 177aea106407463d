"""nnU-Net v2 raw layout: dataset.json checks, case listing, round trip, import validation.

The BraTS export to this layout, and nnU-Net's own integrity check of it, are tested in
``tests/data/brats/test_export.py``.
"""

from __future__ import annotations

import json

import nibabel as nib
import numpy as np
import pytest

from weakseg.data.formats.nifti import load_volume
from weakseg.data.formats.nnunet_raw import (
    attach_statuses,
    convert_nnunet,
    list_cases,
    read_dataset_json,
    write_dataset_json,
    write_nnunet_dataset,
)
from weakseg.errors import WeaksegError

WEAKSEG_BLOCK = {"format": 1, "default_status": "mask",
                 "cases": {"abd_0001": {"status": {"stomach": "absent"}}}}


def oblique() -> np.ndarray:
    aff = np.eye(4)
    c, s = np.cos(0.2), np.sin(0.2)
    aff[:3, :3] = np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]]) @ np.diag([0.8, 0.8, 2.5])
    aff[:3, 3] = (5, -3, 12)
    return aff


def make_cases(n_train=3, n_test=1):
    rng = np.random.default_rng(0)
    cases = []
    for i in range(n_train + n_test):
        label = rng.integers(0, 3, size=(5, 4, 3)).astype(np.uint8) if i < n_train else None
        if i == 1:
            label[label == 2] = 0          # abd_0001: stomach 'absent' in WEAKSEG_BLOCK, so no stomach voxel
        cases.append({"case_id": f"abd_{i:04d}", "split": "train" if i < n_train else "test", "affine": oblique(),
                      "channels": [rng.normal(size=(5, 4, 3)).astype(np.float32) for _ in range(2)],
                      "label": label})
    return cases


@pytest.fixture
def raw(tmp_path):
    root = tmp_path / "Dataset900_Abd"
    cases = make_cases()
    write_nnunet_dataset(root, cases, channel_names=["CT", "PET"],
                         labels={"background": 0, "liver": 1, "stomach": 2}, weakseg_block=WEAKSEG_BLOCK)
    return root, cases


def test_round_trip(raw):
    root, cases = raw
    ds = read_dataset_json(root)
    assert ds.channel_names == {"0": "CT", "1": "PET"} and ds.num_training == 3 and ds.file_ending == ".nii.gz"
    assert ds.class_names == ("liver", "stomach") and ds.weakseg == WEAKSEG_BLOCK     # raw block kept
    train, test = list_cases(root, "train"), list_cases(root, "test")
    assert [c.case_id for c in train] == ["abd_0000", "abd_0001", "abd_0002"]
    assert [c.case_id for c in test] == ["abd_0003"]
    assert train[0].images[1].name == "abd_0000_0001.nii.gz" and train[0].label.name == "abd_0000.nii.gz"
    assert test[0].label is None and all(c.status is None for c in train)
    for rec, case in zip(train + test, cases):
        for path, arr in zip(rec.images, case["channels"]):
            vol = load_volume(path)
            np.testing.assert_array_equal(vol.array, arr)
            assert np.allclose(vol.affine, oblique(), atol=1e-5)
        if rec.label is not None:
            lab = load_volume(rec.label, kind="label")
            np.testing.assert_array_equal(lab.array, case["label"])
            assert lab.array.dtype == np.uint8


def test_monai_reads_the_training_list(raw):
    from monai.data import load_decathlon_datalist

    root, _ = raw
    items = load_decathlon_datalist(str(root / "dataset.json"), data_list_key="training", base_dir=str(root))
    assert len(items) == 3
    assert items[1]["image"][0].endswith("imagesTr/abd_0001_0000.nii.gz")
    assert items[1]["label"].endswith("labelsTr/abd_0001.nii.gz")


def test_convert_nnunet_indexes_a_valid_dataset(raw, tmp_path):
    root, _ = raw
    report = convert_nnunet(root, tmp_path / "idx")
    assert report["n_train"] == 3 and report["n_test"] == 1 and report["weakseg"] == WEAKSEG_BLOCK
    index = json.loads((tmp_path / "idx" / "index.json").read_text())
    assert index["cases"][0]["images"] == ["imagesTr/abd_0000_0000.nii.gz", "imagesTr/abd_0000_0001.nii.gz"]
    assert np.allclose(index["cases"][0]["affine"], oblique(), atol=1e-5) and index["cases"][0]["shape"] == [5, 4, 3]


def test_convert_nnunet_resolves_statuses(raw, tmp_path):
    root, _ = raw
    report = convert_nnunet(root, tmp_path / "idx")
    index = json.loads((tmp_path / "idx" / "index.json").read_text())
    status = {c["case_id"]: c["status"] for c in index["cases"]}
    assert status["abd_0001"] == {"liver": "mask", "stomach": "absent"}
    assert status["abd_0000"] == status["abd_0003"] == {"liver": "mask", "stomach": "mask"}
    assert report["status_counts"]["stomach"] == {"mask": 3, "present": 0, "absent": 1, "unknown": 0}


def test_attach_statuses_sources_and_default(raw):
    root, _ = raw
    ds = read_dataset_json(root)
    ds.weakseg = {"format": 1, "default_status": "unknown", "sources": {"lits": {"annotated": ["liver"]}},
                  "cases": {"abd_0000": {"source": "lits"}, "abd_0002": {"status": {"liver": "present"}}}}
    cases = list_cases(root, "train", dataset=ds)
    resolved = attach_statuses(cases, ds)
    assert cases[0].status == {"liver": "mask", "stomach": "unknown"}          # source: annotated -> mask
    assert cases[1].status == {"liver": "unknown", "stomach": "unknown"}       # default_status
    assert cases[2].status == {"liver": "present", "stomach": "unknown"}       # per-case status wins
    assert resolved["abd_0000"] == cases[0].status


def test_no_weakseg_block_means_every_class_mask(raw):
    root, _ = raw
    ds = read_dataset_json(root)
    ds.weakseg = None
    cases = list_cases(root, "train", dataset=ds)
    attach_statuses(cases, ds)
    assert all(c.status == {"liver": "mask", "stomach": "mask"} for c in cases)


def test_bad_status_in_block_is_named(raw, tmp_path):
    root, _ = raw
    data = json.loads((root / "dataset.json").read_text())
    data["weakseg"]["cases"]["abd_0001"]["status"]["stomach"] = "missing"
    (root / "dataset.json").write_text(json.dumps(data))
    with pytest.raises(WeaksegError, match="abd_0001.*'missing'") as err:
        convert_nnunet(root, tmp_path / "idx")
    assert "\n" not in str(err.value) and not (tmp_path / "idx").exists()


def test_absent_class_with_voxels_is_an_error(raw, tmp_path):
    root, _ = raw
    data = json.loads((root / "dataset.json").read_text())
    data["weakseg"]["cases"] = {"abd_0000": {"status": {"stomach": "absent"}}}    # abd_0000 holds stomach voxels
    (root / "dataset.json").write_text(json.dumps(data))
    with pytest.raises(WeaksegError, match="abd_0000.nii.gz holds voxels of 'stomach'.*'absent'"):
        convert_nnunet(root, tmp_path / "idx")
    assert not (tmp_path / "idx").exists()


@pytest.mark.parametrize("key", ["channel_names", "labels", "numTraining", "file_ending"])
def test_missing_required_key_is_named(raw, key):
    root, _ = raw
    data = json.loads((root / "dataset.json").read_text())
    del data[key]
    (root / "dataset.json").write_text(json.dumps(data))
    with pytest.raises(WeaksegError, match=rf"dataset\.json: missing required key\(s\) '{key}'"):
        read_dataset_json(root)


def test_msd_style_labels_are_rejected(raw):
    root, _ = raw
    data = json.loads((root / "dataset.json").read_text())
    data["labels"] = {"0": "background", "1": "liver"}
    (root / "dataset.json").write_text(json.dumps(data))
    with pytest.raises(WeaksegError, match=r"'labels' must map names to integers"):
        read_dataset_json(root)


def test_missing_dataset_json(tmp_path):
    with pytest.raises(WeaksegError, match=r"dataset\.json: not found"):
        read_dataset_json(tmp_path)


def test_layout_problems_are_collected(raw, tmp_path):
    root, _ = raw
    (root / "imagesTr" / "abd_0001_0001.nii.gz").unlink()
    (root / "labelsTr" / "abd_0002.nii.gz").unlink()
    (root / "imagesTr" / "._abd_0000_0000.nii.gz").write_bytes(b"macOS junk")   # skipped silently
    with pytest.raises(WeaksegError) as err:
        convert_nnunet(root, tmp_path / "idx")
    msg = str(err.value)
    assert "case abd_0001: missing channel file(s) abd_0001_0001.nii.gz" in msg
    assert "case abd_0002: label" in msg and "not found" in msg
    assert not (tmp_path / "idx").exists()


def test_num_training_mismatch(raw):
    root, _ = raw
    data = json.loads((root / "dataset.json").read_text())
    data["numTraining"] = 7
    (root / "dataset.json").write_text(json.dumps(data))
    with pytest.raises(WeaksegError, match="numTraining is 7 but imagesTr holds 3"):
        list_cases(root)


def test_voxel_problems_found_by_import(raw, tmp_path):
    root, _ = raw
    lab_path = root / "labelsTr" / "abd_0000.nii.gz"
    img = nib.load(str(lab_path))
    bad = np.asanyarray(img.dataobj).copy()
    bad[0, 0, 0] = 9
    nib.save(nib.Nifti1Image(bad, img.affine), str(lab_path))
    shifted = oblique()
    shifted[2, 3] += 1
    other = root / "labelsTr" / "abd_0001.nii.gz"
    nib.save(nib.Nifti1Image(np.zeros((5, 4, 3), np.uint8), shifted), str(other))
    with pytest.raises(WeaksegError) as err:
        convert_nnunet(root, tmp_path / "idx")
    msg = str(err.value)
    assert "case abd_0000: abd_0000.nii.gz holds label value(s) [9] not declared" in msg
    assert "case abd_0001: affine abd_0001.nii.gz differs from abd_0001_0000.nii.gz" in msg
    assert not (tmp_path / "idx").exists()


def test_write_dataset_json_accepts_a_list_of_channels(tmp_path):
    write_dataset_json(tmp_path, channel_names=["T1", "T2"], labels={"background": 0, "a": 1}, num_training=0)
    assert read_dataset_json(tmp_path).channel_names == {"0": "T1", "1": "T2"}
