"""Missing-annotation simulation (smile.md §10, §17.5)."""

from __future__ import annotations

import json

import nibabel as nib
import numpy as np
import pytest

from tests.organs_toy import make_phantom
from weakseg.data.folds import fold_split
from weakseg.data.organs import load_organs
from weakseg.data.simulate import (
    MANIFEST_NAME,
    materialise_label,
    read_overlay,
    simulate_missing,
    write_overlay,
    write_partial_dataset,
)
from weakseg.data.status import resolve_statuses
from weakseg.errors import WeaksegError

CLASSES = ["liver", "stomach", "pancreas"]


def _full(n: int, prefix: str = "c") -> dict[str, dict[str, str]]:
    return {f"{prefix}{i:04d}": dict.fromkeys(CLASSES, "mask") for i in range(n)}


def _removed_pairs(overlay: dict) -> set[tuple[str, str]]:
    return {(c, k) for c, e in overlay["cases"].items() for k in e["status"]}


def test_seed_gives_identical_manifest() -> None:
    st = _full(20)
    a = simulate_missing(st, alpha=0.7, seed=5, fold=1)
    b = simulate_missing(dict(reversed(list(st.items()))), alpha=0.7, seed=5, fold=1)  # input order irrelevant
    assert json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True)
    assert _removed_pairs(simulate_missing(st, alpha=0.7, seed=6, fold=1)) != _removed_pairs(a)
    assert _removed_pairs(simulate_missing(st, alpha=0.7, seed=5, fold=2)) != _removed_pairs(a)


@pytest.mark.parametrize(("alpha", "n", "expected"), [(0.5, 20, 10), (0.7, 20, 14), (0.9, 20, 18),
                                                      (0.55, 10, 6), (0.0, 7, 0), (1.0, 7, 7)])
def test_exact_removes_round_alpha_n_per_class(alpha: float, n: int, expected: int) -> None:
    ov = simulate_missing(_full(n), alpha=alpha, mode="exact", seed=0)
    sim = ov["simulation"]
    assert sim["removed_count"] == dict.fromkeys(CLASSES, expected)
    assert sim["eligible_count"] == dict.fromkeys(CLASSES, n)
    assert sim["realised_alpha"] == dict.fromkeys(CLASSES, expected / n)
    for cls in CLASSES:
        assert sorted(c for c, k in _removed_pairs(ov) if k == cls) == sim["removed"][cls]


def test_bernoulli_within_binomial_bounds() -> None:
    n, alpha = 400, 0.7
    sim = simulate_missing(_full(n), alpha=alpha, mode="bernoulli", seed=1)["simulation"]
    sd = (n * alpha * (1 - alpha)) ** 0.5
    for cls in CLASSES:
        assert abs(sim["removed_count"][cls] - n * alpha) < 4 * sd


@pytest.mark.parametrize("mode", ["exact", "bernoulli"])
@pytest.mark.parametrize("keep", [False, True])
def test_removal_nests_across_alpha(mode: str, keep: bool) -> None:
    st = _full(30)
    alphas = [0.0, 0.2, 0.4, 0.5] if keep and mode == "exact" else [0.0, 0.3, 0.5, 0.7, 0.9]
    sets = [_removed_pairs(simulate_missing(st, alpha=a, mode=mode, seed=2, keep_at_least_one=keep))
            for a in alphas]
    for small, large in zip(sets[:-1], sets[1:], strict=True):
        assert small <= large
    assert sets[-1]


