"""``weakseg reproduce mnist``: the cluttered-MNIST table of Vorontsov et al. (MIA 2022, R2).

Every method gets the same step budget and the same validation-based selection (``genseg.md`` §16).
The test split is scored at the best validation checkpoint (reference criterion: soft global Dice) and
at the last one. The table's main column is the published metric, pooled soft Dice (``dice_soft_global``,
§12), beside per-image hard Dice and the healthy-image false-positive rates; the published column shows the
journal's (R2) and the slides' (R3) numbers (§14). Collapsed runs (the whole canvas painted) are flagged and
left out of the means, never averaged in. Each stored run keeps its validation rows (learning curves and,
for GenSeg, the translation health of ``weakseg.metrics.translation``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from weakseg.reproduce.runner import RunSpec, load_results, mean_std

PRESETS = ("mnist48_simple", "mnist48_hard", "mnist128")
# The v2 presets (paper protocol within the digit source: 59,500 canvases, 1% of them labelled; calibrated
# clutter) and their all-digits twins. Each trains with the method configs of the design preset it derives from
# (data.preset overridden).
PRESETS_V2 = ("mnist48_simple_v2", "mnist48_hard_v2", "mnist128_v2")
PRESETS_V2_ALLDIGITS = tuple(f"{p}_alldigits" for p in PRESETS_V2)
ALL_PRESETS = PRESETS + PRESETS_V2 + PRESETS_V2_ALLDIGITS
PRESET_CONFIG = {p: p.removesuffix("_alldigits").removesuffix("_v2") for p in ALL_PRESETS}
METHODS = ("seg_only", "ae", "mean_teacher", "genseg", "genseg_sepdec")
METHOD_LABELS = {"seg_only": "Only segmentation", "ae": "AE baseline", "mean_teacher": "Mean teacher",
                 "genseg": "Proposed (GenSeg)", "genseg_sepdec": "Proposed (sep dec)"}
METRICS = ("dice_soft_global", "dice_per_image", "dice_hard_global", "fp_image_rate", "fp_area", "area_ratio_p")

# R2 (MIA 2022) main table, Dice mean (std) over 3 runs at 1% labelled (genseg.md §14).
PUBLISHED = {
    "mnist48_simple": {"seg_only": (0.61, 0.01), "ae": (0.75, 0.01), "mean_teacher": (0.83, 0.02),
                       "genseg": (0.84, 0.00), "genseg_sepdec": (0.83, 0.01)},
    "mnist48_hard": {"seg_only": (0.36, 0.01), "ae": (0.49, 0.02), "mean_teacher": (0.56, 0.01),
                     "genseg": (0.60, 0.01), "genseg_sepdec": (0.62, 0.01)},
    "mnist128": {"seg_only": (0.15, 0.01), "ae": (0.57, 0.02), "mean_teacher": (0.70, 0.01),
                 "genseg": (0.74, 0.02), "genseg_sepdec": (0.73, 0.02)},
}
# R3 (2019 slides, seed 000; AdaIN-era "Proposed"): no mean teacher and no sep-dec rows (genseg.md §14).
PUBLISHED_R3 = {
    "mnist48_simple": {"seg_only": (0.61, 0.01), "ae": (0.75, 0.01), "genseg": (0.79, 0.01)},
    "mnist48_hard": {"seg_only": (0.36, 0.01), "ae": (0.49, 0.02), "genseg": (0.57, 0.00)},
    "mnist128": {"seg_only": (0.15, 0.01), "ae": (0.57, 0.02), "genseg": (0.65, 0.01)},
}

# Scales. quick: reduced width (every channel / 4, genseg.md §16 CPU preset) on the design presets (40
# labelled source digits of the embedded 4,000), so the whole table fits in hours of a 2-core CPU.
# medium: the paper's protocol within the embedded digits (the *_v2 presets: 59,500 training
# canvases, 595 labelled) at the quick width, about an hour per GenSeg run on one CPU thread; its step budget
# comes from the learning curves (docs/mnist.md). full: the published widths and batch 20 + 20, for a GPU.
SCALES: dict[str, dict[str, Any]] = {
    # min_labeled_per_batch=1: batches of 8 P images would almost never hold one of the 1% labelled images in
    # a CPU budget (the reference trains 200 epochs); seg-only sees only labelled images anyway.
    "quick": {"overrides": ["model.width=0.25", "train.batch_size=8", "train.min_labeled_per_batch=1"],
              "per_preset": {"mnist128": ["model.width=0.125", "train.batch_size=4"]},
              "steps": {"mnist48_simple": 1000, "mnist48_hard": 1000, "mnist128": 600},
              "eval_every": 200, "datasets": PRESETS, "methods": METHODS},
    # channels_last: 12% faster GenSeg steps on one CPU thread at the same losses to float rounding
    # (results/bench_cpu_speed_switches.json); a speed switch, so stored runs without it still count.
    "medium": {"overrides": ["model.width=0.25", "train.batch_size=8", "train.min_labeled_per_batch=1",
                             "train.channels_last=true"],
               "per_preset": {p: ["model.width=0.125", "train.batch_size=4"] for p in ("mnist128_v2",
                                                                                     "mnist128_v2_alldigits")},
               "steps": dict.fromkeys(PRESETS_V2 + PRESETS_V2_ALLDIGITS, 6000),
               "eval_every": 500, "datasets": ("mnist48_simple_v2", "mnist48_hard_v2"),
               "methods": ("seg_only", "ae", "mean_teacher", "genseg")},
    "full": {"overrides": ["model.width=1.0", "train.batch_size=20"],
             "per_preset": {},
             "steps": dict.fromkeys(ALL_PRESETS, 30000),
             "eval_every": 1000, "datasets": PRESETS_V2, "methods": METHODS},
}

# A run is collapsed when it paints (nearly) the whole canvas: more than half of every healthy image on
# average, or a predicted area on the P images this many times the digits' area.
COLLAPSE_FP_AREA = 0.5
COLLAPSE_AREA_RATIO = 5.0
# Translation has started at the first validation where P->A takes out this share of the digit's intensity.
TRANSLATION_STARTED = 0.5
TRANSLATION_KEY = "translation/object_removed"


def grid(scale: str, *, presets: tuple[str, ...] | None = None, methods: tuple[str, ...] | None = None,
         seeds: tuple[int, ...] = (0, 1, 2), extra_overrides: tuple[str, ...] = ()) -> list[RunSpec]:
    s = SCALES[scale]
    presets = s["datasets"] if presets is None else presets
    methods = s["methods"] if methods is None else methods
    specs = []
    for preset in presets:
        base = PRESET_CONFIG[preset]
        for method in methods:
            for seed in seeds:
                overrides = ((f"data.preset={preset}",) if preset != base else ()) + (
                    *s["overrides"], *s["per_preset"].get(preset, []), f"train.steps={s['steps'][preset]}",
                    f"train.eval_every={s['eval_every']}", f"train.checkpoint_every={s['eval_every']}",
                    *extra_overrides)
                specs.append(RunSpec(preset, method, seed, f"mnist/{base}_{method}", overrides))
    return specs


def collapse_reason(metrics: dict[str, Any]) -> str | None:
    """Why a run's test metrics say it collapsed (whole canvas predicted), or None."""
    fp_area, ratio = metrics.get("fp_area"), metrics.get("area_ratio_p")
    if fp_area is not None and fp_area > COLLAPSE_FP_AREA:
        return f"fp_area {fp_area:.2f} > {COLLAPSE_FP_AREA}"
    if ratio is not None and ratio > COLLAPSE_AREA_RATIO:
        return f"predicted area on P images {ratio:.1f}x the mask area > {COLLAPSE_AREA_RATIO:g}x"
    return None


