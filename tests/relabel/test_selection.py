"""SMILEr selection, pseudo-label updates and bookkeeping (smile.md §8, §9.1, §17.6)."""

from __future__ import annotations

import pytest
import torch

from weakseg.data.status import encode_statuses, status_targets
from weakseg.errors import WeaksegError
from weakseg.relabel.selection import (
    SMILER_MC_PRESET,
    SmilerOptions,
    gamma_schedule,
    pseudo_label_stats,
    relabel_round,
    select_pseudo_labels,
    selection_count,
    update_pseudo_labels,
)


def _hand_case() -> tuple[torch.Tensor, ...]:
    """One 2x4 image, K = 2: class 0 annotated (mask on pixels 0, 1), class 1 unknown."""
    label = torch.tensor([[1, 1, 0, 0], [0, 0, 0, 0]])
    status = encode_statuses(["mask", "unknown"]).view(1, 2)
    target0, weight0 = status_targets(label.unsqueeze(0), status)              # (1, 2, 2, 4)
    prob = torch.full((1, 2, 2, 4), 0.99)                                       # class 0: confident everywhere
    prob[0, 1] = torch.tensor([[0.99, 0.95, 0.9, 0.6], [0.8, 0.8, 0.3, 0.55]])
    return prob, target0, weight0, status


def _flat(mask: torch.Tensor, c: int = 1) -> list[int]:
    return mask[0, c].flatten().nonzero().flatten().tolist()


def test_gamma_schedule_and_count() -> None:
    assert [gamma_schedule(t, rounds=3) for t in (1, 2, 3)] == pytest.approx([1 / 3, 2 / 3, 1.0])
    assert gamma_schedule(2, rounds=4, gamma_max=0.8) == pytest.approx(0.4)
    assert SmilerOptions(**SMILER_MC_PRESET).gamma(1) == pytest.approx(1 / 3)
    assert selection_count(2 / 3, 3) == 2 and selection_count(1 / 3, 3) == 1 and selection_count(1 / 3, 4) == 2
    with pytest.raises(ValueError, match="1..3"):
        gamma_schedule(0, rounds=3)


@pytest.mark.parametrize(("gamma", "expected"), [
    (1 / 3, [2, 4]),            # ceil(5/3) = 2 of the candidates {2: .9, 4: .8, 5: .8, 3: .6, 7: .55}
    (0.3, [2, 4]),              # ceil(1.5) = 2: tie 4/5 at 0.8 goes to the lower flat index
    (0.5, [2, 4, 5]),
    (2 / 3, [2, 3, 4, 5]),      # ceil(10/3) = 4
    (1.0, [2, 3, 4, 5, 7]),     # pixels 0, 1 (W0 = 1) and 6 (p < tau) are never candidates
])
def test_right_pixels_chosen_and_count_follows_gamma(gamma: float, expected: list[int]) -> None:
    prob, _, weight0, status = _hand_case()
    chosen = select_pseudo_labels(prob, weight0, status, gamma=gamma, tau=0.5)
    assert _flat(chosen) == expected
    assert not chosen[0, 0].any(), "annotated classes are never relabelled"


def test_ties_are_deterministic_by_flat_index() -> None:
    prob = torch.full((2, 1, 3, 3), 0.7)                                        # every pixel ties
    weight0 = torch.zeros_like(prob)
    status = encode_statuses(["unknown"]).repeat(2, 1)
    for _ in range(2):
        img = select_pseudo_labels(prob, weight0, status, gamma=0.5)            # ceil(4.5) = 5 per image
        assert img[:, 0].flatten(1).nonzero()[:, 1].tolist() == [0, 1, 2, 3, 4] * 2
    glob = select_pseudo_labels(prob, weight0, status, gamma=0.5, rank_scope="global")  # ceil(9) = 9 overall
    assert glob[0].all() and not glob[1].any()


def test_candidate_set_all_ignored() -> None:
    prob, _, weight0, status = _hand_case()
    chosen = select_pseudo_labels(prob, weight0, status, gamma=1.0, candidate_set="all_ignored")
    assert _flat(chosen) == [2, 3, 4, 5, 6, 7]
    chosen = select_pseudo_labels(prob, weight0, status, gamma=0.5, candidate_set="all_ignored")
    assert _flat(chosen) == [2, 4, 5]                                           # ceil(3) by descending p