def test_test_split_and_absent_untouched() -> None:
    st = _full(10)
    st["c0000"]["stomach"] = "absent"
    st["c0001"]["pancreas"] = "unknown"
    train = [c for c in st if c not in ("c0008", "c0009")]
    ov = simulate_missing(st, alpha=1.0, seed=0, train_cases=train)
    pairs = _removed_pairs(ov)
    assert not any(c in ("c0008", "c0009") for c, _ in pairs)
    assert ("c0000", "stomach") not in pairs and ("c0001", "pancreas") not in pairs
    assert ov["simulation"]["eligible_count"] == {"liver": 8, "stomach": 7, "pancreas": 7}
    resolved = resolve_statuses({"cases": {"c0000": {"status": {"stomach": "absent"}},
                                           "c0001": {"status": {"pancreas": "unknown"}}}},
                                list(st), CLASSES, overlay=ov)
    assert resolved["c0000"] == {"liver": "unknown", "stomach": "absent", "pancreas": "unknown"}
    assert resolved["c0009"] == dict.fromkeys(CLASSES, "mask")
    # c0000 keeps its absent annotation, so it did not lose everything; the other 7 training cases did
    assert ov["simulation"]["n_cases_all_lost"] == 7 and "c0000" not in ov["simulation"]["cases_all_lost"]


def test_all_lost_count_matches_pairs_and_alpha_cubed() -> None:
    n, alpha = 1200, 0.7
    ov = simulate_missing(_full(n), alpha=alpha, mode="bernoulli", seed=4)
    lost = [c for c, e in ov["cases"].items() if len(e["status"]) == 3]
    assert sorted(lost) == ov["simulation"]["cases_all_lost"]
    assert ov["simulation"]["n_cases_all_lost"] == len(lost)
    sd = (n * alpha**3 * (1 - alpha**3)) ** 0.5
    assert abs(len(lost) - n * alpha**3) < 4 * sd


def test_keep_at_least_one_bernoulli() -> None:
    n, alpha = 1200, 0.7
    ov = simulate_missing(_full(n), alpha=alpha, mode="bernoulli", seed=4, keep_at_least_one=True)
    sim = ov["simulation"]
    assert sim["n_cases_all_lost"] == 0 and all(len(e["status"]) < 3 for e in ov["cases"].values())
    # realised rate alpha - alpha^K / K = 0.586 (§10.3)
    rate = sum(sim["removed_count"].values()) / (3 * n)
    assert rate == pytest.approx(alpha - alpha**3 / 3, abs=0.02)
    # only the all-drawn cases changed, by restoring exactly one class each
    plain = simulate_missing(_full(n), alpha=alpha, mode="bernoulli", seed=4)
    assert _removed_pairs(ov) <= _removed_pairs(plain)
    assert len(_removed_pairs(plain)) - len(_removed_pairs(ov)) == plain["simulation"]["n_cases_all_lost"]


def test_keep_at_least_one_exact() -> None:
    ov = simulate_missing(_full(30), alpha=0.5, mode="exact", seed=3, keep_at_least_one=True)
    assert ov["simulation"]["removed_count"] == dict.fromkeys(CLASSES, 15)
    assert ov["simulation"]["n_cases_all_lost"] == 0
    assert not any(len(e["status"]) == 3 for e in ov["cases"].values())
    for alpha in (0.7, 0.9):  # above (K-1)/K: infeasible whatever the draws
        for seed in range(3):
            with pytest.raises(ValueError, match=r"\(K-1\)/K = 0.667"):
                simulate_missing(_full(30), alpha=alpha, mode="exact", seed=seed, keep_at_least_one=True)


def test_bad_arguments() -> None:
    with pytest.raises(WeaksegError, match="alpha"):
        simulate_missing(_full(3), alpha=1.5)
    with pytest.raises(WeaksegError, match="mode"):
        simulate_missing(_full(3), alpha=0.5, mode="random")  # type: ignore[arg-type]
    with pytest.raises(WeaksegError, match="'zz'"):
        simulate_missing(_full(3), alpha=0.5, train_cases=["zz"])


