"""Pictures of what a model does: PNG panels of P and A images with predictions and translations.

Every method shows its P images, predicted masks against the ground truth and its A images with their
predictions; translation methods add their own panels (P->A translation, residual, A->P translation)
through ``Method.panels``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont
from torch import Tensor

# Mask comparison colours (RGB), shared by the overlay and the legend drawn inside the picture.
HIT, FALSE_POSITIVE, MISSED = (40, 200, 40), (220, 40, 40), (40, 90, 230)
MASK_LEGEND: tuple[tuple[str, tuple[int, int, int] | None], ...] = (
    ("hit: predicted and in the ground truth", HIT),
    ("false positive: predicted, not in the ground truth (any pixel on an A image)", FALSE_POSITIVE),
    ("missed: in the ground truth, not predicted", MISSED),
    ("prob: predicted probability, black 0 to white 1", None),
)
FONT_SIZE = 15          # pixels; PIL's built-in bitmap font (about 8 px) was unreadable in a README
STRETCH_BELOW = 0.1     # a panel spanning less than this share of its display window is contrast-stretched


def _cell(h: int, w: int) -> int:
    """Pixels per image pixel: small images (MNIST-48) are drawn larger."""
    return 3 if max(h, w) <= 48 else 2


def _font(size: int = FONT_SIZE) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    try:
        return ImageFont.load_default(size=size)      # FreeType build of Pillow >= 10.1: a scalable font
    except (TypeError, ImportError, OSError):
        return ImageFont.load_default()


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
    out[p & r] = HIT
    out[p & ~r] = FALSE_POSITIVE
    out[~p & r] = MISSED
    return out


def _wrap(draw: ImageDraw.ImageDraw, text: str, font: Any, width: int) -> list[str]:
    """Greedy word wrap of ``text`` to ``width`` pixels (a word longer than the width gets its own line)."""
    lines: list[str] = []
    for word in text.split():
        if lines and draw.textlength(f"{lines[-1]} {word}", font=font) <= width:
            lines[-1] += f" {word}"
        else:
            lines.append(word)
    return lines or [""]


def render_panels(columns: dict[str, list[np.ndarray]], path: str | Path, *, title: str = "",
                  legend: Sequence[tuple[str, tuple[int, int, int] | None]] = ()) -> Path:
    """Draw named columns of equally sized RGB images into one PNG (rows = samples).

    Column names wrap over as many lines as they need; ``legend`` entries (text, colour swatch or None) are
    drawn under the images, so the picture explains itself wherever it is shown.
    """
    names = list(columns)
    n_rows = len(columns[names[0]])
    h, w = columns[names[0]][0].shape[:2]
    cell = _cell(h, w)
    h, w = h * cell, w * cell
    pad = 6
    font = _font()
    line = FONT_SIZE + 4
    width = len(names) * (w + pad) + pad
    probe = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    title_lines = _wrap(probe, title, font, width - 2 * pad) if title else []
    headers = [_wrap(probe, name, font, w) for name in names]
    head = pad + len(title_lines) * line + (pad if title_lines else 0) + max(len(x) for x in headers) * line
    legend_lines = [(_wrap(probe, text, font, width - 2 * pad - (line if colour else 0)), colour)
                    for text, colour in legend]
    foot = (pad + sum(len(lines) for lines, _ in legend_lines) * line) if legend_lines else 0
    canvas = Image.new("RGB", (width, head + n_rows * (h + pad) + pad + foot), "white")
    draw = ImageDraw.Draw(canvas)
    for k, text in enumerate(title_lines):
        draw.text((pad, pad + k * line), text, fill="black", font=font)
    top = head - max(len(x) for x in headers) * line
    for j, name in enumerate(names):
        x0 = pad + j * (w + pad)
        for k, text in enumerate(headers[j]):
            draw.text((x0, top + k * line), text, fill="black", font=font)
        for i, arr in enumerate(columns[name]):
            tile = Image.fromarray(arr).resize((w, h), Image.NEAREST)
            canvas.paste(tile, (x0, head + i * (h + pad)))
    y = head + n_rows * (h + pad) + pad
    for lines, colour in legend_lines:
        x = pad
        if colour is not None:
            draw.rectangle((pad, y + 2, pad + line - 6, y + line - 4), fill=colour, outline="black")
            x += line
        for text in lines:
            draw.text((x, y), text, fill="black", font=font)
            y += line
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


def display_window(images: Tensor, lo: float, hi: float, *, centred: bool = False) -> tuple[float, float, bool]:
    """The grey-level window of a panel column: [lo, hi], or the column's own range when it is faint.

    A column whose values span less than ``STRETCH_BELOW`` of the window (e.g. a reconstruction decoder that
    outputs about 0 everywhere) would draw as one flat grey or black; it is stretched to its own min..max
    (symmetric about 0 when ``centred``) and the column title says so. A constant column stays flat.
    Returns (lo, hi, stretched).
    """
    x = images.detach().float()
    mn, mx = float(x.min()), float(x.max())
    if centred:
        top = max(abs(mn), abs(mx))
        if 0 < 2 * top < STRETCH_BELOW * (hi - lo):
            return -top, top, True
        return -(hi - lo) / 2, (hi - lo) / 2, False
    if 0 < mx - mn < STRETCH_BELOW * (hi - lo) or mn >= hi or mx <= lo:
        return (mn, mx, True) if mx > mn else (lo, hi, False)
    return lo, hi, False


def extra_columns(panels: dict[str, Tensor], *, lo: float, hi: float) -> dict[str, list[np.ndarray]]:
    """Method-specific images (translations, reconstructions in image range, residuals centred on 0).

    A faint column is contrast-stretched (``display_window``) and its name gives the stretched range.
    """
    cols = {}
    for name, imgs in panels.items():
        a, b, stretched = display_window(imgs, lo, hi, centred="residual" in name)
        title = f"{name} (stretched: {a:.2g} black to {b:.2g} white)" if stretched else name
        cols[title] = [_to_gray(x, a, b) for x in imgs]
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
