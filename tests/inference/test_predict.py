"""weakseg.inference.predict: geometry of the written maps, flip TTA, sliding windows, input discovery."""

from __future__ import annotations

import json
from types import SimpleNamespace

import nibabel as nib
import numpy as np
import pytest
import torch

from weakseg.config import load_config
from weakseg.config.io import to_dict
from weakseg.data.brats.convert import BratsConvertOptions, convert_brats
from weakseg.data.formats.nifti import save_volume
from weakseg.data.brats.synthetic import write_synthetic_brats
from weakseg.errors import WeaksegError
from weakseg.inference import predict as P
from weakseg.training.checkpoint import save_checkpoint


def brain_model(x: torch.Tensor) -> torch.Tensor:
    """Logit +10 where the (normalised) flair is non-zero, i.e. on the brain: predictions = brain mask."""
    return 20.0 * (x[:, :1] != 0).float() - 10.0                        # (B, 1, H, W)


@pytest.fixture(scope="module")
def converted(tmp_path_factory):
    root = tmp_path_factory.mktemp("pred")
    write_synthetic_brats(root / "src", n_subjects=3, n_lgg=0, naming="2020", shape=(24, 24, 8),
                          orientations={0: "PSL"}, n_tumour_free=1)
    convert_brats(root / "src", root / "conv", options=BratsConvertOptions(proportions=(1, 1, 1)))
    cfg = load_config("brats/brats_seg_only", [f"data.brats.root={root / 'conv'}", "model.width=0.0625",
                                               "model.depth=2"])
    run = root / "run"
    save_checkpoint({"config": to_dict(cfg), "models": {}}, run / "checkpoints" / "best.pt")
    return root, run


@pytest.fixture
def fake_model(monkeypatch):
    def fake_load_run(run_dir, *, which="best", device="auto", data=None):
        return SimpleNamespace(method=SimpleNamespace(segment=brain_model), device=torch.device("cpu"))
    monkeypatch.setattr("weakseg.inference.load.load_run", fake_load_run)


def test_predictions_sit_on_the_input_grid(converted, fake_model, tmp_path):
    root, run = converted
    report = P.predict_folder(run, root / "src", tmp_path / "out", probabilities=True, references=True,
                              progress=False)
    assert [c["case_id"] for c in report["cases"]] == ["BraTS20_Training_001", "BraTS20_Training_002",
                                                       "BraTS20_Training_003"]
    for case in report["cases"]:
        sid = case["case_id"]
        flair = nib.load(root / "src" / sid / f"{sid}_flair.nii.gz")
        seg = nib.load(root / "src" / sid / f"{sid}_seg.nii.gz")
        pred = nib.load(tmp_path / "out" / f"{sid}.nii.gz")
        assert pred.shape == flair.shape and pred.get_data_dtype() == np.uint8
        assert np.allclose(pred.affine, flair.affine)
        assert int(pred.header["sform_code"]) == int(flair.header["sform_code"])
        brain = np.stack([np.asanyarray(nib.load(root / "src" / sid / f"{sid}_{m}.nii.gz").dataobj) != 0
                          for m in ("flair", "t1", "t1ce", "t2")]).any(0)
        np.testing.assert_array_equal(np.asanyarray(pred.dataobj), brain.astype(np.uint8))   # PSL subject too
        ref = np.asanyarray(nib.load(tmp_path / "out" / "references" / f"{sid}.nii.gz").dataobj)
        np.testing.assert_array_equal(ref, np.isin(np.asanyarray(seg.dataobj), [1, 2, 4]))
        prob = nib.load(tmp_path / "out" / "probabilities" / f"{sid}.nii.gz")
        assert prob.get_data_dtype() == np.float32 and np.allclose(prob.affine, flair.affine)
    assert (tmp_path / "out" / "predict_report.json").is_file()
    assert not list(tmp_path.glob("out.tmp-*"))


def test_flip_tta_averages_the_four_flips():
    ramp = torch.arange(6, dtype=torch.float32) - 2.5                     # position-dependent, not flip-symmetric

    def model(x):
        return (x[:, :1] * 0 + ramp + 0.3 * torch.arange(4.0)[:, None])   # (B, 1, 4, 6)

    x = np.zeros((2, 1, 4, 6), dtype=np.float32)
    got = P.predict_slices(model, x, batch_size=1, device=torch.device("cpu"), tta=True)
    logit = ramp[None, :] + 0.3 * torch.arange(4.0)[:, None]             # (4, 6)
    want = (torch.sigmoid(logit) + torch.sigmoid(logit.flip(-1)) + torch.sigmoid(logit.flip(-2))
            + torch.sigmoid(logit.flip(-2, -1))) / 4
    np.testing.assert_allclose(got, want.expand(2, 4, 6).numpy(), rtol=1e-6)
    plain = P.predict_slices(model, x, batch_size=2, device=torch.device("cpu"))
    np.testing.assert_allclose(plain[0], torch.sigmoid(logit).numpy(), rtol=1e-6)


