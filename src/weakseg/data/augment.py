"""Training augmentation of 2D slices with MONAI transforms (``genseg.md`` §10.2, on for BraTS).

Per image, independently (A and P images, and every image of a batch, draw their own parameters, as the
reference transforms A and P independently):

1. one resampling (MONAI ``Resample``, reflection padding: the reference's reflect fill) through one grid
   made of a rotation (+-``rotate_deg``) and a zoom (1 +- ``zoom``) (MONAI ``create_grid``,
   ``create_rotate``, ``create_scale``) plus an elastic warp: offsets ~ N(0, ``warp_px``) pixels at a 3x3
   grid of control points spanning the slice (the reference's spline warp, sigma 5 on 3x3), bicubic between
   them. The image is resampled bilinear, the mask nearest, through the same grid: it stays binary and
   aligned. [MONAI's ``Rand2DElastic`` is not used: with control points half a slice apart it also zooms
   out (a 40x40 mask grows 1.375x on a 240x120 slice with zero warp, MONAI 1.6.1; MONAI issue #552)];
2. left-right and up-down flips, each with probability 1/2 (``RandFlipd``);
3. intensity shift by uniform(+-``shift``) (``RandShiftIntensityd``) and optional scale by 1 + uniform(+-
   ``scale``) (``RandScaleIntensityd``), on brain voxels only: the brain mask (any channel != 0) goes
   through the same grid (nearest) and the flips, and the background outside it is exactly 0, as at test
   time [ours; the reference shifts the whole slice];
4. clip to [-1, 1] (pitfall #3: clip after augmentation).

Seeded and resumable without stored state: the generator of step ``s``, stream ``i`` and process ``rank``
is seeded from (``train.seed``, s, i, rank), so a resumed run draws the same parameters as an uninterrupted
one. Runs on the device of the batch (MONAI's torch backend: the GPU when the data live there).
"""

from __future__ import annotations

import math
from dataclasses import replace
from typing import TYPE_CHECKING

import numpy as np
import torch

from weakseg.data.batch import Batch

KEYS = ("image", "mask", "brain")       # brain: any channel != 0, resampled nearest like the mask

if TYPE_CHECKING:
    from weakseg.config.schema import Config


class SliceAugment:
    """Random spatial and intensity transforms of (image, mask) pairs of a batch.

    Shape:
        batch.image: (B, C, H, W) float; batch.mask: (B, K, H, W) 0/1 -> the same shapes and dtypes.
    """

    def __init__(self, *, rotate_deg: float = 3.0, zoom: float = 0.1, warp_px: float = 5.0, flips: bool = True,
                 shift: float = 0.1, scale: float = 0.0, seed: int = 0) -> None:
        from monai.transforms import RandFlipd, RandScaleIntensityd, RandShiftIntensityd, Resample  # noqa: PLC0415

        self.seed = int(seed)
        self.warp_px, self.rotate, self.zoom = float(warp_px), math.radians(rotate_deg), float(zoom)
        self._resample = Resample(padding_mode="reflection")
        self._flips = [RandFlipd(keys=KEYS, prob=0.5, spatial_axis=a) for a in (0, 1)] if flips else []
        self._intensity = [*([RandShiftIntensityd(keys="image", offsets=shift, prob=1.0)] if shift > 0 else []),
                           *([RandScaleIntensityd(keys="image", factors=scale, prob=1.0)] if scale > 0 else [])]

    def describe(self) -> str:
        """One line of the settings, for the run's log."""
        return (f"rotation +-{math.degrees(self.rotate):g} deg, zoom +-{self.zoom:g}, warp N(0, {self.warp_px:g} px) "
                f"on 3x3 points, flips {'on' if self._flips else 'off'}, intensity "
                + (", ".join(type(t).__name__ for t in self._intensity) or "unchanged") + ", clip [-1, 1]")

    def generator_seed(self, step: int, stream: int, rank: int = 0) -> int:
        """The numpy seed of one step's stream on one process (resume draws the same numbers)."""
        return (self.seed * 1_000_003 + step * 7_919 + stream * 104_729 + rank * 15_485_863) % (2**32)

    def grid(self, state: np.random.RandomState, shape: tuple[int, int], device: torch.device) -> torch.Tensor:
        """One random sampling grid in MONAI's pixel coordinates (centred). Shape: returns (3, H, W)."""
        from monai.transforms.utils import create_grid, create_rotate, create_scale   # noqa: PLC0415

        angle = state.uniform(-self.rotate, self.rotate)
        factor = 1.0 + state.uniform(-self.zoom, self.zoom)
        offsets = state.normal(0.0, 1.0, size=(1, 2, 3, 3)) * self.warp_px            # (1, 2, 3, 3) pixels
        grid = create_grid(shape, device=device, backend="torch", dtype=torch.float32)  # (3, H, W)
        affine = (create_rotate(2, angle, device=device, backend="torch")
                  @ create_scale(2, (factor, factor), device=device, backend="torch")).float()   # (3, 3)
        grid = (affine @ grid.reshape(3, -1)).reshape(grid.shape)
        if self.warp_px > 0:
            field = torch.nn.functional.interpolate(torch.as_tensor(offsets, dtype=torch.float32, device=device),
                                                    size=shape, mode="bicubic", align_corners=True)[0]  # (2, H, W)
            grid = torch.cat([grid[:2] + field, grid[2:]])
        return grid

    def __call__(self, batch: Batch, *, step: int, stream: int = 0, rank: int = 0) -> Batch:
        from monai.data import get_track_meta, set_track_meta   # noqa: PLC0415

        state = np.random.RandomState(self.generator_seed(step, stream, rank))
        for t in (*self._flips, *self._intensity):
            t.set_random_state(state=state)
        shape = tuple(int(s) for s in batch.image.shape[-2:])
        track = get_track_meta()
        set_track_meta(False)                    # plain tensors: no MetaTensor bookkeeping per image
        try:
            images, masks = [], []
            for img, msk in zip(batch.image.float(), batch.mask):        # (C, H, W), (K, H, W)
                grid = self.grid(state, shape, img.device)
                d = {"image": self._resample(img, grid, mode="bilinear"),
                     "mask": self._resample(msk.float(), grid, mode="nearest"),
                     "brain": self._resample((img != 0).any(0, keepdim=True).float(), grid, mode="nearest")}
                for t in self._flips:
                    d = t(d)
                brain = torch.as_tensor(d["brain"]) > 0.5                # (1, H, W)
                d["image"] = torch.where(brain, d["image"], 0.0)          # background exactly 0, as at test time
                for t in self._intensity:                                 # brain voxels only
                    d = {**d, "image": torch.where(brain, t(d)["image"], d["image"])}
                images.append(torch.as_tensor(d["image"]).clamp(-1.0, 1.0))
                masks.append(torch.as_tensor(d["mask"]).round().to(batch.mask.dtype))
        finally:
            set_track_meta(track)
        return replace(batch, image=torch.stack(images).to(batch.image.dtype), mask=torch.stack(masks))


def build_augment(cfg: Config) -> SliceAugment | None:
    """The training augmentation a config asks for (BraTS ``data.brats.augment``), else None."""
    if cfg.data.name != "brats" or not cfg.data.brats.augment:
        return None
    b = cfg.data.brats
    return SliceAugment(rotate_deg=b.augment_rotate_deg, zoom=b.augment_zoom, warp_px=b.augment_warp_px,
                        flips=b.augment_flips, shift=b.augment_shift, scale=b.augment_scale, seed=cfg.train.seed)
