"""weakseg.data.merge: several partial nnU-Net raw datasets -> one, with per-source label status."""

from __future__ import annotations

import importlib
import json
import os
import shutil

import nibabel as nib
import numpy as np
import pytest

from tests.organs_toy import SHAPE, partial_source
from weakseg.cli.main import main
from weakseg.data.formats.nnunet_raw import read_dataset_json
from weakseg.data.merge import merge_datasets, parse_merge_spec, read_status_table, set_statuses
from weakseg.data.phantom import write_abdomen_dataset
from weakseg.data.status import resolve_statuses
from weakseg.errors import WeaksegError

CANONICAL = {"background": 0, "liver": 1, "stomach": 2, "pancreas": 3}


@pytest.fixture
def sources(tmp_path):
    # "lits": liver only (value 1) plus a tumour label inside it; "pan": pancreas 1, stomach 2 (other numbering)
    lits = partial_source(tmp_path / "Dataset003_Liver", prefix="liver", seed=1,
                          labels={"background": 0, "liver": 1, "tumour": 2}, lut=[0, 1, 0, 0])
    lab = lits / "labelsTr" / "liver_0001.nii.gz"
    img = nib.load(lab)
    arr = np.asanyarray(img.dataobj).copy()
    arr[(arr == 1) & (np.indices(arr.shape)[0] % 5 == 0)] = 2                  # some liver voxels are tumour
    nib.save(nib.Nifti1Image(arr, img.affine, img.header), lab)
    pan = partial_source(tmp_path / "Dataset007_Pancreas", prefix="pan", seed=2,
                         labels={"background": 0, "pancreas": 1, "stomach": 2}, lut=[0, 0, 2, 1], absent_rate=0.5)
    spec = {
        "labels": CANONICAL,
        "sources": {"lits": {"root": "Dataset003_Liver", "remap": {"liver": "liver", "tumour": "liver"}},
                    "pan": {"root": str(pan), "remap": {"pancreas": "pancreas", "stomach": "stomach"}}},
        "status": {"liver_0002": {"stomach": "absent"}},
    }
    (tmp_path / "spec.json").write_text(json.dumps(spec))
    return tmp_path, lits, pan, spec


def test_merge_writes_one_dataset_with_source_statuses(sources):
    tmp, lits, pan, spec = sources
    assert main(["merge", str(tmp / "spec.json"), str(tmp / "Dataset950_Abdomen")]) == 0
    dst = tmp / "Dataset950_Abdomen"
    ds = read_dataset_json(dst)
    assert ds.labels == CANONICAL and ds.num_training == 8 and ds.channel_names == {"0": "CT"}
    block = ds.weakseg
    assert block["sources"] == {"lits": {"annotated": ["liver"]}, "pan": {"annotated": ["stomach", "pancreas"]}}
    ids = sorted(p.name[: -len("_0000.nii.gz")] for p in (dst / "imagesTr").iterdir())
    st = resolve_statuses(block, ids, ds.class_names)
    assert st["liver_0001"] == {"liver": "mask", "stomach": "unknown", "pancreas": "unknown"}
    assert st["liver_0002"] == {"liver": "mask", "stomach": "absent", "pancreas": "unknown"}      # override
    # the pancreas source's own absent statuses are carried to the canonical classes
    own = json.loads((pan / "dataset.json").read_text())["weakseg"]["cases"]
    assert own, "the source should have absent organs (absent_rate=0.5)"
    for case, entry in own.items():
        for organ, word in entry["status"].items():
            assert st[case][organ] == (word if organ != "liver" else "unknown")
    # labels remapped: tumour -> liver; pancreas 1 -> 3, stomach 2 -> 2; images byte-identical
    src = np.asanyarray(nib.load(lits / "labelsTr" / "liver_0001.nii.gz").dataobj)
    got = nib.load(dst / "labelsTr" / "liver_0001.nii.gz")
    np.testing.assert_array_equal(np.asanyarray(got.dataobj), np.isin(src, [1, 2]).astype(np.uint8))
    assert got.get_data_dtype() == np.uint8
    np.testing.assert_array_equal(got.affine, nib.load(lits / "labelsTr" / "liver_0001.nii.gz").affine)
    src = np.asanyarray(nib.load(pan / "labelsTr" / "pan_0001.nii.gz").dataobj)
    got = np.asanyarray(nib.load(dst / "labelsTr" / "pan_0001.nii.gz").dataobj)
    np.testing.assert_array_equal(got, np.choose(src, [0, 3, 2]))
    assert (dst / "imagesTr" / "pan_0001_0000.nii.gz").read_bytes() == \
        (pan / "imagesTr" / "pan_0001_0000.nii.gz").read_bytes()
    assert sorted(p.name for p in (dst / "imagesTs").iterdir()) == ["liver_0005_0000.nii.gz", "pan_0005_0000.nii.gz"]
    assert (dst / "labelsTs" / "pan_0005.nii.gz").is_file()
    assert json.loads((dst / "labelsTs_status.json").read_text()) == {
        "liver_0005": {"liver": "mask", "stomach": "unknown", "pancreas": "unknown"},
        "pan_0005": {**{"liver": "unknown", "stomach": "mask", "pancreas": "mask"},
                     **{k: w for k, w in own.get("pan_0005", {}).get("status", {}).items()}}}
    report = json.loads((dst / "weakseg_merge.json").read_text())
    assert report["sources"]["lits"]["train"] == 4 and report["sources"]["pan"]["test"] == 1


