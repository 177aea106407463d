"""Pictures of what a model does: PNG panels of P and A images with predictions and translations.

Every method shows its P images, predicted masks against the ground truth and its A images with their
predictions; translation methods add their own panels (P->A translation, residual, A->P translation)
through ``Method.panels``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw
from torch import Tensor

CELL = 2  # each image pixel is drawn as a CELL x CELL block for readable small images


def _to_gray(img: Tensor, lo: float, hi: float) -> np.ndarray:
    """(C, H, W) -> (H, W, 3) uint8, first channel, window [lo, hi]."""
    x = img[0].float().clamp(lo, hi)
    x = (x - lo) / max(hi - lo, 1e-6)
    g = (x.cpu().numpy() * 255).astype(np.uint8)
    return np.repeat(g[..., None], 3, axis=-1)


def _overlay(pred: Tensor, ref: Tensor | None) -> np.ndarray:
    """Mask comparison: green = true positive, red = false positive, blue = missed. (H, W, 3) uint8."""
    p = pred[0].bool().cpu().numpy()
    r = ref[0].bool().cpu().numpy() if ref is not None else np.zeros_like(p)
    out = np.zeros((*p.shape, 3), dtype=np.uint8)
    out[p & r] = (40, 200, 40)
    out[p & ~r] = (220, 40, 40)
    out[~p & r] = (40, 90, 230)
    return out


def render_panels(columns: dict[str, list[np.ndarray]], path: str | Path, *, title: str = "") -> Path:
    """Draw named columns of equally sized RGB images into one PNG (rows = samples)."""
    names = list(columns)
    n_rows = len(columns[names[0]])
    h, w = columns[names[0]][0].shape[:2]
    h, w = h * CELL, w * CELL
    pad, head = 4, 28 if title else 16
    canvas = Image.new("RGB", (len(names) * (w + pad) + pad, head + n_rows * (h + pad) + pad), "white")
    draw = ImageDraw.Draw(canvas)
    if title:
        draw.text((pad, 2), title, fill="black")
    for j, name in enumerate(names):
        x0 = pad + j * (w + pad)
        draw.text((x0, head - 13), name[: max(4, w // 6)], fill="black")
        for i, arr in enumerate(columns[name]):
            tile = Image.fromarray(arr).resize((w, h), Image.NEAREST)
            canvas.paste(tile, (x0, head + i * (h + pad)))
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp.png")
    canvas.save(tmp)
    tmp.replace(path)
    return path


def prediction_columns(images: Tensor, probs: Tensor, masks: Tensor | None, *, threshold: float,
                       lo: float, hi: float, prefix: str) -> dict[str, list[np.ndarray]]:
    """Image, probability map and mask comparison columns for one domain. Shapes: (B, C|1, H, W)."""
    cols = {
        f"{prefix} image": [_to_gray(x, lo, hi) for x in images],
        f"{prefix} prob": [_to_gray(p, 0.0, 1.0) for p in probs],
        f"{prefix} pred vs GT": [_overlay(p > threshold, None if masks is None else m)
                                 for p, m in zip(probs, masks if masks is not None else [None] * len(probs))],
    }
    return cols


def extra_columns(panels: dict[str, Tensor], *, lo: float, hi: float) -> dict[str, list[np.ndarray]]:
    """Method-specific images (translations in image range, residuals centred on 0)."""
    cols = {}
    for name, imgs in panels.items():
        if "residual" in name:
            cols[name] = [_to_gray(x, -(hi - lo) / 2, (hi - lo) / 2) for x in imgs]
        else:
            cols[name] = [_to_gray(x, lo, hi) for x in imgs]
    return cols


@torch.no_grad()
def method_panels(segment, panels_fn, x_p: Tensor, m_p: Tensor, x_a: Tensor, *, threshold: float = 0.5,
                  value_range: tuple[float, float] = (0.0, 1.0)) -> tuple[dict[str, list[np.ndarray]], ...]:
    """Columns for P samples and A samples (each (B, C, H, W); masks (B, 1, H, W))."""
    lo, hi = value_range
    p_cols = prediction_columns(x_p, torch.sigmoid(segment(x_p)[:, :1].float()), m_p, threshold=threshold,
                                lo=lo, hi=hi, prefix="P")
    a_cols = prediction_columns(x_a, torch.sigmoid(segment(x_a)[:, :1].float()), torch.zeros_like(x_a[:, :1]),
                                threshold=threshold, lo=lo, hi=hi, prefix="A")
    if panels_fn is not None:
        extra = panels_fn(x_p, x_a)
        p_extra = {k: v for k, v in extra.items() if k.startswith("P")}
        a_extra = {k: v for k, v in extra.items() if not k.startswith("P")}
        p_cols = {**dict(list(p_cols.items())[:1]), **extra_columns(p_extra, lo=lo, hi=hi),
                  **dict(list(p_cols.items())[1:])}
        a_cols = {**dict(list(a_cols.items())[:1]), **extra_columns(a_extra, lo=lo, hi=hi),
                  **dict(list(a_cols.items())[1:])}
    return p_cols, a_cols
