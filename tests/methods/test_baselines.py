"""Seg-only, AE and mean-teacher steps on tiny batches."""

from __future__ import annotations

import torch

from tests.methods.test_genseg import batches, bundle
from weakseg.config import load_config
from weakseg.methods.mean_teacher import ema_update, mean_teacher_step
from weakseg.methods.registry import build_method
from weakseg.training.context import LoopContext


def build(name: str, *sets: str):
    cfg = load_config(f"mnist/mnist48_simple_{name}", ["model.width=0.0625", "model.depth=3", *sets])
    method = build_method(cfg, bundle(), torch.device("cpu"))
    ctx = LoopContext(cfg=cfg, device=torch.device("cpu"), generator=torch.Generator().manual_seed(0))
    return method, ctx


def test_mean_teacher_starts_as_copy_stays_in_eval_and_follows_by_ema() -> None:
    method, ctx = build("mean_teacher")
    student, teacher = method.models["student"], method.models["teacher"]
    for s, t in zip(student.parameters(), teacher.parameters()):
        assert torch.equal(s, t) and not t.requires_grad
    method.set_training(True)
    assert student.training and not teacher.training
    before = [t.detach().clone() for t in teacher.parameters()]
    s_before = [s.detach().clone() for s in student.parameters()]
    logs = mean_teacher_step(method, batches(labelled=1), ctx)
    assert {"mt/seg_dice", "mt/consistency"} <= set(logs)
    for t0, t1, s0, s1 in zip(before, teacher.parameters(), s_before, student.parameters()):
        # EMA right after the update: t1 = 0.99 t0 + 0.01 s1
        torch.testing.assert_close(t1, 0.99 * t0 + 0.01 * s1)
    method.set_training(False)   # validation never moves the teacher
    snap = [t.detach().clone() for t in teacher.parameters()]
    with torch.no_grad():
        method.segment(batches()["p"].image)
    assert all(torch.equal(a, b) for a, b in zip(snap, teacher.parameters()))


def test_ema_update_formula() -> None:
    a, b = torch.nn.Linear(2, 2), torch.nn.Linear(2, 2)
    w0 = a.weight.detach().clone()
    ema_update(a, b, 0.9)
    torch.testing.assert_close(a.weight, 0.9 * w0 + 0.1 * b.weight)


def test_mean_teacher_inputs_differ_unless_faithful(monkeypatch) -> None:
    seen = []
    for faithful in (False, True):
        method, ctx = build("mean_teacher", f"mean_teacher.faithful={str(faithful).lower()}")
        student_in, teacher_in = [], []
        method.models["student"].register_forward_pre_hook(lambda m, a: student_in.append(a[0].clone()))
        method.models["teacher"].register_forward_pre_hook(lambda m, a: teacher_in.append(a[0].clone()))
        mean_teacher_step(method, batches(), ctx)
        seen.append(torch.equal(student_in[0], teacher_in[0]))
    assert seen == [False, True]


def test_ae_step_trains_reconstruction_on_p_and_a() -> None:
    method, ctx = build("ae")
    logs = None
    for _ in range(3):
        logs = __import__("weakseg.methods.ae", fromlist=["ae_step"]).ae_step(method, batches(), ctx)
    assert {"ae/rec", "ae/seg_dice"} <= set(logs)
    assert all(torch.isfinite(v) for v in logs.values())
