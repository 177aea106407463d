"""weakseg.inference.predict_organs: organ runs predict whole volumes on the input grid, as evaluate does."""

from __future__ import annotations

import json
import os
import shutil

import nibabel as nib
import numpy as np
import pytest
import torch

from weakseg.cli.main import main
from weakseg.data.formats.nifti import to_ras
from weakseg.errors import WeaksegError
from weakseg.inference.predict import predict_folder
from weakseg.inference.predict_organs import FLIPS, load_organ_predictor
from weakseg.inference.report import evaluate_run
from weakseg.metrics import score_folders

# Header fields a label map may differ in from its CT (data type, scaling, intensity range).
_DATA_FIELDS = {"datatype", "bitpix", "scl_slope", "scl_inter", "cal_max", "cal_min", "vox_offset", "glmax", "glmin"}


def _labels(path):
    return np.asanyarray(nib.load(path).dataobj)


def test_predict_and_score_equal_the_python_evaluation(trained, tmp_path):
    root, ds, metrics, test_ids = trained
    report = predict_folder(root / "run", root / "imagesTs", tmp_path / "pred", checkpoint="last", device="cpu",
                            progress=False)
    assert [c["case_id"] for c in report["cases"]] == test_ids
    summary = score_folders(tmp_path / "pred", root / "refs")
    names = summary["weakseg"]["labels"]
    got = {pc["case_id"]: {names[k]: v["Dice"] for k, v in pc["metrics"].items()} for pc in summary["metric_per_case"]}
    assert set(got) == set(metrics["per_case"])
    for case, per_organ in metrics["per_case"].items():
        for organ, dice in per_organ.items():
            assert got[case][organ] == pytest.approx(dice, abs=1e-6), (case, organ)
    for key, organ in names.items():
        assert summary["mean"][key]["Dice"] == pytest.approx(metrics[f"dice_{organ}"], abs=1e-6)
    # a real test: the model predicts organs, so equal Dice is not 0 == 0
    assert metrics["dice_liver"] > 0.3
    written = json.loads((tmp_path / "pred" / "dataset.json").read_text())
    assert written["labels"] == {"background": 0, "liver": 1, "stomach": 2, "pancreas": 3}


def _reoriented_copy(src, dst, codes):
    """The same voxels stored in another axis order (world positions unchanged)."""
    img = nib.load(src)
    out = img.as_reoriented(nib.orientations.ornt_transform(nib.orientations.io_orientation(img.affine),
                                                             nib.orientations.axcodes2ornt(codes)))
    out.header.set_xyzt_units("mm", "sec")
    out.header["descrip"] = b"weakseg test copy"
    nib.save(out, dst)
    return out


def _oblique_copy(src, dst):
    """Anisotropic voxels (0.8 x 0.8 x 2.5 mm) and a 10 degree rotation about z: an oblique affine."""
    img = nib.load(src)
    a = np.deg2rad(10.0)
    rot = np.array([[np.cos(a), -np.sin(a), 0, 0], [np.sin(a), np.cos(a), 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]])
    affine = rot @ np.diag([0.8, 0.8, 2.5, 1.0])
    affine[:3, 3] = [12.5, -30.0, 7.0]
    out = nib.Nifti1Image(np.asanyarray(img.dataobj), affine)
    out.set_qform(affine, code=1)
    out.set_sform(affine, code=2)
    nib.save(out, dst)
    return out


def test_any_orientation_in_the_same_out(trained, tmp_path):
    root, ds, _, test_ids = trained
    case = test_ids[0]
    src = ds / "imagesTr" / f"{case}_0000.nii.gz"
    inp = tmp_path / "in"
    inp.mkdir()
    shutil.copy(src, inp / "ras_0000.nii.gz")
    for codes in ("LPS", "PSL", "IAL"):
        _reoriented_copy(src, inp / f"{codes.lower()}_0000.nii.gz", codes)
    _oblique_copy(src, inp / "oblique_0000.nii.gz")
    predict_folder(root / "run", inp, tmp_path / "out", checkpoint="last", device="cpu", progress=False,
                   probabilities=True)
    ras_pred = _labels(tmp_path / "out" / "ras.nii.gz")
    assert len(np.unique(ras_pred)) >= 3
    for name in ("ras", "lps", "psl", "ial", "oblique"):
        img_in = nib.load(inp / f"{name}_0000.nii.gz")
        pred = nib.load(tmp_path / "out" / f"{name}.nii.gz")
        assert nib.aff2axcodes(img_in.affine) == (tuple(name.upper()) if len(name) == 3 else ("R", "A", "S"))
        assert pred.shape == img_in.shape and pred.get_data_dtype() == np.uint8
        np.testing.assert_array_equal(pred.affine, img_in.affine)
        for field in img_in.header:                  # the input's header, apart from the data type fields
            if field not in _DATA_FIELDS:
                np.testing.assert_array_equal(pred.header[field], img_in.header[field], err_msg=f"{name}: {field}")
        # brought to RAS, every orientation gives the RAS input's prediction voxel for voxel
        np.testing.assert_array_equal(to_ras(np.asanyarray(pred.dataobj), pred.affine), ras_pred, err_msg=name)
        prob = nib.load(tmp_path / "out" / "probabilities" / f"{name}.nii.gz")
        assert prob.shape == (*img_in.shape, 3) and prob.get_data_dtype() == np.float32
        np.testing.assert_array_equal(prob.affine, img_in.affine)


