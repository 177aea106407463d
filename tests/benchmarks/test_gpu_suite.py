"""The GPU suite's CPU dry run (every part's code path, tiny sizes), its plan, its process isolation, and the
carried full-run files (``benchmarks/gpu_carry.py``), so none of it rots between GPU windows."""

from __future__ import annotations

import argparse
import importlib.util
import json
import math
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[2]


def _load(name: str):
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, ROOT / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module            # dataclasses look their module up while the class is built
    spec.loader.exec_module(module)
    return module


suite = _load("gpu_suite")
carry = _load("gpu_carry")
CUDA_PARTS = {"gpu_tests", "nccl"}


@pytest.fixture(scope="module")
def dry(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """One dry run of the whole suite, then a second call that continues the full run from the exported files."""
    tmp = tmp_path_factory.mktemp("dry")
    # A generous suite budget: the dry run checks code paths, and a busy machine must not skip parts
    # (the full run keeps its own cap, the profile's full_run_max_s).
    roomy = ["--budget", "900", "--deadline", "1000"]
    code = suite.main(["--dry-run", *roomy, "--out", str(tmp), "--full-run-out", str(tmp / "carry1")])
    first = json.loads((tmp / "gpu_suite_dry.json").read_text())
    code2 = suite.main(["--dry-run", *roomy, "--parts", "full_run", "--out", str(tmp / "second"),
                        "--full-run-from", str(tmp / "carry1"), "--full-run-out", str(tmp / "carry2")])
    second = json.loads((tmp / "second" / "gpu_suite_dry.json").read_text())
    return {"code": code, "rec": first, "code2": code2, "second": second, "tmp": tmp}


def test_dry_run_runs_every_part_and_reports_the_cuda_ones_as_skipped(dry: dict) -> None:
    rec = dry["rec"]
    assert dry["code"] == 0, {n: p.get("status") for n, p in rec["parts"].items()}
    assert list(rec["parts"]) == ["env", *suite.PART_NAMES]
    for name, part in rec["parts"].items():
        if name in CUDA_PARTS:
            assert part["status"].startswith("skipped: no CUDA")
        else:
            assert part["status"] in ("ok", "partial"), (name, part.get("status"), part.get("traceback"))
    assert rec["profile"] == "dry" and rec["failed_parts"] == []
    assert rec["env"]["versions"]["torch"] == torch.__version__
    assert rec["git_commit"] and rec["machine"]["cpu_count"] >= 1


def test_dry_run_throughput_rows_compare_every_variant_with_fp32(dry: dict) -> None:
    rows = dry["rec"]["throughput"]
    seen = {(r["method"], r["preset"], r["variant"]) for r in rows}
    assert {("genseg", "mnist48_simple", "fp32"), ("genseg", "mnist48_simple", "best")} <= seen
    assert {("seg_only", p, "fp32") for p in suite.GRID_PRESETS} <= seen          # every shape's data path
    assert ("seg_only", "mnist48_simple", "best") in seen
    assert {("genseg", "mnist48_simple", v) for v in ("bf16", "channels_last", "compile")} <= seen
    for r in rows:
        assert "error" not in r, r.get("traceback")
        assert r["images_per_s"] > 0 and all(math.isfinite(x) for x in r["first_losses"])
        assert r["losses_agree"], r                 # CPU: autocast off, compile traced, NHWC: same losses
        assert "speedup_vs_fp32" in r
    best_seg = next(r for r in rows if (r["method"], r["preset"], r["variant"]) == ("seg_only", "mnist48_simple",
                                                                                  "best"))
    assert "compile" in " ".join(best_seg["applied"])                            # compile really was on


def test_dry_run_time_to_dice_states_its_cap_and_data_ratio_its_rates(dry: dict) -> None:
    parts = dry["rec"]["parts"]
    dice = parts["time_to_dice"]
    assert [r["variant"] for r in dice["rows"]] == ["fp32", "best"]
    assert "each variant trains at most" in dice["cap"]
    for r in dice["rows"]:
        assert r["curve"] and all(0.0 <= c["dice_per_image"] <= 1.0 for c in r["curve"])
    assert dice["equal_steps"] and dice["equal_steps"][0]["step"] == 1
    data = parts["data_ratio"]["rows"]
    assert [r["preset"] for r in data] == ["mnist48_simple", "mnist128"]
    assert all(r["stream_host_images_per_s"] > 0 for r in data)
    assert data[0]["ratio_data_over_training"] > 0               # against GenSeg's 48-px rate measured above


def test_dry_full_run_stops_at_its_time_box_and_continues_from_the_carried_files(dry: dict) -> None:
    first = dry["rec"]["parts"]["full_run"]
    assert first["ended"].startswith("time box") and 0 < first["step"] < first["steps_target"]
    files = first["exported"]["files"]
    assert set(files) == {"state.pt", "weights_00.pt"} and first["curve"]
    assert (dry["tmp"] / "carry1" / "state.pt").is_file()
    assert dry["code2"] == 0
    second = dry["second"]["parts"]["full_run"]
    assert second["window"]["continued_from_carry"] and second["window"]["start_step"] == first["step"]
    assert second["step"] > first["step"] and len(second["windows"]) == 2
    assert second["curve"][: len(first["curve"])] == first["curve"]                 # the curve accumulates
    assert second["curve"][-1]["step"] > first["curve"][-1]["step"]


def test_plan_orders_the_figures_inside_the_budget_and_ends_with_the_full_run(capsys) -> None:
    assert suite.main(["--plan"]) == 0
    out = capsys.readouterr().out
    assert "genseg48" in out.splitlines()[1] and "full_run" in out.splitlines()[-2]
    rows = suite.plan(suite.GPU, list(suite.PART_NAMES), suite.SUITE_BUDGET_S, suite.DEADLINE_S, {})
    figures = [r for r in rows if r["part"] != "full_run"]
    assert sum(r["est_s"] for r in figures) <= suite.SUITE_BUDGET_S
    assert sum(suite.GPU.budgets[r["part"]] for r in figures if r["part"] != "nccl") <= suite.SUITE_BUDGET_S
    assert rows[-1]["part"] == "full_run" and rows[-1]["cumulative_s"] == suite.DEADLINE_S


def test_a_part_runs_in_its_own_process_and_a_hung_part_is_killed(tmp_path: Path) -> None:
    assert suite.main(["--dry-run", "--isolate", "--parts", "data_ratio", "--out", str(tmp_path)]) == 0
    rec = json.loads((tmp_path / "gpu_suite_dry.json").read_text())
    assert rec["parts"]["data_ratio"]["status"] == "ok" and len(rec["parts"]["data_ratio"]["rows"]) == 2
    args = argparse.Namespace(dry_run=True, full_run_out=tmp_path / "c", full_run_from=None, full_run_set=[])
    part = next(p for p in suite.PARTS if p.name == "genseg48")
    result = suite.run_part_in_child(part, 0.1, args, tmp_path / "gpu_suite_dry.json", 0.0, timeout=0.3)
    assert result["status"].startswith("timeout: killed after")
    assert suite.failed(result["status"])


# ------------------------------------------------------------------------------------------ carried files
def _toy_checkpoint(path: Path) -> dict:
    from weakseg.training.checkpoint import save_checkpoint

    g = torch.Generator().manual_seed(0)
    models = {"generator": {"conv.weight": torch.randn(64, 32, 3, 3, generator=g) * 0.05,
                            "conv.bias": torch.randn(64, generator=g), "sn.u": torch.randn(64, generator=g)},
              "disc": {"fc.weight": torch.randn(300, 40, generator=g) * 1e-3, "steps": torch.tensor(7)}}
    payload = {"method": "genseg", "config": {"train": {"steps": 100}}, "models": models,
               "optimizers": {"generator": {"state": {0: {"exp_avg": torch.ones(3)}}, "param_groups": []}},
               "method_state": {"k": 1}, "streams": {"p": {"pos": 3}}, "rng": {"torch": torch.get_rng_state()},
               "generator": torch.Generator().get_state(), "scaler": None, "step": 42,
               "best": {"metric": "dice_soft_global", "value": 0.5, "step": 40}}
    save_checkpoint(payload, path)
    return payload


def test_carried_files_round_trip_weights_within_float16_and_everything_else_exactly(tmp_path: Path,
                                                                                    monkeypatch) -> None:
    from weakseg.training.checkpoint import load_checkpoint

    payload = _toy_checkpoint(tmp_path / "last.pt")
    monkeypatch.setattr(carry, "SHARD_BYTES", 30_000)            # two rounded tensors -> two shards
    out = carry.export_run(tmp_path / "last.pt", tmp_path / "carry", curve=[{"step": 40, "dice": 0.5}],
                           windows=[{"end_step": 42}])
    assert set(out["files"]) == {"state.pt", "weights_00.pt", "weights_01.pt"} and out["step"] == 42
    assert out["rounding"]["tensors"] == 2 and 0 < out["rounding"]["max_rel_error"] <= 2**-11
    state = carry.import_run(tmp_path / "carry", tmp_path / "run")
    assert state["curve"] == [{"step": 40, "dice": 0.5}] and state["windows"] == [{"end_step": 42}]
    back = load_checkpoint(tmp_path / "run" / "checkpoints" / "last.pt")
    assert back["optimizers"] == {}                               # Adam restarts: documented, not hidden
    for key in ("method", "config", "method_state", "streams", "step", "best"):
        assert back[key] == payload[key]
    assert torch.equal(back["generator"], payload["generator"]) and torch.equal(back["rng"]["torch"],
                                                                                payload["rng"]["torch"])
    for model, sd in payload["models"].items():
        assert set(back["models"][model]) == set(sd)
        for key, t in sd.items():
            got = back["models"][model][key]
            if t.numel() < carry.MIN_ROUNDED:
                assert torch.equal(got, t) and got.dtype == t.dtype
            else:
                assert got.dtype == torch.float32 and not torch.equal(got, t)
                assert (got - t).abs().max() <= t.abs().max() * 2**-11


def test_genseg_at_the_published_width_fits_the_device_file_limits() -> None:
    """23.2 M parameters: float16 shards of <= 15 MiB; with state.pt, the JSON and the log <= 8 files, 64 MiB."""
    from weakseg.config import load_config
    from weakseg.data.registry import build_data
    from weakseg.methods.registry import build_method

    cfg = load_config("mnist/mnist48_simple_genseg", ["model.width=1.0", "train.device=cpu", "data.mnist.n_train=20",
                                                      "data.mnist.n_valid=4", "data.mnist.n_test=4"])
    method = build_method(cfg, build_data(cfg), torch.device("cpu"))
    sizes = [t.numel() * 2 for m in method.models.values() for t in m.state_dict().values()
             if t.is_floating_point() and t.numel() >= carry.MIN_ROUNDED]
    shards, current = 1, 0
    for size in sizes:
        assert size <= carry.SHARD_BYTES
        if current and current + size > carry.SHARD_BYTES:
            shards, current = shards + 1, 0
        current += size
    assert sum(sizes) > 40 * 2**20                                # really the published width
    assert shards + 3 <= 8 and sum(sizes) + 2**20 < 64 * 2**20 - 4 * 2**20
