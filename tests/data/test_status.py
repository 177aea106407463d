"""SMILE targets/weights, status resolution, slice inheritance and label usage (smile.md §4, §15, §17.1-17.4)."""

from __future__ import annotations

import itertools

import pytest
import torch

from weakseg.data.phantom import make_abdomen
from weakseg.data.simulate import simulate_missing
from weakseg.data.status import (
    STATUSES,
    apply_pseudo_labels,
    check_label_statuses,
    classes_without_masks,
    is_missing,
    encode_statuses,
    label_usage,
    resolve_statuses,
    slice_status,
    slice_status_codes,
    status_codes_table,
    status_targets,
    status_targets_from_masks,
)
from weakseg.errors import WeaksegError
from weakseg.losses.partial_label import ce_targets

# one pixel of each kind: background, a voxel of class 1, a voxel of class 2
LABEL = torch.tensor([0, 1, 2])
ANNOTATED = ("mask", "absent")


def _expected(k: int, statuses: tuple[str, str]) -> tuple[list[float], list[float]]:
    """Hand reading of the rule table (§4.1, §15.1) at the pixels (background, class-1 voxel, class-2 voxel)."""
    own, other = k, 3 - k  # pixel index of this class's voxel and of the other class's voxel
    st, st_other = statuses[k - 1], statuses[other - 1]
    y = [0.0, 0.0, 0.0]
    if st == "mask":
        y[own] = 1.0
    if st in ANNOTATED:
        w = [1.0, 1.0, 1.0]
    else:  # missing: known negative only on a voxel of another *mask* class; own voxels are not labels
        w = [0.0, 0.0, 0.0]
        w[other] = 1.0 if st_other == "mask" else 0.0
    return y, w


@pytest.mark.parametrize("statuses", list(itertools.product(STATUSES, repeat=2)))
def test_rule_table_every_status_combination(statuses: tuple[str, str]) -> None:
    y, w = status_targets(LABEL, list(statuses))
    for k in (1, 2):
        ey, ew = _expected(k, statuses)
        assert y[k - 1].tolist() == ey, f"Y for class {k} under {statuses}"
        assert w[k - 1].tolist() == ew, f"W for class {k} under {statuses}"
    assert not bool(((y == 1) & (w == 0)).any()), "Y must never be 1 where W is 0"


def test_codes_words_batched_and_mask_stack_agree() -> None:
    g = torch.Generator().manual_seed(0)
    label = torch.randint(0, 4, (3, 5, 6), generator=g)                       # (B, H, W), K = 3
    words = [["mask", "unknown", "absent"], ["unknown", "unknown", "mask"], ["present", "mask", "mask"]]
    codes = torch.stack([encode_statuses(r) for r in words])                    # (B, K)
    yb, wb = status_targets(label, codes)
    assert yb.shape == wb.shape == (3, 3, 5, 6) and yb.dtype == torch.float32
    for b in range(3):
        y1, w1 = status_targets(label[b], words[b])
        assert torch.equal(yb[b], y1) and torch.equal(wb[b], w1)
    onehot = torch.stack([(label == k) for k in (1, 2, 3)], 1).to(torch.uint8)  # (B, K, H, W) as in Batch.mask
    ym, wm = status_targets_from_masks(onehot, codes, has_mask=torch.ones(3, dtype=torch.bool))
    assert torch.equal(ym, yb) and torch.equal(wm, wb)


def test_leak_guard_hidden_voxels_never_reach_targets() -> None:
    label = torch.tensor([[1, 1, 2, 3, 0]])
    y, w = status_targets(label, ["unknown", "mask", "unknown"])
    assert y[0].sum() == 0 and y[2].sum() == 0                                   # class 1 and 3 voxels hidden
    assert y[1].tolist() == [[0, 0, 1, 0, 0]]
    # hidden voxels of classes 1 and 3 are not known negatives for the other missing class
    assert w[0].tolist() == [[0, 0, 1, 0, 0]] and w[2].tolist() == [[0, 0, 1, 0, 0]]


def test_all_unknown_gives_zero_weights() -> None:
    y, w = status_targets(torch.tensor([[0, 1, 2, 3]]), ["unknown"] * 3)
    assert y.sum() == 0 and w.sum() == 0


def test_mask_status_without_mask_and_bad_labels_raise() -> None:
    with pytest.raises(ValueError, match="sample 1: class 0"):
        status_targets_from_masks(torch.zeros(2, 2, 4), encode_statuses(["mask", "unknown"]).repeat(2, 1),
                                  has_mask=torch.tensor([True, False]))
    with pytest.raises(ValueError, match="0..2"):
        status_targets(torch.tensor([0, 3]), ["mask", "mask"])