def test_probabilities_decode_to_the_label_map_and_tta_averages_flips(trained, tmp_path):
    from weakseg.evaluation.decode import decode_label_map

    root, ds, _, test_ids = trained
    inp = tmp_path / "in"
    inp.mkdir()
    _reoriented_copy(ds / "imagesTr" / f"{test_ids[0]}_0000.nii.gz", inp / "c_0000.nii.gz", "LPS")
    report = predict_folder(root / "run", inp, tmp_path / "tta", checkpoint="last", device="cpu", progress=False,
                            probabilities=True, tta=True)
    assert report["probabilities"]["channels"] == ["liver", "stomach", "pancreas"] and report["tta"]
    probs = np.asanyarray(nib.load(tmp_path / "tta" / "probabilities" / "c.nii.gz").dataobj)     # (I, J, K, 3)
    labels = _labels(tmp_path / "tta" / "c.nii.gz")
    decoded = decode_label_map(torch.from_numpy(np.moveaxis(probs, -1, 0)[None]), threshold=0.5)[0].numpy()
    np.testing.assert_array_equal(decoded, labels)                    # label values 1..3 are the class ids
    # TTA = the mean of the probabilities of the four in-plane flips, each undone
    predictor, _ = load_organ_predictor(root / "run", checkpoint="last", device="cpu")
    vol = nib.load(inp / "c_0000.nii.gz")
    image = to_ras(vol.get_fdata(dtype=np.float32), vol.affine)                   # (X, Y, Z): slices are (x, y)
    eye = np.eye(4)
    mean = 0
    for flip in FLIPS:
        axes = [{-1: 0, -2: 1}[f] for f in flip]                      # slice (H, W) = (y, x): -1 -> x, -2 -> y
        _, p = predictor.predict_volume(np.flip(image, axes) if axes else image, eye, with_probabilities=True)
        mean = mean + (np.flip(p, axes) if axes else p)
    np.testing.assert_allclose(to_ras(probs, vol.affine), mean / 4, atol=1e-5)
    assert not np.allclose(to_ras(probs, vol.affine), predictor.predict_volume(image, eye, with_probabilities=True)[1],
                           atol=1e-3)


def test_runs_without_a_stored_contract_read_their_training_dataset(trained, tmp_path):
    root, ds, _, test_ids = trained
    old = tmp_path / "old_run"
    shutil.copytree(root / "run", old)
    path = old / "checkpoints" / "last.pt"
    ckpt = torch.load(path, weights_only=True)
    assert ckpt["data_contract"]["labels"] == {"background": 0, "liver": 1, "stomach": 2, "pancreas": 3}
    del ckpt["data_contract"]
    torch.save(ckpt, path)
    predict_folder(old, root / "imagesTs", tmp_path / "a", checkpoint="last", device="cpu", progress=False)
    predict_folder(root / "run", root / "imagesTs", tmp_path / "b", checkpoint="last", device="cpu", progress=False)
    for c in test_ids:
        np.testing.assert_array_equal(_labels(tmp_path / "a" / f"{c}.nii.gz"), _labels(tmp_path / "b" / f"{c}.nii.gz"))
    ckpt["config"]["data"]["organs"]["root"] = str(tmp_path / "gone")
    torch.save(ckpt, path)
    with pytest.raises(WeaksegError, match="predates stored data contracts"):
        predict_folder(old, root / "imagesTs", tmp_path / "c", checkpoint="last", device="cpu", progress=False)


def _input_folder(tmp_path, ds, case, files):
    inp = tmp_path / "bad"
    inp.mkdir()
    for name in files:
        os.symlink(ds / "imagesTr" / f"{case}_0000.nii.gz", inp / name)
    return inp


