"""SMILEr end to end on a tiny phantom: rounds run, precision is logged, counts follow gamma_t."""

from __future__ import annotations

import json
import math

import torch

from tests.organs_toy import make_overlay, make_phantom, organs_overrides
from weakseg.config import load_config
from weakseg.data.registry import build_data
from weakseg.data.status import status_targets_from_masks
from weakseg.inference.load import load_run
from weakseg.relabel.rounds import fit_any, smiler_options
from weakseg.relabel.scoring import probability_scores


def test_smiler_rounds_end_to_end(tmp_path) -> None:
    root = make_phantom(tmp_path / "ds")
    overlay = tmp_path / "ov.json"
    make_overlay(root, overlay, alpha=0.7)
    # tau = 0.3 with an untrained net: plenty of candidates, so the ceil(gamma * |C|) counts are visible
    cfg = load_config("organs/smiler", [*organs_overrides(root, overlay), "smiler.tau=0.3"])
    run = tmp_path / "run"
    out = fit_any(cfg, run)
    assert [r["round"] for r in out["rounds"]] == [1, 2]
    assert (run / "checkpoints" / "last.pt").is_file() and (run / "round_2" / "checkpoints" / "last.pt").is_file()
    lines = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    assert [x["step"] for x in lines if x["split"] == "smiler"] == [1, 2]
    r1 = out["rounds"][0]
    assert r1["gamma"] == 0.5
    for cls, s in r1["classes"].items():
        assert s["tp"] + s["fp"] == s["n_pseudo"]
        assert s["precision"] is None if s["n_pseudo"] == 0 else math.isclose(s["precision"], s["tp"] / s["n_pseudo"])
        assert lines[0][f"smiler/n_pseudo/{cls}"] == s["n_pseudo"]

    # round 1's count per (image, class) is ceil(gamma_1 * |C|) of the candidates of m_0 (round 0)
    data = build_data(cfg)
    train = data.split("train")
    model = load_run(run / "round_0", which="last", device="cpu").method.models["segmenter"]
    prob = probability_scores(model, train.images)
    _, w0 = status_targets_from_masks(train.masks, train.status, has_mask=train.has_mask)
    missing = (train.status == 3)[:, :, None, None]
    cand = ((w0 == 0) & (prob > 0.3) & missing).flatten(2).sum(-1)                       # (N, K)
    opts = smiler_options(cfg)
    expected = torch.tensor([[math.ceil(round(opts.gamma(1) * int(c), 9)) for c in row] for row in cand.tolist()])
    got = [r1["classes"][c]["n_pseudo"] for c in train.class_names]
    assert got == expected.sum(0).tolist() and sum(got) > 0
    # rerunning skips every finished round and leaves the results alone
    again = fit_any(cfg, run, resume=True)
    assert again["rounds"] == out["rounds"]
