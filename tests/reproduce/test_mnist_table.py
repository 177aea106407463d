"""The cluttered-MNIST table: summary block, missing cells, the method's-point verdict."""

from __future__ import annotations

import json
from pathlib import Path

from weakseg.reproduce.mnist import claims, claims_markdown, summarise, table_markdown


def _store(results: Path, preset: str, method: str, seed: int, dice: float) -> None:
    metrics = {"dice_per_image": {"mean": dice, "n": 10}, "dice_hard_global": dice, "dice_soft_global": dice,
               "fp_image_rate": 0.5, "fp_area": 1.0}
    rec = {"key": f"{preset}/{method}/seed{seed}", "group": preset, "method": method, "seed": seed,
           "wall_time_s": 1.0, "test_best": metrics, "test_last": metrics}
    (results / "runs").mkdir(parents=True, exist_ok=True)
    (results / "runs" / f"{preset}__{method}__seed{seed}.json").write_text(json.dumps(rec))


def test_summary_block_and_missing_cells(tmp_path: Path) -> None:
    for seed, d in enumerate([0.4, 0.5, 0.6]):
        _store(tmp_path, "mnist48_simple", "genseg", seed, d)
    _store(tmp_path, "mnist48_simple", "seg_only", 0, 0.3)
    summary = summarise(tmp_path)
    cell = summary["mnist48_simple"]["genseg"]["dice_per_image"]
    assert cell["n"] == 3 and abs(cell["mean"] - 0.5) < 1e-12 and abs(cell["std"] - 0.1) < 1e-12
    assert summary["mnist48_simple"]["genseg"]["seeds"] == [0, 1, 2]
    assert "mean_teacher" not in summary["mnist48_simple"] and "mnist128" not in summary
    table = table_markdown(summary, scale="quick")
    assert "| Proposed (GenSeg) | 0.500 (0.100, n=3) | 0.84 (0.00) | missing |" in table
    assert "| Mean teacher | missing |" in table


def test_the_verdict_needs_three_seeds_and_both_conditions(tmp_path: Path) -> None:
    for seed in range(3):
        _store(tmp_path, "mnist48_simple", "genseg", seed, 0.60)
        _store(tmp_path, "mnist48_simple", "seg_only", seed, 0.50)
        _store(tmp_path, "mnist48_simple", "ae", seed, 0.55)
        _store(tmp_path, "mnist48_hard", "genseg", seed, 0.52)       # beats AE, but seg-only by only 0.02
        _store(tmp_path, "mnist48_hard", "seg_only", seed, 0.50)
        _store(tmp_path, "mnist48_hard", "ae", seed, 0.40)
    _store(tmp_path, "mnist128", "genseg", 0, 0.9)
    _store(tmp_path, "mnist128", "seg_only", 0, 0.1)
    _store(tmp_path, "mnist128", "ae", 0, 0.1)
    found = claims(summarise(tmp_path))
    assert found["mnist48_simple"]["holds"] is True
    assert found["mnist48_hard"]["holds"] is False and found["mnist48_hard"]["at_least_ae"] is True
    assert found["mnist128"]["holds"] is None and found["mnist128"]["n"] == 1      # one seed: provisional
    text = claims_markdown(found)
    assert "mnist48_hard: does not hold (GenSeg 0.520, seg-only 0.500, difference +0.020; AE 0.400)" in text
    assert "mnist128: provisional, 1 seed(s)" in text
