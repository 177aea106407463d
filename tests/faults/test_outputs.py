"""Outputs under faults: full disk, read-only folders, damaged or foreign checkpoints, unsafe configs.

Each case asserts the one-line message (exit 2, no traceback) and that nothing already on disk was
damaged: the previous checkpoint is intact and loadable, and no half-written file is left behind.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

import tests.toy  # noqa: F401  (registers the toy dataset and method)
import weakseg.metrics.jsonio as jsonio
import weakseg.training.checkpoint as checkpoint
from tests.faults.test_inputs import clean_brats  # noqa: F401  (fixture)
from weakseg.cli.main import main
from weakseg.data.brats.convert import convert_brats
from weakseg.training.checkpoint import load_checkpoint, save_checkpoint

TOY = {"data": {"name": "toy"}, "method": "toy",
       "train": {"batch_size": 4, "log_every": 2, "eval_every": 3, "checkpoint_every": 3, "steps": 6,
                 "device": "cpu"}}


def toy_yaml(tmp: Path, **train: object) -> Path:
    cfg = json.loads(json.dumps(TOY))
    cfg["train"].update(train)
    path = tmp / "toy.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def train(tmp: Path, run: Path, *extra: str, **settings: object) -> int:
    return main(["train", str(toy_yaml(tmp, **settings)), "--out", str(run), "--no-progress", *extra])


def one_error_line(capsys) -> str:
    err = capsys.readouterr().err
    assert "Traceback" not in err
    lines = [line for line in err.strip().splitlines() if line.startswith("weakseg ")]
    assert len(lines) == 1, err
    return lines[0]


def no_leftovers(folder: Path) -> None:
    left = [p.name for p in folder.rglob("*") if p.name.endswith((".tmp",)) or ".tmp-" in p.name
            or p.name.startswith(".") and p.name.endswith(".tmp")]
    assert not left, left


def enospc(*args, **kwargs):
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


@pytest.fixture
def trained(tmp_path) -> Path:
    run = tmp_path / "run"
    assert train(tmp_path, run, steps=3) == 0
    return run


# ---------------------------------------------------------------------------------------- checkpoints
@pytest.mark.parametrize("where", ["torch.save", "os.replace"])
def test_disk_full_during_checkpoint_keeps_previous(tmp_path, trained, monkeypatch, capsys, where) -> None:
    capsys.readouterr()
    before = load_checkpoint(trained / "checkpoints" / "last.pt")
    real_save = torch.save

    def save_then_fail(obj, f, *a, **k):   # a partial write, then the disk is full
        f.write(b"\x00" * 100)
        enospc()

    if where == "torch.save":
        monkeypatch.setattr(checkpoint.torch, "save", save_then_fail)
    else:
        real_replace = os.replace

        def replace(src, dst, *a, **k):
            if str(src).endswith(".pt.tmp"):
                enospc()
            return real_replace(src, dst, *a, **k)

        monkeypatch.setattr(checkpoint.os, "replace", replace)
    assert train(tmp_path, trained, "--resume", "--set", "train.steps=6") == 2
    line = one_error_line(capsys)
    assert "last.pt: cannot write checkpoint (No space left on device)" in line or \
        "best.pt: cannot write checkpoint (No space left on device)" in line
    assert "previous checkpoint there is intact" in line and "free disk space" in line and "--resume" in line
    monkeypatch.setattr(checkpoint.torch, "save", real_save)
    after = load_checkpoint(trained / "checkpoints" / "last.pt")
    assert after["step"] == before["step"] == 3
    assert all(torch.equal(before["models"]["net"][k], after["models"]["net"][k]) for k in before["models"]["net"])
    no_leftovers(trained)


def test_read_only_output_patched_writer(tmp_path, trained, monkeypatch, capsys) -> None:
    """Permission denied while saving (simulated: tests often run as root, which ignores chmod)."""
    capsys.readouterr()

    def denied(*a, **k):
        raise PermissionError(errno.EACCES, os.strerror(errno.EACCES))

    monkeypatch.setattr(checkpoint, "open", denied, raising=False)
    assert train(tmp_path, trained, "--resume", "--set", "train.steps=6") == 2
    line = one_error_line(capsys)
    assert "cannot write checkpoint (Permission denied)" in line and "make the folder writable" in line
    monkeypatch.undo()
    assert load_checkpoint(trained / "checkpoints" / "last.pt")["step"] == 3
    no_leftovers(trained)


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0,
                    reason="running as root: chmod does not stop root from writing (the patched-writer test covers it)")
def test_read_only_output_folder_chmod(tmp_path, capsys) -> None:
    out = tmp_path / "ro"
    out.mkdir()
    out.chmod(0o500)
    try:
        assert train(tmp_path, out / "run", steps=3) == 2
        line = one_error_line(capsys)
        assert "Permission denied" in line
    finally:
        out.chmod(0o700)


def test_save_checkpoint_function_level_cleans_tmp(tmp_path, monkeypatch) -> None:
    path = tmp_path / "c.pt"
    save_checkpoint({"step": 1, "models": {}}, path)
    monkeypatch.setattr(checkpoint.os, "replace", enospc)
    with pytest.raises(checkpoint.CheckpointWriteError, match="previous checkpoint there is intact"):
        save_checkpoint({"step": 2, "models": {}}, path)
    monkeypatch.undo()
    assert load_checkpoint(path)["step"] == 1 and not (tmp_path / "c.pt.tmp").exists()


@pytest.mark.parametrize("damage", ["truncated", "empty", "garbage"])
def test_damaged_checkpoint_on_resume_and_evaluate(tmp_path, trained, capsys, damage) -> None:
    capsys.readouterr()
    for name in ("last.pt", "best.pt"):
        path = trained / "checkpoints" / name
        raw = path.read_bytes()
        path.write_bytes({"truncated": raw[: len(raw) // 2], "empty": b"", "garbage": os.urandom(500)}[damage])
    assert train(tmp_path, trained, "--resume", "--set", "train.steps=6") == 2
    line = one_error_line(capsys)
    assert "last.pt: cannot read checkpoint" in line and "damaged" in line
    assert main(["evaluate", str(trained)]) == 2
    line = one_error_line(capsys)
    assert "best.pt: cannot read checkpoint" in line and "last.pt is missing or damaged too" in line


def test_damaged_best_checkpoint_names_checkpoint_last(tmp_path, trained, capsys) -> None:
    best = trained / "checkpoints" / "best.pt"
    best.write_bytes(best.read_bytes()[:100])
    capsys.readouterr()
    assert main(["evaluate", str(trained)]) == 2
    line = one_error_line(capsys)
    assert "best.pt: cannot read checkpoint" in line and "use the other checkpoint with --checkpoint last" in line
    assert main(["evaluate", str(trained), "--checkpoint", "last"]) == 0


def test_checkpoint_from_another_version_warns(tmp_path, trained, caplog) -> None:
    path = trained / "checkpoints" / "best.pt"
    payload = torch.load(path, weights_only=True)
    payload["weakseg_version"] = "0.0.1"
    torch.save(payload, path)
    with caplog.at_level("WARNING", logger="weakseg"):
        assert main(["evaluate", str(trained)]) == 0
    assert any("written by weakseg 0.0.1, this is weakseg" in r.getMessage() and "weakseg==0.0.1" in r.getMessage()
               for r in caplog.records)


def test_checkpoint_of_another_format_is_an_error(tmp_path, trained, capsys) -> None:
    capsys.readouterr()
    path = trained / "checkpoints" / "best.pt"
    payload = torch.load(path, weights_only=True)
    payload["format"] = 99
    torch.save(payload, path)
    assert main(["evaluate", str(trained)]) == 2
    line = one_error_line(capsys)
    assert "not a weakseg checkpoint of format 1 (found format 99)" in line and "another weakseg version" in line


def test_checkpoint_with_other_weights_is_an_error(tmp_path, trained, capsys) -> None:
    capsys.readouterr()
    path = trained / "checkpoints" / "best.pt"
    payload = torch.load(path, weights_only=True)
    payload["models"]["net"] = {k: torch.zeros(1) for k in payload["models"]["net"]}
    payload["weakseg_version"] = "0.0.1"
    torch.save(payload, path)
    assert main(["evaluate", str(trained)]) == 2
    line = one_error_line(capsys)
    assert "do not fit the model built from its config" in line and "written by weakseg 0.0.1" in line


def test_pickled_object_in_checkpoint_is_refused(tmp_path, trained, capsys) -> None:
    """weights_only=True: a checkpoint carrying an arbitrary Python object is not unpickled."""
    capsys.readouterr()
    path = trained / "checkpoints" / "best.pt"
    payload = torch.load(path, weights_only=True)
    payload["evil"] = Path("/etc/passwd")                     # any non-allowlisted class
    torch.save(payload, path)
    assert main(["evaluate", str(trained)]) == 2
    assert "best.pt: cannot read checkpoint" in one_error_line(capsys)


def test_resume_with_another_config_is_an_error(tmp_path, trained, capsys) -> None:
    capsys.readouterr()
    before = (trained / "checkpoints" / "last.pt").read_bytes()
    assert train(tmp_path, trained, "--resume", steps=6, lr=0.5) == 2
    line = one_error_line(capsys)
    assert "the config differs from the run's in train.lr" in line and "new --out folder" in line
    assert (trained / "checkpoints" / "last.pt").read_bytes() == before


def test_existing_run_without_resume_is_an_error(tmp_path, trained, capsys) -> None:
    capsys.readouterr()
    assert train(tmp_path, trained, steps=3) == 2
    assert "pass --resume" in one_error_line(capsys)


# ---------------------------------------------------------------------------------------------- configs
def test_python_yaml_tag_is_refused(tmp_path, capsys) -> None:
    evil = tmp_path / "evil.yaml"
    marker = tmp_path / "pwned"
    evil.write_text(f'train: !!python/object/apply:os.system ["touch {marker}"]\n')
    assert main(["train", str(evil), "--out", str(tmp_path / "r")]) == 2
    line = one_error_line(capsys)
    assert "unsupported YAML tag !!python/object/apply:os.system" in line and "safe loader" in line
    assert not marker.exists() and not (tmp_path / "r").exists()


# ------------------------------------------------------------------------------------ converted outputs
def test_disk_full_during_score_keeps_previous_summary(tmp_path, monkeypatch, capsys) -> None:
    import nibabel as nib
    gt, pred = tmp_path / "gt", tmp_path / "pred"
    gt.mkdir()
    pred.mkdir()
    lab = np.zeros((8, 8, 4), dtype=np.uint8)
    lab[2:5, 2:5, 1:3] = 1
    for folder in (gt, pred):
        nib.save(nib.Nifti1Image(lab, np.eye(4)), str(folder / "c1.nii.gz"))
    assert main(["score", str(pred), str(gt)]) == 0
    before = (pred / "summary.json").read_bytes()
    capsys.readouterr()
    monkeypatch.setattr(jsonio.os, "replace", enospc)
    assert main(["score", str(pred), str(gt)]) == 2
    line = one_error_line(capsys)
    assert "No space left on device" in line and "free disk space" in line
    monkeypatch.undo()
    assert (pred / "summary.json").read_bytes() == before
    no_leftovers(pred)


def test_truncated_prediction_in_score(tmp_path, capsys) -> None:
    import nibabel as nib
    gt, pred = tmp_path / "gt", tmp_path / "pred"
    gt.mkdir()
    pred.mkdir()
    lab = np.zeros((8, 8, 4), dtype=np.uint8)
    lab[2:5, 2:5, 1:3] = 1
    for folder in (gt, pred):
        nib.save(nib.Nifti1Image(lab, np.eye(4)), str(folder / "c1.nii.gz"))
    raw = (pred / "c1.nii.gz").read_bytes()
    (pred / "c1.nii.gz").write_bytes(raw[: len(raw) // 2])
    assert main(["score", str(pred), str(gt)]) == 2
    line = one_error_line(capsys)
    assert "c1.nii.gz: cannot read as NIfTI" in line and not (pred / "summary.json").exists()


@pytest.mark.parametrize("overwrite", [False, True])
def test_disk_full_during_convert_leaves_nothing_half_written(tmp_path, clean_brats, monkeypatch,  # noqa: F811
                                                              overwrite) -> None:
    dst = tmp_path / "conv"
    if overwrite:
        convert_brats(clean_brats, dst)
        before = (dst / "index.json").read_bytes()
    real_save = np.save
    calls = {"n": 0}

    def save_fails_late(*a, **k):
        calls["n"] += 1
        if calls["n"] == 5:
            enospc()
        return real_save(*a, **k)

    monkeypatch.setattr(np, "save", save_fails_late)
    with pytest.raises(OSError, match="No space left on device"):
        convert_brats(clean_brats, dst, overwrite=overwrite)
    monkeypatch.undo()
    assert not [p for p in tmp_path.iterdir() if ".tmp-" in p.name or ".old-" in p.name]
    if overwrite:
        assert (dst / "index.json").read_bytes() == before       # the previous dataset is untouched
    else:
        assert not dst.exists()


def test_oserror_at_the_cli_is_one_line(tmp_path, monkeypatch, capsys) -> None:
    """Any OSError escaping a command (here from a converter) is one line, exit 2, naming the file."""
    import weakseg.cli.score as score

    def boom(args):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(tmp_path / "x.nii.gz"))

    monkeypatch.setattr(score, "run", boom)
    assert main(["score", str(tmp_path), str(tmp_path)]) == 2
    line = one_error_line(capsys)
    assert f"{tmp_path / 'x.nii.gz'}: No space left on device" in line
    shutil.rmtree(tmp_path, ignore_errors=True)


def test_disk_full_writing_config_yaml(tmp_path, monkeypatch, capsys) -> None:
    import weakseg.config.io as io
    monkeypatch.setattr(io.os, "replace", enospc)
    assert train(tmp_path, tmp_path / "run", steps=3) == 2
    assert "No space left on device" in one_error_line(capsys)
    monkeypatch.undo()
    no_leftovers(tmp_path / "run")
    assert not (tmp_path / "run" / "checkpoints" / "last.pt").exists()


def test_every_config_problem_in_one_message(tmp_path, capsys) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump({"data": {"name": "toy"}, "method": "toy",
                                   "train": {"stepz": 3, "batch_size": "four", "lr": 0.1}, "modle": {}}))
    assert main(["train", str(bad), "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err
    assert "3 config problems" in err and "did you mean 'steps'" in err
    assert "train.batch_size' must be an integer" in err
    assert "unknown config key 'modle'" in err and "Traceback" not in err
    assert main(["train", str(toy_yaml(tmp_path)), "--out", str(tmp_path / "r"), "--set", "train.steps=0",
                 "--set", "train.amp=fp8", "--set", "model.width=-1"]) == 2
    err = capsys.readouterr().err
    assert "3 config problems" in err and "train.steps must be >= 1" in err and "train.amp must be" in err
    assert "model.width must be > 0" in err and not (tmp_path / "r").exists()


# ------------------------------------------------------------------------------ destinations checked first
def _deny_probe(monkeypatch) -> None:
    """Permission denied on the destination's parent (simulated: root ignores chmod)."""
    import weakseg.fsutil as fsutil

    real = Path.mkdir

    def mkdir(self, *a, **k):
        if ".probe-" in self.name:
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(self))
        return real(self, *a, **k)

    monkeypatch.setattr(fsutil.Path, "mkdir", mkdir)


