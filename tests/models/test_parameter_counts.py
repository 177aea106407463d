"""Trainable parameter counts against genseg.md §13 (exact; the issue asks for 5%)."""

from __future__ import annotations

import pytest
from torch import nn

from weakseg.models import create_model

# Our g_com is single-mode (§4.3): the table's G totals minus the never-run mode-1 layers.
SINGLE_MODE_G_COM = {"brats": 4_372, "mnist48": 2_652, "mnist128": 1_870}


def _count(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


@pytest.mark.parametrize(
    ("preset", "kwargs", "encoder", "g_com", "g_res", "total"),
    [
        ("brats", dict(in_channels=4, depth=5), 1_748_496, 1_334_935, 4_387_788, 7_471_219),
        ("mnist48", dict(in_channels=1, depth=4), 1_743_040, 1_333_382, 4_391_128, 7_467_550),
        ("mnist128", dict(in_channels=1, depth=5), 1_748_064, 1_329_931, 4_382_781, 7_460_776),
    ],
)
def test_generator(preset: str, kwargs: dict, encoder: int, g_com: int, g_res: int, total: int) -> None:
    model = create_model("genseg", **kwargs, spectral_norm=False)
    assert _count(model.encoder) == encoder
    assert _count(model.g_com) == g_com - SINGLE_MODE_G_COM[preset]
    assert _count(model.g_res) == g_res
    assert _count(model) == total - SINGLE_MODE_G_COM[preset]


def test_spectral_norm_adds_no_trainable_parameters() -> None:
    assert _count(create_model("genseg", in_channels=1, depth=4)) == 7_467_550 - 2_652


def test_brats_inference_network() -> None:
    model = create_model("genseg", in_channels=4, depth=5, spectral_norm=False)
    assert _count(model.encoder) + _count(model.g_res) == 6_136_284


def test_g_res_k3_with_shortcut_variant() -> None:
    # bds3_104: 4,704,718 with the reference's two-mode g_com.
    model = create_model("genseg", depth=4, res_kernel_size=3, res_shortcut=True, spectral_norm=False)
    assert _count(model) == 4_704_718 - 2_652


def test_separate_segmenter_is_about_1_63_m() -> None:
    model = create_model("genseg", depth=4, segmenter="separate", spectral_norm=False)
    assert _count(model.seg_decoder) == 1_625_644
    assert _count(model.seg_decoder) == pytest.approx(1.63e6, rel=0.01)


@pytest.mark.parametrize(
    ("kwargs", "two_d"),
    [
        (dict(in_channels=1, widths=[128, 256, 512]), 15_758_598),
        (dict(in_channels=4, widths=[64, 128, 256, 512]), 16_559_238),
    ],
)
def test_discriminators(kwargs: dict, two_d: int) -> None:
    assert 2 * _count(create_model("patchgan_multiscale", **kwargs, spectral_norm=False)) == two_d


@pytest.mark.parametrize(
    ("name", "kwargs", "count"),
    [
        ("ae", dict(in_channels=1, depth=4), 4_990_957),
        ("ae", dict(in_channels=4, depth=5), 4_996_044),
        ("seg_only", dict(in_channels=1, depth=4), 3_368_684),
        ("seg_only", dict(in_channels=4, depth=5), 3_373_976),
    ],
)
def test_baselines(name: str, kwargs: dict, count: int) -> None:
    assert _count(create_model(name, **kwargs)) == count


def test_brats_ae_decoders() -> None:
    model = create_model("ae", in_channels=4, depth=5)
    assert (_count(model.encoder), _count(model.decoder_rec), _count(model.decoder_seg)) == (
        1_748_496, 1_622_068, 1_625_480,
    )


def test_cpu_preset_quarter_width() -> None:
    # §16 mnist48_simple_cpu: N = 128, D widths [32, 64, 128].
    assert _count(create_model("genseg", depth=4, width=0.25, spectral_norm=False)) == 470_938
    assert 2 * _count(create_model("patchgan_multiscale", width=0.25, spectral_norm=False)) == 990_534
    assert _count(create_model("ae", depth=4, width=0.25)) == 314_293
    assert _count(create_model("seg_only", depth=4, width=0.25)) == 212_276
