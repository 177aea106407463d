"""Cluttered MNIST: digit sources, the generator's rules (genseg.md §9.1), label choice and splits."""

from __future__ import annotations

import gzip
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from weakseg.data import mnist as M
from weakseg.data.mnist import (
    PRESETS,
    ClutterSpec,
    DigitFold,
    DigitSplits,
    build_mnist_splits,
    choose_labelled_sources,
    clutter_rule,
    cluttered_sample_reference,
    generate_cluttered,
    generate_cluttered_reference,
    load_digits,
)
from weakseg.data.mnist_sources import IDX_FILES
from weakseg.data.status import ABSENT, MASK, PRESENT
from weakseg.errors import WeaksegError

SIMPLE = PRESETS["mnist48_simple"]
# A small canvas keeps the tests fast while exercising every rule (offsets 0..3, targets 0..23).
SMALL = ClutterSpec(canvas=32, n_clutter=6, size_clutter=8, noise_sigma=0.01)


@pytest.fixture(scope="module")
def digits() -> DigitSplits:
    return load_digits()          # the embedded 5k digits; lru-cached for the whole process


@pytest.fixture(scope="module")
def fold(digits: DigitSplits) -> DigitFold:
    return DigitFold(digits.train.images[:300], digits.train.labels[:300])


def _place(x: np.ndarray, offsets: np.ndarray, canvas: int) -> np.ndarray:
    """x (28, 28) placed on a zero canvas at (r0, c0)."""
    out = np.zeros((canvas, canvas), dtype=x.dtype)
    r0, c0 = offsets
    out[r0:r0 + 28, c0:c0 + 28] = x
    return out


# ------------------------------------------------------------------------------------------ digit sources
def test_embedded_digits_split_and_format(digits: DigitSplits) -> None:
    assert digits.sizes == {"train": 4000, "valid": 250, "test": 750}
    for f in (digits.train, digits.valid, digits.test):
        assert f.images.dtype == np.float32 and f.images.shape[1:] == (28, 28)
        assert f.labels.dtype == np.int64 and f.labels.shape == (len(f),)
        assert f.images.min() == 0.0 and f.images.max() == 1.0
        assert not f.images.flags.writeable                              # the cached arrays are protected
    assert set(np.unique(digits.train.labels)) == set(range(10))
    # 500 per class in the file, so the three folds together hold exactly 500 of each digit
    all_labels = np.concatenate([digits.train.labels, digits.valid.labels, digits.test.labels])
    assert np.bincount(all_labels).tolist() == [500] * 10
    assert load_digits("embedded") is digits and load_digits(None) is digits
    # the grid of pixel values is k/255
    assert np.allclose(digits.valid.images * 255, np.round(digits.valid.images * 255), atol=1e-4)


def _write_idx(path: Path, data: np.ndarray, *, magic: int | None = None, cut: int = 0) -> None:
    magic = magic if magic is not None else (0x803 if data.ndim == 3 else 0x801)
    raw = magic.to_bytes(4, "big") + b"".join(int(d).to_bytes(4, "big") for d in data.shape) + data.tobytes()
    raw = raw[: len(raw) - cut]
    if path.suffix == ".gz":
        path.write_bytes(gzip.compress(raw, compresslevel=1))
    else:
        path.write_bytes(raw)


def _idx_folder(folder: Path, *, gz: bool, n_train: int = 510, n_test: int = 20) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(1)
    arrays = {"train_images": rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
              "train_labels": rng.integers(0, 10, n_train, dtype=np.uint8),
              "test_images": rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
              "test_labels": rng.integers(0, 10, n_test, dtype=np.uint8)}
    folder.mkdir(parents=True, exist_ok=True)
    for key, name in IDX_FILES.items():
        _write_idx(folder / (name + (".gz" if gz else "")), arrays[key])
    return arrays


@pytest.mark.parametrize("gz", [False, True])
def test_idx_folder_parsing_and_split(tmp_path: Path, gz: bool) -> None:
    arrays = _idx_folder(tmp_path, gz=gz)
    d = load_digits(tmp_path)
    assert d.sizes == {"train": 10, "valid": 500, "test": 20}
    perm = np.random.RandomState(0).permutation(510)                     # last 500 = valid (§9.2)
    np.testing.assert_array_equal(d.valid.images, arrays["train_images"][perm[-500:]] / np.float32(255))
    np.testing.assert_array_equal(d.train.labels, arrays["train_labels"][perm[:-500]])
    np.testing.assert_array_equal(d.test.images * 255, arrays["test_images"].astype(np.float32))
    assert d.test.labels.dtype == np.int64 and d.test.images.dtype == np.float32


