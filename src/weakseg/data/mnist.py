"""Cluttered MNIST (``genseg.md`` §9): P images hold one whole digit among clutter, A images clutter only.

Per sample (§9.1): a noise canvas ``sigma * randn(S, S)``; for P one digit drawn with replacement from the
fold, pasted whole at offsets ``0..S-29`` where its pixels are > 0; then ``n_clutter`` patches of
``w x w`` cropped from random digits of the same fold (source window ``0..27-w``, target window
``0..S-w-1``), each applied on top of the previous ones with the saturation rule of ``clutter_rule``.
A is an independent canvas with clutter only. The mask is the digit's pixels > 0.5 at its placement
(clutter may cover it; the mask ignores clutter).

``generate_cluttered`` is the vectorised production generator (no per-sample loop: one gather/scatter per
clutter index for a whole block of canvases, blocks sized to stay in cache). It draws its random numbers in
its own order, so it matches the per-sample ``cluttered_sample_reference`` (the reference's algorithm, call
order and dtypes: its exact pixels for a given ``RandomState``) in distribution, not pixel by pixel.
``build_mnist_splits`` turns the folds into train/valid/test ``TensorSampleSet``\\ s with label statuses.
"""

from __future__ import annotations

import numbers
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch
from numpy.lib.stride_tricks import sliding_window_view

from weakseg.config.choices import LabelUnit, check_choice
from weakseg.data.datasets import TensorSampleSet
from weakseg.data.mnist_sources import DigitFold, DigitSplits, load_digits
from weakseg.data.status import ABSENT, MASK, PRESENT
from weakseg.errors import WeaksegError

__all__ = [
    "PRESETS", "ClutterSpec", "ClutteredSampleSet", "ClutteredSet", "DigitFold", "DigitSplits", "MnistSplits",
    "ReferenceSample", "build_mnist_splits", "choose_labelled_sources", "clutter_rule", "clutter_spec",
    "cluttered_sample_reference", "generate_cluttered", "generate_cluttered_reference", "load_digits",
]

DIGIT = 28                 # MNIST digit side
SPLITS = ("train", "valid", "test")


# ------------------------------------------------------------------------------------------------- spec
@dataclass(frozen=True)
class ClutterSpec:
    """Generator parameters of one preset: canvas side S, clutter count and patch side w, noise sigma."""

    canvas: int
    n_clutter: int
    size_clutter: int
    noise_sigma: float

    def __post_init__(self) -> None:
        for name in ("canvas", "n_clutter", "size_clutter"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, numbers.Integral):
                raise WeaksegError(f"data.mnist.{name} must be a whole number, got {value!r}")
        # The digit offset is drawn from 0..S-29 (the reference's randint(S - 28)), so S = 28 leaves none.
        if self.canvas < DIGIT + 1:
            raise WeaksegError(f"data.mnist.canvas must be >= {DIGIT + 1} (a 28-px digit plus at least one offset), "
                               f"got {self.canvas}; use e.g. --set data.mnist.canvas=48")
        if self.n_clutter < 0:
            raise WeaksegError(f"data.mnist.n_clutter must be >= 0, got {self.n_clutter}")
        if not 1 <= self.size_clutter <= DIGIT - 1:
            raise WeaksegError(f"data.mnist.size_clutter must be in [1, {DIGIT - 1}] (a window inside a 28-px digit), "
                               f"got {self.size_clutter}")
        if isinstance(self.noise_sigma, bool) or not isinstance(self.noise_sigma, numbers.Real) \
                or not np.isfinite(self.noise_sigma) or self.noise_sigma < 0:
            raise WeaksegError(f"data.mnist.noise_sigma must be a finite number >= 0, got {self.noise_sigma!r}")


#: Our presets (§16); the published clutter settings were never recorded. Changing one means a new name.
PRESETS: dict[str, ClutterSpec] = {
    "mnist48_simple": ClutterSpec(canvas=48, n_clutter=8, size_clutter=10, noise_sigma=0.01),
    "mnist48_hard": ClutterSpec(canvas=48, n_clutter=16, size_clutter=14, noise_sigma=0.01),
    "mnist128": ClutterSpec(canvas=128, n_clutter=56, size_clutter=10, noise_sigma=0.01),
}


