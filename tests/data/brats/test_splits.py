"""Patient-level splits and the labelled-patient draw, checked against the reference's draws by hand."""

from __future__ import annotations

import numpy as np
import pytest

from weakseg.data.brats.splits import choose_labelled_patients, reference_order, split_counts, split_patients
from weakseg.errors import WeaksegError


# ----------------------------------------------------------------------------------------------- splits
def test_split_counts_match_the_reference():
    assert split_counts(285) == (228, 28, 29)
    assert split_counts(210) == (168, 21, 21)
    assert split_counts(75) == (60, 7, 8)


def test_split_of_285_patients():
    ids = [f"p{i:03d}" for i in range(285)]
    s = split_patients({"all": ids}, seed=0)
    assert [len(s[k]) for k in ("train", "valid", "test")] == [228, 28, 29]
    assert sorted(s["train"] + s["valid"] + s["test"]) == ids
    assert s == split_patients({"all": list(reversed(ids))}, seed=0)   # input order does not matter
    assert s != split_patients({"all": ids}, seed=1)


def test_split_per_grade_reproduces_reference_membership():
    hgg = [f"Brats17_H_{i:03d}" for i in range(210)]
    lgg = [f"Brats17_L_{i:03d}" for i in range(75)]
    s = split_patients({"HGG": hgg, "LGG": lgg}, seed=0)
    grade = {pid: pid[8] for pid in hgg + lgg}
    counts = {k: (sum(grade[p] == "H" for p in v), sum(grade[p] == "L" for p in v)) for k, v in s.items()}
    assert counts == {"train": (168, 60), "valid": (21, 7), "test": (21, 8)}
    # The reference (genseg.md §10.4): shuffled integer positions in HDF5 key order ('0', '1', '10', ...).
    rs = np.random.RandomState(0)
    h, lg = np.arange(210), np.arange(75)
    rs.shuffle(h)
    rs.shuffle(lg)
    hkeys, lkeys = sorted(str(i) for i in range(210)), sorted(str(i) for i in range(75))
    ref_val = [hgg[int(hkeys[i])] for i in h[:21]] + [lgg[int(lkeys[i])] for i in lg[:7]]
    ref_test = [hgg[int(hkeys[i])] for i in h[21:42]] + [lgg[int(lkeys[i])] for i in lg[7:15]]
    assert s["valid"] == ref_val and s["test"] == ref_test


def test_reference_order_is_hdf5_key_order():
    ids = [f"s{i:02d}" for i in range(12)]
    assert reference_order(ids) == ["s00", "s01", "s10", "s11"] + [f"s{i:02d}" for i in range(2, 10)]


# ----------------------------------------------------------------------------------------------- labelled
def test_labelled_patients_by_hand():
    """n_P = [10, 0, 5, 20, 1, 64], f = 0.3: cap = int(70.5) = 70; RandomState(0).permutation(6) = [5 2 1 3 0 4]:
    5 -> masked 64; 2 -> 69; 1 (no P) -> unlabelled; 3: 89 >= 70 keep; 0: 79 keep; 4: 70 >= 70 keep."""
    assert np.random.RandomState(0).permutation(6).tolist() == [5, 2, 1, 3, 0, 4]
    got = choose_labelled_patients([10, 0, 5, 20, 1, 64], fraction=0.3, seed=0)
    assert got.tolist() == [True, False, False, True, True, False]


def test_labelled_fraction_extremes_and_lower_bound():
    n_p = np.random.default_rng(0).integers(0, 40, size=50)
    assert choose_labelled_patients(n_p, fraction=1.0).all()
    assert not choose_labelled_patients(n_p, fraction=0.0).any()
    for f in (0.01, 0.1, 0.5):
        for seed in range(3):
            lab = choose_labelled_patients(n_p, fraction=f, seed=seed)
            assert n_p[lab].sum() >= f * n_p.sum()
    with pytest.raises(WeaksegError, match="labelled fraction 5"):
        choose_labelled_patients(n_p, fraction=5)
