"""SMILE, SMILEr's round step and the softmax baselines on a tiny phantom."""

from __future__ import annotations

import pytest
import torch

from tests.organs_toy import make_overlay, make_phantom, organs_overrides
from weakseg.config import load_config
from weakseg.data.registry import build_data
from weakseg.data.samplers import pool_indices
from weakseg.data.status import MASK, UNKNOWN
from weakseg.errors import WeaksegError
from weakseg.losses.partial_label import weighted_bce
from weakseg.methods.partial import smile_targets
from weakseg.methods.registry import build_method
from weakseg.training.context import LoopContext


@pytest.fixture(scope="module")
def phantom(tmp_path_factory):
    root = make_phantom(tmp_path_factory.mktemp("organs_m") / "ds")
    overlay = root.parent / "overlay.json"
    make_overlay(root, overlay, alpha=0.5)
    return root, overlay


def _setup(phantom, method: str, *extra: str):
    root, overlay = phantom
    cfg = load_config(f"organs/{method}", [*organs_overrides(root, overlay), *extra])
    data = build_data(cfg)
    m = build_method(cfg, data, torch.device("cpu"))
    ctx = LoopContext(cfg=cfg, device=torch.device("cpu"), generator=torch.Generator().manual_seed(0))
    train = m.train_split if m.train_split is not None else data.split("train")   # what the loop's streams use
    idx = pool_indices(train, "all")
    return cfg, data, m, ctx, train, train.batch(idx[:6])


@pytest.mark.parametrize("method,channels", [("smile", 3), ("naive", 4), ("oracle", 4), ("spatial_ignore", 4),
                                            ("oracle_sigmoid", 3), ("marginal", 4)])
def test_each_method_takes_a_finite_step(phantom, method: str, channels: int) -> None:
    _, _, m, ctx, _, batch = _setup(phantom, method)
    before = [p.detach().clone() for p in m.models.parameters()]
    m.set_training(True)
    logs = m.steps[0](m, {"all": batch}, ctx)
    assert logs and all(torch.isfinite(v) for v in logs.values())
    assert any(not torch.equal(a, b) for a, b in zip(before, m.models.parameters()))
    assert m.segment(batch.image).shape[1] == channels


def test_smile_gradient_is_exactly_zero_where_w_is_zero(phantom) -> None:
    _, _, m, _, _, batch = _setup(phantom, "smile")
    target, weight = smile_targets(batch)
    assert bool((weight == 0).any()) and bool((weight == 1).any())
    logits = m.segment(batch.image)
    logits.retain_grad()
    weighted_bce(logits, target, weight).backward()
    assert torch.count_nonzero(logits.grad[weight == 0]) == 0
    assert torch.count_nonzero(logits.grad[weight == 1]) > 0


def test_naive_reads_the_partial_map_as_nnunet_does(phantom) -> None:
    _, data, _, _, train, _ = _setup(phantom, "naive")
    original = build_data(load_config("organs/naive", organs_overrides(*phantom))).split("train")
    assert (train.status == MASK).all()                       # every slice, all-lost volumes included
    assert torch.equal(train.masks, original.masks)           # hidden organs stay background, nothing revealed
    assert len(pool_indices(train, "all")) == len(train) > len(pool_indices(original, "all")) - 1
    assert torch.equal(data.split("train").status, original.status)   # the builder left the bundle as it was


@pytest.mark.parametrize("method", ["oracle", "oracle_sigmoid"])
def test_oracles_need_the_full_labels_option(phantom, method: str) -> None:
    root, overlay = phantom
    cfg = load_config(f"organs/{method}", [*organs_overrides(root, overlay), "data.organs.full_labels=false"])
    with pytest.raises(WeaksegError, match=f"method {method} .*full_labels=true"):
        build_method(cfg, build_data(cfg), torch.device("cpu"))
    _, _, _, _, train, _ = _setup(phantom, method)
    assert torch.equal(train.masks, train.truth)


def test_oracle_sigmoid_is_smile_with_every_weight_one(phantom) -> None:
    _, _, m, ctx, train, batch = _setup(phantom, "oracle_sigmoid", "smile.pos_weight=[2,3,4]", "smile.dice_weight=1")
    target, weight = smile_targets(batch)
    assert bool((weight == 1).all()) and torch.equal(target, batch.mask.float())
    m.set_training(True)
    assert set(m.steps[0](m, {"all": batch}, ctx)) == {"loss/bce", "loss/dice", "smile/known_fraction"}