def test_candidate_set_predicted_label_keeps_pixels_where_the_class_wins() -> None:
    """A pixel is a candidate of the class with the largest probability only (first class on ties)."""
    status = encode_statuses(["unknown", "unknown"]).view(1, 2)
    weight0 = torch.zeros(1, 2, 1, 4)
    prob = torch.tensor([[[[0.9, 0.6, 0.7, 0.3]], [[0.8, 0.7, 0.7, 0.4]]]])   # (1, 2, 1, 4)
    positive = select_pseudo_labels(prob, weight0, status, gamma=1.0, candidate_set="predicted_positive")
    assert positive[0, :, 0].tolist() == [[True, True, True, False], [True, True, True, False]]
    label = select_pseudo_labels(prob, weight0, status, gamma=1.0, candidate_set="predicted_label")
    assert label[0, :, 0].tolist() == [[True, False, True, False], [False, True, False, False]]
    # an annotated class with a higher probability still takes the pixel away from the missing one
    hand_prob, _, hand_weight0, hand_status = _hand_case()
    assert not select_pseudo_labels(hand_prob, hand_weight0, hand_status, gamma=1.0,
                                    candidate_set="predicted_label").any()
    with pytest.raises(ValueError, match="predicted_label"):
        select_pseudo_labels(prob, weight0, status, gamma=1.0, candidate_set="nope")  # type: ignore[arg-type]


def test_rank_scopes() -> None:
    prob = torch.tensor([[0.9, 0.9, 0.9, 0.9], [0.6, 0.6, 0.1, 0.1], [0.7, 0.1, 0.1, 0.1]]).view(3, 1, 4)
    weight0 = torch.zeros_like(prob)
    status = encode_statuses(["unknown"]).repeat(3, 1)
    image = select_pseudo_labels(prob, weight0, status, gamma=0.5)
    assert image[:, 0].sum(1).tolist() == [2, 1, 1]                             # ceil(2), ceil(1), ceil(0.5)
    glob = select_pseudo_labels(prob, weight0, status, gamma=0.5, rank_scope="global")
    assert glob[:, 0].sum(1).tolist() == [4, 0, 0]                              # ceil(3.5) = 4 best of 7
    vol = select_pseudo_labels(prob, weight0, status, gamma=0.5, rank_scope="volume", volume_ids=["a", "a", "b"])
    assert vol[:, 0].sum(1).tolist() == [3, 0, 1]                               # volume a: ceil(3) of 6 pooled
    assert vol[0, 0].tolist() == [True, True, True, False]
    with pytest.raises(ValueError, match="volume_ids"):
        select_pseudo_labels(prob, weight0, status, gamma=0.5, rank_scope="volume")


def test_mc_std_lowest_first_then_mean_then_index() -> None:
    mean = torch.tensor([0.7, 0.6, 0.8, 0.9, 0.6]).view(1, 1, 5)
    std = torch.tensor([0.1, 0.05, 0.05, 0.2, 0.05]).view(1, 1, 5)
    weight0 = torch.zeros_like(mean)
    status = encode_statuses(["present"]).view(1, 1)
    pick = [select_pseudo_labels(mean, weight0, status, gamma=g, score="mc_std", std=std)[0, 0].nonzero().flatten()
            .tolist() for g in (0.2, 0.4, 0.6, 0.8)]
    # order: 2 (std .05, mean .8), 1 (.05, .6, lower index than 4), 4, 0 (.1), 3 (.2)
    assert pick == [[2], [1, 2], [1, 2, 4], [0, 1, 2, 4]]
    conf = torch.tensor([0.2, 0.9, 0.1, 0.9, 0.5]).view(1, 1, 5)
    got = select_pseudo_labels(mean, weight0, status, gamma=0.4, score="confidence", confidence=conf)
    assert got[0, 0].nonzero().flatten().tolist() == [1, 3]
    with pytest.raises(ValueError, match="std"):
        select_pseudo_labels(mean, weight0, status, gamma=0.4, score="mc_std")


def test_restrict_to_present() -> None:
    prob = torch.full((2, 1, 4), 0.9)
    weight0 = torch.zeros_like(prob)
    status = torch.stack([encode_statuses(["unknown"]), encode_statuses(["present"])])
    free = select_pseudo_labels(prob, weight0, status, gamma=1.0)
    only = select_pseudo_labels(prob, weight0, status, gamma=1.0, restrict_to_present=True)
    assert free[:, 0].sum(1).tolist() == [4, 4] and only[:, 0].sum(1).tolist() == [0, 4]
    absent = select_pseudo_labels(prob, weight0, encode_statuses(["absent"]).repeat(2, 1), gamma=1.0)
    assert not absent.any()


