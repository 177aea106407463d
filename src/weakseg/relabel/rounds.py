"""SMILEr's outer driver: rounds of (score the training slices, relabel, retrain) around ``fit`` (smile.md §8).

Folder of a SMILEr run::

    RUN_DIR/round_0/                 m_0: SMILE (or the finished SMILE run named by smiler.round0_run)
    RUN_DIR/round_<t>/               m_t, a normal fit() run folder (resumable)
    RUN_DIR/pseudo/round_<t>/pseudo.pt   the pseudo-labels P_t (packed bits) used to train m_t
    RUN_DIR/pseudo/round_<t>/stats.json  per class: count, TP, FP, precision, recall vs the withheld truth
    RUN_DIR/smiler_rounds.json       every round's statistics; RUN_DIR/metrics.jsonl one line per round
    RUN_DIR/checkpoints/{last,best}.pt   copies of m_T's, so evaluate/show treat the folder as one run

Every step is resumable: a round whose checkpoint reached its step budget is skipped, a partial one is
resumed, pseudo-labels already written are reused. The relabelling itself is
``weakseg.relabel.selection.relabel_round``; scores come from m_{t-1}'s last checkpoint (no early
stopping: the test fold selects nothing, and validation is not used to pick rounds either).

Nothing a round needs to train travels through its config but its initial weights (``train.init_from``,
relative to the round's folder): the driver hands ``fit`` the training split with the round's
pseudo-labels (``weakseg.relabel.pseudo_labels``). Every path the run stores is relative to its folder,
so a finished run evaluates and predicts wherever it is moved.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from weakseg.config.io import dump_yaml
from weakseg.config.schema import Config
from weakseg.errors import WeaksegError
from weakseg.metrics.jsonio import atomic_write_json
from weakseg.relabel.pseudo_labels import load_pseudo_labels, pseudo_label_path, save_pseudo_labels, with_pseudo_labels
from weakseg.relabel.selection import SMILER_MC_PRESET, SmilerOptions, relabel_round

SMILER_METHODS = ("smiler", "smiler_mc")
#: ``(pseudo (N, K, *S) bool, training split) -> pseudo``: a diagnostic edit of a round's pseudo-labels
PseudoFilter = Callable[[torch.Tensor, Any], torch.Tensor]
_DRIVER_KEYS = ("round", "round0_run")


def smiler_options(cfg: Config) -> SmilerOptions:
    """The validated options of ``cfg.smiler``; ``smiler_mc`` applies the slides' MC-dropout preset
    (score ``mc_std``, T = 3, gamma_max = 1: 33/66/100 % of the candidates)."""
    values = {k: v for k, v in dataclasses.asdict(cfg.smiler).items() if k not in _DRIVER_KEYS}
    if cfg.method == "smiler_mc":
        values.update(SMILER_MC_PRESET)
    return SmilerOptions.from_dict(values)


def _finished(run_dir: Path, steps: int) -> bool:
    from weakseg.training.checkpoint import load_checkpoint
    last = run_dir / "checkpoints" / "last.pt"
    return last.is_file() and int(load_checkpoint(last)["step"]) >= steps


def _stored_path(path: Path, run_dir: Path, *, start: Path | None = None) -> str:
    """``path`` as the SMILEr run in ``run_dir`` stores it: relative to ``start`` (default ``run_dir``; it need
    not exist yet) when it lies inside the run, so the run can move; absolute otherwise (a round 0 taken
    from another run folder)."""
    if not path.resolve().is_relative_to(run_dir.resolve()):
        return str(path.resolve())
    return os.path.relpath(path.resolve(), (start or run_dir).resolve())


def round_config(cfg: Config, t: int, run_dir: Path, opts: SmilerOptions, round0: Path) -> Config:
    """The config that trains round t: its initial weights (relative to the round's folder) and step budget.

    The round's pseudo-labels are not in it: the driver hands them to ``fit`` with the training split.
    """
    smiler = dataclasses.replace(cfg.smiler, round=t, round0_run=None)
    train = dataclasses.replace(cfg.train, init_from=None)
    if t > 0:
        prev = round0 if t == 1 else run_dir / f"round_{t - 1}"
        init = {"continue": prev, "smile": round0, "scratch": None}[opts.init]
        if init is not None:
            train = dataclasses.replace(train, init_from=_stored_path(init / "checkpoints" / "last.pt", run_dir,
                                                                      start=run_dir / f"round_{t}"))
        if opts.round_steps is not None:
            train = dataclasses.replace(train, steps=opts.round_steps)
    return dataclasses.replace(cfg, smiler=smiler, train=train)


def score_training_set(cfg: Config, model_run: Path, opts: SmilerOptions, train: Any, *, t: int,
                       device: torch.device) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Probabilities (or MC-dropout mean and std) of m_{t-1} on every training slice."""
    from weakseg.inference.load import load_run
    from weakseg.evaluation.decode import decode_pos_weight
    from weakseg.relabel.scoring import mc_dropout_scores, probability_scores

    run = load_run(model_run, which="last", device=str(device))
    model = run.method.models["segmenter"]
    pos_weight = decode_pos_weight(run.cfg)               # the scored model's own calibration, as its decoding
    if opts.score == "mc_std":
        mean, std = mc_dropout_scores(model, train.images, samples=opts.mc_samples, seed=cfg.train.seed * 1000 + t,
                                      p=opts.mc_dropout_p, batch_size=cfg.eval.batch_size, pos_weight=pos_weight)
        return mean, std
    if opts.score != "prob":
        raise WeaksegError(f"smiler.score={opts.score!r} is not available in the round driver; use prob or mc_std")
    return probability_scores(model, train.images, batch_size=cfg.eval.batch_size, pos_weight=pos_weight), None


def fit_smiler(cfg: Config, run_dir: str | Path, *, resume: bool = False, progress: bool | None = None,
               log: Any = print, pseudo_filter: PseudoFilter | None = None) -> dict[str, Any]:
    """Train SMILEr: m_0 = SMILE, then T rounds of relabel + retrain. Returns a summary with every round's
    pseudo-label statistics (also in ``RUN_DIR/smiler_rounds.json`` and ``RUN_DIR/metrics.jsonl``).

    ``pseudo_filter``: diagnostics only (``benchmarks/smiler_ablation.py``), never from a config: a function
    ``(pseudo, train_split) -> pseudo`` applied to each round's selection before it is saved and trained on,
    e.g. keeping only the true pseudo-positives of a simulation to separate the relabelling schedule from the
    errors of the pseudo-labels. Its name is recorded in every round's statistics.
    """
    from weakseg.data.registry import build_data
    from weakseg.data.status import MASK, is_missing, status_targets_from_masks
    from weakseg.training.context import resolve_device
    from weakseg.training.loop import fit

    if cfg.method not in SMILER_METHODS:
        raise WeaksegError(f"fit_smiler runs methods {', '.join(SMILER_METHODS)}, got {cfg.method!r}")
    if cfg.train.init_from:
        raise WeaksegError("train.init_from: SMILEr's rounds choose their own initial weights (smiler.init); to "
                           "start from a finished SMILE run, set smiler.round0_run=RUN instead")
    run_dir = Path(run_dir)
    final = run_dir / "checkpoints" / "last.pt"
    if final.is_file() and not resume:
        raise WeaksegError(f"{run_dir} already holds a finished SMILEr run; pass --resume or choose another --out")
    opts = smiler_options(cfg)
    run_dir.mkdir(parents=True, exist_ok=True)
    dump_yaml(cfg, run_dir / "config.yaml")
    t0 = time.time()

    round0 = run_dir / "round_0"
    cfg0 = round_config(cfg, 0, run_dir, opts, round0)
    if cfg.smiler.round0_run and _finished(Path(cfg.smiler.round0_run), cfg.train.steps):
        round0 = Path(cfg.smiler.round0_run)
        log(f"smiler: round 0 = the finished SMILE run {round0}")
    elif not _finished(round0, cfg.train.steps):
        log(f"smiler: round 0 (SMILE), {cfg.train.steps} steps -> {round0}")
        fit(dataclasses.replace(cfg0, method="smile"), round0, resume=(round0 / "checkpoints" / "last.pt").is_file(),
            progress=progress)

    device = resolve_device(cfg.train.device)
    data = build_data(cfg0)
    train = data.split("train")
    target0, weight0 = status_targets_from_masks(train.masks, train.status, has_mask=train.has_mask)
    # Precision needs the truth of every relabelled pair: pairs hidden by a simulation have it, pairs
    # declared unknown (real partial data) do not; then only counts are logged.
    missing = is_missing(train.status)
    known = bool((train.truth_status[missing] == MASK).all()) if hasattr(train, "truth_status") else False
    truth = train.truth.bool() if known else None
    if truth is None:
        log("smiler: some missing annotations have no withheld ground truth; logging counts, not precision")
    volume_ids = train.volume if opts.rank_scope == "volume" else None
    rounds: list[dict[str, Any]] = []
    previous = None
    for t in range(1, opts.rounds + 1):
        cfg_t = round_config(cfg, t, run_dir, opts, round0)
        rdir = run_dir / f"round_{t}"
        pseudo_path = pseudo_label_path(run_dir, t)
        stats_path = pseudo_path.with_name("stats.json")
        if pseudo_path.is_file() and stats_path.is_file():
            previous = load_pseudo_labels(pseudo_path, tuple(train.masks.shape))
            record = json.loads(stats_path.read_text())
        else:
            model_run = round0 if t == 1 else run_dir / f"round_{t - 1}"
            prob, std = score_training_set(cfg, model_run, opts, train, t=t, device=device)
            res = relabel_round(t, prob, target0, weight0, train.status, opts, previous=previous, std=std,
                                volume_ids=volume_ids, truth=truth, class_names=train.class_names)
            previous = res.pseudo
            record = {"round": t, "gamma": res.gamma, "classes": res.stats,
                      "n_candidates_scored_from": _stored_path(model_run, run_dir)}
            if pseudo_filter is not None:        # the selection's statistics stay; the kept count is added
                previous = pseudo_filter(res.pseudo, train).to(res.pseudo.dtype)
                record["pseudo_filter"] = getattr(pseudo_filter, "__name__", "custom")
                for k, stats in enumerate(record["classes"].values()):
                    stats["n_pseudo_kept"] = int(previous[:, k].sum())
            save_pseudo_labels(pseudo_path, previous)
            atomic_write_json(stats_path, record)
            _log_round(run_dir, record)
        rounds.append(record)
        summary = ", ".join(f"{c}: n={s['n_pseudo']} prec={_fmt(s.get('precision'))}"
                            for c, s in record["classes"].items())
        log(f"smiler: round {t}/{opts.rounds} gamma={record['gamma']:.3f} {summary}")
        if not _finished(rdir, cfg_t.train.steps):
            fit(cfg_t, rdir, resume=(rdir / "checkpoints" / "last.pt").is_file(), progress=progress,
                data=with_pseudo_labels(data, previous),
                history={"pseudo_labels": _stored_path(pseudo_path, run_dir, start=rdir)})

    _copy_final_checkpoints(run_dir / f"round_{opts.rounds}", run_dir)
    atomic_write_json(run_dir / "smiler_rounds.json", {"options": opts.to_dict(), "rounds": rounds,
                                                       "round0": _stored_path(round0, run_dir)})
    return {"rounds": rounds, "wall_time_s": time.time() - t0, "run_dir": str(run_dir)}


def _copy_final_checkpoints(last_dir: Path, run_dir: Path) -> None:
    """m_T's checkpoints as the run's own, so evaluate/show/predict treat the folder as one run."""
    (run_dir / "checkpoints").mkdir(exist_ok=True)
    for name in ("best.pt", "last.pt"):
        src = last_dir / "checkpoints" / name
        if src.is_file():
            tmp = run_dir / "checkpoints" / (name + ".tmp")
            shutil.copyfile(src, tmp)
            tmp.replace(run_dir / "checkpoints" / name)


def _fmt(v: Any) -> str:
    return "n/a" if v is None else f"{v:.3f}"


def _log_round(run_dir: Path, record: dict[str, Any]) -> None:
    line: dict[str, Any] = {"step": record["round"], "split": "smiler", "time": round(time.time(), 3),
                            "smiler/gamma": record["gamma"]}
    for cls, s in record["classes"].items():
        for key in ("precision", "recall", "n_pseudo", "tp", "fp", "n_images"):
            if key in s:
                line[f"smiler/{key}/{cls}"] = s[key]
    with open(run_dir / "metrics.jsonl", "a", encoding="utf-8") as f:
        f.write(json.dumps(line) + "\n")
