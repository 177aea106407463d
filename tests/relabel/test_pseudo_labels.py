"""weakseg.relabel.pseudo_labels: the one owner of SMILEr's pseudo-labels (file, training split)."""

from __future__ import annotations

import pytest
import torch

import tests.toy  # noqa: F401  (registers the toy dataset)
from tests.organs_toy import make_overlay, make_phantom, organs_overrides
from weakseg.config import load_config
from weakseg.data.registry import build_data
from weakseg.data.status import PRESENT, is_missing
from weakseg.errors import WeaksegError
from weakseg.methods.registry import build_method
from weakseg.relabel.pseudo_labels import load_pseudo_labels, pseudo_label_path, save_pseudo_labels, with_pseudo_labels


def test_file_round_trip_and_refusals(tmp_path) -> None:
    pseudo = torch.rand(3, 2, 5, 7) > 0.6                  # 210 bits: packed into bytes with padding
    path = pseudo_label_path(tmp_path / "run", 2)
    assert path == tmp_path / "run" / "pseudo" / "round_2" / "pseudo.pt"
    save_pseudo_labels(path, pseudo)
    assert torch.equal(load_pseudo_labels(path, (3, 2, 5, 7)), pseudo)
    assert not list(path.parent.glob("*.tmp"))
    with pytest.raises(WeaksegError, match=r"do not fit the training set \(3, 2, 5, 8\)"):
        load_pseudo_labels(path, (3, 2, 5, 8))
    with pytest.raises(WeaksegError, match=r"pseudo-labels .*round_3.* not found; the SMILEr round driver writes"):
        load_pseudo_labels(pseudo_label_path(tmp_path / "run", 3), (3, 2, 5, 7))


@pytest.fixture(scope="module")
def organs(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("pseudo")
    root = make_phantom(tmp / "ds")
    make_overlay(root, tmp / "ov.json", alpha=0.7)
    return load_config("organs/smiler", organs_overrides(root, tmp / "ov.json"))


def test_applied_to_a_copy_of_the_training_split(organs) -> None:
    data = build_data(organs)
    train = data.split("train")
    missing = is_missing(train.status)
    assert bool(missing.any())
    pseudo = torch.zeros(train.masks.shape, dtype=torch.bool)
    n, c = [int(i) for i in missing.nonzero()[0]]
    pseudo[n, c, 3:5, 3:5] = True                          # one pseudo-positive patch of a missing class
    out = with_pseudo_labels(data, pseudo)
    got = out.split("train")
    assert got.pseudo_labels is pseudo and data.split("train") is train and train.pseudo_labels is None
    assert out.split("valid") is data.split("valid") and out.split("test") is data.split("test")
    expected = train.status.clone()
    expected[n, c] = PRESENT                               # the slice now enters the 'all' pool for that class
    assert torch.equal(got.status, expected) and torch.equal(got.masks, train.masks)
    assert got.with_status(got.status).pseudo_labels is pseudo      # later views keep them
    with pytest.raises(WeaksegError, match=r"do not fit the training set"):
        with_pseudo_labels(data, pseudo[:, :1])


def test_the_builder_reads_no_file_and_trains_on_what_the_split_carries(organs) -> None:
    data = build_data(organs)
    train = data.split("train")
    pseudo = torch.zeros(train.masks.shape, dtype=torch.bool)
    pseudo[is_missing(train.status)] = True                # every pixel of every missing pair
    relabelled = with_pseudo_labels(data, pseudo)
    before = relabelled.split("train")
    method = build_method(organs, relabelled, torch.device("cpu"))
    assert relabelled.split("train") is before            # the builder left the split alone
    batch = relabelled.split("train").batch(torch.arange(4))
    from weakseg.methods.partial import smile_targets

    y, w = smile_targets(batch, pseudo)
    hidden = is_missing(batch.status)[:, :, None, None].expand_as(y)
    assert bool((y[hidden] == 1).all()) and bool((w[hidden] == 1).all())
    assert method.name == "smiler" and len(method.steps) == 1
    build_method(organs, data, torch.device("cpu"))        # a run rebuilt for evaluation: no pseudo-labels


def test_only_organ_slices_carry_pseudo_labels() -> None:
    data = build_data(load_config(None, ["data.name=toy"]))
    with pytest.raises(WeaksegError, match=r"need a multi-organ slice dataset \(data.name=organs\)"):
        with_pseudo_labels(data, torch.zeros(data.split("train").masks.shape, dtype=torch.bool))