def test_marginal_method_uses_statuses_and_refuses_bad_options(phantom) -> None:
    from weakseg.losses.partial_label import MarginalLoss, ce_targets

    _, _, m, ctx, _, batch = _setup(phantom, "marginal", "smile.dice_weight=1", "smile.ce_weight=[1,3,10,30]",
                                    "model.kwargs.dropout=0")
    assert bool((batch.status == UNKNOWN).any()), "the test batch should hold a missing class"
    m.set_training(True)
    logits = m.segment(batch.image).detach()
    expected = MarginalLoss(class_weight=[1, 3, 10, 30], dice_weight=1.0, exclusion_weight=0.2)(
        logits, ce_targets(batch.mask, batch.status), batch.status)
    logs = m.steps[0](m, {"all": batch}, ctx)
    assert set(logs) == {"loss/ce", "loss/dice", "loss/exclusion"}
    for k, v in expected.items():
        assert float(logs[f"loss/{k}"]) == pytest.approx(float(v), rel=1e-5)
    for bad, match in (("marginal.exclusion=ce", "marginal.exclusion must be one of 'dice', 'log'"),
                       ("marginal.exclusion_weight=-1", "marginal.exclusion_weight must be a finite number >= 0")):
        with pytest.raises(WeaksegError, match=match):
            _setup(phantom, "marginal", bad)


def test_decode_pos_weight_follows_the_calibration_switch(phantom) -> None:
    from weakseg.evaluation.decode import decode_pos_weight

    root, overlay = phantom
    cfg = load_config("organs/smile", [*organs_overrides(root, overlay), "smile.pos_weight=[3,10,30]"])
    assert decode_pos_weight(cfg) == [3.0, 10.0, 30.0] and cfg.smile.calibrate_pos_weight is True
    off = load_config("organs/smile", [*organs_overrides(root, overlay), "smile.pos_weight=[3,10,30]",
                                       "smile.calibrate_pos_weight=false"])
    assert decode_pos_weight(off) is None
    naive = load_config("organs/naive", [*organs_overrides(root, overlay), "smile.pos_weight=[3,10,30]"])
    assert decode_pos_weight(naive) is None                                            # softmax: nothing to undo


def test_drop_incomplete_keeps_exactly_the_complete_volumes(phantom) -> None:
    root, overlay = phantom
    cfg = load_config("organs/drop_incomplete", organs_overrides(root, overlay))
    data = build_data(cfg)
    original = data.split("train")
    complete = ~(original.status == UNKNOWN).any(1)
    if not bool(complete.any()):
        with pytest.raises(WeaksegError, match="no training volume"):
            build_method(cfg, data, torch.device("cpu"))
        return
    build_method(cfg, data, torch.device("cpu"))
    kept = pool_indices(data.split("train"), "all")
    assert torch.equal(kept, complete.nonzero().squeeze(1))


def test_spatial_ignore_ignores_background_of_incomplete_volumes(phantom) -> None:
    from weakseg.losses.partial_label import spatial_ignore_targets
    _, _, _, _, train, batch = _setup(phantom, "spatial_ignore")
    target = spatial_ignore_targets(batch.mask, batch.status)
    incomplete = (batch.status == UNKNOWN).any(1)
    assert bool((target[incomplete] != -100).sum() == (batch.mask[incomplete].sum()))
    assert not bool((target[~incomplete] == -100).any())


def test_half_positive_batches_and_ce_weight(phantom) -> None:
    from weakseg.training.loop import build_streams
    cfg, data, m, ctx, train, _ = _setup(phantom, "naive", "train.batch_size=6", "train.min_labeled_per_batch=3",
                                         "train.labeled_pool=any_positive", "smile.ce_weight=[1,2,5,10]")
    stream = build_streams(cfg, data, m)["all"]
    for _ in range(5):
        b = next(stream)
        visible = (b.mask.flatten(2).any(-1) & (b.status == MASK)).any(1)                  # (B,)
        assert b.image.shape[0] == 6 and bool(visible[:3].all())
    m.set_training(True)
    assert torch.isfinite(m.steps[0](m, {"all": b}, ctx)["loss/ce"])
    with pytest.raises(WeaksegError, match="ce_weight"):
        _setup(phantom, "oracle", "smile.ce_weight=[1,2]")


@pytest.mark.parametrize("method", ["naive", "spatial_ignore"])
def test_softmax_baselines_add_the_dice_term_when_asked(phantom, method: str) -> None:
    _, _, m, ctx, _, batch = _setup(phantom, method)
    assert set(m.steps[0](m, {"all": batch}, ctx)) == {"loss/ce"}
    _, _, m, ctx, _, batch = _setup(phantom, method, "smile.dice_weight=0.5")
    logs = m.steps[0](m, {"all": batch}, ctx)
    assert set(logs) == {"loss/ce", "loss/dice"} and 0 < float(logs["loss/dice"]) <= 0.5