def translation_start(rows: list[dict[str, Any]]) -> int | None:
    """The first validation step whose P->A translation removes >= ``TRANSLATION_STARTED`` of the digit."""
    for row in sorted(rows, key=lambda r: r["step"]):
        value = row.get(TRANSLATION_KEY)
        if value is not None and value >= TRANSLATION_STARTED:
            return int(row["step"])
    return None


def valid_curve(runs: list[dict[str, Any]], metric: str = "dice_soft_global") -> list[list[float]]:
    """[[step, mean over ``runs``]] of a validation metric, at the steps every run logged it."""
    per_run = [{int(r["step"]): r[metric] for r in run.get("valid_rows") or [] if r.get(metric) is not None}
               for run in runs]
    if not per_run or not all(per_run):
        return []
    steps = sorted(set.intersection(*(set(p) for p in per_run)))
    return [[s, sum(p[s] for p in per_run) / len(per_run)] for s in steps]


REACH_FIT_FROM = 0.5      # the straight line is fitted to the validation points from this share of the run on


def reach_estimate(curve: list[list[float]], target: float, *, seconds_per_step: float | None = None
                   ) -> dict[str, Any]:
    """When a validation curve reaches ``target``: the first logged step at or above it, else where a straight
    line through the curve's second half (steps >= ``REACH_FIT_FROM`` x the last) would cross it.

    Returns {"status": "reached" | "extrapolated" | "not rising" | "too few points", "step", "fit_from_step",
    "slope_per_1000_steps", "hours_per_run" (``seconds_per_step`` x step / 3600)}. The line is optimistic when
    the curve flattens, so an extrapolated step is a lower bound on what the run would need.
    """
    for step, value in curve:
        if value >= target:
            return {"status": "reached", "step": int(step)}
    tail = [(s, v) for s, v in curve if s >= REACH_FIT_FROM * curve[-1][0]]
    if len(tail) < 3:
        return {"status": "too few points"}
    slope, intercept = (float(x) for x in np.polyfit(*zip(*tail), 1))
    out: dict[str, Any] = {"fit_from_step": int(tail[0][0]), "slope_per_1000_steps": slope * 1000}
    if slope <= 0:
        return {"status": "not rising", **out}
    step = (target - intercept) / slope
    out |= {"status": "extrapolated", "step": int(round(step, -2))}
    if seconds_per_step:
        out["hours_per_run"] = seconds_per_step * step / 3600
    return out