SPEC_BLOCK = {  # smile.md §15.4
    "format": 1,
    "default_status": "mask",
    "sources": {"lits": {"annotated": ["liver"]}, "msd_pancreas": {"annotated": ["pancreas"]},
                "btcv": {"annotated": "all"}},
    "cases": {
        "abd_0001": {"source": "btcv"},
        "abd_0002": {"source": "lits"},
        "abd_0003": {"source": "lits", "status": {"stomach": "present"}},
        "abd_0004": {"source": "msd_pancreas", "status": {"stomach": "absent"}},
        "abd_0005": {"status": {"liver": "mask", "stomach": "unknown", "pancreas": "mask"}},
    },
}
CASES = ["abd_0001", "abd_0002", "abd_0003", "abd_0004", "abd_0005", "abd_0006"]
CLASSES = ["liver", "stomach", "pancreas"]


def test_resolution_reproduces_spec_table() -> None:
    got = resolve_statuses(SPEC_BLOCK, CASES, CLASSES)
    table = {
        "abd_0001": ("mask", "mask", "mask"),
        "abd_0002": ("mask", "unknown", "unknown"),
        "abd_0003": ("mask", "present", "unknown"),
        "abd_0004": ("unknown", "absent", "mask"),
        "abd_0005": ("mask", "unknown", "mask"),
        "abd_0006": ("mask", "mask", "mask"),                                    # default_status
    }
    assert {c: tuple(got[c][k] for k in CLASSES) for c in CASES} == table


def test_resolution_order_default_and_overlay_last() -> None:
    assert resolve_statuses(None, ["a"], CLASSES) == {"a": dict.fromkeys(CLASSES, "mask")}
    block = {"default_status": "unknown", "sources": {"s": {"annotated": ["liver"]}},
             "cases": {"b": {"source": "s", "status": {"liver": "absent"}}}}
    overlay = {"cases": {"b": {"status": {"liver": "unknown"}}, "c": {"status": {"stomach": "present"}}},
               "simulation": {"mode": "exact"}}
    got = resolve_statuses(block, ["a", "b", "c"], CLASSES, overlay=overlay)
    assert got["a"] == dict.fromkeys(CLASSES, "unknown")                         # default_status
    assert got["b"] == {"liver": "unknown", "stomach": "unknown", "pancreas": "unknown"}  # overlay over per-case
    assert got["c"] == {"liver": "unknown", "stomach": "present", "pancreas": "unknown"}
    # per-case status beats the source
    assert resolve_statuses(block, ["a", "b", "c"], CLASSES)["b"]["liver"] == "absent"


@pytest.mark.parametrize(("block", "pattern"), [
    ({"cases": {"abd_0001": {"status": {"liver": "msk"}}}}, r"abd_0001\.status\.liver.*'msk'"),
    ({"cases": {"abd_0001": {"status": {"kidney": "mask"}}}}, r"abd_0001\.status\.kidney.*unknown class"),
    ({"cases": {"abd_0001": {"source": "amos"}}}, r"abd_0001\.source.*'amos' is not declared"),
    ({"sources": {"x": {"annotated": ["spleen"]}}}, r"sources\.x\.annotated.*'spleen'"),
    ({"cases": {"zzz": {}}}, r"zzz.*not in the dataset"),
    ({"casez": {}}, r"unknown key 'casez'"),
    ({"default_status": "maybe"}, r"default_status.*'maybe'"),
])
def test_resolution_errors_name_case_and_class(block: dict, pattern: str) -> None:
    with pytest.raises(WeaksegError, match=pattern):
        resolve_statuses(block, CASES, CLASSES)


def test_overlay_errors() -> None:
    with pytest.raises(WeaksegError, match="overlay.cases.nope"):
        resolve_statuses(None, CASES, CLASSES, overlay={"cases": {"nope": {"status": {"liver": "unknown"}}}})
    with pytest.raises(WeaksegError, match="overlay.cases.abd_0001.status.liver"):
        resolve_statuses(None, CASES, CLASSES, overlay={"cases": {"abd_0001": {"status": {"liver": "gone"}}}})


def test_slice_inheritance() -> None:
    case = {"liver": "mask", "stomach": "present", "pancreas": "unknown", "spleen": "absent"}
    assert slice_status(case) == {"liver": "mask", "stomach": "unknown", "pancreas": "unknown", "spleen": "absent"}
    assert slice_status(case, presence={"stomach": True})["stomach"] == "present"
    assert slice_status(case, presence={"stomach": False})["stomach"] == "absent"
    codes = encode_statuses(case.values())
    assert torch.equal(slice_status_codes(codes), encode_statuses(slice_status(case).values()))
    presence = torch.tensor([False, False, True, False])
    assert slice_status_codes(codes, presence=presence).tolist() == encode_statuses(
        ["mask", "absent", "unknown", "absent"]).tolist()


