"""convert_brats end to end on synthetic BraTS data (the ``converted`` fixture is in conftest.py)."""

from __future__ import annotations

import json
import logging

import numpy as np
import pytest

import weakseg.data.brats.convert as bd
from tests.brats_toy import CONVERTED_OPTIONS, CONVERTED_SHAPE
from weakseg.data.brats.convert import BratsConvertOptions, convert_brats
from weakseg.data.brats.dataset import BratsSliceSet, layout_of, read_index
from weakseg.data.brats.preprocess import KIND_A, KIND_OTHER, KIND_P, prepare_subject, volume_from_slices
from weakseg.data.brats.reader import find_brats_subjects, load_subject
from weakseg.data.brats.synthetic import write_synthetic_brats
from weakseg.errors import WeaksegError

SHAPE = CONVERTED_SHAPE                      # the source and options of conftest.py's ``converted``
OPTS = BratsConvertOptions(**CONVERTED_OPTIONS)


def test_layout_on_disk(converted):
    root, _, _ = converted
    out = root / "out"
    assert sorted(p.name for p in root.iterdir()) == ["out", "src"]
    assert sorted(p.name for p in out.iterdir()) == ["conversion_report.json", "index.json", "splits.json",
                                                     "test", "train", "valid"]
    images = np.load(out / "train" / "images.npy", mmap_mode="r")
    assert isinstance(images, np.memmap) and images.dtype == np.float16 and images.shape[1:] == (4, 24, 12)
    masks = np.load(out / "train" / "masks.npy", mmap_mode="r")
    assert masks.dtype == np.uint8 and masks.shape == (images.shape[0], 1, 24, 12)
    index = read_index(out)
    assert index["channel_names"] == ["flair", "t1ce", "t1", "t2"] and index["slice_shape"] == [24, 12]


def test_report_counts_match_the_arrays(converted):
    root, subjects, report = converted
    out = root / "out"
    assert json.loads((out / "conversion_report.json").read_text()) == report
    assert report["n_subjects"] == 8 and report["grades"] == {"HGG": 6, "LGG": 2}
    assert report["options"]["labelled_fraction"] == 0.3 and report["weakseg_version"]
    # HGG 6 -> valid round(6/6)=1, test 1; LGG 2 -> round(2/6)=0 each.
    assert {s: report["splits"][s]["patients"] for s in ("train", "valid", "test")} == {"train": 6, "valid": 1,
                                                                                         "test": 1}
    for split in ("train", "valid", "test"):
        kind = np.load(out / split / "kind.npy")
        lab = np.load(out / split / "labelled.npy")
        c = report["splits"][split]
        assert c["rows"] == len(kind) == len(np.load(out / split / "images.npy", mmap_mode="r"))
        assert c["p"] == (kind == KIND_P).sum() and c["a"] == (kind == KIND_A).sum()
        assert c["other"] == (kind == KIND_OTHER).sum()
        assert c["labelled_p"] == ((kind == KIND_P) & lab).sum()
    assert report["splits"]["train"]["other"] == 0                       # training keeps P and A only
    for split in ("valid", "test"):                                       # every slice of val/test patients
        assert report["splits"][split]["rows"] == 2 * SHAPE[2] * report["splits"][split]["patients"]
    tr = report["splits"]["train"]
    assert report["train_p_slices"] == tr["p"] and report["train_labelled_p_slices"] == tr["labelled_p"]
    assert report["labelled_fraction_actual"] == pytest.approx(tr["labelled_p"] / tr["p"])
    assert report["labelled_fraction_actual"] >= 0.3