def test_off_size_slices_use_training_sized_windows():
    seen = []

    def model(x):
        seen.append(tuple(x.shape[2:]))
        return x[:, :1]

    x = np.random.default_rng(0).normal(size=(3, 2, 20, 9)).astype(np.float32)
    out = P.predict_slices(model, x, batch_size=4, device=torch.device("cpu"), window=(8, 6))
    assert set(seen) == {(8, 6)} and out.shape == (3, 20, 9)
    np.testing.assert_allclose(out, 1 / (1 + np.exp(-x[:, 0])), rtol=1e-4, atol=1e-5)   # identity model
    seen.clear()
    P.predict_slices(model, x, batch_size=4, device=torch.device("cpu"), window=(20, 9))
    assert seen == [(20, 9)]                                              # same size: one direct call


def test_nnunet_images_ts_input(converted, fake_model, tmp_path):
    root, run = converted
    sid = "BraTS20_Training_002"
    ts = tmp_path / "Dataset9_X" / "imagesTs"
    for i, m in enumerate(("t1", "t1ce", "t2", "flair")):              # nnU-Net Dataset137's order
        img = nib.load(root / "src" / sid / f"{sid}_{m}.nii.gz")
        save_volume(np.asanyarray(img.dataobj), (img.affine, img.header), ts / f"case_{i:04d}.nii.gz", dtype=np.int16)
    with pytest.raises(WeaksegError, match="no dataset.json .* says which file is which channel"):
        P.predict_folder(run, ts, tmp_path / "out", progress=False)       # four channels: never guessed
    P.predict_folder(run, ts, tmp_path / "out", progress=False, channels=["t1", "t1ce", "t2", "flair"])
    a = nib.load(tmp_path / "out" / "case.nii.gz")
    b = nib.load(root / "src" / sid / f"{sid}_flair.nii.gz")
    assert a.shape == b.shape and np.allclose(a.affine, b.affine)


def test_wrong_channel_count_names_the_case(converted, tmp_path):
    root, run = converted
    ts = tmp_path / "imagesTs"
    for i in range(2):
        save_volume(np.ones((6, 6, 6), np.float32), (np.eye(4), None), ts / f"abd_{i:04d}.nii.gz")
    with pytest.raises(WeaksegError, match=r"case abd: 2 channel file\(s\).*model takes 4"):
        P.predict_folder(run, ts, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_non_brats_run_is_refused(tmp_path):
    cfg = load_config("mnist/mnist48_simple_seg_only")
    save_checkpoint({"config": to_dict(cfg), "models": {}}, tmp_path / "run" / "checkpoints" / "best.pt")
    with pytest.raises(WeaksegError, match="data.name='mnist'"):
        P.predict_folder(tmp_path / "run", tmp_path, tmp_path / "out")


def test_brats_builder_bundle(converted):
    from weakseg.data.registry import build_data
    from weakseg.evaluation import evaluate

    root, _ = converted
    cfg = load_config("brats/brats_seg_only", [f"data.brats.root={root / 'conv'}"])
    data = build_data(cfg)
    index = json.loads((root / "conv" / "index.json").read_text())
    assert data.in_channels == 4 and data.class_names == ("tumour",) and data.value_range == (-1.0, 1.0)
    assert len(data.split("train")) == index["splits"]["train"]["counts"]["p"] + index["splits"]["train"]["counts"]["a"]
    valid = data.split("test")
    kinds = set(valid.kind.tolist())
    assert kinds <= {0, 1} and len(valid) == index["splits"]["test"]["counts"]["p"] + index["splits"]["test"]["counts"]["a"]
    with pytest.raises(WeaksegError, match="data.brats.root is not set"):
        build_data(load_config("brats/brats_seg_only"))


def test_evaluate_counts_a_slices_as_false_positives(converted):
    from weakseg.data.registry import build_data
    from weakseg.evaluation import evaluate

    root, _ = converted
    cfg = load_config("brats/brats_seg_only", [f"data.brats.root={root / 'conv'}"])
    data = build_data(cfg)
    test = data.split("test")
    m = evaluate(lambda x: torch.full((x.shape[0], 1, *x.shape[2:]), 10.0), data, test, cfg, torch.device("cpu"))
    assert m["n_a"] == int((test.kind == 0).sum()) and m["n_p"] == int((test.kind == 1).sum())
    if m["n_a"]:
        assert m["fp_image_rate"] == 1.0 and m["fp_area"] == 1.0        # everything predicted: every A is a false alarm