def test_check_label_statuses() -> None:
    label = torch.tensor([[0, 1, 2]])
    with pytest.raises(WeaksegError, match="case c7, class stomach: status 'absent'"):
        check_label_statuses(label, {"liver": "mask", "stomach": "absent"}, ["liver", "stomach"], case_id="c7")
    with pytest.raises(WeaksegError, match="case c7: label value 2 is not declared"):
        check_label_statuses(label, {"liver": "mask"}, ["liver"], case_id="c7")
    with pytest.raises(WeaksegError, match="case c7, class stomach: status 'unknown'"):
        check_label_statuses(label, {"liver": "mask", "stomach": "unknown"}, ["liver", "stomach"], case_id="c7",
                             missing_with_voxels="error")
    notes = check_label_statuses(label, {"liver": "mask", "stomach": "unknown", "pancreas": "mask"},
                                 ["liver", "stomach", "pancreas"], case_id="c7")
    assert len(notes) == 2 and "stomach" in notes[0] and "pancreas: annotated but empty" in notes[1]


def test_classes_without_masks_and_code_table() -> None:
    st = {"a": {"liver": "mask", "stomach": "unknown"}, "b": {"liver": "absent", "stomach": "present"}}
    assert classes_without_masks(st, ["liver", "stomach"]) == ["stomach"]
    assert status_codes_table(st, ["b", "a"], ["liver", "stomach"]).tolist() == [[2, 1], [0, 3]]


def test_label_usage_on_simulated_phantoms() -> None:
    """§2.3 / §17.4: SMILE trains on no wrong label; naive's wrong negatives equal the hidden positives."""
    cases = [f"c{i}" for i in range(6)]
    labels = torch.stack([torch.from_numpy(make_abdomen(i, (8, 32, 32))[1]).long() for i in range(6)])  # (B, D, H, W)
    statuses = resolve_statuses(None, cases, CLASSES)
    overlay = simulate_missing(statuses, alpha=0.5, seed=3)
    partial = resolve_statuses(None, cases, CLASSES, overlay=overlay)
    codes = status_codes_table(partial, cases, CLASSES)                        # (B, K)
    truth = torch.stack([labels == k for k in (1, 2, 3)], 1)                    # (B, K, D, H, W)
    y, w = status_targets(labels, codes)
    smile = label_usage(y, w, truth, normalise=False)
    assert smile["wrong"].sum() == 0
    hidden = torch.tensor([sum(int(truth[i, k].sum()) for i, c in enumerate(cases)
                               if partial[c][cls] == "unknown") for k, cls in enumerate(CLASSES)])
    assert hidden.sum() > 0
    assert torch.equal(smile["pos_ignored"], hidden)
    naive_y = torch.nn.functional.one_hot(ce_targets(truth, codes), 4).movedim(-1, 1)[:, 1:]  # (B, K, D, H, W)
    naive = label_usage(naive_y, torch.ones_like(naive_y), truth, normalise=False)
    assert torch.equal(naive["pos_as_neg"], hidden) and naive["neg_as_pos"].sum() == 0
    frac = label_usage(y, w, truth)
    assert sum(float(v.sum()) for n, v in frac.items() if n != "wrong") == pytest.approx(3.0)  # fractions per class


def test_is_missing_marks_present_and_unknown_only() -> None:
    codes = torch.tensor([[STATUSES.index(w) for w in ("mask", "absent", "present", "unknown")]], dtype=torch.int8)
    assert is_missing(codes).tolist() == [[False, False, True, True]]
    assert is_missing(codes.long()).dtype == torch.bool


def test_apply_keeps_originals_and_propagates_negatives() -> None:
    label = torch.tensor([[1, 0, 0, 0]])
    status = encode_statuses(["mask", "unknown", "unknown"]).view(1, 3)
    target0, weight0 = status_targets(label.unsqueeze(0), status)              # (1, 3, 1, 4)
    pseudo = torch.zeros_like(target0, dtype=torch.bool)
    pseudo[0, 1, 0, 1:3] = True                                                 # class 1 at pixels 1, 2
    pseudo[0, 2, 0, 2] = True                                                   # class 2 at pixel 2 (overlap)
    pseudo[0, 0, 0, 3] = True                                                   # must not alter class 0's labels
    y, w = apply_pseudo_labels(target0, weight0, pseudo & (status == 3).view(1, 3, 1, 1), status)
    assert y[0, 1, 0].tolist() == [0, 1, 1, 0] and w[0, 1, 0].tolist() == [1, 1, 1, 0]
    assert w[0, 2, 0].tolist() == [1, 0, 1, 0]                                 # no propagation by default
    y, w = apply_pseudo_labels(target0, weight0, pseudo & (status == 3).view(1, 3, 1, 1), status,
                               propagate_negatives=True)
    assert w[0, 2, 0].tolist() == [1, 1, 1, 0] and y[0, 2, 0].tolist() == [0, 0, 1, 0]
    assert w[0, 1, 0].tolist() == [1, 1, 1, 0] and y[0, 1, 0].tolist() == [0, 1, 1, 0]
    assert torch.equal(y[0, 0], target0[0, 0]) and torch.equal(w[0, 0], weight0[0, 0])