def test_overlay_round_trip_is_atomic_and_strict(tmp_path) -> None:
    ov = simulate_missing(_full(8), alpha=0.5, seed=0, fold=0)
    path = write_overlay(tmp_path / "sub" / "overlay.json", ov)
    assert read_overlay(path) == ov
    assert [p.name for p in path.parent.iterdir()] == ["overlay.json"]          # no temp file left
    with pytest.raises(ValueError):
        write_overlay(tmp_path / "bad.json", {"cases": {}, "simulation": {"alpha": float("nan")}})
    assert not (tmp_path / "bad.json").exists() and list(tmp_path.iterdir()) == [tmp_path / "sub"]
    (tmp_path / "broken.json").write_text("{")
    with pytest.raises(WeaksegError, match="not valid JSON"):
        read_overlay(tmp_path / "broken.json")


def test_materialise_zeroes_exactly_the_manifest_pairs() -> None:
    label = np.array([[0, 1, 2, 3, 3]], dtype=np.uint8)
    out = materialise_label(label, {"liver": "mask", "stomach": "unknown", "pancreas": "absent"}, CLASSES)
    assert out.tolist() == [[0, 1, 0, 0, 0]] and out.dtype == np.uint8 and label.tolist() == [[0, 1, 2, 3, 3]]


# ----------------------------------------------------------------------------------------------- dataset writer
@pytest.fixture(scope="module")
def phantom(tmp_path_factory):
    return make_phantom(tmp_path_factory.mktemp("simulate") / "ds")


def test_partial_dataset_marks_removed_pairs_and_links_labels(phantom, tmp_path) -> None:
    dst = tmp_path / "partial"
    write_partial_dataset(phantom, dst, alpha=0.7, fold=0, n_folds=3, seed=1)
    manifest = json.loads((dst / MANIFEST_NAME).read_text())
    sim = manifest["simulation"]
    split = fold_split([f"abd_{i:04d}" for i in range(1, 7)], n_folds=3, fold=0, seed=0)
    assert sorted(sim["untouched_cases"]) == split["test"] and sim["train_cases"] == split["train"] + split["valid"]
    assert sim["removed_count"] == {"liver": 3, "stomach": 3, "pancreas": 3}         # round(0.7 * 4) each
    block = json.loads((dst / "dataset.json").read_text())["weakseg"]["cases"]
    removed = {(c, k) for k, cases in sim["removed"].items() for c in cases}
    marked = {(c, k) for c, e in block.items() for k, s in e.get("status", {}).items() if s == "unknown"}
    assert marked == removed and not {c for c, _ in removed} & set(split["test"])       # test fold untouched
    lost = [c for c in sim["train_cases"] if sum((c, k) in removed for k in ("liver", "stomach", "pancreas")) == 3]
    assert sim["cases_all_lost"] == lost and sim["n_cases_all_lost"] == len(lost)
    # labels are links to the full ground truth: the loader hides the removed organs and keeps the truth
    assert (dst / "labelsTr" / "abd_0001.nii.gz").is_symlink()
    d = load_organs(dst, n_folds=3, n_valid=1)
    assert d.info["n_hidden_pairs"] == len(removed)
    # same seed, same manifest
    write_partial_dataset(phantom, tmp_path / "again", alpha=0.7, fold=0, n_folds=3, seed=1)
    again = json.loads((tmp_path / "again" / MANIFEST_NAME).read_text())["simulation"]
    assert again["removed"] == sim["removed"]


def test_partial_dataset_materialise_zeroes_removed_organs(phantom, tmp_path) -> None:
    dst = tmp_path / "mat"
    write_partial_dataset(phantom, dst, alpha=0.5, materialise=True)
    sim = json.loads((dst / MANIFEST_NAME).read_text())["simulation"]
    case = sim["removed"]["liver"][0]
    lab = np.asanyarray(nib.load(dst / "labelsTr" / f"{case}.nii.gz").dataobj)
    src = np.asanyarray(nib.load(phantom / "labelsTr" / f"{case}.nii.gz").dataobj)
    assert (src == 1).any() and not (lab == 1).any() and np.array_equal(lab == 2, (src == 2) & (lab == 2))