def test_merged_dataset_passes_nnunet_integrity_check_and_loads(sources):
    tmp, _, _, spec = sources
    merge_datasets(parse_merge_spec(spec, base=tmp), tmp / "Dataset951_M")
    verify = pytest.importorskip("nnunetv2.experiment_planning.verify_dataset_integrity") \
        if os.environ.get("WEAKSEG_REQUIRE_NNUNET") != "1" else \
        importlib.import_module("nnunetv2.experiment_planning.verify_dataset_integrity")
    verify.verify_dataset_integrity(str(tmp / "Dataset951_M"), num_processes=1)     # raises on failure
    from weakseg.data.organs import load_organs

    d = load_organs(tmp / "Dataset951_M", n_folds=2, n_valid=1)
    assert d.info["status_counts"]["pancreas"]["unknown"] > 0 and d.info["status_counts"]["liver"]["unknown"] > 0


def _spec_with(spec, **changes):
    out = json.loads(json.dumps(spec))
    for path, value in changes.items():
        node = out
        keys = path.split("__")
        for k in keys[:-1]:
            node = node[k]
        node[keys[-1]] = value
    return out


@pytest.mark.parametrize("change,match", [
    ({"sources__lits__remap": {"liver": "liver"}}, r"label\(s\) \['tumour'\] .* are not in its remap"),
    ({"sources__lits__remap": {"liver": "liver", "tumour": "kidney"}}, "'kidney': not a canonical class"),
    ({"sources__pan__case_prefix": ""}, None),                                     # distinct ids: fine
    ({"status": {"liver_0002": {"stomach": "gone"}}}, "unknown label status 'gone'"),
    ({"status": {"nobody": {"stomach": "absent"}}}, "'nobody': not a merged training case"),
    ({"labels": {"background": 0, "liver": 1, "stomach": 1, "pancreas": 3}}, "give each class its own value"),
])
def test_bad_specs_are_refused_before_writing(sources, change, match):
    tmp, _, _, spec = sources
    if match is None:
        merge_datasets(parse_merge_spec(_spec_with(spec, **change), base=tmp), tmp / "ok")
        return
    with pytest.raises(WeaksegError, match=match):
        merge_datasets(parse_merge_spec(_spec_with(spec, **change), base=tmp), tmp / "out")
    assert not (tmp / "out").exists() and not list(tmp.glob("out.tmp-*"))


def test_two_sources_claiming_one_case_id(sources):
    tmp, lits, _, spec = sources
    shutil.copytree(lits, tmp / "again")
    twice = _spec_with(spec, sources__again={"root": "again", "remap": {"liver": "liver", "tumour": "liver"}})
    with pytest.raises(WeaksegError, match=r"case id 'liver_0001' comes from sources lits and again; .*case_prefix"):
        merge_datasets(parse_merge_spec(twice, base=tmp), tmp / "out")
    twice["sources"]["again"]["case_prefix"] = "b_"
    report = merge_datasets(parse_merge_spec(twice, base=tmp), tmp / "out")
    assert report["n_train"] == 12 and (tmp / "out" / "imagesTr" / "b_liver_0001_0000.nii.gz").is_file()