def _ordered_groups(runs: list[dict[str, Any]]) -> tuple[str, ...]:
    found = {r["group"] for r in runs}
    return tuple(p for p in ALL_PRESETS if p in found) + tuple(sorted(found - set(ALL_PRESETS)))


def summarise(results_dir: Path, *, presets: tuple[str, ...] | None = None,
              methods: tuple[str, ...] = METHODS) -> dict[str, Any]:
    """The machine-readable summary block: {preset: {method: {metric: {mean, std, n}, ...}}}.

    Means cover the runs that did not collapse (``collapse_reason``); collapsed ones are listed under
    ``collapsed`` with their numbers. ``seeds`` are the seeds in the means; ``translation_start`` maps each
    GenSeg seed to the validation step at which its translation started (None: not within the run).
    """
    runs = load_results(results_dir)
    presets = _ordered_groups(runs) if presets is None else presets
    summary: dict[str, Any] = {}
    for preset in presets:
        for method in methods:
            mine = sorted((r for r in runs if r["group"] == preset and r["method"] == method), key=lambda r: r["seed"])
            if not mine:
                continue
            kept = [r for r in mine if collapse_reason(r["test_best"]) is None]
            cell: dict[str, Any] = {metric: mean_std([_metric(r["test_best"], metric) for r in kept])
                                    for metric in METRICS}
            cell["dice_soft_global_last"] = mean_std([_metric(r["test_last"], "dice_soft_global") for r in kept])
            cell["dice_per_image_last"] = mean_std([_metric(r["test_last"], "dice_per_image") for r in kept])
            cell["seeds"] = [r["seed"] for r in kept]
            cell["collapsed"] = [{"seed": r["seed"], "reason": collapse_reason(r["test_best"]),
                                  **{m: _metric(r["test_best"], m) for m in METRICS}}
                                 for r in mine if collapse_reason(r["test_best"]) is not None]
            cell["wall_time_s"] = mean_std([r["wall_time_s"] for r in mine])
            cell["valid_curve"] = valid_curve(kept)
            if any(r.get("valid_rows") and any(TRANSLATION_KEY in row for row in r["valid_rows"]) for r in mine):
                cell["translation_start"] = {str(r["seed"]): translation_start(r.get("valid_rows") or [])
                                             for r in mine}
                cell["steps"] = max((row["step"] for r in mine for row in r.get("valid_rows") or []), default=None)
            summary.setdefault(preset, {})[method] = cell
    return summary


