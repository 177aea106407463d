"""PNG panels: faint model outputs stay visible, the legend is inside the picture."""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image

from weakseg.inference.panels import FALSE_POSITIVE, HIT, MASK_LEGEND, MISSED, display_window, method_panels, \
    render_panels


def _segment(x: torch.Tensor) -> torch.Tensor:
    return (x[:, :1] - 0.5) * 8          # logits: bright pixels predicted


def _panels_with(output: torch.Tensor):
    return lambda x_p, x_a: {"P reconstruction": output}


def _images(n: int = 3, size: int = 16) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    x_p = torch.rand(n, 1, size, size, generator=g)
    return x_p, (x_p > 0.7).float(), torch.rand(n, 1, size, size, generator=g) * 0.3


def test_a_faint_reconstruction_is_not_drawn_flat() -> None:
    """The AE's reconstruction near 0 everywhere (|x| < 0.02) drew as a black column in the [0, 1] window."""
    x_p, m_p, x_a = _images()
    faint = (torch.rand(3, 1, 16, 16, generator=torch.Generator().manual_seed(1)) - 0.5) * 0.03
    p_cols, _ = method_panels(_segment, _panels_with(faint), x_p, m_p, x_a, value_range=(0.0, 1.0))
    (name,) = [k for k in p_cols if k.startswith("P reconstruction")]
    assert "stretched" in name
    for tile, out in zip(p_cols[name], faint, strict=True):
        assert tile.min() < tile.max(), "a non-constant model output drew as a constant picture"
        # the drawing keeps the output's order: brightest pixel of the output is the brightest of the tile
        assert tile[..., 0].flat[int(out[0].argmax())] == tile.max()


def test_a_reconstruction_in_range_keeps_the_image_window() -> None:
    x_p, m_p, x_a = _images()
    p_cols, _ = method_panels(_segment, _panels_with(x_p.clone()), x_p, m_p, x_a, value_range=(0.0, 1.0))
    assert "P reconstruction" in p_cols                     # no stretch note: drawn like the input image
    assert all(np.array_equal(a, b) for a, b in zip(p_cols["P reconstruction"], p_cols["P image"], strict=True))


def test_a_constant_output_stays_constant_without_dividing_by_zero() -> None:
    x_p, m_p, x_a = _images()
    p_cols, _ = method_panels(_segment, _panels_with(torch.zeros_like(x_p)), x_p, m_p, x_a, value_range=(0.0, 1.0))
    assert all(t.min() == t.max() == 0 for t in p_cols["P reconstruction"])
    assert display_window(torch.full((2, 1, 4, 4), 0.3), 0.0, 1.0) == (0.0, 1.0, False)


def test_a_faint_residual_is_stretched_symmetrically() -> None:
    lo, hi, stretched = display_window(torch.tensor([-0.01, 0.004]), -1.0, 1.0, centred=True)
    assert stretched and lo == -hi and abs(hi - 0.01) < 1e-6


def test_the_legend_is_drawn_inside_the_png(tmp_path) -> None:
    x_p, m_p, x_a = _images(size=48)
    p_cols, _ = method_panels(_segment, None, x_p, m_p, x_a)
    bare = Image.open(render_panels(p_cols, tmp_path / "bare.png", title="t"))
    path = render_panels(p_cols, tmp_path / "legend.png", title="t", legend=MASK_LEGEND)
    with_legend = np.asarray(Image.open(path).convert("RGB"))
    assert with_legend.shape[0] > bare.size[1] and with_legend.shape[1] == bare.size[0]
    below = with_legend[bare.size[1] - 6:]                   # the strip under the images
    for colour in (HIT, FALSE_POSITIVE, MISSED):
        assert (below == np.array(colour, dtype=np.uint8)).all(-1).sum() >= 50, colour
