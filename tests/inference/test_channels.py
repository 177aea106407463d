"""weakseg.inference.channels: which input file is which model channel, never guessed."""

from __future__ import annotations

import json

import pytest

from weakseg.errors import WeaksegError
from weakseg.inference.channels import plan_channels

RUN = ("flair", "t1ce", "t1", "t2")


def _folder(tmp_path, names=None, *, in_parent=True):
    ts = tmp_path / "Dataset1_X" / "imagesTs"
    ts.mkdir(parents=True)
    if names is not None:
        where = ts.parent if in_parent else ts
        (where / "dataset.json").write_text(json.dumps({"channel_names": {str(i): n for i, n in enumerate(names)}}))
    return ts


def test_same_order_reads_files_as_they_are(tmp_path):
    plan = plan_channels(_folder(tmp_path, ["FLAIR", "T1ce", "T1", "T2"]), RUN)     # case does not matter
    assert plan.file_index == (0, 1, 2, 3) and plan.source.startswith("dataset.json")


def test_dataset_json_inside_the_folder_counts_too(tmp_path):
    assert plan_channels(_folder(tmp_path, list(RUN), in_parent=False), RUN).file_index == (0, 1, 2, 3)


def test_another_order_in_dataset_json_is_refused_with_the_fix(tmp_path):
    with pytest.raises(WeaksegError, match=r"channel_names \['t1', 't1ce', 't2', 'flair'\] differ .*"
                                           r"--channels t1,t1ce,t2,flair"):
        plan_channels(_folder(tmp_path, ["t1", "t1ce", "t2", "flair"]), RUN)


def test_other_modalities_are_refused(tmp_path):
    with pytest.raises(WeaksegError, match="cannot use other modalities"):
        plan_channels(_folder(tmp_path, ["CT", "PET", "T1", "T2"]), RUN)


def test_given_channels_map_files_to_the_run_order(tmp_path):
    plan = plan_channels(_folder(tmp_path), RUN, given=["t1", "t1ce", "t2", "flair"])      # Dataset137's order
    assert plan.file_index == (3, 1, 0, 2)          # flair is file 3, t1ce file 1, t1 file 0, t2 file 2


def test_given_channels_must_agree_with_dataset_json(tmp_path):
    with pytest.raises(WeaksegError, match="disagrees with"):
        plan_channels(_folder(tmp_path, list(RUN)), RUN, given=["t1", "t1ce", "t2", "flair"])


@pytest.mark.parametrize("given", [["flair", "t1ce", "t1"], ["flair", "flair", "t1", "t2"], ["a", "b", "c", "d"]])
def test_given_channels_must_name_each_run_channel_once(tmp_path, given):
    with pytest.raises(WeaksegError, match="name each input file's channel once"):
        plan_channels(_folder(tmp_path), RUN, given=given)


def test_nothing_declared(tmp_path):
    assert plan_channels(_folder(tmp_path), ("CT",)).file_index == (0,)       # one channel: nothing to order
    with pytest.raises(WeaksegError, match="no dataset.json .* takes 4"):
        plan_channels(tmp_path / "Dataset1_X" / "imagesTs", RUN)


def test_malformed_dataset_json(tmp_path):
    ts = _folder(tmp_path)
    (ts.parent / "dataset.json").write_text("{not json")
    with pytest.raises(WeaksegError, match="not a valid dataset.json"):
        plan_channels(ts, RUN)
    (ts.parent / "dataset.json").write_text(json.dumps({"channel_names": {"1": "a"}}))
    with pytest.raises(WeaksegError, match="must map"):
        plan_channels(ts, RUN)