@pytest.mark.parametrize("source", ["brats", "nnunet"])
def test_convert_into_unwritable_destination_fails_before_reading(tmp_path, clean_brats, monkeypatch,  # noqa: F811
                                                                   capsys, source) -> None:
    """It used to convert every subject first and then fail with a 'free disk space' hint."""
    import weakseg.data.brats.convert as brats_convert
    import weakseg.data.formats.nnunet_raw as nnunet_raw

    read = []
    monkeypatch.setattr(brats_convert, "find_brats_subjects", lambda *a, **k: read.append(1))
    monkeypatch.setattr(nnunet_raw, "read_dataset_json", lambda *a, **k: read.append(1))
    _deny_probe(monkeypatch)
    capsys.readouterr()
    dst = tmp_path / "ro" / "conv"
    assert main(["convert", source, str(clean_brats), str(dst), *(["--no-progress"] if source == "brats" else [])]) == 2
    line = one_error_line(capsys)
    assert f"cannot write into {dst.parent} (Permission denied)" in line and "make the folder writable" in line
    assert "nothing was read or written yet" in line and "free disk space" not in line
    assert not read and not dst.exists() and not list(dst.parent.iterdir())


def test_convert_destination_under_a_file(tmp_path, clean_brats, capsys) -> None:  # noqa: F811
    (tmp_path / "file").write_text("x")
    capsys.readouterr()
    assert main(["convert", "brats", str(clean_brats), str(tmp_path / "file" / "conv"), "--no-progress"]) == 2
    assert f"cannot write into {tmp_path / 'file'}" in one_error_line(capsys)
