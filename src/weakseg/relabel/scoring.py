"""Scores for SMILEr's selection: sigmoid probabilities and MC-dropout mean/std (smile.md §8.2, §9.1).

Written against any ``model(images) -> logits`` callable with K sigmoid channels, so it works with
every segmenter; MC-dropout additionally needs an ``nn.Module`` holding ``nn.Dropout*`` modules.
MC-dropout follows Gal & Ghahramani (ICML 2016) as used on the SMILE slides: the model in eval mode
(batch norm frozen) with only its dropout modules switched back to training, N stochastic passes, the
per-pixel mean and standard deviation of sigmoid(z).

``pos_weight`` (``smile.calibrate_pos_weight``): scores are sigmoid(z - log pos_weight_k), the probabilities
that decoding also uses (``weakseg.evaluation.decode.calibrated_sigmoid``), so "p > tau" and the ranking
mean the same thing for every class.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager

import torch
from torch import Tensor, nn

from weakseg.evaluation.decode import calibrated_sigmoid

DROPOUT_TYPES: tuple[type[nn.Module], ...] = (
    nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.Dropout3d, nn.AlphaDropout, nn.FeatureAlphaDropout,
)

Model = Callable[[Tensor], Tensor]


def _model_device(model: Model, images: Tensor) -> torch.device:
    if isinstance(model, nn.Module):
        for tensor in (*model.parameters(), *model.buffers()):
            return tensor.device
    return images.device


def _logits(model: Model, x: Tensor) -> Tensor:
    out = model(x)
    if not isinstance(out, Tensor):
        raise TypeError(f"the scoring model must return a logits tensor (B, K, *S), got {type(out).__name__}; "
                        "wrap the model in a function returning its segmentation logits")
    return out


@contextmanager
def eval_mode(model: Model) -> Iterator[None]:
    """``model.eval()`` inside the block (when it is a module), previous flags restored afterwards."""
    if not isinstance(model, nn.Module):
        yield
        return
    flags = {m: m.training for m in model.modules()}
    model.eval()
    try:
        yield
    finally:
        for m, flag in flags.items():
            m.train(flag)


@contextmanager
def mc_dropout_mode(model: nn.Module, p: float | None = None) -> Iterator[int]:
    """Eval mode (batch norm uses running statistics) with only the ``nn.Dropout*`` modules training.

    ``p``: the drop probability of every dropout module inside the block (None: the one it was built
    with); the modules' own values are restored afterwards. Yields the number of dropout modules;
    raises ``ValueError`` when there is none.
    """
    dropouts = [m for m in model.modules() if isinstance(m, DROPOUT_TYPES)]
    if not dropouts:
        raise ValueError("MC-dropout scoring needs a model with at least one nn.Dropout module; build the "
                         "segmenter with dropout (model.kwargs.dropout > 0) or use smiler.score=prob")
    if p is not None and not 0.0 < p < 1.0:
        raise ValueError(f"MC-dropout p must be in (0, 1), got {p!r}")
    built = [m.p for m in dropouts]
    with eval_mode(model):
        try:
            for m in dropouts:
                m.train(True)
                if p is not None:
                    m.p = p
            yield len(dropouts)
        finally:
            for m, value in zip(dropouts, built):
                m.p = value


@torch.no_grad()
def probability_scores(
    model: Model,
    images: Tensor,
    *,
    batch_size: int = 16,
    out_device: torch.device | str = "cpu",
    pos_weight: Sequence[float] | None = None,
) -> Tensor:
    """sigmoid(model(images)) in eval mode, batched (sigmoid(z - log pos_weight) with ``pos_weight``).

    Shape:
        images: (N, C, *S). Returns (N, K, *S) float32 on ``out_device``.
    """
    device = _model_device(model, images)
    parts = []
    with eval_mode(model):
        for start in range(0, images.shape[0], batch_size):
            x = images[start:start + batch_size].to(device)
            parts.append(calibrated_sigmoid(_logits(model, x), pos_weight=pos_weight).to(out_device))
    return torch.cat(parts) if parts else images.new_zeros((0,))


@torch.no_grad()
def mc_dropout_scores(
    model: nn.Module,
    images: Tensor,
    *,
    samples: int = 10,
    seed: int = 0,
    p: float | None = None,
    batch_size: int = 16,
    out_device: torch.device | str = "cpu",
    pos_weight: Sequence[float] | None = None,
) -> tuple[Tensor, Tensor]:
    """Mean and standard deviation of sigmoid(z) (sigmoid(z - log pos_weight) with ``pos_weight``) over
    ``samples`` MC-dropout passes.

    ``p`` overrides the drop probability of the model's dropout modules during the passes (None: keep
    the one the model was trained with).

    Dropout masks come from a forked, seeded global RNG (dropout modules draw from it): the same seed,
    images and batch size give the same scores, and the caller's RNG state is left unchanged. The std is
    the population std (divisor N).

    Shape:
        images: (N, C, *S). Returns mean, std: (N, K, *S) float32 on ``out_device``.
    """
    if samples < 2:
        raise ValueError(f"mc_dropout_scores: samples must be >= 2 for a standard deviation, got {samples}")
    device = _model_device(model, images)
    devices = [device.index if device.index is not None else torch.cuda.current_device()] if device.type == "cuda" \
        else []
    means, stds = [], []
    with torch.random.fork_rng(devices=devices), mc_dropout_mode(model, p):
        torch.manual_seed(seed)
        for start in range(0, images.shape[0], batch_size):
            x = images[start:start + batch_size].to(device)
            mean = m2 = None
            for i in range(samples):                                  # Welford's running mean and variance
                p = calibrated_sigmoid(_logits(model, x), pos_weight=pos_weight)   # (b, K, *S)
                if mean is None:
                    mean, m2 = p.clone(), torch.zeros_like(p)
                    continue
                delta = p - mean
                mean += delta / (i + 1)
                m2 += delta * (p - mean)
            means.append(mean.to(out_device))
            stds.append((m2 / samples).clamp_min(0).sqrt().to(out_device))
    if not means:
        empty = images.new_zeros((0,))
        return empty, empty
    return torch.cat(means), torch.cat(stds)