def data_counts(results_dir: Path) -> dict[str, Any]:
    """Per preset, what its runs trained on: labelled canvases, distinct labelled sources, digits, samples.

    Read from the first stored run of the preset that recorded its data summary (``data``).
    """
    keys = ("digits", "label_unit", "labeled_digits", "n_labelled_sources", "n_labelled_train_p",
            "n_distinct_labelled_sources", "samples")
    out: dict[str, Any] = {}
    for r in load_results(results_dir):
        if r.get("data") and r["group"] not in out:
            out[r["group"]] = {k: r["data"][k] for k in keys if k in r["data"]}
    return out


# ------------------------------------------------------------------------------------------------- claims
# What each scale's table must show (medium: GenSeg ahead of the baselines on the v2 presets). metric: the summary metric compared; min_value: an
# absolute floor for GenSeg; margin: GenSeg minus that baseline at least this; ahead_of: GenSeg's mean strictly
# above these baselines (those not run are listed, not assumed); at_least: GenSeg's mean >= these.
CLAIMS: dict[str, dict[str, dict[str, Any]]] = {
    "quick": {p: {"metric": "dice_per_image", "margin": {"seg_only": 0.05}, "at_least": ["ae"]} for p in PRESETS},
    "medium": {
        "mnist48_simple_v2": {"metric": "dice_soft_global", "min_value": 0.75, "margin": {"seg_only": 0.15},
                              "ahead_of": ["ae", "mean_teacher"]},
        "mnist48_hard_v2": {"metric": "dice_soft_global", "ahead_of": ["seg_only", "ae", "mean_teacher"]},
    },
    "full": {p: {"metric": "dice_soft_global", "margin": {"seg_only": 0.05}, "ahead_of": ["ae", "mean_teacher"]}
             for p in PRESETS_V2},
}
CLAIM_MARGIN = 0.05       # the quick table's margin over seg-only (test dice_per_image, mean over seeds)


def claims(summary: dict[str, Any], *, scale: str = "quick", presets: tuple[str, ...] | None = None,
           n_seeds: int = 3) -> dict[str, Any]:
    """Does the table show the method's point? One verdict per preset of ``CLAIMS[scale]``.

    Returns {preset: {"metric", method means ("genseg", "seg_only", ...), "n": seeds (non-collapsed) of the
    smallest compared cell, "checks": {name: bool}, "not_run": [baselines without a result], "holds": bool |
    None}}; the quick scale also keeps its "beats_seg_only" and "at_least_ae". ``holds`` is None while a
    compared cell has fewer than ``n_seeds`` seeds.
    """
    rules = CLAIMS[scale]
    out: dict[str, Any] = {}
    for preset in (tuple(rules) if presets is None else presets):
        rule = rules.get(preset)
        if rule is None:
            continue
        metric = rule["metric"]
        wanted = ["genseg", *rule.get("margin", {}), *rule.get("ahead_of", []), *rule.get("at_least", [])]
        means = {}
        for m in dict.fromkeys(wanted):
            c = summary.get(preset, {}).get(m)
            if c is not None and c[metric]["mean"] is not None:
                means[m] = (c[metric]["mean"], c[metric]["n"])
        reach = _reach(summary.get(preset, {}).get("genseg"), rule)
        required = ["genseg", *rule.get("margin", {}), *rule.get("at_least", [])]
        present_ahead = [b for b in rule.get("ahead_of", []) if b in means]
        if any(m not in means for m in required) or (rule.get("ahead_of") and not present_ahead):
            out[preset] = {"metric": metric, "holds": None, "n": 0, **({"reach": reach} if reach else {})}
            continue
        g = means["genseg"][0]
        checks: dict[str, bool] = {}
        if "min_value" in rule:
            checks[f"genseg >= {rule['min_value']}"] = g >= rule["min_value"]
        for b, margin in rule.get("margin", {}).items():
            checks[f"genseg >= {b} + {margin}"] = g - means[b][0] >= margin
        for b in present_ahead:
            checks[f"genseg > {b}"] = g > means[b][0]
        for b in rule.get("at_least", []):
            checks[f"genseg >= {b}"] = g >= means[b][0]
        n = min(v[1] for v in means.values())
        ok = all(checks.values())
        found = {"metric": metric, **{m: v[0] for m, v in means.items()}, "n": n, "checks": checks,
                 "not_run": [b for b in rule.get("ahead_of", []) if b not in means],
                 "holds": ok if n >= n_seeds else None}
        if reach:
            found["reach"] = reach
        if scale == "quick":
            found["beats_seg_only"] = checks[f"genseg >= seg_only + {CLAIM_MARGIN}"]
            found["at_least_ae"] = checks["genseg >= ae"]
        out[preset] = found
    return out


