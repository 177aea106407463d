"""BraTS preprocessing: orientation, hemispheres, P/A rules, normalisation."""

from __future__ import annotations

import numpy as np
import pytest

from weakseg.data.brats.preprocess import (
    KIND_A,
    KIND_OTHER,
    KIND_P,
    HemisphereLayout,
    classify_slices,
    from_canonical,
    hemisphere_layout,
    merge_hemispheres,
    n4_correct,
    normalise,
    prepare_subject,
    split_hemispheres,
    to_canonical,
    volume_from_slices,
)
from weakseg.data.brats.reader import find_brats_subjects, load_subject
from weakseg.data.brats.synthetic import storage_affine, write_synthetic_brats
from weakseg.errors import WeaksegError


# ----------------------------------------------------------------------------------------------- orientation
@pytest.mark.parametrize("axcodes", ["RAS", "LPS", "PSL", "SRA", "ILA"])
def test_canonical_round_trip(axcodes):
    canon = np.arange(6 * 4 * 5).reshape(6, 4, 5)
    t, affine = storage_affine((6, 4, 5), axcodes)
    from nibabel.orientations import apply_orientation

    stored = apply_orientation(canon, t)
    back, canon_affine = to_canonical(stored, affine)
    np.testing.assert_array_equal(back, canon)
    np.testing.assert_allclose(canon_affine[:3, :3], np.eye(3))
    np.testing.assert_array_equal(from_canonical(back, affine), stored)


def test_left_right_decided_from_the_affine():
    """Storage axis i pointing to the patient's left (affine x column -1): low i is the right side -> x_hi."""
    seg = np.zeros((8, 4, 2), dtype=np.uint8)
    seg[1, 1, 0] = 2                                   # storage i = 1
    images = np.ones((4, 8, 4, 2), dtype=np.float32)
    lps = np.diag([-1.0, -1.0, 1.0, 1.0])
    ras = np.eye(4)
    got_lps = prepare_subject(images, seg, lps, brain_threshold=0.0, tumour_threshold=0.0)
    got_ras = prepare_subject(images, seg, ras, brain_threshold=0.0, tumour_threshold=0.0)
    assert got_lps.tumour_area[0].tolist() == [0, 1]   # (x_lo, x_hi): the patient's right half
    assert got_ras.tumour_area[0].tolist() == [1, 0]   # same array, RAS affine: left half


def test_same_scan_in_two_orientations_gives_identical_slices(tmp_path):
    """The same synthetic subject stored LPS and PSL (permuted, flipped axes) -> identical hemisphere slices."""
    write_synthetic_brats(tmp_path / "a", n_subjects=1, n_lgg=0, n_tumour_free=0, shape=(24, 20, 8), seed=3)
    write_synthetic_brats(tmp_path / "b", n_subjects=1, n_lgg=0, n_tumour_free=0, shape=(24, 20, 8), seed=3,
                          storage_axcodes="PSL")
    out = []
    for root in ("a", "b"):
        subj = find_brats_subjects(tmp_path / root)[0]
        loaded = load_subject(subj, channels=("flair", "t1ce", "t1", "t2"))
        out.append((loaded, prepare_subject(loaded.images, loaded.seg, loaded.affine)))
    (la, a), (lb, b) = out
    assert la.images.shape[1:] == (24, 20, 8) and lb.images.shape[1:] == (20, 8, 24)   # stored differently
    np.testing.assert_array_equal(a.images, b.images)
    np.testing.assert_array_equal(a.mask, b.mask)
    np.testing.assert_array_equal(a.kind, b.kind)
    np.testing.assert_allclose(a.canonical_affine, b.canonical_affine)
    assert a.images.shape == (8, 2, 4, 20, 12)
    assert a.mask[:, 0].sum() > 0 and a.mask[:, 1].sum() == 0      # subject 0's tumour is in x_lo


