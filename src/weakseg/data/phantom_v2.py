"""Phantom preset ``v2``: organs that touch, a visible pancreas and shapes that vary.

The ``v1`` phantom (``weakseg.data.phantom``) keeps its organs apart, paints them as single ellipsoids with
±4 % jitter on a flat 40 HU body, and gives the pancreas 45 HU against that body: a 5 HU contrast under
15 HU noise, nearly invisible. ``v2`` is built to separate the partial-label methods:

- contrast as in CT (unenhanced-like values, HU): liver 60, pancreas 45, stomach wall 40 around 10 HU
  fluid contents (an air pocket in about half the cases), retroperitoneal and subcutaneous fat -100, kidneys 30
  and aorta 40 (unlabelled structures at the pancreas's HU, so intensity alone does not find it), spine
  400, and an abdominal cavity of collapsed bowel loops (35 ± 8 HU, smooth blobs covering 35 % of it, fewer
  towards the upper abdomen where liver and stomach lie) in mesenteric
  fat, with a one-voxel fat plane between every organ and the bowel. The pancreas
  sits in retroperitoneal fat: +145 HU against the fat around it, a contrast-to-noise ratio of 9.7 at the
  default noise σ = 15 HU, except where it touches the stomach (+5 HU against the stomach wall) or the liver
  (-15 HU). Noise is white Gaussian (``noise_hu``) added after a 0.7-voxel in-plane blur (partial volume);
- contact where organs meet in an abdomen: the stomach is moved onto the liver's left lobe and the
  pancreas onto the stomach's posterior wall until they overlap, then the overlap goes to the liver, then
  the stomach (organs are exclusive), so liver-stomach and stomach-pancreas always share a boundary;
- shapes that vary between volumes: every organ is the union of two ellipsoids (liver + left lobe,
  stomach body + antrum, pancreas body/tail + head) whose centres, radii (about ±15-25 %) and rotations are
  drawn per volume, the whole anatomy is bent by a smooth random displacement field (about ±1.5 voxels at
  64 x 64), and the body outline varies by up to 8 %.

Coordinates as in ``v1``: each grid axis spans [-1, 1]; (z, y, x) with y > 0 anterior and x > 0 the
patient's right, so the liver lies right, the stomach anterior left, the pancreas posterior and central.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from scipy import ndimage

from weakseg.data.voxel_grid import voxel_axes

ORGANS: tuple[str, ...] = ("liver", "stomach", "pancreas")
LABELS: dict[str, int] = {"background": 0, "liver": 1, "stomach": 2, "pancreas": 3}

HU: dict[str, float] = {
    "air": -1000.0, "fat": -100.0, "wall": 45.0, "bowel": 35.0, "liver": 60.0, "stomach_wall": 40.0,
    "stomach_content": 10.0, "pancreas": 45.0, "kidney": 30.0, "aorta": 40.0, "spine": 400.0,
}
BOWEL_SHARE = 0.35              # share of the abdominal cavity taken by bowel loops (the rest: mesenteric fat)
BOWEL_TEXTURE_HU = 8.0          # smooth variation of the bowel's HU
BOWEL_CRANIAL_DROP = 1.5        # loops thin out towards the top of the grid (upper abdomen)
WARP = 0.05                     # std of the smooth displacement (normalised units; 0.05 = 1.6 voxels at 64)
BLUR = 0.7                      # in-plane partial-volume blur (voxels), before the noise
MIN_KEPT = 0.6                  # share of each organ's drawn volume that must survive overlaps and the wall
_MAX_TRIES = 100

Ellipsoid = tuple[np.ndarray, np.ndarray, float]       # centre (z, y, x), radii (z, y, x), in-plane angle (deg)


def _smooth_field(rng: np.random.Generator, shape: Sequence[int], scale: Sequence[float]) -> np.ndarray:
    """Unit-variance smooth random field: white noise blurred over ``scale`` (voxels per axis)."""
    field = ndimage.gaussian_filter(rng.standard_normal(tuple(shape)), sigma=scale, mode="wrap")
    return field / max(float(field.std()), 1e-12)


def _ellipsoid(coords: tuple[np.ndarray, ...], centre: np.ndarray, radii: np.ndarray, angle: float) -> np.ndarray:
    z, y, x = coords
    a = np.radians(angle)
    dy, dx = y - centre[1], x - centre[2]
    yr = np.cos(a) * dy - np.sin(a) * dx
    xr = np.sin(a) * dy + np.cos(a) * dx
    return ((z - centre[0]) / radii[0]) ** 2 + (yr / radii[1]) ** 2 + (xr / radii[2]) ** 2 <= 1.0


def _union(coords: tuple[np.ndarray, ...], parts: Sequence[Ellipsoid], shift: Sequence[float] = (0, 0, 0)
           ) -> np.ndarray:
    s = np.asarray(shift, dtype=float)
    return np.logical_or.reduce([_ellipsoid(coords, c + s, r, a) for c, r, a in parts])


def _u(rng: np.random.Generator, lo: float, hi: float) -> float:
    return float(rng.uniform(lo, hi))


def _draw_organs(rng: np.random.Generator) -> dict[str, list[Ellipsoid]]:
    """Two ellipsoids per organ with per-volume centres, radii and angles (normalised units)."""
    def e(c: Sequence[float], r: Sequence[float], a: float) -> Ellipsoid:
        return np.asarray(c, dtype=float), np.asarray(r, dtype=float), a

    lc = (_u(rng, -0.1, 0.1), _u(rng, -0.05, 0.1), _u(rng, 0.38, 0.5))
    liver = [e(lc, (_u(rng, 0.55, 0.75), _u(rng, 0.34, 0.44), _u(rng, 0.3, 0.4)), _u(rng, -20, 20)),
             e((lc[0] + _u(rng, 0.0, 0.2), lc[1] + _u(rng, 0.12, 0.25), lc[2] - _u(rng, 0.3, 0.42)),
               (_u(rng, 0.2, 0.35), _u(rng, 0.12, 0.2), _u(rng, 0.15, 0.28)), _u(rng, -30, 30))]
    sc = (_u(rng, 0.0, 0.2), _u(rng, 0.12, 0.28), -0.75)       # x: start far left, moved onto the liver
    stomach = [e(sc, (_u(rng, 0.38, 0.52), _u(rng, 0.22, 0.3), _u(rng, 0.2, 0.27)), _u(rng, -25, 25)),
               e((sc[0] - _u(rng, 0.15, 0.3), sc[1] + _u(rng, -0.05, 0.08), sc[2] + _u(rng, 0.2, 0.3)),
                 (_u(rng, 0.15, 0.25), _u(rng, 0.1, 0.15), _u(rng, 0.15, 0.22)), _u(rng, -30, 30))]
    pc = (_u(rng, -0.2, 0.0), -0.55, _u(rng, -0.2, -0.05))     # y: start posterior, moved onto the stomach
    pancreas = [e(pc, (_u(rng, 0.18, 0.26), _u(rng, 0.09, 0.12), _u(rng, 0.33, 0.42)), _u(rng, -20, 20)),
                e((pc[0] - _u(rng, 0.0, 0.1), pc[1] + _u(rng, -0.02, 0.04), pc[2] + _u(rng, 0.3, 0.38)),
                  (_u(rng, 0.18, 0.26), _u(rng, 0.1, 0.14), _u(rng, 0.1, 0.14)), 0.0)]
    return {"liver": liver, "stomach": stomach, "pancreas": pancreas}


def _move_until_overlap(coords: tuple[np.ndarray, ...], parts: Sequence[Ellipsoid], onto: np.ndarray, axis: int,
                        *, step: float, limit: float, press: float) -> tuple[np.ndarray, float] | None:
    """Shift ``parts`` along ``axis`` (increasing) in ``step``s until they overlap ``onto``, then ``press``
    further; None if no overlap within ``limit``."""
    shift = [0.0, 0.0, 0.0]
    t = 0.0
    while t <= limit:
        shift[axis] = t
        mask = _union(coords, parts, shift)
        if (mask & onto).any():
            shift[axis] = t + press
            return _union(coords, parts, shift), t + press
        t += step
    return None


def _largest_piece(mask: np.ndarray) -> np.ndarray:
    lab, n = ndimage.label(mask)
    if n <= 1:
        return mask
    sizes = ndimage.sum(mask, lab, index=range(1, n + 1))
    return lab == (1 + int(np.argmax(sizes)))


def _in_plane_dilation(mask: np.ndarray, iterations: int) -> np.ndarray:
    structure = np.zeros((3, 3, 3), dtype=bool)
    structure[1] = ndimage.generate_binary_structure(2, 1)
    return ndimage.binary_dilation(mask, structure=structure, iterations=iterations)


def make_abdomen_v2(
    seed: int,
    shape: Sequence[int],
    spacing: Sequence[float],
    *,
    absent: Sequence[str] = (),
    noise_hu: float = 15.0,
) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    """One ``v2`` volume (see the module docstring); same contract as ``weakseg.data.phantom.make_abdomen``.

    Returns:
        image: (D, H, W) int16 HU; label: (D, H, W) uint8; meta: seed, shape, spacing, preset, absent
        organs, ``beta`` fractions, whether the stomach holds air, and ``touching`` (pairs that share a face).
    """
    rng = np.random.default_rng(seed)
    d, h, w = shape
    z, y, x = voxel_axes(shape)
    full = np.broadcast_to
    warp = [WARP * _smooth_field(rng, shape, (d / 4, h / 5, w / 5)) for _ in range(3)]
    coords = (full(z, shape) + warp[0], full(y, shape) + warp[1], full(x, shape) + warp[2])
    by, bx = 0.80 * _u(rng, 0.92, 1.0), 0.95 * _u(rng, 0.92, 1.0)
    ring = (y / by) ** 2 + (x / bx) ** 2                                         # (1, H, W)
    body, inner, cavity = (full(ring <= r ** 2, shape) for r in (1.0, 0.93, 0.87))
    spine_c = (-0.62 * by / 0.8, 0.0)
    spine = full((y - spine_c[0]) ** 2 + (x - spine_c[1]) ** 2 <= 0.11 ** 2, shape)
    aorta = full((y - spine_c[0] - 0.18) ** 2 + (x - 0.08) ** 2 <= 0.055 ** 2, shape)
    kz = _u(rng, -0.35, 0.05)
    kidneys = np.logical_or.reduce([
        _ellipsoid(coords, np.array([kz, spine_c[0] + 0.12, side * 0.42]), np.array([0.32, 0.13, 0.11]),
                   side * _u(rng, 10, 30)) for side in (-1.0, 1.0)])
    fixed = spine | aorta | kidneys
    step = 1.0 / max(h, w)                                                       # half a voxel in [-1, 1] units

    masks: dict[str, np.ndarray] = {}
    for _ in range(_MAX_TRIES):
        parts = _draw_organs(rng)
        liver = _union(coords, parts["liver"]) & cavity           # organs press against the abdominal wall
        moved = _move_until_overlap(coords, parts["stomach"], liver, 2, step=step, limit=1.2,
                                    press=_u(rng, 0.0, 3 * step))
        if moved is None:
            continue
        drawn = {"liver": liver, "stomach": moved[0]}
        stomach = drawn["stomach"] & cavity & ~liver
        moved = _move_until_overlap(coords, parts["pancreas"], stomach, 1, step=step, limit=0.9,
                                    press=_u(rng, 0.0, 2 * step))
        if moved is None:
            continue
        drawn["pancreas"] = moved[0]
        pancreas = drawn["pancreas"] & cavity & ~liver & ~stomach & ~fixed
        masks = {"liver": _largest_piece(liver), "stomach": _largest_piece(stomach),
                 "pancreas": _largest_piece(pancreas)}
        kept_ok = all(masks[o].sum() >= MIN_KEPT * max(int(drawn[o].sum()), 1) for o in ORGANS)
        touch = (_in_plane_dilation(masks["liver"], 1) & masks["stomach"]).any() and \
            (_in_plane_dilation(masks["stomach"], 1) & masks["pancreas"]).any()
        if kept_ok and touch and all(masks[o].any() for o in ORGANS):
            break
    else:
        raise RuntimeError(f"make_abdomen(preset='v2'): no valid layout in {_MAX_TRIES} draws for seed {seed}, "
                           f"shape {tuple(shape)}")

    jitter = {k: _u(rng, -5, 5) for k in ("liver", "stomach", "pancreas", "body")}
    air_pocket = rng.random() < 0.5
    image = np.full(shape, HU["air"], dtype=np.float64)
    image[body] = HU["wall"] + jitter["body"]
    image[body & ~inner] = HU["fat"]                                             # subcutaneous fat
    # bowel loops in mesenteric fat, fewer towards the upper abdomen (z > 0: liver and stomach level)
    loops = _smooth_field(rng, shape, (d / 8, h / 16, w / 16)) - BOWEL_CRANIAL_DROP * full(z, shape)
    bowel = loops > np.quantile(loops[cavity], 1 - BOWEL_SHARE)
    texture = _smooth_field(rng, shape, (d / 8, h / 16, w / 16))
    image[cavity] = np.where(bowel, HU["bowel"] + BOWEL_TEXTURE_HU * texture, HU["fat"])[cavity]
    retro = cavity & full(((y - spine_c[0]) / 0.42) ** 2 + (x / 0.8) ** 2 <= 1.0, shape)   # retroperitoneum
    organs = masks["liver"] | masks["stomach"] | masks["pancreas"]
    # fat around the pancreas and kidneys (retroperitoneal, perirenal) and a fat plane (omentum, mesentery)
    # between every organ and the bowel: organs show their outline except where they touch each other
    fat = (retro | _in_plane_dilation(masks["pancreas"], 2) | _in_plane_dilation(kidneys, 2)
           | _in_plane_dilation(organs, 1)) & cavity & ~organs
    image[fat] = HU["fat"]
    image[kidneys & cavity] = HU["kidney"]
    image[aorta & cavity] = HU["aorta"]
    image[spine & body] = HU["spine"]
    label = np.zeros(shape, dtype=np.uint8)
    if "liver" not in absent:
        image[masks["liver"]] = HU["liver"] + jitter["liver"]
    if "stomach" not in absent:
        s = masks["stomach"]
        structure = np.zeros((3, 3, 3), dtype=bool)
        structure[1] = ndimage.generate_binary_structure(2, 1)
        inside = ndimage.binary_erosion(s, structure=structure)
        image[s] = HU["stomach_wall"] + jitter["stomach"]
        image[inside] = HU["stomach_content"] + jitter["stomach"]
        if air_pocket:                                                           # anterior, where air rises
            top = np.quantile(np.broadcast_to(y, shape)[inside], 0.75) if inside.any() else 1.0
            image[inside & full(y >= top, shape)] = HU["air"]
    if "pancreas" not in absent:
        image[masks["pancreas"]] = HU["pancreas"] + jitter["pancreas"]
    for organ in ORGANS:
        if organ not in absent:
            label[masks[organ]] = LABELS[organ]
    image = ndimage.gaussian_filter(image, sigma=(0.0, BLUR, BLUR))
    image += rng.normal(0.0, noise_hu, shape)
    image = np.clip(np.rint(image), -1024, 3071).astype(np.int16)

    pairs = [("liver", "stomach"), ("stomach", "pancreas"), ("liver", "pancreas")]
    meta = {
        "seed": int(seed), "shape": [int(s) for s in shape], "spacing": [float(s) for s in spacing], "axes": "zyx",
        "preset": "v2", "absent": sorted(set(absent)),
        "beta": {o: float((label == LABELS[o]).sum() / label.size) for o in ORGANS},
        "air_pocket": bool(air_pocket and "stomach" not in absent),
        "touching": [f"{a}-{b}" for a, b in pairs if (_in_plane_dilation(masks[a], 1) & masks[b]).any()],
    }
    return image, label, meta
