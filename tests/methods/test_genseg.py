"""GenSeg training step: isolation of the G and D updates, gradient routing, variants."""

from __future__ import annotations

import copy

import pytest
import torch

from weakseg.config import load_config
from weakseg.data.batch import Batch
from weakseg.data.status import ABSENT, MASK, PRESENT
from weakseg.data.registry import DataBundle
from weakseg.losses.labelled import labelled_dice
from weakseg.methods.genseg import genseg_step
from weakseg.methods.registry import build_method
from weakseg.training.context import LoopContext


def bundle() -> DataBundle:
    return DataBundle(splits={}, class_names=("digit",), in_channels=1, scoring=lambda *a: {})


def batches(n: int = 2, size: int = 32, labelled: int = 1) -> dict[str, Batch]:
    g = torch.Generator().manual_seed(0)
    mask = torch.zeros(n, 1, size, size, dtype=torch.uint8)
    mask[:, :, 8:20, 10:18] = 1
    status_p = torch.full((n, 1), PRESENT, dtype=torch.int8)
    status_p[:labelled] = MASK
    has = status_p[:, 0] == MASK
    p = Batch(torch.rand(n, 1, size, size, generator=g), status_p, mask * has[:, None, None, None],
              has, torch.arange(n))
    a = Batch(torch.rand(n, 1, size, size, generator=g), torch.full((n, 1), ABSENT, dtype=torch.int8),
              torch.zeros(n, 1, size, size, dtype=torch.uint8), torch.zeros(n, dtype=torch.bool), torch.arange(n))
    return {"p": p, "a": a}


def setup(*sets: str):
    cfg = load_config("mnist/mnist48_simple_genseg", ["model.width=0.0625", "model.depth=3", *sets])
    method = build_method(cfg, bundle(), torch.device("cpu"))
    ctx = LoopContext(cfg=cfg, device=torch.device("cpu"), generator=torch.Generator().manual_seed(0))
    return cfg, method, ctx


def snapshot(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in module.named_parameters()}


def changed(before: dict[str, torch.Tensor], module: torch.nn.Module) -> set[str]:
    return {k for k, v in module.named_parameters() if not torch.equal(before[k], v.detach())}


def test_discriminator_update_changes_no_generator_parameter_and_vice_versa(monkeypatch) -> None:
    cfg, method, ctx = setup()
    gen = method.models["generator"]
    discs = [method.models["disc_p"], method.models["disc_a"]]
    g0, d0 = snapshot(gen), [snapshot(d) for d in discs]
    calls = []
    real_update = ctx.update

    def spy(total, terms, optimizers):
        kind = "D" if any(k.startswith("disc/") for k in terms) else "G"
        before_g, before_d = snapshot(gen), [snapshot(d) for d in discs]
        d_grads = [p.grad.clone() if p.grad is not None else None for d in discs for p in d.parameters()]
        applied = real_update(total, terms, optimizers)
        calls.append((kind, changed(before_g, gen), [changed(b, d) for b, d in zip(before_d, discs)]))
        if kind == "G":   # every generator parameter received a gradient in the G step
            missing = [n for n, p in gen.named_parameters() if p.grad is None]
            assert not missing, missing
            # the discriminators were frozen: the G backward left their gradients as the D step left them
            after = [p.grad for d in discs for p in d.parameters()]
            assert all(torch.equal(a, b) for a, b in zip(d_grads, after))
        return applied

    monkeypatch.setattr(ctx, "update", spy)
    logs = genseg_step(method, batches(), ctx)
    assert [c[0] for c in calls] == ["D", "G"]
    d_call, g_call = calls
    assert not d_call[1] and all(d_call[2])            # D step: no G parameter moved, both Ds moved
    assert g_call[1] and not any(g_call[2])            # G step: no D parameter moved
    assert {"disc/a", "disc/p", "gen/adv", "gen/rec", "gen/cyc", "gen/lat", "gen/seg_dice"} <= set(logs)
    assert all(torch.isfinite(v) for v in logs.values())


def test_segmentation_loss_reaches_encoder_and_residual_decoder_not_common_decoder() -> None:
    cfg, method, ctx = setup()
    gen = method.models["generator"]
    b = batches()
    out = gen(b["p"].image, b["a"].image, generator=ctx.generator)
    labelled_dice(out.seg_logits, b["p"], 0).backward()
    got = lambda mod: any(p.grad is not None and p.grad.abs().sum() > 0 for p in mod.parameters())  # noqa: E731
    assert got(gen.encoder) and got(gen.g_res)
    assert not got(gen.g_com)


def test_no_dice_term_without_labelled_images() -> None:
    cfg, method, ctx = setup()
    logs = genseg_step(method, batches(labelled=0), ctx)
    assert "gen/seg_dice" not in logs and "gen/rec" in logs


