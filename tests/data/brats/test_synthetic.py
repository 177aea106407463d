"""The synthetic BraTS generator holds what genseg.md §11 promises."""

from __future__ import annotations

import numpy as np

from weakseg.data.brats.preprocess import KIND_OTHER, KIND_P, normalise, prepare_subject
from weakseg.data.brats.reader import find_brats_subjects, load_subject
from weakseg.data.brats.synthetic import write_synthetic_brats

CH = ("flair", "t1ce", "t1", "t2")


def load_all(root):
    return [load_subject(s, channels=CH) for s in find_brats_subjects(root)]


def test_content_matches_the_spec(tmp_path):
    info = write_synthetic_brats(tmp_path, n_subjects=4, n_lgg=1, n_tumour_free=1)
    subjects = load_all(tmp_path)
    assert [s.grade for s in info] == ["HGG", "HGG", "HGG", "LGG"]
    for meta, sub in zip(info, subjects):
        assert sub.images.shape == (4, 48, 48, 16) and sub.seg.shape == (48, 48, 16)
        brain = (sub.images != 0).any(0)
        assert ((sub.images != 0) == brain).all()                         # exact-0 background, all modalities
        labels = set(np.unique(sub.seg).tolist())
        if meta.tumour_side is None:
            assert labels == {0}
            continue
        assert labels == ({0, 1, 2, 4} if meta.has_core else {0, 2, 4})
        prep = prepare_subject(sub.images, sub.seg, sub.affine)
        other = 1 - ("x_lo", "x_hi").index(meta.tumour_side)
        assert prep.tumour_area[:, other].sum() == 0                       # one hemisphere only
        assert (prep.kind[:, 1 - other] == KIND_P).sum() >= 3
        assert prep.kind[meta.small_tumour_slice, 1 - other] == KIND_OTHER   # small-tumour slice
        assert 0 < prep.tumour_area[meta.small_tumour_slice, 1 - other] <= 4
        tumour_free = ~prep.mask.any(axis=(1, 2, 3))                       # (Z,)
        assert tumour_free[[0, -1]].all()                                  # tumour-free slices exist
    assert not info[1].has_core and info[0].has_core


def test_nested_labels(tmp_path):
    write_synthetic_brats(tmp_path, n_subjects=1, n_lgg=0, n_tumour_free=0)
    seg = load_all(tmp_path)[0].seg
    from scipy.ndimage import binary_dilation

    core, enh = seg == 1, seg == 4
    assert not (binary_dilation(core) & (seg == 2)).any()                 # core touches only enhancing
    assert (binary_dilation(enh) & (seg == 2)).any()                      # enhancing sits inside oedema


def test_modalities_have_different_scales(tmp_path):
    write_synthetic_brats(tmp_path, n_subjects=1, n_lgg=0)
    sub = load_all(tmp_path)[0]
    brain = (sub.images != 0).any(0)
    means = [sub.images[c][brain].mean() for c in range(4)]
    assert max(means) > 2 * min(means)
    assert not np.allclose(normalise(sub.images, brain), normalise(sub.images, brain, mode="pooled"))


def test_seeded_output_is_byte_identical(tmp_path):
    a = write_synthetic_brats(tmp_path / "a", n_subjects=2, naming="2020", shape=(16, 16, 8), seed=5)
    b = write_synthetic_brats(tmp_path / "b", n_subjects=2, naming="2020", shape=(16, 16, 8), seed=5)
    for x, y in zip(a, b):
        for f in sorted(x.folder.iterdir()):
            assert f.read_bytes() == (y.folder / f.name).read_bytes()


def test_bias_field_option(tmp_path):
    write_synthetic_brats(tmp_path / "a", n_subjects=1, n_lgg=0, n_tumour_free=1, shape=(16, 16, 8))
    write_synthetic_brats(tmp_path / "b", n_subjects=1, n_lgg=0, n_tumour_free=1, shape=(16, 16, 8), bias_field=True)
    flat, biased = load_all(tmp_path / "a")[0].images[0], load_all(tmp_path / "b")[0].images[0]
    assert (flat != 0).sum() == (biased != 0).sum() and not np.array_equal(flat, biased)