def test_rows_hold_the_prepared_slices(converted):
    root, _, _ = converted
    out = root / "out"
    index = read_index(out)
    ds = BratsSliceSet(out, "valid", include="all")
    pid = ds.patients[0]
    subj = next(s for s in find_brats_subjects(root / "src") if s.subject_id == pid)
    loaded = load_subject(subj, channels=ds.channel_names)
    prep = prepare_subject(loaded.images, loaded.seg, loaded.affine)
    z, side = ds.z.astype(int), ds.side.astype(int)
    np.testing.assert_allclose(ds.images_at(np.arange(len(ds))), prep.images[z, side].astype(np.float16), atol=0)
    gt = ds.ground_truth_at(np.arange(len(ds)))[:, 0]                     # (N, H, W)
    np.testing.assert_array_equal(gt, prep.mask[z, side])
    # Rebuild the patient's whole-tumour volume on its original grid from the stored slices.
    slices = np.zeros((SHAPE[2], 2, 24, 12), dtype=np.uint8)
    slices[z, side] = gt
    vol = volume_from_slices(slices, layout_of(index, pid), np.asarray(index["patients"][pid]["affine"]))
    np.testing.assert_array_equal(vol, np.isin(loaded.seg, (1, 2, 4)))


def test_labelled_patients_are_logged(tmp_path, caplog):
    write_synthetic_brats(tmp_path / "src", n_subjects=3, n_lgg=0, shape=SHAPE)
    with caplog.at_level(logging.INFO, logger="weakseg.data.brats.convert"):
        rep = convert_brats(tmp_path / "src", tmp_path / "out", options=BratsConvertOptions(proportions=(1, 0, 0)))
    assert "labelled training patients" in caplog.text and rep["labelled_patients"][0] in caplog.text


def test_refuses_to_overwrite_unless_asked(converted, tmp_path):
    root, _, _ = converted
    dst = tmp_path / "out"
    dst.mkdir()
    (dst / "keep.txt").write_text("x")
    with pytest.raises(WeaksegError, match="already exists"):
        convert_brats(root / "src", dst, options=OPTS)
    assert (dst / "keep.txt").exists()
    convert_brats(root / "src", dst, options=OPTS, overwrite=True)
    assert not (dst / "keep.txt").exists() and (dst / "index.json").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_failure_while_writing_leaves_nothing(converted, tmp_path, monkeypatch):
    root, _, _ = converted
    calls = {"n": 0}
    real = bd.prepare_subject

    def failing(*args, **kwargs):
        if kwargs.get("with_images", True):
            calls["n"] += 1
            if calls["n"] == 3:
                raise OSError("disk full")
        return real(*args, **kwargs)

    monkeypatch.setattr(bd, "prepare_subject", failing)
    with pytest.raises(OSError, match="disk full"):
        convert_brats(root / "src", tmp_path / "out", options=OPTS)
    assert list(tmp_path.iterdir()) == []


def test_split_file_is_used_and_checked(converted, tmp_path):
    root, subjects, _ = converted
    ids = [s.subject_id for s in subjects]
    split_file = tmp_path / "split.json"
    split_file.write_text(json.dumps({"train": ids[:5], "valid": ids[5:6], "test": ids[6:7]}))
    rep = convert_brats(root / "src", tmp_path / "out",
                        options=BratsConvertOptions(split_file=str(split_file), labelled_fraction=1.0))
    assert json.loads((tmp_path / "out" / "splits.json").read_text()) == json.loads(split_file.read_text())
    assert rep["n_subjects_used"] == 7 and rep["labelled_fraction_actual"] == 1.0
    split_file.write_text(json.dumps({"train": ids[:5] + ["ghost"], "valid": ids[4:5], "test": []}))
    with pytest.raises(WeaksegError, match=r"patient ghost \(train\) has no subject folder") as err:
        convert_brats(root / "src", tmp_path / "out2", options=BratsConvertOptions(split_file=str(split_file)))
    assert f"patient {ids[4]} is in both train and valid" in str(err.value)
    assert not (tmp_path / "out2").exists()


def test_bad_options():
    with pytest.raises(WeaksegError, match="normalization 'z' is not one of per_modality, pooled"):
        BratsConvertOptions(normalization="z")
    with pytest.raises(WeaksegError, match="tumour_threshold 4 must lie in"):
        BratsConvertOptions(tumour_threshold=4)
