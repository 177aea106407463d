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
from weakseg.relabel.rounds import fit_smiler, smiler_options
from weakseg.relabel.scoring import probability_scores


def test_smiler_rounds_end_to_end(tmp_path) -> None:
    root = make_phantom(tmp_path / "ds")
    overlay = tmp_path / "ov.json"
    make_overlay(root, overlay, alpha=0.7)
    # tau = 0.3 with an untrained net: plenty of candidates, so the ceil(gamma * |C|) counts are visible
    cfg = load_config("organs/smiler", [*organs_overrides(root, overlay), "smiler.tau=0.3"])
    run = tmp_path / "run"
    out = fit_smiler(cfg, run)
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
    again = fit_smiler(cfg, run, resume=True)
    assert again["rounds"] == out["rounds"]


def test_round_config_init_and_step_budget(tmp_path) -> None:
    from weakseg.relabel.rounds import round_config

    base = load_config("organs/smiler", ["train.steps=40", "smiler.rounds=3", "smiler.round_steps=null"])
    run, round0 = tmp_path / "run", tmp_path / "run" / "round_0"
    for init, expected in (("continue", "round_1"), ("smile", "round_0"), ("scratch", None)):
        cfg = load_config("organs/smiler", ["train.steps=40", "smiler.rounds=3", "smiler.round_steps=null",
                                            f"smiler.init={init}"])
        t2 = round_config(cfg, 2, run, smiler_options(cfg), round0)
        # relative to the round's own folder, so the run keeps working after it moves
        want = None if expected is None else f"../{expected}/checkpoints/last.pt"
        assert t2.train.init_from == want, init
        assert t2.train.steps == 40                      # round_steps null: the full budget of round 0
        assert t2.smiler.round == 2 and t2.train.seed == cfg.train.seed
    t1 = round_config(base, 1, run, smiler_options(base), round0)
    assert t1.train.init_from == "../round_0/checkpoints/last.pt"                        # continue from m_0
    elsewhere = tmp_path / "smile_run"                   # smiler.round0_run: another folder, named as it is
    assert round_config(base, 1, run, smiler_options(base), elsewhere).train.init_from == \
        str((elsewhere / "checkpoints" / "last.pt").resolve())
    short = load_config("organs/smiler", ["smiler.round_steps=7"])
    assert round_config(short, 1, run, smiler_options(short), round0).train.steps == 7


def test_bad_smiler_option_is_refused_before_round_0(tmp_path) -> None:
    import pytest

    from weakseg.errors import WeaksegError

    cfg = load_config("organs/smiler", ["smiler.tau=1.5"])
    with pytest.raises(WeaksegError, match=r"smiler.tau must be a number in \[0, 1\)"):
        fit_smiler(cfg, tmp_path / "run")
    assert not (tmp_path / "run" / "round_0").exists()
    with pytest.raises(WeaksegError, match=r"^train.init_from: SMILEr's rounds choose their own initial weights"):
        fit_smiler(load_config("organs/smiler", ["train.init_from=x.pt"]), tmp_path / "run")
    assert not (tmp_path / "run").exists()


def test_a_pseudo_filter_edits_what_is_saved_and_trained(tmp_path) -> None:
    """The diagnostic hook of the ablation: the filter's output is what each round stores (and trains on);
    the selection's own statistics stay beside the kept count."""
    from weakseg.relabel.pseudo_labels import load_pseudo_labels, pseudo_label_path

    root = make_phantom(tmp_path / "ds")
    overlay = tmp_path / "ov.json"
    make_overlay(root, overlay, alpha=0.7)
    cfg = load_config("organs/smiler", [*organs_overrides(root, overlay), "smiler.tau=0.3"])

    def true_only(pseudo, train):
        return pseudo & train.truth.bool()

    out = fit_smiler(cfg, tmp_path / "run", pseudo_filter=true_only)
    train = build_data(cfg).split("train")
    for r in out["rounds"]:
        assert r["pseudo_filter"] == "true_only"
        saved = load_pseudo_labels(pseudo_label_path(tmp_path / "run", r["round"]), tuple(train.masks.shape))
        assert not bool((saved & ~train.truth.bool()).any())                      # no false positive left
        for k, (cls, s) in enumerate(r["classes"].items()):
            assert s["n_pseudo_kept"] == int(saved[:, k].sum()) <= s["n_pseudo"]
    assert any(s["fp"] > 0 for r in out["rounds"] for s in r["classes"].values())   # there was something to drop
