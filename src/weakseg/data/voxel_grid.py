"""Normalised coordinates of a voxel grid, shared by the phantom presets (``weakseg.data.phantom``, ``phantom_v2``).

Each axis of a (D, H, W) = (z, y, x) grid spans [-1, 1], increasing with the array index; a coordinate is
that of the voxel's centre.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def voxel_axes(shape: Sequence[int]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Normalised voxel-centre coordinates in [-1, 1] per axis, broadcastable to (D, H, W).

    Shape: z (D, 1, 1), y (1, H, 1), x (1, 1, W).
    """
    d, h, w = shape
    z = ((np.arange(d) + 0.5) / d * 2 - 1)[:, None, None]
    y = ((np.arange(h) + 0.5) / h * 2 - 1)[None, :, None]
    x = ((np.arange(w) + 0.5) / w * 2 - 1)[None, None, :]
    return z, y, x


__all__ = ["voxel_axes"]