def _reach(cell: dict[str, Any] | None, rule: dict[str, Any]) -> dict[str, Any] | None:
    """``reach_estimate`` of GenSeg's mean validation curve against the rule's floor (``min_value``), if any."""
    curve = (cell or {}).get("valid_curve")
    if "min_value" not in rule or not curve or rule["metric"] != "dice_soft_global":
        return None
    wall = cell["wall_time_s"]["mean"]
    return {"target": rule["min_value"], "n_seeds": cell["dice_soft_global"]["n"],
            **reach_estimate(curve, rule["min_value"], seconds_per_step=wall / curve[-1][0] if wall else None)}


def claims_markdown(found: dict[str, Any], *, scale: str = "quick") -> str:
    """One line per preset: the claim, its verdict and the numbers."""
    if scale == "quick":
        head = (f"The method's point (GenSeg's mean `dice_per_image` beats seg-only by >= {CLAIM_MARGIN} and is >= "
                "the AE baseline, 3 seeds):")
    else:
        head = "The method's point (means over the seeds that did not collapse; a verdict needs 3 seeds):"
    lines = [head, ""]
    for preset, c in found.items():
        if c["n"] == 0:
            lines.append(f"- {preset}: not yet measured" + (" (baselines missing)" if c.get("reach") else ""))
            if c.get("reach"):
                lines.append(f"  - {_reach_text(c['reach'])}")
            continue
        verdict = {True: "holds", False: "does not hold", None: f"provisional, {c['n']} seed(s)"}[c["holds"]]
        if scale == "quick":
            lines.append(f"- {preset}: {verdict} (GenSeg {c['genseg']:.3f}, seg-only {c['seg_only']:.3f}, "
                         f"difference {c['genseg'] - c['seg_only']:+.3f}; AE {c['ae']:.3f})")
            continue
        nums = ", ".join(f"{METHOD_LABELS.get(m, m)} {c[m]:.3f}" for m in METHODS if m in c)
        checks = "; ".join(f"{name}: {'yes' if ok else 'no'}" for name, ok in c["checks"].items())
        missing = f"; not run: {', '.join(c['not_run'])}" if c["not_run"] else ""
        lines.append(f"- {preset}: {verdict} ({c['metric']}: {nums}. {checks}{missing})")
        if c.get("reach"):
            lines.append(f"  - {_reach_text(c['reach'])}")
    return "\n".join(lines) + "\n"


