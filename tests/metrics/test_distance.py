from __future__ import annotations

import math
from collections.abc import Callable

import pytest
import torch
from monai.metrics import HausdorffDistanceMetric, SurfaceDistanceMetric

from weakseg.metrics.distance import assd, hd95, volume_diagonal_mm
from weakseg.metrics.policy import EmptyCasePolicy


def _blobs(shape: tuple[int, ...], seed: int) -> torch.Tensor:
    """Random non-empty masks (B=2, K=2) with some structure: thresholded smoothed noise."""
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(2, 2, *shape, generator=g)
    pool = torch.nn.functional.avg_pool2d if len(shape) == 2 else torch.nn.functional.avg_pool3d
    m = pool(x, 3, stride=1, padding=1) > 0.55
    assert m.flatten(2).any(-1).all()
    return m


@pytest.mark.parametrize(("shape", "spacing"), [((32, 32), (0.8, 2.5)), ((16, 16, 16), (0.8, 0.8, 2.5))])
def test_hd95_matches_monai_on_non_empty_masks_with_anisotropic_spacing(
    shape: tuple[int, ...], spacing: tuple[float, ...]
) -> None:
    pred, ref = _blobs(shape, 1), _blobs(shape, 2)
    ours = hd95(pred, ref, spacing=spacing)
    theirs = HausdorffDistanceMetric(include_background=True, percentile=95)(pred.float(), ref.float(),
                                                                            spacing=list(spacing))
    torch.testing.assert_close(ours.float(), theirs.float())
    # the spacing matters: the same masks in voxels give different numbers
    assert not torch.allclose(ours, hd95(pred, ref, spacing=None))


def test_assd_matches_monai_symmetric_surface_distance() -> None:
    pred, ref = _blobs((16, 16, 16), 3), _blobs((16, 16, 16), 4)
    ours = assd(pred, ref, spacing=(0.8, 0.8, 2.5))
    theirs = SurfaceDistanceMetric(include_background=True, symmetric=True)(pred.float(), ref.float(),
                                                                            spacing=[0.8, 0.8, 2.5])
    torch.testing.assert_close(ours.float(), theirs.float())


def test_two_cubes_offset_two_voxels_along_a_2_5_mm_axis() -> None:
    ref = torch.zeros(1, 1, 16, 16, 16, dtype=torch.bool)
    pred = torch.zeros_like(ref)
    ref[0, 0, 4:10, 4:10, 4:10] = True
    pred[0, 0, 4:10, 4:10, 6:12] = True  # shifted 2 voxels along z, spacing 2.5 mm there
    assert hd95(pred, ref, spacing=(1.0, 1.0, 2.5)).item() == pytest.approx(5.0)
    assert hd95(pred, ref, spacing=(2.5, 1.0, 1.0)).item() == pytest.approx(2.0)  # z is now 1 mm


def test_volume_diagonal() -> None:
    assert volume_diagonal_mm((240, 240, 155), (1.0, 1.0, 1.0)) == pytest.approx(373.13, abs=0.005)
    assert volume_diagonal_mm((16, 16, 16), (1.0, 1.0, 2.5)) == pytest.approx(math.sqrt(256 + 256 + 1600))
    assert volume_diagonal_mm((3, 4)) == pytest.approx(5.0)


@pytest.mark.parametrize("fn", [hd95, assd])
def test_four_empty_combinations_under_the_policy(fn: Callable[..., torch.Tensor]) -> None:
    shape, spacing = (16, 16, 16), (1.0, 1.0, 2.5)
    diag = math.sqrt(16**2 + 16**2 + 40**2)
    cube = torch.zeros(16, 16, 16, dtype=torch.bool)
    cube[4:8, 4:8, 4:8] = True
    empty = torch.zeros(shape, dtype=torch.bool)
    # (B=4, K=1): both non-empty (identical), missed, false alarm, both empty
    pred = torch.stack([cube, empty, cube, empty])[:, None]
    ref = torch.stack([cube, cube, empty, empty])[:, None]

    default = fn(pred, ref, spacing=spacing)[:, 0]
    assert default[0].item() == 0.0
    assert default[1].item() == pytest.approx(diag)
    assert default[2].item() == pytest.approx(diag)
    assert math.isnan(default[3].item())

    other = fn(pred, ref, spacing=spacing, policy=EmptyCasePolicy(hd_one_empty="nan", hd_both_empty="zero"))[:, 0]
    assert other[0].item() == 0.0
    assert math.isnan(other[1].item()) and math.isnan(other[2].item())
    assert other[3].item() == 0.0


def test_2d_missed_structure_scores_the_image_diagonal() -> None:
    ref = torch.zeros(1, 1, 30, 40, dtype=torch.bool)
    ref[0, 0, 3:5, 3:5] = True
    got = hd95(torch.zeros_like(ref), ref, spacing=(1.0, 1.0))
    assert got.item() == pytest.approx(50.0)


def test_bad_spacing() -> None:
    m = torch.ones(1, 1, 8, 8, dtype=torch.bool)
    with pytest.raises(ValueError, match="one value per spatial axis"):
        hd95(m, m, spacing=(1.0, 1.0, 1.0))
    with pytest.raises(ValueError, match="positive"):
        hd95(m, m, spacing=(0.0, 1.0))
