"""Probability and MC-dropout scores (smile.md §9.1, §17.7)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from weakseg.data.status import encode_statuses
from weakseg.relabel.scoring import mc_dropout_mode, mc_dropout_scores, probability_scores
from weakseg.relabel.selection import select_pseudo_labels


class TinySegmenter(nn.Module):
    def __init__(self, k: int = 2, p: float = 0.5) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 6, 3, padding=1)
        self.norm = nn.BatchNorm2d(6)
        self.drop = nn.Dropout2d(p)
        self.head = nn.Conv2d(6, k, 1)
        self.seen: list[tuple[bool, bool]] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.seen.append((self.norm.training, self.drop.training))
        return self.head(self.drop(torch.relu(self.norm(self.conv(x)))))


def _model_and_images() -> tuple[TinySegmenter, torch.Tensor]:
    torch.manual_seed(0)
    model = TinySegmenter()
    images = torch.randn(5, 1, 8, 8)
    model.train()
    model(images)                                                               # give BN non-trivial running stats
    model.seen.clear()
    return model, images


def test_probability_scores_eval_mode_and_plain_callables() -> None:
    model, images = _model_and_images()
    model.train()
    probs = probability_scores(model, images, batch_size=2)
    assert model.training and all(flags == (False, False) for flags in model.seen)
    model.eval()
    torch.testing.assert_close(probs, torch.sigmoid(model(images)))
    torch.testing.assert_close(probability_scores(lambda x: model(x), images), probs)
    with pytest.raises(TypeError, match="logits tensor"):
        probability_scores(lambda x: {"logits": model(x)}, images)


def test_mc_dropout_active_batchnorm_frozen_and_seeded() -> None:
    model, images = _model_and_images()
    running = model.norm.running_mean.clone()
    model.train()
    before = torch.random.get_rng_state()
    mean, std = mc_dropout_scores(model, images, samples=6, seed=11, batch_size=2)
    assert torch.equal(torch.random.get_rng_state(), before), "caller's RNG state must be unchanged"
    assert torch.equal(model.norm.running_mean, running), "batch norm statistics must stay frozen"
    assert model.seen and all(flags == (False, True) for flags in model.seen)
    assert model.training and model.drop.training                               # flags restored
    again_mean, again_std = mc_dropout_scores(model, images, samples=6, seed=11, batch_size=2)
    assert torch.equal(mean, again_mean) and torch.equal(std, again_std)
    other_mean, _ = mc_dropout_scores(model, images, samples=6, seed=12, batch_size=2)
    assert not torch.equal(mean, other_mean)
    assert mean.shape == std.shape == (5, 2, 8, 8) and (std > 0).any()


def test_mc_dropout_matches_manual_passes() -> None:
    model, images = _model_and_images()
    mean, std = mc_dropout_scores(model, images, samples=4, seed=3, batch_size=8)
    with torch.random.fork_rng(), torch.no_grad():
        torch.manual_seed(3)
        model.eval()
        model.drop.train()
        passes = torch.stack([torch.sigmoid(model(images)) for _ in range(4)])  # (N_mc, B, K, H, W)
    torch.testing.assert_close(mean, passes.mean(0))
    torch.testing.assert_close(std, passes.std(0, unbiased=False))


def test_mc_dropout_needs_dropout() -> None:
    with pytest.raises(ValueError, match="nn.Dropout"):
        with mc_dropout_mode(nn.Sequential(nn.Conv2d(1, 2, 1))):
            pass


def test_lowest_std_candidates_are_picked_first() -> None:
    model, images = _model_and_images()
    mean, std = mc_dropout_scores(model, images, samples=8, seed=0)
    weight0 = torch.zeros_like(mean)
    status = encode_statuses(["unknown", "unknown"]).repeat(5, 1)
    tau = float(mean.median())
    chosen = select_pseudo_labels(mean, weight0, status, gamma=1 / 3, tau=tau, score="mc_std", std=std)
    cand = mean > tau
    for i in range(5):
        for c in range(2):
            picked, rest = chosen[i, c], cand[i, c] & ~chosen[i, c]
            n = int(cand[i, c].sum())
            assert int(picked.sum()) == -(-n // 3)
            if picked.any() and rest.any():
                assert std[i, c][picked].max() <= std[i, c][rest].min()


def test_mc_dropout_p_overrides_the_trained_probability_and_is_restored() -> None:
    model, images = _model_and_images()
    trained, _ = mc_dropout_scores(model, images, samples=4, seed=5)
    heavier, _ = mc_dropout_scores(model, images, samples=4, seed=5, p=0.9)
    assert model.drop.p == 0.5, "the module's own p must come back"
    assert not torch.equal(trained, heavier)
    with torch.random.fork_rng(), torch.no_grad():                              # same passes, built with p=0.9
        torch.manual_seed(5)
        model.eval()
        model.drop.train()
        model.drop.p = 0.9
        passes = torch.stack([torch.sigmoid(model(images)) for _ in range(4)])
        model.drop.p = 0.5
    torch.testing.assert_close(heavier, passes.mean(0))
    with pytest.raises(ValueError, match="in \\(0, 1\\)"):
        mc_dropout_scores(model, images, samples=2, p=1.0)
    assert model.drop.p == 0.5


def test_scores_take_pos_weight_out_of_the_sigmoid() -> None:
    # with pos_weight w_k the BCE optimum is z = logit(p) + log w_k: the calibrated score is sigmoid(z - log w_k)
    model, images = _model_and_images()
    raw = probability_scores(model, images)
    cal = probability_scores(model, images, pos_weight=[4.0, 1.0])
    torch.testing.assert_close(cal[:, 1], raw[:, 1])
    torch.testing.assert_close(cal[:, 0], torch.sigmoid(torch.logit(raw[:, 0]) - torch.log(torch.tensor(4.0))))
    mean_raw, _ = mc_dropout_scores(model, images, samples=3, seed=1)
    mean_cal, std_cal = mc_dropout_scores(model, images, samples=3, seed=1, pos_weight=[4.0, 1.0])
    torch.testing.assert_close(mean_cal[:, 1], mean_raw[:, 1])
    assert bool((mean_cal[:, 0] < mean_raw[:, 0]).all()) and bool((std_cal >= 0).all())
