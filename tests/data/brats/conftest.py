"""One converted synthetic BraTS dataset, shared by the conversion and the slice-set tests."""

from __future__ import annotations

import pytest

from tests.brats_toy import CONVERTED_OPTIONS, CONVERTED_SHAPE
from weakseg.data.brats.convert import BratsConvertOptions, convert_brats
from weakseg.data.brats.synthetic import write_synthetic_brats


@pytest.fixture(scope="package")
def converted(tmp_path_factory):
    root = tmp_path_factory.mktemp("brats")
    subjects = write_synthetic_brats(root / "src", n_subjects=8, n_lgg=2, shape=CONVERTED_SHAPE,
                                    orientations={1: "PSL"})
    report = convert_brats(root / "src", root / "out", options=BratsConvertOptions(**CONVERTED_OPTIONS))
    return root, subjects, report
