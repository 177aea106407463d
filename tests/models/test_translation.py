from __future__ import annotations

import pytest
import torch

from weakseg.errors import WeaksegError
from weakseg.models import GenSegGenerator, TranslationOutput, create_model
from weakseg.models.blocks import count_spectral_norm

SMALL = dict(in_channels=1, depth=4, width=0.125)  # N = 64, n = 16, code 3x3 at 48x48
A_TO_P = {"u_noise", "z_AP", "delta_AP", "x_AP", "s_AP", "c_AP", "u_AP", "x_APA"}


def _inputs(size: tuple[int, int] = (48, 48), channels: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return torch.randn(2, channels, *size, generator=g).tanh(), torch.randn(2, channels, *size, generator=g).tanh()


def _expected_shapes(n_common: int, image: tuple[int, ...] = (2, 1, 48, 48), code_hw: tuple[int, int] = (3, 3)) -> dict:
    s = (2, 64, *code_hw)
    c = (2, n_common, *code_hw)
    u = (2, 16, *code_hw)
    return {
        "s_P": s, "c_P": c, "u_P": u, "s_A": s, "c_A": c, "u_A": u, "x_PA": image, "delta_P": image, "x_PP": image,
        "x_AA": image, "seg_logits": (2, 1, *image[2:]), "s_PP": s, "c_PA": c, "c_AA": c, "u_noise": u, "z_AP": s,
        "delta_AP": image, "x_AP": image, "s_AP": s, "c_AP": c, "u_AP": u, "x_APA": image,
    }


@pytest.mark.parametrize(
    "variant",
    [
        {},
        {"translation": "p_to_a_only"},
        {"translation": "none"},
        {"segmenter": "separate"},
        {"latent_split": False},
        {"long_skip": "cat"},
        {"long_skip": "sum"},
        {"long_skip": "none"},
        {"norm_enc": "instance", "norm_dec": "instance"},
        {"norm_enc": "layer", "norm_dec": "layer"},
        {"norm_enc": "batch", "norm_dec": "batch"},
        {"spectral_norm": False},
    ],
    ids=lambda v: ",".join(f"{k}={x}" for k, x in v.items()) or "default",
)
def test_output_shapes_for_every_variant(variant: dict) -> None:
    model = create_model("genseg", **SMALL, **variant)
    out = model(*_inputs())
    assert isinstance(out, TranslationOutput)
    expected = _expected_shapes(64 if variant.get("latent_split") is False else 48)
    if variant.get("translation") in ("p_to_a_only", "none"):
        expected = {k: v for k, v in expected.items() if k not in A_TO_P}
    got = {k: tuple(v.shape) for k, v in out.tensors().items()}
    assert got == expected


def test_odd_brats_size_at_small_width() -> None:
    model = create_model("genseg", in_channels=4, depth=5, width=0.0625, translation="p_to_a_only")
    x_p, x_a = _inputs((240, 120), channels=4)
    with torch.no_grad():
        out = model(x_p, x_a)
    assert out.s_P.shape == (2, 32, 8, 4) and out.u_P.shape == (2, 8, 8, 4)
    assert out.x_PA.shape == out.x_PP.shape == (2, 4, 240, 120)
    assert out.seg_logits.shape == (2, 1, 240, 120)


def test_data_flow_identities() -> None:
    model = create_model("genseg", **SMALL).eval()  # eval: spectral norm weights fixed between calls
    x_p, x_a = _inputs()
    noise = torch.randn(2, 16, 3, 3)
    with torch.no_grad():
        out = model(x_p, x_a, u_noise=noise)
        s_a, k_a = model.encode(x_a)
        s_ap, k_ap = model.encode(out.x_AP)
        x_pa, delta_p = model.translate_p_to_a(x_p)
        x_ap = model.translate_a_to_p(x_a, u_noise=noise)
        seg = model.segment(x_p)
    torch.testing.assert_close(out.x_PP, out.x_PA + out.delta_P)  # sums are not squashed again
    torch.testing.assert_close(out.x_AP, out.x_AA + out.delta_AP)
    torch.testing.assert_close(out.z_AP, torch.cat([out.c_A, noise], 1))
    torch.testing.assert_close(out.s_P, torch.cat([out.c_P, out.u_P], 1))
    torch.testing.assert_close(out.x_APA, model.g_com(s_ap[:, :48], k_ap))  # cycle uses the skips of x_AP
    torch.testing.assert_close(out.x_AA, model.g_com(s_a[:, :48], k_a))
    torch.testing.assert_close(out.x_PA, x_pa)
    torch.testing.assert_close(out.delta_P, delta_p)
    torch.testing.assert_close(out.x_AP, x_ap)
    torch.testing.assert_close(out.seg_logits, seg)
    assert out.x_PA.abs().max() <= 1 and out.delta_P.abs().max() <= 1
    assert out.x_PP.abs().max() <= 2


def test_noise_from_a_generator_is_reproducible_and_fresh() -> None:
    model = create_model("genseg", **SMALL).eval()
    x_p, x_a = _inputs()
    with torch.no_grad():
        a = model(x_p, x_a, generator=torch.Generator().manual_seed(3)).u_noise
        b = model(x_p, x_a, generator=torch.Generator().manual_seed(3)).u_noise
        c = model(x_p, x_a).u_noise
    torch.testing.assert_close(a, b)
    assert not torch.equal(a, c)
    assert a.shape == (2, 16, 3, 3)
    with pytest.raises(ValueError, match="u_noise must have shape"):
        model(x_p, x_a, u_noise=torch.zeros(2, 16, 4, 4))


def test_segmentation_loss_reaches_encoder_and_g_res_but_not_g_com() -> None:
    model = create_model("genseg", **SMALL)
    model(*_inputs()).seg_logits.mean().backward()
    assert all(p.grad is None for p in model.g_com.parameters())
    assert all(p.grad is not None for p in model.encoder.parameters())
    assert model.g_res.classifier.weight.grad is not None
    assert model.g_res.out_conv[0].conv.parametrizations.weight.original.grad is None


def test_separate_segmenter() -> None:
    model = create_model("genseg", **SMALL, segmenter="separate")
    assert model.g_res.modes == ["image"] and model.g_res.classifier is None
    assert count_spectral_norm(model.seg_decoder) == 0
    groups = model.parameter_groups()
    assert set(groups) == {"generator", "segmenter"}
    assert sum(p.numel() for g in groups.values() for p in g) == sum(p.numel() for p in model.parameters())
    model(*_inputs()).seg_logits.mean().backward()
    assert all(p.grad is None for p in model.g_res.parameters())
    assert all(p.grad is not None for p in model.seg_decoder.parameters())


def test_spectral_norm_placement() -> None:
    model = create_model("genseg", **SMALL)
    # depth 4: f = stem + 4 x (conv + shortcut) = 9; g_com = up conv + 3 x (conv + shortcut) + 4 compressors
    # + pre_conv + out_conv = 13; g_res = 4 up convs + 4 compressors + pre_conv + out_conv[0] = 10.
    assert count_spectral_norm(model.encoder) == 9
    assert count_spectral_norm(model.g_com) == 13
    assert count_spectral_norm(model.g_res) == 10
    assert count_spectral_norm(model.g_res.out_conv[1]) == 0
    assert count_spectral_norm(model.g_res.classifier) == 0
    assert count_spectral_norm(model.g_res.out_conv[0]) == 1
    assert count_spectral_norm(create_model("genseg", **SMALL, spectral_norm=False)) == 0


def test_spectral_norm_counts_brats() -> None:
    # §4.6: 40 normalised convs in G with the reference's two-mode g_com, so 39 with ours; 30 in the two Ds.
    model = create_model("genseg", in_channels=4, depth=5, width=0.0625)
    assert count_spectral_norm(model) == 39
    disc = create_model("patchgan_multiscale", in_channels=4, widths=[64, 128, 256, 512], width=0.0625)
    assert 2 * count_spectral_norm(disc) == 30


def test_repeated_encoder_calls_with_spectral_norm_backpropagate() -> None:
    # The encoder runs 6 times per forward; the power iteration must not break autograd (in-place error).
    model = create_model("genseg", **SMALL).train()
    conv = model.encoder.stem
    u_before = conv.parametrizations.weight[0]._u.clone()
    out = model(*_inputs())
    sum(t.mean() for t in out.tensors().values()).backward()
    assert not torch.equal(u_before, conv.parametrizations.weight[0]._u)  # power iterations did run
    assert torch.isfinite(conv.parametrizations.weight.original.grad).all()


def test_constructor_validation() -> None:
    with pytest.raises(WeaksegError, match="unknown translation"):
        GenSegGenerator(translation="a_to_p")
    with pytest.raises(WeaksegError, match="unknown segmenter"):
        GenSegGenerator(segmenter="other")
    with pytest.raises(WeaksegError, match="unique_channels"):
        GenSegGenerator(width=0.125, unique_channels=64)