# ----------------------------------------------------------------------------------------------- hemispheres
def test_split_hemispheres_by_hand():
    vol = np.arange(4 * 3 * 2).reshape(4, 3, 2)          # (X, Y, Z)
    s = split_hemispheres(vol, HemisphereLayout((4, 3, 2), midline=2, width=2))
    assert s.shape == (2, 2, 3, 2)                       # (Z, side, H=Y, W)
    np.testing.assert_array_equal(s[1, 0], vol[0:2, :, 1].T)
    np.testing.assert_array_equal(s[1, 1], vol[2:4, :, 1].T)
    flipped = split_hemispheres(vol, HemisphereLayout((4, 3, 2), midline=2, width=2, flip_x_hi=True))
    np.testing.assert_array_equal(flipped[1, 1], vol[2:4, :, 1].T[:, ::-1])


@pytest.mark.parametrize(("x", "midline", "flip"), [(8, "grid", False), (8, "grid", True), (7, "grid", False),
                                                     (10, "brain", False), (10, "brain", True)])
def test_merge_inverts_split(x, midline, flip):
    rng = np.random.default_rng(0)
    brain = np.zeros((x, 5, 3), dtype=bool)
    brain[2:x - 1] = True                                # off-centre brain for the 'brain' midline
    vol = rng.normal(size=(2, x, 5, 3)) * brain
    layout = hemisphere_layout(brain, midline=midline, flip_x_hi=flip)
    s = split_hemispheres(vol, layout)
    assert s.shape == (3, 2, 2, 5, (x + 1) // 2)
    np.testing.assert_array_equal(merge_hemispheres(s, layout), vol)


def test_brain_midline_is_centre_of_brain_extent():
    brain = np.zeros((10, 2, 2), dtype=bool)
    brain[3:9] = True                                    # columns 3..8 -> centre 6
    assert hemisphere_layout(brain, midline="brain").midline == 6
    assert hemisphere_layout(brain, midline="grid").midline == 5


def test_volume_from_slices_returns_storage_order():
    t, affine = storage_affine((6, 4, 3), "PSL")
    from nibabel.orientations import apply_orientation

    canon = np.random.default_rng(1).normal(size=(6, 4, 3))
    stored = apply_orientation(canon, t)
    c, _ = to_canonical(stored, affine)
    layout = hemisphere_layout(np.ones(c.shape, bool))
    np.testing.assert_array_equal(volume_from_slices(split_hemispheres(c, layout), layout, affine), stored)


# ----------------------------------------------------------------------------------------------- P / A rules
def slice_with(brain_px: int, tumour_px: int, side: int = 10) -> tuple[np.ndarray, np.ndarray]:
    brain = np.zeros(side * side, bool)
    brain[:brain_px] = True
    tumour = np.zeros(side * side, bool)
    tumour[:tumour_px] = True
    return brain.reshape(side, side), tumour.reshape(side, side)


@pytest.mark.parametrize(("brain_px", "tumour_px", "kind"), [
    (30, 2, KIND_P),        # brain 0.30 > 0.25; tumour 2/30 = 0.067 > 0.04
    (30, 1, KIND_OTHER),    # tumour 1/30 = 0.033: a little tumour, dropped
    (50, 2, KIND_OTHER),    # 2/50 = 0.04 exactly: not > t
    (50, 3, KIND_P),        # 0.06
    (30, 0, KIND_A),        # enough brain, no tumour
    (25, 0, KIND_OTHER),    # brain 0.25 exactly: not > b
    (20, 10, KIND_OTHER),   # big tumour but too little brain
])
def test_slice_rules_on_hand_made_slices(brain_px, tumour_px, kind):
    b, t = slice_with(brain_px, tumour_px)
    got, bf, tf = classify_slices(b[None], t[None], brain_threshold=0.25, tumour_threshold=0.04)
    assert got.tolist() == [kind]
    assert bf[0] == pytest.approx(brain_px / 100)
    assert tf[0] == pytest.approx(tumour_px / brain_px)


def test_tumour_fraction_is_a_true_area_ratio_on_one_mask():
    """Pitfall #4: 4 channels do not divide the ratio by 4; a slice with 3% tumour area is not P at t=0.01*4."""
    images = np.zeros((4, 10, 10, 1), dtype=np.float32)
    images[:, :, :5] = 1.0                               # 50 brain pixels per hemisphere... on y < 5
    seg = np.zeros((10, 10, 1), dtype=np.uint8)
    seg[0, 0, 0] = 1                                     # 1 px in x_lo: 1/25 brain px = 0.04 -> not > 0.04
    seg[5, 0, 0] = seg[6, 0, 0] = 2                      # 2 px in x_hi: 0.08 -> P
    p = prepare_subject(images, seg, np.eye(4), brain_threshold=0.2, tumour_threshold=0.04)
    assert p.brain_area[0].tolist() == [25, 25] and p.tumour_area[0].tolist() == [1, 2]
    assert p.kind[0].tolist() == [KIND_OTHER, KIND_P]


def test_regions_select_labels():
    images = np.ones((4, 4, 2, 1), dtype=np.float32)
    seg = np.array([1, 2, 4, 0, 0, 4, 0, 0], dtype=np.uint8).reshape(4, 2, 1)
    wt = prepare_subject(images, seg, np.eye(4), region_labels=(1, 2, 4))
    et = prepare_subject(images, seg, np.eye(4), region_labels=(4,))
    assert wt.tumour_area[0].tolist() == [3, 1] and et.tumour_area[0].tolist() == [1, 1]


# ----------------------------------------------------------------------------------------------- intensities
def test_normalise_per_modality_and_pooled_by_hand():
    images = np.zeros((2, 4), dtype=np.float32)
    images[0, :3] = [1, 2, 3]                            # mu 2, sd sqrt(2/3)
    images[1, :3] = [10, 10, 40]                         # mu 20, sd sqrt(200)
    brain = np.array([True, True, True, False])
    per = normalise(images, brain, clip=False)
    sd0, sd1 = np.sqrt(2 / 3), np.sqrt(200)
    np.testing.assert_allclose(per[0], [-1 / (5 * sd0), 0, 1 / (5 * sd0), 0], rtol=1e-6)
    np.testing.assert_allclose(per[1], [-10 / (5 * sd1), -10 / (5 * sd1), 20 / (5 * sd1), 0], rtol=1e-6)
    vals = np.array([1, 2, 3, 10, 10, 40], dtype=np.float64)
    pooled = normalise(images, brain, mode="pooled", clip=False)
    np.testing.assert_allclose(pooled[1, 2], (40 - vals.mean()) / (5 * vals.std()), rtol=1e-6)
    assert pooled[:, 3].tolist() == [0, 0]               # background stays 0


def test_normalise_clips_to_unit_range():
    images = np.ones((1, 100))
    images[0, -1] = 101.0                                # z = 9.95 sd -> 1.99 before clipping
    out = normalise(images, np.ones(100, bool), clip=True)
    assert out.max() == 1.0 and out.min() == pytest.approx(-0.0201, abs=1e-4)
    assert normalise(images, np.ones(100, bool), clip=False).max() == pytest.approx(1.99, abs=1e-3)


def test_normalise_rejects_unknown_mode():
    with pytest.raises(WeaksegError, match="normalization 'zscore'"):
        normalise(np.ones((1, 2)), np.ones(2, bool), mode="zscore")


def test_n4_reduces_a_smooth_bias_field():
    x = np.linspace(-1, 1, 16)
    brain = np.zeros((16, 16, 16), bool)
    brain[2:14, 2:14, 2:14] = True
    field = (1 + 0.4 * x)[:, None, None] * np.ones((16, 16, 16))
    image = (100.0 * field * brain).astype(np.float32)
    out = n4_correct(image, brain, iterations=(20, 10))
    cv = lambda a: a[brain].std() / a[brain].mean()      # noqa: E731
    assert cv(out) < 0.5 * cv(image)
    assert (out[~brain] == 0).all()