def test_idx_bad_inputs(tmp_path: Path) -> None:
    with pytest.raises(WeaksegError, match=r"nope does not exist; download the four MNIST IDX files"):
        load_digits(tmp_path / "nope")
    (tmp_path / "afile").write_text("x")
    with pytest.raises(WeaksegError, match="is a file, not a folder"):
        load_digits(tmp_path / "afile")

    folder = tmp_path / "mnist"
    arrays = _idx_folder(folder, gz=False)
    (folder / "t10k-labels-idx1-ubyte").unlink()
    with pytest.raises(WeaksegError, match=r"expected t10k-labels-idx1-ubyte\[\.gz\] in .*mnist; download the four "
                                           r"MNIST IDX files or omit --set data.mnist.source"):
        load_digits(folder)

    _write_idx(folder / "t10k-labels-idx1-ubyte", arrays["test_labels"], magic=0x803)
    with pytest.raises(WeaksegError, match=r"t10k-labels-idx1-ubyte: wrong magic number 0x00000803, expected "
                                           r"0x00000801"):
        load_digits(folder)

    _write_idx(folder / "t10k-labels-idx1-ubyte", arrays["test_labels"][:19])
    with pytest.raises(WeaksegError, match=r"t10k-images-idx3-ubyte holds 20 images but t10k-labels-idx1-ubyte "
                                           r"holds 19 labels; re-download"):
        load_digits(folder)

    _write_idx(folder / "t10k-labels-idx1-ubyte", arrays["test_labels"])
    _write_idx(folder / "train-images-idx3-ubyte", arrays["train_images"], cut=100)
    with pytest.raises(WeaksegError, match=r"train-images-idx3-ubyte is truncated: .*re-download"):
        load_digits(folder)
    (folder / "train-images-idx3-ubyte").write_bytes(b"\x00\x00")
    with pytest.raises(WeaksegError, match=r"train-images-idx3-ubyte is truncated: 2 bytes, shorter than its "
                                           r"16-byte header"):
        load_digits(folder)

    (folder / "train-images-idx3-ubyte").unlink()
    (folder / "train-images-idx3-ubyte.gz").write_bytes(b"not gzip at all")
    with pytest.raises(WeaksegError, match=r"cannot read .*train-images-idx3-ubyte\.gz.*re-download"):
        load_digits(folder)
    _write_idx(folder / "train-images-idx3-ubyte.gz", arrays["train_images"][:400])
    _write_idx(folder / "train-labels-idx1-ubyte", arrays["train_labels"][:400])
    with pytest.raises(WeaksegError, match=r"holds 400 digits, need more than 500"):
        load_digits(folder)


# ----------------------------------------------------------------------------------------------- spec
@pytest.mark.parametrize(("field", "value"), [("canvas", 28), ("canvas", 2.5), ("n_clutter", -1),
                                              ("size_clutter", 0), ("size_clutter", 28), ("noise_sigma", -0.1),
                                              ("noise_sigma", float("nan"))])
def test_spec_validation_names_the_field(field: str, value: object) -> None:
    with pytest.raises(WeaksegError, match=f"data.mnist.{field} must"):
        replace(SIMPLE, **{field: value})


def test_presets_are_the_design_values() -> None:
    got = {k: (s.canvas, s.n_clutter, s.size_clutter, s.noise_sigma) for k, s in PRESETS.items()}
    assert got == {"mnist48_simple": (48, 8, 10, 0.01), "mnist48_hard": (48, 16, 14, 0.01),
                   "mnist128": (128, 56, 10, 0.01)}
    with pytest.raises(WeaksegError, match="unknown MNIST preset 'mnist64'; available: mnist48_simple"):
        M.clutter_spec("mnist64")


# ------------------------------------------------------------------------------------------ the generator
def test_clutter_rule_hand_values() -> None:
    dst = np.array([0.8, 0.3, 0.3, 0.6, -0.01, 0.9, 1.2, -0.02], dtype=np.float32)
    src = np.array([0.5, 0.5, 0.0, 0.6, 0.2, 0.05, 0.0, 0.0], dtype=np.float32)
    # sat (src+dst>1) -> max; src>0 -> src; else dst
    want = np.array([0.8, 0.5, 0.3, 0.6, 0.2, 0.05, 1.2, -0.02], dtype=np.float32)
    np.testing.assert_array_equal(clutter_rule(dst, src), want)


