"""Contract tests run over every registered model (style.md §3.6)."""

from __future__ import annotations

from dataclasses import fields, is_dataclass

import pytest
import torch
from torch import Tensor

from weakseg.models import create_model, list_models

SMALL_KWARGS = {
    "genseg": dict(in_channels=1, depth=4, width=0.125),
    "ae": dict(in_channels=1, depth=4, width=0.125),
    "seg_only": dict(in_channels=1, depth=4, width=0.125),
    "patchgan_multiscale": dict(in_channels=1, width=0.0625),
}
VARIANTS = [("genseg", dict(segmenter="separate")), ("genseg", dict(translation="p_to_a_only")),
            ("genseg", dict(long_skip="cat")), ("genseg", dict(latent_split=False))]


def _flatten(out: object) -> list[Tensor]:
    if isinstance(out, Tensor):
        return [out]
    if is_dataclass(out):
        return [t for f in fields(out) for t in _flatten(getattr(out, f.name))]
    if isinstance(out, (list, tuple)):
        return [t for item in out for t in _flatten(item)]
    return []


def _run(name: str, model: torch.nn.Module) -> list[Tensor]:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(2, 1, 48, 48, generator=g).tanh()
    if name == "genseg":
        return _flatten(model(x, torch.randn(2, 1, 48, 48, generator=g).tanh()))
    return _flatten(model(x))


def test_every_registered_model_has_a_test_config() -> None:
    assert set(list_models()) <= set(SMALL_KWARGS), "add the new model to SMALL_KWARGS"


@pytest.mark.parametrize(("name", "extra"), [(n, {}) for n in sorted(SMALL_KWARGS)] + VARIANTS)
def test_every_parameter_gets_a_gradient(name: str, extra: dict) -> None:
    model = create_model(name, **SMALL_KWARGS[name], **extra)
    outputs = _run(name, model)
    sum(t.float().mean() for t in outputs).backward()
    missing = [n for n, p in model.named_parameters() if p.requires_grad and p.grad is None]
    assert not missing, f"no gradient reached: {missing}"
    assert all(torch.isfinite(p.grad).all() for p in model.parameters())


@pytest.mark.parametrize("name", sorted(SMALL_KWARGS))
def test_constructor_kwargs_are_plain(name: str) -> None:
    import inspect

    from weakseg.models.registry import _MODELS

    for param in inspect.signature(_MODELS[name]).parameters.values():
        assert param.kind is inspect.Parameter.KEYWORD_ONLY, f"{name}.{param.name} should be keyword-only"
        default = param.default
        assert default is None or isinstance(default, (int, float, str, bool, list)), (name, param.name, default)


@pytest.mark.parametrize(("name", "extra"), [(n, {}) for n in sorted(SMALL_KWARGS) if n != "patchgan_multiscale"]
                         + [("genseg", dict(segmenter="separate"))])
def test_multi_class_classifiers_read_at_least_k_maps(name: str, extra: dict) -> None:
    # Issue 21: a classifier reading fewer maps than it has classes ties the K logits together.
    for k in (2, 3, 20):
        model = create_model(name, **SMALL_KWARGS[name], **extra, num_classes=k)
        heads = [m for n, m in model.named_modules() if n.endswith("classifier") and m is not None]
        assert heads, f"{name}: no classifier found"
        assert all(h.in_channels >= k and h.out_channels == k for h in heads), (name, k, heads)
        out = _run(name, model)
        assert any(t.shape[1] == k for t in out)
