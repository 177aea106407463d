"""Bad inputs at the door: ``weakseg check`` on damaged datasets, and every problem in one message."""

from __future__ import annotations

import gzip
import json
import shutil
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from weakseg.cli.main import main
from weakseg.data.brats.convert import convert_brats
from weakseg.data.check import check_dataset
from weakseg.data.phantom import write_abdomen_dataset
from weakseg.data.brats.synthetic import write_synthetic_brats

SHAPE = (8, 16, 16)


@pytest.fixture(scope="module")
def clean_nnunet(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("nnunet") / "Dataset001_Phantom"
    write_abdomen_dataset(root, 3, 0, shape=SHAPE, absent_rate=0.0)
    return root


@pytest.fixture
def nnunet(tmp_path, clean_nnunet) -> Path:
    root = tmp_path / clean_nnunet.name
    shutil.copytree(clean_nnunet, root)
    return root


def run_check(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(["check", *argv, "--no-progress"])
    out, err = capsys.readouterr()
    assert "Traceback" not in err
    return code, out, err


def case_files(root: Path, i: int) -> tuple[Path, Path]:
    cid = f"abd_{i:04d}"
    return root / "imagesTr" / f"{cid}_0000.nii.gz", root / "labelsTr" / f"{cid}.nii.gz"


def rewrite(path: Path, *, array=None, affine=None, dtype=None) -> None:
    img = nib.load(str(path))
    data = np.asarray(img.dataobj) if array is None else array
    new = nib.Nifti1Image(data.astype(dtype or data.dtype), img.affine if affine is None else affine)
    nib.save(new, str(path))


def truncate(path: Path, keep: float = 0.5) -> None:
    raw = path.read_bytes()
    path.write_bytes(raw[: int(len(raw) * keep)])


def edit_dataset_json(root: Path, change) -> None:
    data = json.loads((root / "dataset.json").read_text())
    change(data)
    (root / "dataset.json").write_text(json.dumps(data))


def test_clean_dataset_exits_0_with_summary(nnunet, capsys) -> None:
    code, out, _ = run_check(capsys, str(nnunet))
    assert code == 0 and "no problems found" in out and '"train": 3' in out


def test_truncated_nifti(nnunet, capsys) -> None:
    img, _ = case_files(nnunet, 2)
    truncate(img)
    code, _, err = run_check(capsys, str(nnunet))
    assert code == 2 and "1 problem(s)" in err and img.name in err and "truncated" in err


def test_undeclared_label_value(nnunet, capsys) -> None:
    _, lab = case_files(nnunet, 1)
    arr = np.asarray(nib.load(str(lab)).dataobj).copy()
    arr[0, 0, 0] = 7
    rewrite(lab, array=arr)
    code, _, err = run_check(capsys, str(nnunet))
    assert code == 2 and "abd_0001" in err and "label value(s) [7] not declared" in err


def test_mismatched_shape_and_affine(nnunet, capsys) -> None:
    _, lab1 = case_files(nnunet, 1)
    _, lab2 = case_files(nnunet, 2)
    rewrite(lab1, array=np.zeros((16, 16, 4), dtype=np.uint8))
    shifted = nib.load(str(lab2)).affine.copy()
    shifted[0, 3] += 5.0
    rewrite(lab2, affine=shifted)
    code, _, err = run_check(capsys, str(nnunet))
    assert code == 2 and "2 problem(s)" in err
    assert "case abd_0001: shape" in err and "case abd_0002: affine" in err and "max difference 5" in err


def test_nan_voxels(nnunet, capsys) -> None:
    img, _ = case_files(nnunet, 3)
    arr = nib.load(str(img)).get_fdata().astype(np.float32)
    arr[1, 2, 3] = np.nan
    rewrite(img, array=arr)
    code, _, err = run_check(capsys, str(nnunet))
    assert code == 2 and img.name in err and "1 NaN/Inf voxels" in err


def test_missing_label_file(nnunet, capsys) -> None:
    _, lab = case_files(nnunet, 2)
    lab.unlink()
    code, _, err = run_check(capsys, str(nnunet))
    assert code == 2 and f"label {lab} not found" in err


def test_empty_dataset(nnunet, capsys) -> None:
    for folder in ("imagesTr", "labelsTr"):
        shutil.rmtree(nnunet / folder)
        (nnunet / folder).mkdir()
    edit_dataset_json(nnunet, lambda d: d.update(numTraining=0))
    code, _, err = run_check(capsys, str(nnunet))
    assert code == 2 and "no training case" in err


def test_bad_status_block(nnunet, capsys) -> None:
    edit_dataset_json(nnunet, lambda d: d["weakseg"].update(cases={"abd_0001": {"status": {"spleen": "absent"}}}))
    code, _, err = run_check(capsys, str(nnunet))
    assert code == 2 and "abd_0001.status.spleen: unknown class 'spleen'" in err


def test_absent_class_with_voxels(nnunet, capsys) -> None:
    edit_dataset_json(nnunet, lambda d: d["weakseg"].update(cases={"abd_0002": {"status": {"liver": "absent"}}}))
    code, _, err = run_check(capsys, str(nnunet))
    assert code == 2 and "case abd_0002, class liver: status 'absent' but the label map has voxels" in err


def test_class_never_annotated(nnunet, capsys) -> None:
    for i in (1, 2, 3):
        _, lab = case_files(nnunet, i)
        arr = np.asarray(nib.load(str(lab)).dataobj).copy()
        arr[arr == 3] = 0
        rewrite(lab, array=arr)
    code, _, err = run_check(capsys, str(nnunet))
    assert code == 2 and "class pancreas (label 3) is never annotated" in err


def test_unknown_status_with_voxels_is_a_note_not_a_problem(nnunet, capsys) -> None:
    edit_dataset_json(nnunet, lambda d: d["weakseg"].update(cases={"abd_0001": {"status": {"liver": "unknown"}}}))
    code, out, _ = run_check(capsys, str(nnunet), "--notes")
    assert code == 0 and "note: case abd_0001, class liver: status 'unknown'" in out


def test_every_problem_in_one_message(nnunet, capsys) -> None:
    """Three broken cases and a bad status key: one error listing all four, exit 2, one 'error:' line."""
    img1, _ = case_files(nnunet, 1)
    truncate(img1)
    _, lab2 = case_files(nnunet, 2)
    arr = np.asarray(nib.load(str(lab2)).dataobj).copy()
    arr[0, 0, 0] = 9
    rewrite(lab2, array=arr)
    img3, _ = case_files(nnunet, 3)
    arr = nib.load(str(img3)).get_fdata().astype(np.float32)
    arr[0, 0, 0] = np.inf
    rewrite(img3, array=arr)
    edit_dataset_json(nnunet, lambda d: d["weakseg"].update(default_status="maybe"))
    code, _, err = run_check(capsys, str(nnunet))
    assert code == 2 and "4 problem(s)" in err and err.count("error:") == 1
    for needle in (img1.name, "label value(s) [9]", img3.name, "unknown label status 'maybe'"):
        assert needle in err, needle


def test_status_overlay_for_another_dataset(nnunet, tmp_path, capsys) -> None:
    overlay = tmp_path / "overlay.json"
    overlay.write_text(json.dumps({"format": 1, "cases": {"other_0001": {"status": {"liver": "unknown"}}}}))
    code, _, err = run_check(capsys, str(nnunet), "--overlay", str(overlay))
    assert code == 2 and "overlay.cases.other_0001" in err and "another dataset" in err


def test_not_a_dataset(tmp_path, capsys) -> None:
    code, _, err = run_check(capsys, str(tmp_path / "nope"))
    assert code == 2 and "not found" in err and len(err.strip().splitlines()) == 1
    (tmp_path / "empty").mkdir()
    code, _, err = run_check(capsys, str(tmp_path / "empty"))
    assert code == 2 and "cannot tell the dataset kind" in err and "--kind" in err


# ------------------------------------------------------------------------------------------------- BraTS
@pytest.fixture(scope="module")
def clean_brats(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("brats") / "BraTS2017"
    write_synthetic_brats(root, n_subjects=4, n_lgg=1, shape=(16, 16, 8))
    return root


def test_brats_missing_file_and_bad_labels_together(tmp_path, clean_brats, capsys) -> None:
    root = tmp_path / "b"
    shutil.copytree(clean_brats, root)
    subjects = sorted((root / "HGG").iterdir())
    next(subjects[0].glob("*_t2.nii.gz")).unlink()
    seg = next(subjects[1].glob("*_seg.nii.gz"))
    arr = np.asarray(nib.load(str(seg)).dataobj).copy()
    arr[0, 0, 0] = 3                                      # BraTS 2023 enhancing label in a 2017-style set
    rewrite(seg, array=arr)
    code, _, err = run_check(capsys, str(root))
    assert code == 2 and "2 problem(s)" in err
    assert f"subject {subjects[0].name}" in err and "missing 't2' file" in err
    assert f"subject {subjects[1].name}" in err and "label values [3] outside the BraTS set" in err


def test_brats_clean_and_converted(tmp_path, clean_brats, capsys) -> None:
    assert run_check(capsys, str(clean_brats))[0] == 0
    conv = tmp_path / "conv"
    convert_brats(clean_brats, conv)
    code, out, _ = run_check(capsys, str(conv))
    assert code == 0 and "brats-converted" in out


def test_converted_brats_truncated_and_nan(tmp_path, clean_brats, capsys) -> None:
    conv = tmp_path / "conv"
    convert_brats(clean_brats, conv)
    images = np.load(conv / "train" / "images.npy")
    images[2, 0, 1, 1] = np.nan
    np.save(conv / "train" / "images.npy", images)
    truncate(conv / "train" / "tumour_area.npy", keep=0.6)
    code, _, err = run_check(capsys, str(conv))
    assert code == 2 and "tumour_area.npy: unreadable or truncated" in err
    shutil.copyfile(conv / "train" / "brain_area.npy", conv / "train" / "tumour_area.npy")
    code, _, err = run_check(capsys, str(conv))
    assert code == 2 and "1 row(s) with NaN/Inf pixels (first [2])" in err


# ------------------------------------------------------- BraTS: inputs that used to give a silent wrong answer
def _tumour_subject(root: Path) -> Path:
    """The first HGG subject whose seg holds tumour."""
    for folder in sorted((root / "HGG").iterdir()):
        seg = next(folder.glob("*_seg.nii.gz"))
        if np.asarray(nib.load(str(seg)).dataobj).any():
            return folder
    raise AssertionError("no tumour subject")


def blank_images(folder: Path, where=None) -> None:
    """Every modality 0 everywhere (``where`` None) or inside the boolean mask ``where``."""
    for img in folder.glob("*.nii.gz"):
        if img.name.endswith("_seg.nii.gz"):
            continue
        arr = np.asarray(nib.load(str(img)).dataobj).copy()
        arr[...] = 0 if where is None else np.where(where, 0, arr)
        rewrite(img, array=arr)


def one_line(err: str) -> str:
    lines = [line for line in err.strip().splitlines() if line]
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


@pytest.mark.parametrize("verb", ["check", "convert"])
def test_brats_subject_without_brain_voxels(tmp_path, clean_brats, capsys, verb) -> None:
    """Four blank modalities with a tumour in the seg passed check and convert (rc 0): the tumour vanished."""
    root = tmp_path / "b"
    shutil.copytree(clean_brats, root)
    subject = _tumour_subject(root)
    blank_images(subject)
    if verb == "check":
        code, _, err = run_check(capsys, str(root))
    else:
        code = main(["convert", "brats", str(root), str(tmp_path / "conv"), "--no-progress"])
        err = capsys.readouterr().err
        assert not (tmp_path / "conv").exists()
    line = one_line(err)
    assert code == 2 and f"subject {subject.name}" in line and "no brain voxels" in line
    assert f"{subject.name}_flair.nii.gz" in line and "restore them from the source, or remove the case" in line


@pytest.mark.parametrize("verb", ["check", "convert"])
def test_brats_tumour_outside_the_brain(tmp_path, clean_brats, capsys, verb) -> None:
    """Images masked where the seg has tumour (or a seg from another subject): tumour outside the brain."""
    root = tmp_path / "b"
    shutil.copytree(clean_brats, root)
    subject = _tumour_subject(root)
    seg_file = next(subject.glob("*_seg.nii.gz"))
    blank_images(subject, where=np.asarray(nib.load(str(seg_file)).dataobj) > 0)
    if verb == "check":
        code, _, err = run_check(capsys, str(root))
    else:
        code = main(["convert", "brats", str(root), str(tmp_path / "conv"), "--no-progress"])
        err = capsys.readouterr().err
    line = one_line(err)
    assert code == 2 and seg_file.name in line and "tumour voxels lie outside the brain" in line
    assert "pair each seg with its own subject's images" in line


def test_brats_few_tumour_voxels_outside_the_brain_are_tolerated(tmp_path, capsys) -> None:
    """Skull stripping can leave a voxel or two of tumour outside the mask: below 1% that is not an error."""
    root = tmp_path / "b"
    write_synthetic_brats(root, n_subjects=2, n_lgg=0, shape=(32, 32, 12), n_tumour_free=0)   # > 100 voxels
    subject = _tumour_subject(root)
    seg = np.asarray(nib.load(str(next(subject.glob("*_seg.nii.gz")))).dataobj)
    one = np.zeros(seg.shape, dtype=bool)
    one[tuple(np.argwhere(seg > 0)[0])] = True                      # 1 of the tumour voxels
    assert one.sum() <= 0.01 * (seg > 0).sum()
    blank_images(subject, where=one)
    assert run_check(capsys, str(root))[0] == 0


@pytest.fixture(scope="module")
def untrained_run(tmp_path_factory) -> Path:
    """A BraTS seg_only run folder with an untrained checkpoint (predict needs weights, not good ones)."""
    from tests.brats_toy import write_untrained_brats_run

    return write_untrained_brats_run(tmp_path_factory.mktemp("predict_run"), shape=(16, 16, 8))


def test_predict_brats_subject_without_brain_voxels(tmp_path, untrained_run, capsys) -> None:
    src = tmp_path / "src"
    shutil.copytree(untrained_run / "src", src)
    subject = sorted(p for p in src.iterdir() if p.is_dir())[1]
    blank_images(subject)
    capsys.readouterr()
    assert main(["predict", str(untrained_run / "run"), str(src), str(tmp_path / "pred"), "--no-progress"]) == 2
    line = one_line(capsys.readouterr().err)
    assert f"subject {subject.name}" in line and "no brain voxels" in line and "remove the case" in line
    assert not (tmp_path / "pred").exists() and not list(tmp_path.glob("pred.tmp-*"))


def test_predict_nnunet_case_without_brain_voxels(tmp_path, untrained_run, capsys) -> None:
    """An imagesTs case whose channels are all 0 was written as an all-background prediction with rc 0."""
    images = tmp_path / "imagesTs"
    images.mkdir()
    subject = sorted(p for p in (untrained_run / "src").iterdir() if p.is_dir())[0]
    for i, m in enumerate(("flair", "t1ce", "t1", "t2")):
        for case in ("good", "blank"):
            shutil.copyfile(subject / f"{subject.name}_{m}.nii.gz", images / f"{case}_{i:04d}.nii.gz")
            if case == "blank":
                rewrite(images / f"{case}_{i:04d}.nii.gz",
                        array=np.zeros(nib.load(str(images / f"{case}_{i:04d}.nii.gz")).shape, dtype=np.int16))
    capsys.readouterr()
    assert main(["predict", str(untrained_run / "run"), str(images), str(tmp_path / "pred"), "--no-progress",
                 "--channels", "flair,t1ce,t1,t2"]) == 2                     # the files' order, declared
    line = one_line(capsys.readouterr().err)
    assert "case blank" in line and "blank_0000.nii.gz" in line and "no brain voxels" in line
    assert "(nothing written)" in line and not (tmp_path / "pred").exists()


# ------------------------------------------------------------------------------------------------- MNIST
def write_idx(folder: Path, n_train: int = 520, n_test: int = 20) -> None:
    rng = np.random.default_rng(0)
    for name, arr in (("train-images-idx3-ubyte", rng.integers(0, 255, (n_train, 28, 28), dtype=np.uint8)),
                      ("train-labels-idx1-ubyte", rng.integers(0, 10, n_train, dtype=np.uint8)),
                      ("t10k-images-idx3-ubyte", rng.integers(0, 255, (n_test, 28, 28), dtype=np.uint8)),
                      ("t10k-labels-idx1-ubyte", rng.integers(0, 10, n_test, dtype=np.uint8))):
        magic = 0x0803 if arr.ndim == 3 else 0x0801
        header = magic.to_bytes(4, "big") + b"".join(int(d).to_bytes(4, "big") for d in arr.shape)
        (folder / f"{name}.gz").write_bytes(gzip.compress(header + arr.tobytes()))


def test_mnist_idx_every_broken_file_listed(tmp_path, capsys) -> None:
    write_idx(tmp_path)
    assert run_check(capsys, str(tmp_path))[0] == 0
    (tmp_path / "t10k-labels-idx1-ubyte.gz").write_bytes(gzip.compress(b"\x00\x00\x08\x03" + bytes(8)))
    raw = gzip.decompress((tmp_path / "train-images-idx3-ubyte.gz").read_bytes())
    (tmp_path / "train-images-idx3-ubyte.gz").write_bytes(gzip.compress(raw[:1000]))
    code, _, err = run_check(capsys, str(tmp_path))
    assert code == 2 and "2 problem(s)" in err
    assert "train-images-idx3-ubyte.gz is truncated" in err and "wrong magic number" in err


def test_check_dataset_api_reports_without_raising(nnunet) -> None:
    img, _ = case_files(nnunet, 1)
    truncate(img)
    report = check_dataset(nnunet)
    assert report.kind == "nnunet" and not report.ok and len(report.problems) == 1