@pytest.mark.parametrize("generator", [generate_cluttered, generate_cluttered_reference])
def test_mask_is_exactly_the_digit_at_its_offsets(fold: DigitFold, generator) -> None:
    out = generator(fold, SMALL, 40, seed=3)
    assert out.images.shape == (80, 1, 32, 32) and out.images.dtype == np.float32
    assert out.masks.shape == (40, 1, 32, 32) and out.masks.dtype == np.uint8
    assert out.offsets.min() >= 0 and out.offsets.max() <= 32 - 29
    np.testing.assert_array_equal(out.digit_class, fold.labels[out.source_index])
    for i in range(40):
        x = fold.images[out.source_index[i]]
        np.testing.assert_array_equal(out.masks[i, 0], _place((x > 0.5).astype(np.uint8), out.offsets[i], 32))


@pytest.mark.parametrize("generator", [generate_cluttered, generate_cluttered_reference])
def test_without_clutter_p_is_digit_over_noise_and_a_is_pure_noise(fold: DigitFold, generator) -> None:
    spec = ClutterSpec(canvas=40, n_clutter=0, size_clutter=8, noise_sigma=0.05)
    out = generator(fold, spec, 60, seed=5)
    for i in range(60):
        x = fold.images[out.source_index[i]]
        digit = _place(x, out.offsets[i], 40)
        on = _place(x > 0, out.offsets[i], 40)
        p = out.p_images[i, 0]
        np.testing.assert_array_equal(p[on], digit[on])                   # the digit overwrites the noise
        assert np.abs(p[~on]).max() < 0.05 * 6                          # elsewhere only noise
    a = out.a_images
    assert abs(float(a.std()) - 0.05) < 0.05 * 0.02 and abs(float(a.mean())) < 1e-3
    assert np.abs(a).max() < 0.05 * 7                                    # no digit pixel anywhere in A


@pytest.mark.parametrize("generator", [generate_cluttered, generate_cluttered_reference])
def test_a_images_hold_only_clutter(fold: DigitFold, generator) -> None:
    spec = replace(SMALL, noise_sigma=0.0)
    out = generator(fold, spec, 50, seed=2)
    a = out.a_images[:, 0]
    # without noise every A pixel is 0 or a clutter pixel k/255, and at most n_clutter * w^2 pixels are lit
    assert np.allclose(a * 255, np.round(a * 255), atol=1e-3) and a.min() >= 0 and a.max() <= 1
    assert ((a > 0).sum(axis=(1, 2)) <= spec.n_clutter * spec.size_clutter ** 2).all()
    assert (a > 0).any()


