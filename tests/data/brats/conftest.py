"""One converted synthetic BraTS dataset, shared by the conversion and the slice-set tests."""

from __future__ import annotations

import pytest

from weakseg.data.brats.convert import BratsConvertOptions, convert_brats
from weakseg.data.brats.synthetic import write_synthetic_brats

SHAPE = (24, 24, 8)
OPTS = BratsConvertOptions(proportions=(4, 1, 1), labelled_fraction=0.3)


@pytest.fixture(scope="package")
def converted(tmp_path_factory):
    root = tmp_path_factory.mktemp("brats")
    subjects = write_synthetic_brats(root / "src", n_subjects=8, n_lgg=2, shape=SHAPE, orientations={1: "PSL"})
    report = convert_brats(root / "src", root / "out", options=OPTS)
    return root, subjects, report