def _reach_text(r: dict[str, Any]) -> str:
    """One sentence on when GenSeg's validation curve reaches the claim's floor."""
    head = f"GenSeg's validation curve (mean over {r['n_seeds']} seed(s)) and the floor {r['target']}: "
    if r["status"] == "reached":
        return head + f"reached at step {r['step']:,}."
    if r["status"] == "too few points":
        return head + "too few validation points to say when."
    slope = (f"{r['slope_per_1000_steps']:+.3f} per 1,000 steps over steps {r['fit_from_step']:,} on "
             "(straight-line fit)")
    if r["status"] == "not rising":
        return head + f"not reached and not rising ({slope}): out of reach at this budget."
    hours = f", about {r['hours_per_run']:.1f} single-thread hours per run" if r.get("hours_per_run") else ""
    return (head + f"not reached; at {slope} it would be near step {r['step']:,}{hours}. Curves flatten, so "
            "that is a lower bound: out of reach of this CPU budget; the `full` preset is the GPU run.")


def _metric(metrics: dict[str, Any], name: str) -> float | None:
    value = metrics.get(name)
    return value.get("mean") if isinstance(value, dict) else value


# -------------------------------------------------------------------------------------------------- table
def _fmt(cell: dict[str, Any] | None, metric: str, *, std: bool = True) -> str:
    if not cell or cell[metric]["mean"] is None:
        return "missing"
    d = cell[metric]
    return f"{d['mean']:.3f} ({d['std']:.3f}, n={d['n']})" if std else f"{d['mean']:.3f}"


def _published(table: dict[str, dict[str, tuple[float, float]]], preset: str, method: str) -> str:
    pub = table.get(PRESET_CONFIG.get(preset, preset), {}).get(method)
    return "–" if pub is None else f"{pub[0]:.2f} ({pub[1]:.2f})"


def _translation(cell: dict[str, Any] | None) -> str:
    if not cell or "translation_start" not in cell:
        return "–"
    steps = cell.get("steps")
    parts = [f"s{seed}: {step if step is not None else f'not by {steps}'}"
             for seed, step in cell["translation_start"].items()]
    return "; ".join(parts)


def table_markdown(summary: dict[str, Any], *, scale: str, presets: tuple[str, ...] | None = None,
                   methods: tuple[str, ...] = METHODS, data: dict[str, Any] | None = None) -> str:
    """One table per preset: methods as rows; ours (published metric first) beside R2 and R3.

    ``data`` (``data_counts``) adds a line per preset with its labelled canvases and distinct sources.
    """
    presets = tuple(p for p in ALL_PRESETS if p in summary) + tuple(sorted(set(summary) - set(ALL_PRESETS))) \
        if presets is None else presets
    lines = [f"# Cluttered MNIST, 1% labelled, scale `{scale}`", "",
             "Main column: pooled soft Dice (`dice_soft_global`, the published metric: sigmoid outputs, sums pooled "
             "over the test split's P images), mean (std, n seeds) at the best validation checkpoint (selected on "
             "validation `dice_soft_global`, the reference criterion). Beside it: hard Dice per P image "
             "(`dice_per_image`, mean over seeds), and on the healthy (A) test images `fp_image_rate` (share "
             "with any predicted pixel) and `fp_area` (mean predicted share of the image). Published: R2 = "
             "journal (MIA 2022), R3 = 2019 slides (seed 000), pooled soft Dice on full MNIST, mean (std) over "
             "3 runs; – = not published. Ours use the embedded 5k digits unless the data line says otherwise.",
             "", f"Runs that collapsed (test `fp_area` > {COLLAPSE_FP_AREA}, or a predicted area on P images > "
             f"{COLLAPSE_AREA_RATIO:g}x the mask area) are left out of the means and listed below. Translation "
             f"starts: the first validation step at which P->A removes >= {TRANSLATION_STARTED:.0%} of the "
             "digit's intensity (`translation/object_removed`), per seed.", ""]
    collapsed = []
    for preset in presets:
        cells = summary.get(preset, {})
        lines.append(f"## {preset}")
        lines.append("")
        d = (data or {}).get(preset)
        if d:
            lines += [f"Data: {d.get('n_labelled_train_p')} labelled training canvases from "
                      f"{d.get('n_distinct_labelled_sources', '?')} distinct source digits (classes "
                      f"{d.get('labeled_digits')}; labels counted per {d.get('label_unit', 'source')}); "
                      f"{d.get('digits')}; samples per split (P + A) {d.get('samples')}.", ""]
        lines += ["| method | soft Dice (ours) | R2 | R3 | hard Dice per image | fp_image_rate | fp_area | "
                  "collapsed | translation starts |", "|---|---|---|---|---|---|---|---|---|"]
        for method in methods:
            c = cells.get(method)
            n_col = len(c["collapsed"]) if c else 0
            lines.append(f"| {METHOD_LABELS[method]} | {_fmt(c, 'dice_soft_global')} | "
                         f"{_published(PUBLISHED, preset, method)} | {_published(PUBLISHED_R3, preset, method)} | "
                         f"{_fmt(c, 'dice_per_image', std=False)} | {_fmt(c, 'fp_image_rate', std=False)} | "
                         f"{_fmt(c, 'fp_area', std=False)} | {n_col if c else '–'} | {_translation(c)} |")
            for r in (c or {}).get("collapsed", []):
                collapsed.append(f"| {preset} | {METHOD_LABELS[method]} | {r['seed']} | {r['reason']} | "
                                 f"{r['dice_soft_global']:.3f} | {r['fp_area']:.3f} |")
        lines.append("")
    lines += ["## Collapsed runs", ""]
    if collapsed:
        lines += ["| preset | method | seed | why | soft Dice | fp_area |", "|---|---|---|---|---|---|", *collapsed]
    else:
        lines.append("None.")
    return "\n".join(lines) + "\n"