def clutter_spec(spec: ClutterSpec | str) -> ClutterSpec:
    """A ``ClutterSpec`` as given, or the preset of that name."""
    if isinstance(spec, ClutterSpec):
        return spec
    if spec not in PRESETS:
        raise WeaksegError(f"unknown MNIST preset {spec!r}; available: {', '.join(PRESETS)}")
    return PRESETS[spec]


# ------------------------------------------------------------------------------------------------ output
@dataclass(frozen=True, eq=False)
class ClutteredSet:
    """Generated pairs: ``n`` P images (with their masks) and ``n`` unrelated A images.

    Shape:
        images: (2n, 1, S, S) float32, the n P images then the n A images; masks: (n, 1, S, S) uint8 (P only);
        source_index, digit_class: (n,) int64; offsets: (n, 2) int64 (row, col) of the digit's top-left pixel.
    """

    images: np.ndarray
    masks: np.ndarray
    source_index: np.ndarray
    digit_class: np.ndarray
    offsets: np.ndarray

    def __len__(self) -> int:
        return int(self.masks.shape[0])

    @property
    def p_images(self) -> np.ndarray:
        """(n, 1, S, S) float32 view: images with one whole digit."""
        return self.images[: len(self)]

    @property
    def a_images(self) -> np.ndarray:
        """(n, 1, S, S) float32 view: clutter-only images."""
        return self.images[len(self):]


def clutter_rule(dst: np.ndarray, src: np.ndarray) -> np.ndarray:
    """Apply a clutter patch ``src`` over canvas pixels ``dst`` (same shape), returning the new pixels.

    Where ``src + dst > 1`` (saturated) keep ``max(dst, src)``; elsewhere ``src`` replaces ``dst`` where
    ``src > 0``; else ``dst`` is unchanged. Elementwise form of the reference's masked assignments.
    """
    sat = src + dst > 1
    out = np.where(src > 0, src, dst)
    np.maximum(dst, src, out=out, where=sat)
    return out


# --------------------------------------------------------------------------------------- vectorised path
class _Draws(NamedTuple):
    """Every random number one vectorised call uses (rows 0..n-1 are P canvases, n..2n-1 are A canvases).

    Shape:
        source: (n,); offsets: (n, 2); clutter_source: (2n, K); clutter_target: (2n, K, 2) in 0..S-w-1;
        clutter_window: (2n, K, 2) in 0..27-w; noise_seed: seed of the torch generator of the noise.
    """

    source: np.ndarray
    offsets: np.ndarray
    clutter_source: np.ndarray
    clutter_target: np.ndarray
    clutter_window: np.ndarray
    noise_seed: int


def _draw(rng: np.random.Generator, n_fold: int, spec: ClutterSpec, n: int) -> _Draws:
    s, w, k = spec.canvas, spec.size_clutter, spec.n_clutter
    source = rng.integers(n_fold, size=n)                                  # WITH replacement
    offsets = rng.integers(s - DIGIT, size=(n, 2))                         # 0..S-29
    clutter_source = rng.integers(n_fold, size=(2 * n, k))
    clutter_target = rng.integers(s - w, size=(2 * n, k, 2))              # 0..S-w-1
    clutter_window = rng.integers(DIGIT - w, size=(2 * n, k, 2))          # 0..27-w
    return _Draws(source, offsets, clutter_source, clutter_target, clutter_window, int(rng.integers(2**63)))


_BLOCK_BYTES = 2**22       # canvases are painted in blocks of about 4 MiB so each block stays in cache


