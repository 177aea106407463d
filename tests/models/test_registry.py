from __future__ import annotations

import pytest
from torch import nn

from weakseg.errors import WeaksegError
from weakseg.models import create_model, list_models, register_model
from weakseg.models.registry import _MODELS


def test_expected_models_are_registered() -> None:
    assert {"genseg", "ae", "seg_only", "patchgan_multiscale"} <= set(list_models())
    assert list_models() == sorted(list_models())


def test_unknown_name_lists_available_models() -> None:
    with pytest.raises(WeaksegError, match="unknown model 'unet3000'.*ae.*genseg.*seg_only"):
        create_model("unet3000")


def test_register_and_create_passes_kwargs() -> None:
    @register_model("_test_linear")
    def _test_linear(*, features: int = 2) -> nn.Module:
        return nn.Linear(features, 1)

    try:
        assert create_model("_test_linear", features=5).in_features == 5
        with pytest.raises(ValueError, match="already registered"):
            register_model("_test_linear")(lambda: nn.Identity())
    finally:
        _MODELS.pop("_test_linear")