# ------------------------------------------------------------------------------------------------- figure
def curves_figure(runs: list[dict[str, Any]], path: Path, *, title: str = "") -> Path | None:
    """Validation pooled soft Dice vs step per method (one line per seed), and GenSeg's translation health,
    one row per preset, from the stored validation rows. None when no run has rows."""
    runs = [r for r in runs if r.get("valid_rows")]
    if not runs:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    presets = _ordered_groups(runs)
    fig, axes = plt.subplots(len(presets), 2, figsize=(12, 3.6 * len(presets)), squeeze=False)
    colours = dict(zip(METHODS, ("tab:gray", "tab:blue", "tab:green", "tab:red", "tab:orange"), strict=True))
    for row, preset in zip(axes, presets, strict=True):
        dice_ax, health_ax = row
        health_lines = 0
        for r in sorted((r for r in runs if r["group"] == preset), key=lambda r: (r["method"], r["seed"])):
            pts = [(v["step"], v["dice_soft_global"]) for v in r["valid_rows"] if v.get("dice_soft_global") is not None]
            if pts:
                dice_ax.plot(*zip(*pts, strict=True), color=colours.get(r["method"]), alpha=0.8, lw=1.2,
                             label=f"{METHOD_LABELS.get(r['method'], r['method'])} s{r['seed']}")
            for key, style in ((TRANSLATION_KEY, "-"), ("translation/residual_on_object", "--"),
                               ("translation/disc_a_fake_acc", ":")):
                pts = [(v["step"], v[key]) for v in r["valid_rows"] if v.get(key) is not None]
                if pts:
                    health_ax.plot(*zip(*pts, strict=True), style, color=colours.get(r["method"]), lw=1.2,
                                   label=f"{key.split('/')[-1]} ({r['method']} s{r['seed']})")
                    health_lines += 1
        dice_ax.set(title=f"{preset}: validation pooled soft Dice", xlabel="step", ylabel="dice_soft_global",
                    ylim=(0, 1))
        dice_ax.legend(fontsize=6, ncol=2)
        health_ax.set(title=f"{preset}: GenSeg translation (validation)", xlabel="step", ylim=(-0.05, 1.05))
        health_ax.axhline(TRANSLATION_STARTED, color="k", lw=0.5)
        if health_lines:
            health_ax.legend(fontsize=6)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
