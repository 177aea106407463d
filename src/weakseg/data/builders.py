"""Built-in dataset builders (registered by name for ``data.name``)."""

from __future__ import annotations

from weakseg.config.schema import Config
from weakseg.data.registry import DataBundle, register_dataset


@register_dataset("mnist")
def build_mnist(cfg: Config) -> DataBundle:
    """Cluttered MNIST (``genseg.md`` §9): P images with a whole digit, independent A clutter canvases."""
    from weakseg.data.mnist import ClutterSpec, build_mnist_splits

    m = cfg.data.mnist
    spec = ClutterSpec(canvas=m.canvas, n_clutter=m.n_clutter, size_clutter=m.size_clutter, noise_sigma=m.noise_sigma)
    splits = build_mnist_splits(
        source=m.source, spec=spec, labeled_digits=tuple(m.labeled_digits), labeled_fraction=m.labeled_fraction,
        labeled_count=m.labeled_count, data_seed=cfg.data.data_seed,
        n_train=m.n_train, n_valid=m.n_valid, n_test=m.n_test, label_unit=m.label_unit,
        labeled_sources=m.labeled_sources,
    )
    info = getattr(splits, "info", {})
    return DataBundle(splits=dict(splits), class_names=("digit",), in_channels=1, scoring="image_set",
                      value_range=(-1.0, 2.0), value_range_display=(0.0, 1.0), info=info)


@register_dataset("brats")
def build_brats(cfg: Config) -> DataBundle:
    """A dataset made by ``weakseg convert brats``: hemisphere slices read lazily from memory maps.

    Train holds P and A slices (statuses mask / present / absent by whole-patient labelled fraction);
    valid and test hold P slices (scored for Dice) and A slices (false-positive rates), ``genseg.md`` §12.
    """
    from weakseg.data.brats.dataset import BratsSliceSet, read_index
    from weakseg.errors import WeaksegError

    b = cfg.data.brats
    if not b.root:
        raise WeaksegError("data.brats.root is not set; run `weakseg convert brats SRC DST` and pass "
                           "--set data.brats.root=DST")
    bad = [f"data.brats.{k} must be >= 0, got {getattr(b, k)}" for k in ("volume_every", "volume_patients")
           if getattr(b, k) < 0]
    if bad:
        raise WeaksegError("; ".join(bad))
    index = read_index(b.root)
    splits = {"train": BratsSliceSet(b.root, "train", include="pa")}
    for s in ("valid", "test"):
        splits[s] = BratsSliceSet(b.root, s, include=b.eval_include)
    info = {"root": str(b.root), "channels": index["channel_names"], "slice_shape": index["slice_shape"],
            "region": index["region"], **{s: index["splits"][s]["counts"] for s in splits}}
    if b.augment:
        info["augment"] = "genseg.md §10.2 (data.brats.augment*)"

    return DataBundle(splits=splits, class_names=tuple(index["class_names"]), in_channels=len(index["channel_names"]),
                      scoring="image_set", value_range=(-1.0, 1.0), value_range_display=(-1.0, 1.0), info=info,
                      volume_scoring="brats_volumes", volume_every=b.volume_every)


@register_dataset("organs")
def build_organs(cfg: Config) -> DataBundle:
    """Partially annotated multi-organ CT (nnU-Net raw layout) as 2D axial slices (``smile.md`` §11)."""
    from weakseg.data.organs import load_organs
    from weakseg.errors import WeaksegError

    o = cfg.data.organs
    if not o.root:
        raise WeaksegError("data.organs.root is not set; point it at an nnU-Net raw dataset folder "
                           "(e.g. --set data.organs.root=data/Dataset901_Phantom)")
    d = load_organs(o.root, classes=o.classes, status_overlay=o.status_overlay, fold=o.fold, n_folds=o.n_folds,
                    n_valid=o.n_valid, seed=cfg.data.data_seed, hu_window=o.hu_window, full_labels=o.full_labels,
                    valid_reference=o.valid_reference)
    return DataBundle(splits=dict(d.splits), class_names=d.class_names, in_channels=1, scoring="organs",
                      value_range=(0.0, 1.0), value_range_display=(0.0, 1.0), info=d.info, contract=d.contract)