def test_image_label_grid_mismatch_and_undeclared_values(sources):
    tmp, lits, _, spec = sources
    lab = lits / "labelsTr" / "liver_0003.nii.gz"
    img = nib.load(lab)
    moved = img.affine.copy()
    moved[0, 3] += 5
    nib.save(nib.Nifti1Image(np.asanyarray(img.dataobj), moved, img.header), lab)
    with pytest.raises(WeaksegError, match="case liver_0003: affine liver_0003.nii.gz differs"):
        merge_datasets(parse_merge_spec(spec, base=tmp), tmp / "out")
    arr = np.asanyarray(img.dataobj).copy()
    arr[0, 0, 0] = 7
    nib.save(nib.Nifti1Image(arr, img.affine, img.header), lab)
    with pytest.raises(WeaksegError, match=r"liver_0003.nii.gz: label value\(s\) \[7\] are not declared"):
        merge_datasets(parse_merge_spec(spec, base=tmp), tmp / "out")
    assert not (tmp / "out").exists() and not list(tmp.glob("out.tmp-*"))


def test_existing_destination_is_not_touched(sources, capsys):
    tmp, _, _, _ = sources
    dst = tmp / "dst"
    dst.mkdir()
    (dst / "keep.txt").write_text("x")
    assert main(["merge", str(tmp / "spec.json"), str(dst)]) == 2
    assert "already exists" in capsys.readouterr().err and [p.name for p in dst.iterdir()] == ["keep.txt"]


def test_status_table_json_and_csv(tmp_path):
    (tmp_path / "s.csv").write_text("case,organ,status\na,liver,absent\na,stomach,unknown\nb,liver,present\n")
    assert read_status_table(tmp_path / "s.csv") == {"a": {"liver": "absent", "stomach": "unknown"},
                                                      "b": {"liver": "present"}}
    (tmp_path / "s.json").write_text(json.dumps({"a": {"liver": "absent"}}))
    assert read_status_table(tmp_path / "s.json") == {"a": {"liver": "absent"}}
    (tmp_path / "bad.csv").write_text("case,class,status\na,liver,maybe\n")
    with pytest.raises(WeaksegError, match=r"line 2: status 'maybe' is not one of mask, present, absent, unknown"):
        read_status_table(tmp_path / "bad.csv")
    (tmp_path / "cols.csv").write_text("id,class,status\na,liver,mask\n")
    with pytest.raises(WeaksegError, match="header must be case,class,status"):
        read_status_table(tmp_path / "cols.csv")


def test_status_command_edits_one_dataset(tmp_path, capsys):
    root = tmp_path / "ds"
    write_abdomen_dataset(root, 3, 0, shape=SHAPE, absent_rate=0.0)
    before = json.loads((root / "dataset.json").read_text())
    (tmp_path / "s.csv").write_text("case,class,status\nabd_0001,stomach,unknown\nabd_0002,liver,absent\n")
    # abd_0002 holds liver voxels: 'absent' is accepted in the block (voxels are checked by weakseg check)
    assert main(["status", str(root), "--set", str(tmp_path / "s.csv"), "--source", "lits=liver"]) == 0
    after = json.loads((root / "dataset.json").read_text())
    assert {k: v for k, v in after.items() if k != "weakseg"} == {k: v for k, v in before.items() if k != "weakseg"}
    assert after["weakseg"]["cases"]["abd_0001"]["status"] == {"stomach": "unknown"}
    assert after["weakseg"]["sources"] == {"lits": {"annotated": ["liver"]}}
    out = capsys.readouterr().out
    assert "stomach: mask 2, present 0, absent 0, unknown 1" in out
    (tmp_path / "bad.json").write_text(json.dumps({"abd_0009": {"liver": "absent"}}))
    assert main(["status", str(root), "--set", str(tmp_path / "bad.json")]) == 2
    assert "case 'abd_0009' is not in the dataset" in capsys.readouterr().err
    assert json.loads((root / "dataset.json").read_text()) == after                  # unchanged
    with pytest.raises(WeaksegError, match="unknown class 'kidney'"):
        set_statuses(root, {"abd_0001": {"kidney": "absent"}})