def test_union_versus_rebuild() -> None:
    a = torch.tensor([True, False, False]).view(1, 1, 3)
    b = torch.tensor([False, True, False]).view(1, 1, 3)
    assert update_pseudo_labels(None, a).tolist() == a.tolist()
    assert update_pseudo_labels(a, b, cumulative=True)[0, 0].tolist() == [True, True, False]
    assert update_pseudo_labels(a, b, cumulative=False)[0, 0].tolist() == [False, True, False]


def test_precision_recall_bookkeeping() -> None:
    status = torch.stack([encode_statuses(["unknown", "mask"]), encode_statuses(["unknown", "unknown"])])
    pseudo = torch.zeros(2, 2, 4, dtype=torch.bool)
    truth = torch.zeros(2, 2, 4, dtype=torch.bool)
    pseudo[0, 0, :3] = True                                                     # 2 TP, 1 FP
    truth[0, 0, 1:4] = True
    pseudo[1, 0, 0] = True                                                      # 1 TP
    truth[1, 0, :2] = True
    pseudo[0, 1, :] = True                                                      # annotated class: never counted
    stats = pseudo_label_stats(pseudo, truth, status, class_names=["liver", "stomach"])
    liver = stats["liver"]
    assert (liver["n_pseudo"], liver["tp"], liver["fp"], liver["n_truth"], liver["n_images"]) == (4, 3, 1, 5, 2)
    assert liver["precision"] == pytest.approx(0.75) and liver["recall"] == pytest.approx(0.6)
    assert (liver["image_precision_min"], liver["image_precision_max"]) == pytest.approx((2 / 3, 1.0))
    stomach = stats["stomach"]
    assert stomach["n_pseudo"] == 0 and stomach["precision"] is None and stomach["recall"] is None
    assert stomach["n_missing_images"] == 1
    assert "tp" not in pseudo_label_stats(pseudo, None, status)["1"]              # counts only without truth


def test_relabel_round_end_to_end() -> None:
    prob, target0, weight0, status = _hand_case()
    truth = torch.zeros_like(target0, dtype=torch.bool)
    truth[0, 1, 0, 2:4] = True
    opts = SmilerOptions(rounds=3)
    previous = None
    counts = []
    for t in (1, 2, 3):
        res = relabel_round(t, prob, target0, weight0, status, opts, previous=previous, truth=truth)
        previous = res.pseudo
        counts.append(int(res.pseudo.sum()))
        assert torch.equal(res.target[0, 0], target0[0, 0]) and torch.equal(res.weight[0, 0], weight0[0, 0])
        assert torch.equal(res.target[0, 1].bool(), res.pseudo[0, 1])
    assert counts == [2, 4, 5] and res.gamma == pytest.approx(1.0)
    assert res.stats["2"]["tp"] == 2 and res.stats["2"]["precision"] == pytest.approx(0.4)


def test_options_validation() -> None:
    opts = SmilerOptions.from_dict({"rounds": 5, "rank_scope": "volume"})
    assert opts.rounds == 5 and opts.to_dict()["rank_scope"] == "volume"
    with pytest.raises(WeaksegError, match="smiler.gama_max: unknown key"):
        SmilerOptions.from_dict({"gama_max": 0.5})
    assert SmilerOptions().mc_dropout_p is None and SmilerOptions(mc_dropout_p=0.3).mc_dropout_p == 0.3
    assert SmilerOptions(candidate_set="predicted_label").candidate_set == "predicted_label"
    for bad in ({"gamma_max": 0.0}, {"tau": 1.0}, {"score": "entropy"}, {"rounds": 0}, {"mc_samples": 1},
                {"mc_dropout_p": 1.0}, {"mc_dropout_p": "half"}, {"candidate_set": "argmax"}):
        with pytest.raises(WeaksegError, match="smiler."):
            SmilerOptions.from_dict(bad)
    # one line naming the key and its valid range or values
    for bad, match in (({"gamma_max": 1.5}, r"smiler.gamma_max must be a number in \(0, 1\], got 1.5"),
                       ({"gamma_max": "all"}, r"smiler.gamma_max must be a number in \(0, 1\]"),
                       ({"tau": -0.1}, r"smiler.tau must be a number in \[0, 1\), got -0.1"),
                       ({"rank_scope": "slice"}, "smiler.rank_scope must be one of 'image', 'volume', 'global'"),
                       ({"init": "previous"}, "smiler.init must be one of 'continue', 'smile', 'scratch'")):
        with pytest.raises(WeaksegError, match=match) as err:
            SmilerOptions.from_dict(bad)
        assert "\n" not in str(err.value)