@pytest.mark.parametrize("block_rows", [16, None], ids=["blocks_of_16", "one_block"])
def test_vectorised_matches_a_per_sample_replay_of_its_own_draws(fold: DigitFold, block_rows: int | None,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """Replays the vectorised generator's random draws through the §9.1 per-sample rules: identical pixels.

    With 16-canvas blocks, 140 canvases make 9 blocks and block 64..79 holds both P (< 70) and A canvases.
    """
    spec = ClutterSpec(canvas=36, n_clutter=9, size_clutter=12, noise_sigma=0.2)   # large noise: saturation
    n = 70
    if block_rows is not None:
        monkeypatch.setattr(M, "_BLOCK_BYTES", block_rows * 4 * 36 * 36)
        assert len(M._blocks(2 * n, 36)) == 9
    else:
        assert len(M._blocks(2 * n, 36)) == 1
    draws = M._draw(np.random.default_rng(11), len(fold), spec, n)
    images, masks = M._compose(fold.images, draws, spec)
    noise, _ = M._compose(np.zeros_like(fold.images), draws, spec)       # a zero fold paints nothing: the noise
    x_all = fold.images.astype(np.float32)
    w = spec.size_clutter
    for row in range(2 * n):
        img = noise[row].copy()
        if row < n:
            x = x_all[draws.source[row]]
            r0, c0 = draws.offsets[row]
            img[r0:r0 + 28, c0:c0 + 28][x > 0] = x[x > 0]
            want_mask = np.zeros_like(masks[row])
            want_mask[r0:r0 + 28, c0:c0 + 28][x > 0.5] = 1
            np.testing.assert_array_equal(masks[row], want_mask)
        for k in range(spec.n_clutter):
            tr, tc = draws.clutter_target[row, k]
            sr, sc = draws.clutter_window[row, k]
            src = x_all[draws.clutter_source[row, k]][sr:sr + w, sc:sc + w]
            dst = img[tr:tr + w, tc:tc + w]
            sat = src + dst > 1
            m = (src > 0) & ~sat
            dst[m] = src[m]
            dst[sat] = np.maximum(dst[sat], src[sat])
        np.testing.assert_array_equal(images[row], img)


@pytest.mark.parametrize("generator", [generate_cluttered, generate_cluttered_reference])
def test_clutter_windows_cover_the_specified_ranges(generator) -> None:
    """One clutter patch from digits whose pixels encode their position reveals both windows (§9.1 ranges)."""
    rc = np.arange(28 * 28, dtype=np.float32).reshape(28, 28)
    code = (rc + 1) / 1000                                               # in (0, 0.79]: never saturates on 0
    fold = DigitFold(np.stack([code] * 5), np.arange(5, dtype=np.int64))
    spec = ClutterSpec(canvas=32, n_clutter=1, size_clutter=20, noise_sigma=0.0)
    a = generator(fold, spec, 300, seed=1).a_images[:, 0]
    src_r, src_c, dst_r, dst_c = [], [], [], []
    for img in a:
        rows, cols = np.nonzero(img)
        assert len(rows) == 20 * 20                                      # the whole patch, nothing else
        tr, tc = rows.min(), cols.min()
        sr, sc = divmod(int(round(img[tr, tc] * 1000)) - 1, 28)
        np.testing.assert_allclose(img[tr:tr + 20, tc:tc + 20], code[sr:sr + 20, sc:sc + 20])
        src_r.append(sr), src_c.append(sc), dst_r.append(tr), dst_c.append(tc)
    assert sorted(set(src_r)) == sorted(set(src_c)) == list(range(28 - 20))        # 0..27-w
    assert sorted(set(dst_r)) == sorted(set(dst_c)) == list(range(32 - 20))        # 0..S-w-1


def test_determinism_by_seed(fold: DigitFold) -> None:
    a = generate_cluttered(fold, SMALL, 30, seed=7)
    b = generate_cluttered(fold, SMALL, 30, seed=7)
    c = generate_cluttered(fold, SMALL, 30, seed=8)
    for name in ("images", "masks", "source_index", "offsets"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
    assert not np.array_equal(a.images, c.images) and not np.array_equal(a.source_index, c.source_index)
    r1 = generate_cluttered_reference(fold, SMALL, 10, seed=7)
    r2 = generate_cluttered_reference(fold, SMALL, 10, seed=7)
    np.testing.assert_array_equal(r1.images, r2.images)


def _replay_sample(replay: np.random.RandomState, spec: ClutterSpec, n_fold: int) -> dict:
    """genseg.md §9.1's draws for one sample, in its order: digit, P noise, offsets, P clutter (all sources first,
    then per patch target row/col and source row/col), A noise, A clutter."""
    s, w, k = spec.canvas, spec.size_clutter, spec.n_clutter
    out = {"i": replay.randint(n_fold), "noise_p": spec.noise_sigma * replay.randn(s, s).astype(np.float32)}
    out["offset"] = (replay.randint(s - 28), replay.randint(s - 28))
    for canvas in ("p", "a"):
        if canvas == "a":
            out["noise_a"] = spec.noise_sigma * replay.randn(s, s).astype(np.float32)
        js = replay.randint(n_fold, size=k)
        out[f"clutter_{canvas}"] = [(j, replay.randint(s - w), replay.randint(s - w), replay.randint(28 - w),
                                     replay.randint(28 - w)) for j in js]
    return out


def test_reference_sample_draws_in_the_reference_call_order(fold: DigitFold) -> None:
    """A replay of §9.1's order from the same seed gives the same digit, offsets, noise and clutter pixels, and
    leaves the stream at the same position."""
    images = np.asarray(fold.images)
    for spec in (SMALL, replace(SMALL, noise_sigma=0.3, n_clutter=0)):
        rng, replay = np.random.RandomState(21), np.random.RandomState(21)
        for labelled in (True, False):
            sample = cluttered_sample_reference(images, spec, rng, labelled=labelled)
            want = _replay_sample(replay, spec, len(fold))
            assert (sample.source, sample.offset) == (want["i"], want["offset"])
            assert sample.p_image.dtype == sample.a_image.dtype == np.float32
            x = images[want["i"]]
            if spec.n_clutter == 0:                                      # exact pixels: noise, then the digit
                p = want["noise_p"].copy()
                p[want["offset"][0]:want["offset"][0] + 28, want["offset"][1]:want["offset"][1] + 28][x > 0] = x[x > 0]
                np.testing.assert_array_equal(sample.p_image, p)
                np.testing.assert_array_equal(sample.a_image, want["noise_a"])
            else:                                                        # clutter patches land where drawn
                w = spec.size_clutter
                for canvas, img in (("p", sample.p_image), ("a", sample.a_image)):
                    j, tr, tc, sr, sc = want[f"clutter_{canvas}"][-1]   # the last patch lies on top:
                    src = images[j][sr:sr + w, sc:sc + w]                # src replaces or saturates (max)
                    assert (img[tr:tr + w, tc:tc + w][src > 0] >= src[src > 0]).all()
            if labelled:
                assert sample.mask.dtype == np.int64
                np.testing.assert_array_equal(sample.mask, _place((x > 0.5).astype(np.int64), sample.offset,
                                                                  spec.canvas))
            else:
                assert sample.mask is None
        assert rng.randint(2**31) == replay.randint(2**31)               # same number of draws consumed


def _per_image_stats(out: M.ClutteredSet) -> dict[str, np.ndarray]:
    p, a = out.p_images[:, 0], out.a_images[:, 0]
    return {"p_mean": p.mean((1, 2)), "a_mean": a.mean((1, 2)), "p_bright": (p > 0.5).mean((1, 2)),
            "a_bright": (a > 0.5).mean((1, 2)), "a_coverage": (a > 0.05).mean((1, 2)),
            "mask_area": out.masks[:, 0].mean((1, 2)), "row_offset": out.offsets[:, 0].astype(float)}


@pytest.mark.parametrize("spec", [SIMPLE, PRESETS["mnist48_hard"]], ids=["simple", "hard"])
def test_vectorised_and_reference_agree_in_distribution(digits: DigitSplits, spec: ClutterSpec) -> None:
    n = 400
    vec = _per_image_stats(generate_cluttered(digits.train, spec, n, seed=0))
    ref = _per_image_stats(generate_cluttered_reference(digits.train, spec, n, seed=0))
    for key in vec:
        # two-sample z statistic on the per-image means; 5 standard errors is a loose but real bound
        se = np.sqrt(vec[key].var() / n + ref[key].var() / n)
        assert abs(vec[key].mean() - ref[key].mean()) < 5 * se, (key, vec[key].mean(), ref[key].mean(), se)
    # both use the full offset range 0..S-29
    assert vec["row_offset"].min() == ref["row_offset"].min() == 0
    assert vec["row_offset"].max() == ref["row_offset"].max() == spec.canvas - 29


# -------------------------------------------------------------------------------------------- label choice
def test_labelled_sources_one_percent_of_embedded_is_40_nines(digits: DigitSplits) -> None:
    labels = digits.train.labels
    chosen = choose_labelled_sources(labels, fraction=0.01, labeled_digits=(9,), data_seed=0)
    assert chosen.dtype == bool and chosen.shape == (4000,) and chosen.sum() == 40
    assert (labels[chosen] == 9).all()
    # the first 40 of a RandomState(0) permutation of the eligible (digit-9) indices
    want = np.random.RandomState(0).permutation(np.flatnonzero(labels == 9))[:40]
    assert set(np.flatnonzero(chosen)) == set(want)
    other = choose_labelled_sources(labels, fraction=0.01, data_seed=1)
    assert other.sum() == 40 and not np.array_equal(chosen, other)
    assert choose_labelled_sources(labels, fraction=0.0001).sum() == 1                 # max(1, ...)
    assert choose_labelled_sources(labels, fraction=0.01, count=7).sum() == 7          # count overrides
    every = choose_labelled_sources(labels, fraction=0.1, labeled_digits="all")
    assert every.sum() == 400 and len(np.unique(labels[every])) == 10


@pytest.mark.parametrize("fraction", [0.0, -0.1, 1.5, True])
def test_labelled_fraction_outside_range(fraction: float) -> None:
    with pytest.raises(WeaksegError, match=r"data.mnist.labeled_fraction must be in \(0, 1\], got .*; use e.g. "
                                           r"--set data.mnist.labeled_fraction=0.01"):
        choose_labelled_sources(np.zeros(100, dtype=np.int64), fraction=fraction)


def test_labelled_request_errors(digits: DigitSplits) -> None:
    labels = digits.train.labels
    n9 = int((labels == 9).sum())
    with pytest.raises(WeaksegError, match=f"asks for 800 labelled source digits but only {n9} of the 4000"):
        choose_labelled_sources(labels, fraction=0.2, labeled_digits=(9,))
    with pytest.raises(WeaksegError, match="labeled_count must be a whole number >= 1"):
        choose_labelled_sources(labels, count=0)
    with pytest.raises(WeaksegError, match="labeled_digits must be 'all' or a non-empty list of digits 0..9"):
        choose_labelled_sources(labels, fraction=0.01, labeled_digits=(10,))
    with pytest.raises(WeaksegError, match="set data.mnist.labeled_fraction"):
        choose_labelled_sources(labels, fraction=None, count=None)


# ------------------------------------------------------------------------------------------------ splits
@pytest.fixture(scope="module")
def tiny_digits(digits: DigitSplits) -> DigitSplits:
    t, v, s = digits.train, digits.valid, digits.test
    return DigitSplits("tiny", DigitFold(t.images[:400], t.labels[:400]), DigitFold(v.images[:15], v.labels[:15]),
                       DigitFold(s.images[:12], s.labels[:12]))


def test_build_splits_statuses_and_metadata(tiny_digits: DigitSplits) -> None:
    splits = build_mnist_splits(source=tiny_digits, spec=SMALL, labeled_digits="all", labeled_fraction=0.1,
                                labeled_count=None, data_seed=0, n_train=120)
    assert list(splits) == ["train", "valid", "test"]
    assert splits.info["n_labelled_sources"] == 40 and splits.info["samples"] == {"train": 240, "valid": 30,
                                                                                   "test": 24}
    tr = splits["train"]
    assert len(tr) == 240 and tr.images.shape == (240, 1, 32, 32) and tr.class_names == ("digit",)
    assert tr.case_ids[0] == "train_p_000000" and tr.case_ids[120] == "train_a_000000"
    p, a = slice(0, 120), slice(120, 240)
    labelled = np.isin(tr.source_index[p], tr.labelled_sources)
    assert 0 < labelled.sum() < 120 and splits.info["n_labelled_train_p"] == labelled.sum()
    np.testing.assert_array_equal(tr.labelled[p], labelled)
    status = tr.status[:, 0].numpy()
    np.testing.assert_array_equal(status[p], np.where(labelled, MASK, PRESENT))
    assert (status[a] == ABSENT).all() and not tr.has_mask[a].any()
    np.testing.assert_array_equal(tr.has_mask[p].numpy(), labelled)
    assert tr.masks[p][~torch.from_numpy(labelled)].sum() == 0 and tr.masks[a].sum() == 0
    assert tr.mask_nonempty[p][torch.from_numpy(labelled)].all()
    # a labelled mask is exactly the digit > 0.5 at its offsets
    i = int(np.flatnonzero(labelled)[0])
    x = tiny_digits.train.images[tr.source_index[i]]
    np.testing.assert_array_equal(tr.masks[i, 0].numpy(), _place((x > 0.5).astype(np.uint8), tr.offsets[i], 32))
    assert (tr.digit_class[a] == -1).all() and (tr.digit_class[p] >= 0).all()

    for name, n in (("valid", 15), ("test", 12)):                        # default count = fold size
        s = splits[name]
        assert len(s) == 2 * n and s.case_ids[n] == f"{name}_a_000000"
        st = s.status[:, 0]
        assert (st[:n] == MASK).all() and s.has_mask[:n].all() and s.mask_nonempty[:n, 0].all()
        assert (st[n:] == ABSENT).all() and not s.has_mask[n:].any()


def test_build_splits_determinism_and_labelled_nines(tiny_digits: DigitSplits) -> None:
    kw = dict(source=tiny_digits, spec=SMALL, labeled_digits=(9,), labeled_fraction=0.05, labeled_count=None,
              n_train=40)
    a = build_mnist_splits(data_seed=0, **kw)
    b = build_mnist_splits(data_seed=0, **kw)
    c = build_mnist_splits(data_seed=1, **kw)
    for split in ("train", "valid", "test"):
        assert torch.equal(a[split].images, b[split].images) and torch.equal(a[split].status, b[split].status)
        assert not torch.equal(a[split].images, c[split].images)           # the data seed moves every split
    assert (tiny_digits.train.labels[a["train"].labelled_sources] == 9).all()
    assert a.info["n_labelled_sources"] == 20
    assert not np.array_equal(a["train"].labelled_sources, c["train"].labelled_sources)


def test_build_splits_from_preset_name_and_bad_counts(tiny_digits: DigitSplits) -> None:
    s = build_mnist_splits(source=tiny_digits, spec="mnist48_simple", labeled_fraction=0.01, n_train=4, n_valid=2,
                           n_test=2)
    assert s["train"].images.shape == (8, 1, 48, 48) and s.info["spec"]["n_clutter"] == 8
    with pytest.raises(WeaksegError, match="data.mnist.n_valid must be a whole number >= 1, got 0"):
        build_mnist_splits(source=tiny_digits, spec=SMALL, labeled_fraction=0.01, n_valid=0)
    with pytest.raises(WeaksegError, match=r"data.mnist.labeled_fraction must be in \(0, 1\]"):
        build_mnist_splits(source=tiny_digits, spec=SMALL, labeled_fraction=2.0)


# ------------------------------------------------------------------ label_unit=canvas (issue 20's protocol)
def test_canvas_unit_labels_one_percent_of_canvases_from_every_distinct_nine(tiny_digits: DigitSplits) -> None:
    """400 digits, 6,000 canvases (each digit ~15 times, as 59,500 canvases on 4,000 digits): 1% = 60 labelled
    canvases, from all the nines of the fold, each nine at least once."""
    labels = tiny_digits.train.labels
    n9 = int((labels == 9).sum())
    assert 20 < n9 < 60                                                      # fewer nines than labelled canvases
    s = build_mnist_splits(source=tiny_digits, spec=SMALL, labeled_fraction=0.01, n_train=6000, label_unit="canvas")
    tr = s["train"]
    p = tr.is_p
    lab = tr.labelled[p]
    assert lab.sum() == 60 == s.info["n_labelled_train_p"] == s.info["labelled_canvas_target"]
    assert s.info["n_labelled_sources"] == n9 == len(tr.labelled_sources)
    assert set(tr.source_index[p][lab]) == set(np.flatnonzero(labels == 9))   # every nine, no other digit
    assert s.info["n_distinct_labelled_sources"] == n9 and s.info["label_unit"] == "canvas"
    # canvases of a labelled nine that were not picked stay unlabelled P images (no mask)
    shows_nine = np.isin(tr.source_index[p], tr.labelled_sources)
    assert shows_nine.sum() > 60 and (tr.status[:6000, 0].numpy()[shows_nine & ~lab] == PRESENT).all()
    assert not tr.has_mask[:6000][torch.from_numpy(shows_nine & ~lab)].any()
    i = int(np.flatnonzero(lab)[0])                                          # the mask is the digit's own
    x = tiny_digits.train.images[tr.source_index[i]]
    np.testing.assert_array_equal(tr.masks[i, 0].numpy(), _place((x > 0.5).astype(np.uint8), tr.offsets[i], 32))
    again = build_mnist_splits(source=tiny_digits, spec=SMALL, labeled_fraction=0.01, n_train=6000,
                               label_unit="canvas")
    np.testing.assert_array_equal(again["train"].labelled, tr.labelled)      # deterministic by data_seed
    # fewer distinct sources on request: 60 canvases from 10 nines (the first 10 of the same permutation)
    few = build_mnist_splits(source=tiny_digits, spec=SMALL, labeled_fraction=0.01, n_train=6000, label_unit="canvas",
                             labeled_sources=10)
    assert few.info["n_labelled_train_p"] == 60 and few.info["n_distinct_labelled_sources"] == 10
    want = np.random.RandomState(0).permutation(np.flatnonzero(labels == 9))[:10]
    assert set(few["train"].labelled_sources) == set(want)


def test_canvas_unit_without_reuse_is_the_source_rule(tiny_digits: DigitSplits) -> None:
    """As many canvases as digits (full MNIST: 59,500 of 59,500): the canvas unit is the reference's rule."""
    kw = dict(source=tiny_digits, spec=SMALL, labeled_digits="all", labeled_fraction=0.1, n_train=400)
    by_source = build_mnist_splits(**kw)
    by_canvas = build_mnist_splits(**kw, label_unit="canvas")
    assert by_canvas.info["n_labelled_sources"] == by_source.info["n_labelled_sources"] == 40
    for split in ("train", "valid", "test"):
        assert torch.equal(by_source[split].images, by_canvas[split].images)
        assert torch.equal(by_source[split].status, by_canvas[split].status)
        assert torch.equal(by_source[split].masks, by_canvas[split].masks)


def test_canvas_unit_with_fewer_canvases_than_digits_labels_enough_sources(tiny_digits: DigitSplits) -> None:
    """200 canvases of 400 digits at 10%: 20 labelled canvases on average need ceil(20 * 400 / 200) = 40 sources."""
    s = build_mnist_splits(source=tiny_digits, spec=SMALL, labeled_digits="all", labeled_fraction=0.1, n_train=200,
                           label_unit="canvas")
    tr = s["train"]
    assert s.info["n_labelled_sources"] == 40
    np.testing.assert_array_equal(tr.labelled[:200], np.isin(tr.source_index[:200], tr.labelled_sources))


def test_canvas_unit_on_a_full_mnist_sized_fold_labels_595_distinct_sources() -> None:
    """59,500 training digits and canvases, 1%: 595 labelled sources and a mask iff a canvas shows one of them
    (the reference's exact protocol, genseg.md §9.2)."""
    rng = np.random.default_rng(0)
    n = 59500
    labels = rng.integers(10, size=n)
    images = np.zeros((n, 28, 28), dtype=np.float32)
    images[:, 10:18, 10:18] = 1.0
    fold = DigitFold(images, labels)
    small = DigitFold(images[:5], labels[:5])
    tiny = ClutterSpec(canvas=29, n_clutter=0, size_clutter=4, noise_sigma=0.0)
    s = build_mnist_splits(source=DigitSplits("fake", fold, small, small), spec=tiny, labeled_fraction=0.01,
                           label_unit="canvas", n_train=n, n_valid=2, n_test=2)
    tr = s["train"]
    assert s.info["n_labelled_sources"] == 595 and (labels[tr.labelled_sources] == 9).all()
    shows = np.isin(tr.source_index[:n], tr.labelled_sources)
    np.testing.assert_array_equal(tr.labelled[:n], shows)
    assert 500 < s.info["n_labelled_train_p"] == shows.sum() < 700            # ~595: Poisson around n x 1%


def test_canvas_unit_refuses_impossible_requests_before_painting(tiny_digits: DigitSplits, monkeypatch) -> None:
    def no_painting(*args, **kwargs):
        raise AssertionError("canvases were painted before the request was checked")

    monkeypatch.setattr(M, "_compose", no_painting)
    kw = dict(source=tiny_digits, spec=SMALL, n_train=6000, label_unit="canvas")
    n9 = int((tiny_digits.train.labels == 9).sum())
    with pytest.raises(WeaksegError, match=r"data.mnist.labeled_count=2000 asks for 2000 labelled canvases but only "
                                           r"\d+ of the 6000 training canvases show one of the 5 labelled"):
        build_mnist_splits(**kw, labeled_count=2000, labeled_sources=5)
    with pytest.raises(WeaksegError, match=r"data.mnist.labeled_sources=61 asks for more distinct labelled digits "
                                           r"than the 60 labelled canvases"):
        build_mnist_splits(**kw, labeled_fraction=0.01, labeled_sources=61)
    with pytest.raises(WeaksegError, match=f"data.mnist.labeled_sources=100 asks for 100 labelled source digits but "
                                           f"only {n9} of the 400"):
        build_mnist_splits(**kw, labeled_fraction=0.02, labeled_sources=100)
    with pytest.raises(WeaksegError, match=r"data.mnist.labeled_fraction=1e-05 labels int\(1e-05 \* 6000 \+ 0.5\) = 0 "
                                           r"of the 6000 training canvass? \(no masks\)"):
        build_mnist_splits(**kw, labeled_fraction=1e-5)
    with pytest.raises(WeaksegError, match=r"data.mnist.labeled_fraction=0.2 asks for 80 labelled canvases, which "
                                           f"needs 80 labelled source digits, but only {n9} of the 400"):
        build_mnist_splits(source=tiny_digits, spec=SMALL, n_train=400, label_unit="canvas", labeled_fraction=0.2)
    with pytest.raises(WeaksegError, match="data.mnist.labeled_sources applies only when the training canvases "
                                           "outnumber the digits"):
        build_mnist_splits(source=tiny_digits, spec=SMALL, n_train=400, label_unit="canvas", labeled_sources=3)
    with pytest.raises(WeaksegError, match="data.mnist.label_unit must be one of 'source', 'canvas', got 'pixel'"):
        build_mnist_splits(source=tiny_digits, spec=SMALL, label_unit="pixel")
    with pytest.raises(WeaksegError, match="data.mnist.labeled_sources applies only with data.mnist.label_unit=canvas"):
        build_mnist_splits(source=tiny_digits, spec=SMALL, labeled_sources=3)