def _blocks(n_rows: int, canvas: int) -> list[tuple[int, int]]:
    """Row ranges of the painting blocks; fixed by the shape alone, so the noise stream is too."""
    step = max(16, _BLOCK_BYTES // (4 * canvas * canvas))
    return [(a, min(a + step, n_rows)) for a in range(0, n_rows, step)]


def _fill_noise(out: np.ndarray, sigma: float, generator: torch.Generator) -> None:
    """``out`` (M, S, S) float32 <- sigma * N(0, 1), in place.

    The noise is most of the work; torch's vectorised normal sampler is about 2.5x faster than numpy's
    ziggurat on CPU, so it draws it (seeded from the numpy stream through ``_Draws.noise_seed``).
    """
    torch.from_numpy(out).normal_(0.0, float(sigma), generator=generator)


def _compose(fold_images: np.ndarray, draws: _Draws, spec: ClutterSpec) -> tuple[np.ndarray, np.ndarray]:
    """Noise, digits and clutter for all canvases, block by block (a block = a range of canvases).

    Within a block every step is one vectorised gather / scatter through sliding-window views (one
    window per canvas), so no per-pixel index arrays are built. Blocks only keep the data in cache.

    Shape:
        fold_images: (N, 28, 28) float32. Returns images (2n, S, S) float32 (P then A), masks (n, S, S) uint8.
    """
    s, w = spec.canvas, spec.size_clutter
    n = len(draws.source)
    fold = np.asarray(fold_images, dtype=np.float32)                       # (N, 28, 28)
    f_win = sliding_window_view(fold, (w, w), axis=(1, 2))                 # (N, 29-w, 29-w, w, w)
    images = np.empty((2 * n, s, s), dtype=np.float32)
    masks = np.zeros((n, s, s), dtype=np.uint8)
    generator = torch.Generator().manual_seed(draws.noise_seed)
    for a, b in _blocks(2 * n, s):
        block = images[a:b]                                                # (M, S, S) view
        _fill_noise(block, spec.noise_sigma, generator)
        if a < n:                                                          # the block holds P canvases
            p = slice(a, min(b, n))
            rows = np.arange(p.stop - p.start)
            r0, c0 = draws.offsets[p, 0], draws.offsets[p, 1]
            x = fold[draws.source[p]]                                      # (m, 28, 28)
            p_win = sliding_window_view(block[: len(rows)], (DIGIT, DIGIT), axis=(1, 2), writeable=True)
            p_win[rows, r0, c0] = np.where(x > 0, x, p_win[rows, r0, c0])  # the digit overwrites the noise
            m_win = sliding_window_view(masks[p], (DIGIT, DIGIT), axis=(1, 2), writeable=True)
            m_win[rows, r0, c0] = x > 0.5
        # Clutter patch k of every canvas in one step; steps in order, so each lies on the earlier ones.
        # Writes never overlap within a step (one window per canvas), which makes the writeable view safe.
        rows = np.arange(b - a)
        c_win = sliding_window_view(block, (w, w), axis=(1, 2), writeable=True)   # (M, S-w+1, S-w+1, w, w)
        src_j, src_rc, dst_rc = draws.clutter_source[a:b], draws.clutter_window[a:b], draws.clutter_target[a:b]
        patches = f_win[src_j, src_rc[..., 0], src_rc[..., 1]]            # (M, K, w, w) all sources at once
        for k in range(spec.n_clutter):
            tr, tc = dst_rc[:, k, 0], dst_rc[:, k, 1]
            c_win[rows, tr, tc] = clutter_rule(c_win[rows, tr, tc], patches[:, k])
    return images, masks


def generate_cluttered(digits: DigitFold, spec: ClutterSpec | str, n: int, *,
                       seed: int | np.random.SeedSequence | np.random.Generator) -> ClutteredSet:
    """Generate ``n`` P images (each with its mask) and ``n`` A images from one fold, vectorised.

    Deterministic by ``seed`` (a ``numpy.random.Generator`` is consumed in place).

    Shape:
        returns images (2n, 1, S, S) float32, masks (n, 1, S, S) uint8, source_index/digit_class (n,),
        offsets (n, 2); see ``ClutteredSet``.
    """
    spec = clutter_spec(spec)
    _check_count(n, "n")
    if len(digits) == 0:
        raise WeaksegError("cannot generate cluttered MNIST from an empty digit fold")
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    return _generate_from_draws(digits, spec, _draw(rng, len(digits), spec, n))


def _generate_from_draws(digits: DigitFold, spec: ClutterSpec, draws: _Draws) -> ClutteredSet:
    """Paint the canvases of ``draws`` (made by ``_draw`` for this fold and spec); see ``generate_cluttered``."""
    n = len(draws.source)
    images, masks = _compose(digits.images, draws, spec)
    s = spec.canvas
    return ClutteredSet(images.reshape(2 * n, 1, s, s), masks.reshape(n, 1, s, s),   # (2n|n, 1, S, S)
                        draws.source.astype(np.int64), digits.labels[draws.source].astype(np.int64),
                        draws.offsets.astype(np.int64))


# ---------------------------------------------------------------------------------------- reference path
class ReferenceSample(NamedTuple):
    """One sample as the reference's ``_generate_cluttered_sample`` returns it (A, P, mask or None, digit),
    with the digit's fold index and its (row, col) offset instead of its class.

    Shape:
        a_image, p_image: (S, S) float32; mask: (S, S) int64 or None (unlabelled).
    """

    a_image: np.ndarray
    p_image: np.ndarray
    mask: np.ndarray | None
    source: int
    offset: tuple[int, int]


def cluttered_sample_reference(fold_images: np.ndarray, spec: ClutterSpec, rng: np.random.RandomState, *,
                               labelled: bool = True) -> ReferenceSample:
    """One sample by the reference's per-sample algorithm (§9.1): same ``RandomState`` calls, same order, float32.

    What a user of the reference runs (``utils/data/cluttered_mnist.py``, one call per sample): float32 digits,
    the noise drawn in float64 and cast to float32 before scaling, a fresh (S, S) int64 mask only for labelled
    samples. Given the same ``RandomState`` it reproduces the reference's pixels exactly (checked against its
    code by ``benchmarks/bench_mnist_generation.py --peer``).

    Shape:
        fold_images: (N, 28, 28) float32 in [0, 1]. Returns a ``ReferenceSample`` of (S, S) arrays.
    """
    s, w, n_fold = spec.canvas, spec.size_clutter, len(fold_images)

    def background() -> np.ndarray:
        return spec.noise_sigma * rng.randn(s, s).astype(np.float32)     # (S, S) float32

    def add_clutter(img: np.ndarray) -> None:
        for j in rng.randint(n_fold, size=spec.n_clutter):                 # all sources drawn first
            tr, tc = rng.randint(s - w), rng.randint(s - w)                # target window 0..S-w-1
            sr, sc = rng.randint(DIGIT - w), rng.randint(DIGIT - w)        # source window 0..27-w
            src = fold_images[j][sr:sr + w, sc:sc + w]
            dst = img[tr:tr + w, tc:tc + w]                                # a view: writes reach img
            sat = src + dst > 1
            put = (src > 0) & ~sat
            dst[put] = src[put]
            dst[sat] = np.maximum(dst[sat], src[sat])

    i = rng.randint(n_fold)
    x = fold_images[i]
    p = background()
    r0, c0 = rng.randint(s - DIGIT), rng.randint(s - DIGIT)               # 0..S-29
    on = x > 0
    p[r0:r0 + DIGIT, c0:c0 + DIGIT][on] = x[on]                            # the digit overwrites the noise
    add_clutter(p)
    a = background()
    add_clutter(a)
    mask = None
    if labelled:
        mask = np.zeros((s, s), dtype=np.int64)
        mask[r0:r0 + DIGIT, c0:c0 + DIGIT][x > 0.5] = 1
    return ReferenceSample(a, p, mask, int(i), (int(r0), int(c0)))


def generate_cluttered_reference(digits: DigitFold, spec: ClutterSpec | str, n: int, *,
                                 seed: int | np.random.RandomState) -> ClutteredSet:
    """``n`` samples of ``cluttered_sample_reference`` (the reference's call order), stacked as a ``ClutteredSet``.

    The yardstick of the distribution tests; the generation benchmark times the per-sample loop itself.
    Same outputs as ``generate_cluttered`` (every P image with its mask), not the same pixels.
    """
    spec = clutter_spec(spec)
    _check_count(n, "n")
    rng = seed if isinstance(seed, np.random.RandomState) else np.random.RandomState(seed)
    fold = np.asarray(digits.images, dtype=np.float32)
    s = spec.canvas
    samples = [cluttered_sample_reference(fold, spec, rng) for _ in range(n)]
    images = np.empty((2 * n, 1, s, s), dtype=np.float32)                 # (2n, 1, S, S): P then A
    masks = np.empty((n, 1, s, s), dtype=np.uint8)
    for t, smp in enumerate(samples):
        images[t, 0], images[n + t, 0], masks[t, 0] = smp.p_image, smp.a_image, smp.mask
    source = np.array([smp.source for smp in samples], dtype=np.int64)
    offsets = np.array([smp.offset for smp in samples], dtype=np.int64).reshape(n, 2)
    return ClutteredSet(images, masks, source, digits.labels[source].astype(np.int64), offsets)


# ------------------------------------------------------------------------------------------------ labels
def _resolve_digits(labeled_digits: Sequence[int] | int | str | None) -> tuple[int, ...]:
    if labeled_digits is None or (isinstance(labeled_digits, str) and labeled_digits.strip().lower() == "all"):
        return tuple(range(10))
    if isinstance(labeled_digits, str):
        parts = [p for p in labeled_digits.replace(",", " ").split() if p]
        if not all(p.isdigit() for p in parts):
            raise WeaksegError(f"data.mnist.labeled_digits must be 'all' or digits 0..9, got {labeled_digits!r}; "
                               "use e.g. --set data.mnist.labeled_digits=[9]")
        labeled_digits = [int(p) for p in parts]
    if isinstance(labeled_digits, numbers.Integral):
        labeled_digits = [int(labeled_digits)]
    items = list(labeled_digits)
    bad = [d for d in items if isinstance(d, bool) or not isinstance(d, numbers.Integral) or not 0 <= d <= 9]
    if bad or not items:
        raise WeaksegError(f"data.mnist.labeled_digits must be 'all' or a non-empty list of digits 0..9, got "
                           f"{labeled_digits!r}; use e.g. --set data.mnist.labeled_digits=[9]")
    return tuple(sorted({int(d) for d in items}))


def choose_labelled_sources(labels: np.ndarray, *, fraction: float | None = None, count: int | None = None,
                            labeled_digits: Sequence[int] | int | str | None = (9,),
                            data_seed: int = 0, count_key: str = "data.mnist.labeled_count") -> np.ndarray:
    """Which training source digits carry masks (§9.2).

    ``n_seg = max(1, int(fraction * N + 0.5))`` with N the WHOLE pool (even when classes are excluded),
    or ``count`` (which overrides ``fraction`` when both are given); the first n_seg of a
    ``RandomState(data_seed)`` permutation of the eligible digits (class in ``labeled_digits``; ``None`` or
    ``"all"`` = every class). ``count_key`` is the config key that error messages name for ``count``.

    Shape:
        labels: (N,) int. Returns (N,) bool.
    """
    labels = np.asarray(labels)
    digits = _resolve_digits(labeled_digits)
    if fraction is None and count is None:
        raise WeaksegError("set data.mnist.labeled_fraction (e.g. --set data.mnist.labeled_fraction=0.01) "
                           "or data.mnist.labeled_count")
    if count is None:
        if isinstance(fraction, bool) or not isinstance(fraction, numbers.Real) or not 0 < fraction <= 1:
            raise WeaksegError(f"data.mnist.labeled_fraction must be in (0, 1], got {fraction!r}; "
                               "use e.g. --set data.mnist.labeled_fraction=0.01")
        n_seg, asked = max(1, int(fraction * len(labels) + 0.5)), f"data.mnist.labeled_fraction={fraction}"
    else:
        if isinstance(count, bool) or not isinstance(count, numbers.Integral) or count < 1:
            raise WeaksegError(f"{count_key} must be a whole number >= 1, got {count!r}; "
                               f"use e.g. --set {count_key}=40")
        n_seg, asked = int(count), f"{count_key}={count}"
    eligible = np.flatnonzero(np.isin(labels, digits))
    if n_seg > len(eligible):
        raise WeaksegError(f"{asked} asks for {n_seg} labelled source digits but only {len(eligible)} of the "
                           f"{len(labels)} training digits are of the labelled classes {list(digits)}; lower it "
                           "or widen data.mnist.labeled_digits")
    chosen = np.random.RandomState(data_seed).permutation(eligible)[:n_seg]
    labelled = np.zeros(len(labels), dtype=bool)
    labelled[chosen] = True
    return labelled


# ------------------------------------------------------------------------------------------------ splits


def _fraction_count(fraction: float | None, count: int | None, n: int, *, unit: str) -> tuple[int, str]:
    """(labelled items, the request as a config key) for label_unit=canvas: ``count`` or int(f * n + 0.5)."""
    if count is not None:
        if isinstance(count, bool) or not isinstance(count, numbers.Integral) or count < 1:
            raise WeaksegError(f"data.mnist.labeled_count must be a whole number >= 1, got {count!r}; "
                               "use e.g. --set data.mnist.labeled_count=595")
        return int(count), f"data.mnist.labeled_count={count}"
    if isinstance(fraction, bool) or not isinstance(fraction, numbers.Real) or not 0 < fraction <= 1:
        raise WeaksegError(f"data.mnist.labeled_fraction must be in (0, 1], got {fraction!r}; "
                           "use e.g. --set data.mnist.labeled_fraction=0.01")
    got = int(fraction * n + 0.5)
    if got < 1:   # the reference's max(1, ...) would hide that the request labels nothing
        raise WeaksegError(f"data.mnist.labeled_fraction={fraction} labels int({fraction} * {n} + 0.5) = 0 of the {n} "
                           f"training {unit}s (no masks); use at least {0.5 / n:.3g} or set data.mnist.labeled_count")
    return got, f"data.mnist.labeled_fraction={fraction}"


def choose_labelled_canvases(source_index: np.ndarray, labelled_sources: np.ndarray, count: int, *,
                             rng: np.random.Generator) -> np.ndarray:
    """Exactly ``count`` canvases whose source digit is labelled, from as many distinct sources as possible.

    One canvas of every labelled source that occurs comes first (sources in random order, so a ``count``
    below their number keeps a random subset of them), then random further canvases of those sources.

    Shape:
        source_index: (n,) int, the source digit of each canvas; labelled_sources: (M,) int. Returns (n,) bool.
    """
    cand = np.flatnonzero(np.isin(source_index, labelled_sources))        # canvases that may carry a mask
    if count > len(cand):
        raise WeaksegError(f"{count} labelled canvases asked, but only {len(cand)} canvases show a labelled source")
    order = rng.permutation(cand)                                          # candidate canvases, random order
    first = order[np.unique(source_index[order], return_index=True)[1]]   # one random canvas per source
    first = rng.permutation(first)
    rest = order[~np.isin(order, first)]
    chosen = np.zeros(len(source_index), dtype=bool)
    chosen[np.concatenate([first, rest])[:count]] = True
    return chosen


class ClutteredSampleSet(TensorSampleSet):
    """A split's P images then its A images, with per-sample MNIST metadata next to the sample set.

    Shape:
        digit_class, source_index: (N,) int64, -1 on A images; is_p, labelled: (N,) bool
        (labelled = a P image whose mask is given); offsets: (N, 2) int64, -1 on A images;
        labelled_sources: (M,) int64 indices into the split's digit fold whose digits carry masks.
    ``info`` is a JSON-ready summary (counts, digit source, spec, seed).
    """

    def __init__(self, images: torch.Tensor, status: torch.Tensor, masks: torch.Tensor, has_mask: torch.Tensor, *,
                 case_ids: Sequence[str], digit_class: np.ndarray, source_index: np.ndarray, is_p: np.ndarray,
                 labelled: np.ndarray, offsets: np.ndarray, labelled_sources: np.ndarray,
                 info: dict[str, Any]) -> None:
        super().__init__(images, status, masks, has_mask, class_names=("digit",), case_ids=case_ids)
        self.digit_class = digit_class
        self.source_index = source_index
        self.is_p = is_p
        self.labelled = labelled
        self.offsets = offsets
        self.labelled_sources = labelled_sources
        self.info = info


def _check_count(n: Any, name: str) -> None:
    if isinstance(n, bool) or not isinstance(n, numbers.Integral) or n < 1:
        raise WeaksegError(f"{name} must be a whole number >= 1, got {n!r}")


def _split_set(split: str, gen: ClutteredSet, labelled_sources: np.ndarray, *, info: dict[str, Any],
               labelled_p: np.ndarray | None = None) -> ClutteredSampleSet:
    """``labelled_p`` (n,) bool says which P images carry masks; default: those whose source is labelled."""
    n = len(gen)
    s = gen.images.shape[-1]
    if labelled_p is None:
        labelled_p = np.isin(gen.source_index, labelled_sources)          # (n,) P image carries its mask
    status = np.full(2 * n, ABSENT, dtype=np.int8)
    status[:n] = np.where(labelled_p, MASK, PRESENT)
    masks = np.zeros((2 * n, 1, s, s), dtype=np.uint8)                   # (2n, K=1, S, S)
    masks[:n][labelled_p] = gen.masks[labelled_p]
    has_mask = np.zeros(2 * n, dtype=bool)
    has_mask[:n] = labelled_p
    width = max(6, len(str(n - 1)))
    case_ids = [f"{split}_p_{i:0{width}d}" for i in range(n)] + [f"{split}_a_{i:0{width}d}" for i in range(n)]
    minus = np.full(n, -1, dtype=np.int64)
    info = {**info, "split": split, "n_p": n, "n_a": n, "n_labelled_p": int(labelled_p.sum()),
            "n_labelled_sources": int(len(labelled_sources)),
            "n_distinct_labelled_sources": int(len(np.unique(gen.source_index[labelled_p])))}
    return ClutteredSampleSet(
        torch.from_numpy(gen.images), torch.from_numpy(status[:, None]), torch.from_numpy(masks),
        torch.from_numpy(has_mask), case_ids=case_ids,
        digit_class=np.concatenate([gen.digit_class, minus]),
        source_index=np.concatenate([gen.source_index, minus]),
        is_p=np.arange(2 * n) < n, labelled=np.concatenate([labelled_p, np.zeros(n, dtype=bool)]),
        offsets=np.concatenate([gen.offsets, np.full((n, 2), -1, dtype=np.int64)]),
        labelled_sources=labelled_sources, info=info)


class MnistSplits(dict):
    """``{"train", "valid", "test"} -> ClutteredSampleSet`` plus ``info``, a JSON-ready summary.

    ``info`` holds the digit source and its split sizes, the spec, the seed, ``label_unit``,
    ``n_labelled_sources`` (source digits chosen to carry masks: e.g. 40 at 1% of the 4,000 embedded training
    digits), ``n_labelled_train_p`` (training canvases with a mask), ``n_distinct_labelled_sources`` (distinct
    source digits among those canvases) and the samples per split.
    """

    info: dict[str, Any]


def build_mnist_splits(*, source: str | Path | DigitSplits | None, spec: ClutterSpec | str,
                       labeled_digits: Sequence[int] | int | str | None = (9,),
                       labeled_fraction: float | None = 0.01, labeled_count: int | None = None,
                       data_seed: int = 0, n_train: int | None = None, n_valid: int | None = None,
                       n_test: int | None = None, label_unit: LabelUnit = "source",
                       labeled_sources: int | None = None) -> MnistSplits:
    """Train / valid / test sample sets of cluttered MNIST, each its P images followed by its A images.

    Statuses (class ``digit``): train P images with a mask -> ``mask``; other train P -> ``present`` (no
    mask); every valid/test P -> ``mask`` (every digit class); every A -> ``absent``. A split's sample count
    defaults to its fold size. Which train P images carry masks depends on ``label_unit``:

    - ``source`` (the reference, §9.2): ``labeled_fraction`` (or ``labeled_count``) counts source DIGITS:
      n_seg = max(1, int(f * digits + 0.5)) labelled digits, and a canvas has a mask iff its source is one.
    - ``canvas`` (the paper's ~1% of 59,500 canvases, also when the fold holds fewer digits): it counts
      training CANVASES: n = int(f * canvases + 0.5) (or ``labeled_count``) labelled canvases. When the
      canvases outnumber the digits (each digit re-used, e.g. 59,500 canvases of the 4,000 embedded digits),
      ``labeled_sources`` distinct digits are labelled (default: as many as the labelled classes hold, at
      most n) and exactly n canvases showing them carry masks, one per distinct source first. Otherwise
      (full MNIST: 59,500 canvases of 59,500 digits) it is the reference's rule with ceil(n * digits /
      canvases) labelled sources (595), so about n canvases carry masks.

    Requests that cannot be met (more labelled canvases than the labelled sources can show, more distinct
    sources than labelled canvases or than eligible digits, zero masks) are refused before any canvas is
    painted. Deterministic by ``data_seed``: label choice (``RandomState(data_seed)``), then
    valid, test, train, each generated with its own child of ``SeedSequence(data_seed)`` (a fourth child
    picks the labelled canvases).
    """
    spec = clutter_spec(spec)
    if isinstance(data_seed, bool) or not isinstance(data_seed, numbers.Integral) or data_seed < 0:
        raise WeaksegError(f"data.data_seed must be a whole number >= 0, got {data_seed!r}")
    check_choice("data.mnist.label_unit", label_unit, LabelUnit)
    if labeled_sources is not None and label_unit != "canvas":
        raise WeaksegError("data.mnist.labeled_sources applies only with data.mnist.label_unit=canvas; "
                           "remove it or set --set data.mnist.label_unit=canvas")
    digits = source if isinstance(source, DigitSplits) else load_digits(source)
    counts = {"train": n_train, "valid": n_valid, "test": n_test}
    sizes = {}
    for split in SPLITS:
        sizes[split] = counts[split] if counts[split] is not None else len(digits.fold(split))
        _check_count(sizes[split], f"data.mnist.n_{split}")
    seeds = dict(zip(("valid", "test", "train", "canvas_labels"), np.random.SeedSequence(int(data_seed)).spawn(4),
                     strict=True))
    labels = digits.train.labels
    # The training canvases' random draws come first (cheap) so that label requests are checked before painting.
    train_draws = _draw(np.random.default_rng(seeds["train"]), len(digits.train), spec, sizes["train"])
    labelled_p: np.ndarray | None = None
    if label_unit == "source":
        labelled = choose_labelled_sources(labels, fraction=labeled_fraction, count=labeled_count,
                                           labeled_digits=labeled_digits, data_seed=data_seed)
        target = None
    else:
        target, asked = _fraction_count(labeled_fraction, labeled_count, sizes["train"], unit="canvas")
        n_c, n_d = sizes["train"], len(labels)
        n_eligible = int(np.isin(labels, _resolve_digits(labeled_digits)).sum())
        if n_c > n_d:                     # digits re-used (59,500 canvases of 4,000): exactly `target` masks
            n_src = labeled_sources if labeled_sources is not None else min(target, n_eligible)
            if n_src > target:
                raise WeaksegError(f"data.mnist.labeled_sources={labeled_sources} asks for more distinct labelled "
                                   f"digits than the {target} labelled canvases ({asked}); lower it to <= {target}")
            labelled = choose_labelled_sources(labels, count=n_src, labeled_digits=labeled_digits,
                                               data_seed=data_seed, count_key="data.mnist.labeled_sources")
            shows = np.isin(train_draws.source, np.flatnonzero(labelled))   # canvases showing a labelled digit
            if target > shows.sum():
                raise WeaksegError(
                    f"{asked} asks for {target} labelled canvases but only {int(shows.sum())} of the {n_c} training "
                    f"canvases show one of the {n_src} labelled source digits; lower it, or raise "
                    "data.mnist.labeled_sources or data.mnist.n_train")
            labelled_p = choose_labelled_canvases(train_draws.source, np.flatnonzero(labelled), target,
                                                  rng=np.random.default_rng(seeds["canvas_labels"]))
        else:                             # each digit drawn about once or less: the reference's rule
            if labeled_sources is not None:
                raise WeaksegError(f"data.mnist.labeled_sources applies only when the training canvases outnumber "
                                   f"the digits (digits re-used); here {n_c} canvases of {n_d} digits carry a mask iff "
                                   "their source digit is labelled: remove it")
            n_src = -(-target * n_d // n_c)             # ceil: enough sources for `target` masks on average
            if n_src > n_eligible:
                raise WeaksegError(f"{asked} asks for {target} labelled canvases, which needs {n_src} labelled source "
                                   f"digits, but only {n_eligible} of the {n_d} training digits are of the labelled "
                                   "classes; lower it or widen data.mnist.labeled_digits")
            labelled = choose_labelled_sources(labels, count=n_src, labeled_digits=labeled_digits,
                                               data_seed=data_seed)
            labelled_p = np.isin(train_draws.source, np.flatnonzero(labelled))
        if not labelled_p.any():
            raise WeaksegError(f"{asked} gives 0 labelled canvases: none of the {sizes['train']} training canvases "
                               f"shows one of the {n_src} labelled source digits; raise data.mnist.n_train or the "
                               "labelled fraction")
    common = {"digits": digits.name, "digit_split_sizes": digits.sizes, "spec": asdict(spec),
              "labeled_digits": list(_resolve_digits(labeled_digits)), "labeled_fraction": labeled_fraction,
              "labeled_count": labeled_count, "label_unit": label_unit, "labeled_sources": labeled_sources,
              "data_seed": int(data_seed)}
    out: dict[str, ClutteredSampleSet] = {}
    for split in ("valid", "test", "train"):                              # the reference's stream order
        fold = digits.fold(split)
        if split == "train":
            gen = _generate_from_draws(fold, spec, train_draws)
            sources = np.flatnonzero(labelled)
        else:
            gen = generate_cluttered(fold, spec, sizes[split], seed=seeds[split])
            sources = np.arange(len(fold), dtype=np.int64)
        out[split] = _split_set(split, gen, sources.astype(np.int64), info={**common, "fold_size": len(fold)},
                                labelled_p=labelled_p if split == "train" else None)
    splits = MnistSplits((split, out[split]) for split in SPLITS)
    train_info = out["train"].info
    splits.info = {**common, "n_labelled_sources": int(labelled.sum()),
                   "n_labelled_train_p": train_info["n_labelled_p"],
                   "n_distinct_labelled_sources": train_info["n_distinct_labelled_sources"],
                   "labelled_canvas_target": target,
                   "samples": {split: 2 * out[split].info["n_p"] for split in SPLITS}}
    return splits