@pytest.mark.parametrize(("sets", "models", "absent_logs"), [
    (["model.kwargs.translation=p_to_a_only"], {"generator", "disc_a"}, {"disc/p", "gen/cyc"}),
    (["model.kwargs.translation=none"], {"generator"}, {"disc/a", "disc/p", "gen/adv", "gen/cyc"}),
    (["model.kwargs.segmenter=separate"], {"generator", "disc_a", "disc_p"}, set()),
])
def test_variants_build_and_step(sets, models, absent_logs) -> None:
    cfg, method, ctx = setup(*sets)
    assert set(method.models) == models
    logs = genseg_step(method, batches(), ctx)
    assert not (absent_logs & set(logs)) and "gen/rec" in logs
    if "model.kwargs.segmenter=separate" in sets:
        assert "segmenter" in method.optimizers
    assert method.segment(batches()["p"].image).shape == (2, 1, 32, 32)


@pytest.mark.gpu
def test_genseg_and_mean_teacher_steps_do_not_synchronise_the_gpu() -> None:
    device = torch.device("cuda")
    for name in ("mnist/mnist48_simple_genseg", "mnist/mnist48_simple_mean_teacher"):
        cfg = load_config(name, ["model.width=0.0625", "model.depth=3", "train.device=cuda"])
        method = build_method(cfg, bundle(), device)
        ctx = LoopContext(cfg=cfg, device=device, generator=torch.Generator(device).manual_seed(0))
        b = {k: v.to(device) for k, v in batches(n=4, labelled=1).items()}
        for step_fn in method.steps:
            step_fn(method, b, ctx)                              # warm-up (lazy init may sync)
        torch.cuda.synchronize()
        torch.cuda.set_sync_debug_mode("error")
        try:
            for step_fn in method.steps:
                step_fn(method, b, ctx)
        finally:
            torch.cuda.set_sync_debug_mode("default")


def test_translation_diagnostic_reports_health_and_leaves_training_state_alone() -> None:
    """The validation diagnostic neither moves a weight or buffer (spectral norm's power iteration included)
    nor draws from the global RNG, so logging it cannot change what a run learns."""
    from weakseg.data.datasets import TensorSampleSet

    cfg, method, ctx = setup()
    b = batches(n=3, labelled=3)
    n = 3
    data = TensorSampleSet(torch.cat([b["p"].image, b["a"].image]), torch.cat([b["p"].status, b["a"].status]),
                           torch.cat([b["p"].mask, b["a"].mask]), torch.cat([b["p"].has_mask, b["a"].has_mask]),
                           class_names=("digit",))
    method.set_training(False)
    states = {name: copy.deepcopy(m.state_dict()) for name, m in method.models.items()}
    rng = torch.get_rng_state()
    with torch.no_grad():
        got = method.diagnose(data, cfg, torch.device("cpu"))
    assert torch.equal(rng, torch.get_rng_state())
    for name, m in method.models.items():
        for key, value in m.state_dict().items():
            assert torch.equal(states[name][key], value), f"{name}.{key} changed"
    assert got["n_images"] == n and 0 < got["object_area"] < 1
    for key in ("object_removed", "residual_on_object", "disc_a_real_acc", "disc_a_fake_acc", "disc_p_real_acc",
                "disc_p_fake_acc"):
        assert got[key] is not None and torch.isfinite(torch.tensor(got[key])), key
    with torch.no_grad():
        assert method.diagnose(data, cfg, torch.device("cpu")) == got        # deterministic (own noise seed)


def test_training_logs_the_translation_health_at_every_validation(tmp_path) -> None:
    import json

    from weakseg.training.loop import fit

    cfg = load_config("mnist/mnist48_simple_genseg", [
        "model.width=0.0625", "model.depth=3", "train.batch_size=2", "train.steps=4", "train.eval_every=2",
        "train.checkpoint_every=2", "train.log_every=2", "data.mnist.n_train=40", "data.mnist.n_valid=6",
        "data.mnist.n_test=2", "data.mnist.labeled_fraction=0.2", "data.mnist.labeled_digits=[0,1,2,3,4,5,6,7,8,9]"])
    fit(cfg, tmp_path / "run", progress=False)
    rows = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    valid = [r for r in rows if r["split"] == "valid"]
    assert [r["step"] for r in valid] == [2, 4]
    for r in valid:
        assert r["translation/n_images"] == 6 and 0 < r["translation/object_area"] < 0.5
        for key in ("translation/object_removed", "translation/residual_on_object", "translation/disc_a_real_acc",
                    "translation/disc_p_fake_acc"):
            assert r[key] is not None, key
