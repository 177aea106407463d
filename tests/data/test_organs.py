"""The organs dataset builder: folds by volume, statuses per slice, no leak, bad input."""

from __future__ import annotations

import json

import nibabel as nib
import numpy as np
import pytest
import torch

from tests.organs_toy import make_overlay, make_phantom
from weakseg.data.folds import fold_split
from weakseg.data.organs import load_organs
from weakseg.evaluation.organs import score_slice_set
from weakseg.data.status import MASK, UNKNOWN
from weakseg.errors import WeaksegError


@pytest.fixture(scope="module")
def phantom(tmp_path_factory):
    root = make_phantom(tmp_path_factory.mktemp("organs") / "ds")
    overlay_path = root.parent / "overlay.json"
    overlay = make_overlay(root, overlay_path, alpha=0.7)
    return root, overlay_path, overlay


def test_fold_split_is_by_volume_and_tests_each_volume_once() -> None:
    ids = [f"c{i:02d}" for i in range(11)]
    tested = []
    for k in range(5):
        s = fold_split(ids, n_folds=5, fold=k, seed=3, n_valid=2)
        assert not set(s["train"]) & set(s["test"]) and not set(s["valid"]) & set(s["test"])
        assert not set(s["train"]) & set(s["valid"]) and len(s["valid"]) == 2
        assert sorted(s["train"] + s["valid"] + s["test"]) == ids
        tested += s["test"]
    assert sorted(tested) == ids
    assert fold_split(ids, fold=1, seed=3) == fold_split(list(reversed(ids)), fold=1, seed=3)
    with pytest.raises(WeaksegError, match="fold"):
        fold_split(ids, n_folds=5, fold=5)


def test_slices_inherit_statuses_and_hidden_organs_never_reach_a_batch(phantom) -> None:
    root, overlay_path, overlay = phantom
    d = load_organs(root, status_overlay=overlay_path, n_folds=3, n_valid=1)
    train = d.splits["train"]
    assert train.images.shape[1:] == (1, 32, 32) and 0.0 <= float(train.images.min()) <= float(train.images.max()) <= 1
    for v in train.volumes:
        rows = slice(v["start"], v["start"] + v["depth"])
        removed = overlay["cases"].get(v["case_id"], {}).get("status", {})
        expect = torch.tensor([UNKNOWN if c in removed else MASK for c in d.class_names], dtype=torch.int8)
        assert (train.status[rows] == expect).all()                                   # every slice inherits
        assert set(train.volume[rows].tolist()) == {train.volumes.index(v)}
    hidden = train.status != MASK                                                     # (N, K)
    assert int(train.truth[hidden].sum()) > 0                                          # the truth is kept apart
    batch = train.batch(torch.arange(len(train)))
    assert int(batch.mask[hidden].sum()) == 0                                          # ... and never batched
    assert torch.equal(batch.mask[~hidden], train.truth[~hidden])
    assert not hasattr(batch, "truth")
    # the test fold is scored on its full ground truth, whatever the overlay says
    test = d.splits["test"]
    assert test.score_truth and (test.eval_status == MASK).all()
    vols = {s: {v["case_id"] for v in d.splits[s].volumes} for s in d.splits}
    assert not vols["train"] & vols["test"] and not vols["valid"] & vols["test"]
    assert d.info["n_train_volumes_all_lost"] == sum(
        len(overlay["cases"].get(c, {}).get("status", {})) == 3 for c in vols["train"])


def test_full_labels_expose_hidden_pairs_only_when_asked(phantom) -> None:
    root, overlay_path, _ = phantom
    full = load_organs(root, status_overlay=overlay_path, n_folds=3, n_valid=1, full_labels=True).splits["train"]
    assert (full.status == MASK).all() and torch.equal(full.masks, full.truth)


def test_validation_can_be_scored_on_its_withheld_truth(phantom) -> None:
    root, overlay_path, _ = phantom
    kw = dict(status_overlay=overlay_path, n_folds=3, n_valid=2)
    visible = load_organs(root, **kw).splits["valid"]
    truth = load_organs(root, valid_reference="truth", **kw).splits["valid"]
    assert bool((visible.eval_status == UNKNOWN).any()), "the overlay should hide something in validation"
    assert torch.equal(truth.eval_status, truth.truth_status) and truth.score_truth and not visible.score_truth
    assert torch.equal(truth.masks, visible.masks) and torch.equal(truth.status, visible.status)  # training view
    ids = torch.arange(1, 4).view(1, 3, 1, 1)
    perfect = (truth.truth.long() * ids).amax(1)
    assert score_slice_set(perfect, truth)["foreground_mean"]["Dice"] == pytest.approx(1.0)
    with pytest.raises(WeaksegError, match="data.organs.valid_reference must be one of 'visible', 'truth'"):
        load_organs(root, valid_reference="test", **kw)


def _edit_dataset(src, dst, edit):
    import shutil
    shutil.copytree(src, dst)
    edit(dst)
    return dst


def test_undeclared_label_value_names_the_case(phantom, tmp_path) -> None:
    def edit(root):
        path = root / "labelsTr" / "abd_0002.nii.gz"
        img = nib.load(path)
        arr = np.asanyarray(img.dataobj).copy()
        arr[0, 0, 0] = 7
        nib.save(nib.Nifti1Image(arr, img.affine, img.header), path)
    root = _edit_dataset(phantom[0], tmp_path / "ds", edit)
    with pytest.raises(WeaksegError, match=r"abd_0002.*label value\(s\) \[7\]"):
        load_organs(root, n_folds=3, n_valid=1)


def test_unknown_class_with_voxels_in_a_declared_dataset_is_an_error(phantom, tmp_path) -> None:
    def edit(root):
        meta = json.loads((root / "dataset.json").read_text())
        meta["weakseg"]["cases"]["abd_0003"] = {"status": {"liver": "unknown"}}
        (root / "dataset.json").write_text(json.dumps(meta))
    root = _edit_dataset(phantom[0], tmp_path / "ds", edit)
    with pytest.raises(WeaksegError, match="abd_0003, class liver: status 'unknown'"):
        load_organs(root, n_folds=3, n_valid=1)


def test_image_label_shape_mismatch_names_the_case(phantom, tmp_path) -> None:
    def edit(root):
        path = root / "labelsTr" / "abd_0004.nii.gz"
        img = nib.load(path)
        arr = np.asanyarray(img.dataobj)[:, :, :-1].copy()
        nib.save(nib.Nifti1Image(arr, img.affine, img.header), path)
    root = _edit_dataset(phantom[0], tmp_path / "ds", edit)
    with pytest.raises(WeaksegError, match="abd_0004: image and label do not match: shape"):
        load_organs(root, n_folds=3, n_valid=1)


def test_class_annotated_in_no_training_case_warns(phantom, tmp_path) -> None:
    root = phantom[0]
    ids = [f"abd_{i:04d}" for i in range(1, 7)]
    overlay = {"format": 1, "cases": {c: {"status": {"pancreas": "unknown"}} for c in ids}}
    path = tmp_path / "ov.json"
    path.write_text(json.dumps(overlay))
    with pytest.warns(UserWarning, match="'pancreas' is annotated .* cannot be learned"):
        d = load_organs(root, status_overlay=path, n_folds=3, n_valid=1)
    assert d.info["unlearnable_classes"] == ["pancreas"]


def test_overlay_for_another_fold_is_refused(phantom) -> None:
    root, overlay_path, _ = phantom
    with pytest.raises(WeaksegError, match="made for fold 0"):
        load_organs(root, status_overlay=overlay_path, fold=1, n_folds=3, n_valid=1)
