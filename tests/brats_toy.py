"""BraTS test helpers: the tiny training settings, and a synthetic source, its conversion and a seg_only run with
an untrained checkpoint for the tests of ``predict`` and of its input errors (predict needs weights, not good
ones)."""

from __future__ import annotations

from pathlib import Path

#: the smallest BraTS training settings the tests use (a few CPU seconds per run)
TINY = ["model.width=0.0625", "model.depth=3", "train.batch_size=4", "train.log_every=5", "train.device=cpu"]
#: the converted dataset that tests/data/brats/ shares (its conftest's ``converted``): source shape and options
CONVERTED_SHAPE = (24, 24, 8)
CONVERTED_OPTIONS = {"proportions": (4, 1, 1), "labelled_fraction": 0.3}


def write_untrained_brats_run(root: Path, *, shape: tuple[int, int, int]) -> Path:
    """``root/src`` (2 tumour subjects), ``root/conv`` (converted) and ``root/run/checkpoints/best.pt``."""
    import torch

    from weakseg.config import load_config
    from weakseg.config.io import to_dict
    from weakseg.data.brats.convert import BratsConvertOptions, convert_brats
    from weakseg.data.registry import DataBundle
    from weakseg.data.brats.synthetic import write_synthetic_brats
    from weakseg.methods.registry import build_method
    from weakseg.training.checkpoint import save_checkpoint

    write_synthetic_brats(root / "src", n_subjects=2, n_lgg=0, naming="2020", shape=shape, n_tumour_free=0)
    convert_brats(root / "src", root / "conv", options=BratsConvertOptions(proportions=(1, 0, 1)))
    cfg = load_config("brats/brats_seg_only", [f"data.brats.root={root / 'conv'}", "model.width=0.0625",
                                               "model.depth=2"])
    method = build_method(cfg, DataBundle({}, ("tumour",), 4, "image_set"), torch.device("cpu"))
    save_checkpoint({"config": to_dict(cfg), "models": {k: m.state_dict() for k, m in method.models.items()}},
                    root / "run" / "checkpoints" / "best.pt")
    return root