@pytest.mark.parametrize("files,extra,match", [
    (["c_0001.nii.gz"], None, r"channel files \[1\] are not numbered 0..0"),
    (["c_0000.nii.gz", "c_0001.nii.gz"], None, r"2 channel file\(s\).*model takes 1 \(CT\)"),
    (["c_0000.nii.gz"], {"0": "MR"}, r"channel_names \['MR'\] differ from the run's channels \['CT'\]"),
    (["c.nii.gz"], None, "lacks the _XXXX channel suffix"),
])
def test_bad_inputs_are_refused_before_writing(trained, tmp_path, files, extra, match):
    root, ds, _, test_ids = trained
    inp = _input_folder(tmp_path, ds, test_ids[0], files)
    if extra is not None:
        (inp / "dataset.json").write_text(json.dumps({"channel_names": extra}))
    with pytest.raises(WeaksegError, match=match):
        predict_folder(root / "run", inp, tmp_path / "out", checkpoint="last", device="cpu", progress=False)
    assert not (tmp_path / "out").exists() and not list(tmp_path.glob("out.tmp-*"))


def test_an_existing_output_folder_is_kept(trained, tmp_path, capsys):
    root, _, _, _ = trained
    out = tmp_path / "out"
    out.mkdir()
    (out / "mine.txt").write_text("keep")
    rc = main(["predict", str(root / "run"), str(root / "imagesTs"), str(out), "--checkpoint", "last",
               "--device", "cpu", "--no-progress"])
    assert rc == 2 and "already exists" in capsys.readouterr().err
    assert [p.name for p in out.iterdir()] == ["mine.txt"]
    assert main(["predict", str(root / "run"), str(root / "imagesTs"), str(out), "--checkpoint", "last",
                 "--device", "cpu", "--no-progress", "--overwrite", "--save-probabilities"]) == 0
    assert not (out / "mine.txt").exists() and (out / "probabilities").is_dir()


@pytest.mark.parametrize("config,extra", [("mnist/mnist48_simple_genseg", ["model.name=genseg"]),
                                          ("mnist/mnist48_simple_seg_only", [])])
def test_genseg_and_seg_only_runs_on_organs_predict_as_they_evaluate(trained, tmp_path, config, extra):
    from tests.organs_toy import organs_overrides

    root, ds, _, test_ids = trained
    sets = organs_overrides(ds, None, **{"train.steps": 2, "train.select_metric": "mean_dice", "data.preset": "null",
                                         "data.name": "organs"}) + extra
    run = tmp_path / "run"
    assert main(["train", config, "--out", str(run), "--no-progress", *[x for s in sets for x in ("--set", s)]]) == 0
    metrics = evaluate_run(run, split="test", which="last", device="cpu", write=False)["metrics"]
    predict_folder(run, root / "imagesTs", tmp_path / "pred", checkpoint="last", device="cpu", progress=False)
    summary = score_folders(tmp_path / "pred", root / "refs")
    names = summary["weakseg"]["labels"]
    for pc in summary["metric_per_case"]:
        for key, m in pc["metrics"].items():
            assert m["Dice"] == pytest.approx(metrics["per_case"][pc["case_id"]][names[key]], abs=1e-6)
    assert sorted(pc["case_id"] for pc in summary["metric_per_case"]) == test_ids


def test_default_batches_are_capped_by_pixels():
    from weakseg.inference.predict_organs import OrganPredictor

    p = OrganPredictor(lambda x: x, {}, torch.device("cpu"), 64)
    assert p.slices_per_batch(512, 512) == 4 and p.slices_per_batch(32, 32) == 64 and p.slices_per_batch(2048, 2048) == 1
    assert OrganPredictor(lambda x: x, {}, torch.device("cpu"), 16, fixed_batch=True).slices_per_batch(512, 512) == 16


def test_another_in_plane_size_is_predicted_as_it_is_and_reported(trained, tmp_path, caplog):
    root, ds, _, test_ids = trained
    img = nib.load(ds / "imagesTr" / f"{test_ids[0]}_0000.nii.gz")                # (x, y, z) = (32, 32, 6)
    inp = tmp_path / "in"
    inp.mkdir()
    crop = nib.Nifti1Image(np.asanyarray(img.dataobj)[2:30, 1:31], img.affine, img.header)   # R 28 x A 30
    psl = crop.as_reoriented(nib.orientations.axcodes2ornt("PSL"))                  # axes permuted and flipped
    nib.save(psl, inp / "crop_0000.nii.gz")
    with caplog.at_level("WARNING"):
        report = predict_folder(root / "run", inp, tmp_path / "out", checkpoint="last", device="cpu", progress=False)
    rec = report["cases"][0]
    assert rec["slice_shape"] == [30, 28] and rec["training_slice_shape"] == [32, 32]
    assert "axial slices of 30 x 28 voxels, the run was trained on 32 x 32" in caplog.text
    assert nib.aff2axcodes(psl.affine) != ("R", "A", "S") and psl.shape != crop.shape
    assert nib.load(tmp_path / "out" / "crop.nii.gz").shape == psl.shape
