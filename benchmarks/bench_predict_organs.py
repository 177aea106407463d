"""Organ volume prediction speed and memory: ``weakseg predict`` on one CT-sized volume (512 x 512 x 100).

The model is the organs configs' network (``configs/organs/base.yaml``: seg_only encoder-decoder, width
0.0625, depth 4, three classes) with its initial weights: speed and memory do not depend on training.
The volume is synthetic CT (an LPS-stored body ellipse with organ-like blobs, int16 HU). Each setting
runs in a fresh process (``--worker``) so the peak resident set size belongs to that setting alone.

Reported per setting: seconds per volume (the whole ``predict_folder`` call: read, preprocess, model,
decode, write .nii.gz), volumes/s, slices/s, the peak RSS of the process and its peak above the RSS
after the model was loaded; on CUDA, the peak allocated GPU memory; and the seconds of the in-memory part
alone (``OrganPredictor.predict_volume``: no NIfTI read or write). Settings: labels only with predict's
default batches (the run's ``eval.batch_size``, 64, capped at 4 slices of 512 x 512) and with 16 slices
(``--batch-size 16``); ``--save-probabilities`` (one float32 volume per class, (I, J, K, 3) on disk); flip
TTA.

Run: ``OMP_NUM_THREADS=1 python benchmarks/bench_predict_organs.py [--device cpu|cuda] [--depth 100]``
writes ``results/bench_predict_organs_<device>.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import RESULTS, peak_memory_mib, record, sync  # noqa: E402

SETTINGS = {"labels": {}, "probabilities": {"probabilities": True}, "tta": {"tta": True},
            "labels_batch4": {"batch_size": 4}, "labels_batch16": {"batch_size": 16}}


def make_run(folder: Path, *, batch_size: int) -> Path:
    """A run folder holding the organs network with initial weights and its data contract."""
    import torch

    from weakseg.config import load_config
    from weakseg.config.io import to_dict
    from weakseg.models.registry import create_model
    from weakseg.training.checkpoint import save_checkpoint

    cfg = load_config("organs/smile", ["data.organs.root=/nonexistent", f"eval.batch_size={batch_size}"])
    torch.manual_seed(0)
    net = create_model(cfg.model.name, in_channels=1, num_classes=3, width=cfg.model.width, depth=cfg.model.depth,
                       **cfg.model.kwargs)
    contract = {"kind": "organs", "format": 1, "channel_names": ["CT"], "class_names": ["liver", "stomach", "pancreas"],
                "labels": {"background": 0, "liver": 1, "stomach": 2, "pancreas": 3},
                "hu_window": list(cfg.data.organs.hu_window), "orientation": "RAS", "slice_axis": 2,
                "file_ending": ".nii.gz", "slice_shape": None}
    save_checkpoint({"config": to_dict(cfg), "models": {"segmenter": net.state_dict()}, "data_contract": contract},
                    folder / "run" / "checkpoints" / "best.pt")
    return folder / "run"


def make_volume(folder: Path, *, size: int, depth: int) -> Path:
    """A synthetic CT stored in LPS order (x and y flipped relative to RAS), 0.8 x 0.8 x 2.5 mm, int16 HU."""
    import nibabel as nib
    import numpy as np

    rng = np.random.default_rng(0)
    x, y = np.meshgrid(np.linspace(-1, 1, size), np.linspace(-1, 1, size), indexing="ij")
    body = (x / 0.85) ** 2 + (y / 0.65) ** 2 < 1
    liver = ((x + 0.35) / 0.3) ** 2 + ((y - 0.05) / 0.25) ** 2 < 1
    image = np.where(body, 40, -1000).astype(np.int16)[:, :, None].repeat(depth, 2)
    image[liver[:, :, None].repeat(depth, 2)] = 60
    image += rng.normal(0, 15, image.shape).astype(np.int16)
    affine = np.diag([-0.8, -0.8, 2.5, 1.0])
    img = nib.Nifti1Image(image, affine)
    img.set_qform(affine, code=1)
    img.set_sform(affine, code=1)
    (folder / "imagesTs").mkdir(parents=True, exist_ok=True)
    nib.save(img, folder / "imagesTs" / "ct_0000.nii.gz")
    return folder / "imagesTs"


def worker(args: argparse.Namespace) -> dict:
    import torch

    from weakseg.inference.predict import predict_folder
    from weakseg.inference.predict_organs import load_organ_predictor

    device = torch.device(args.device)
    opts = SETTINGS[args.setting]
    load_organ_predictor(args.run, device=args.device)            # imports and first weights read
    import weakseg.data.organs  # noqa: F401  (what the first call would import: not the prediction's memory)
    import weakseg.evaluation  # noqa: F401
    import weakseg.losses.partial_label  # noqa: F401
    base_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    times = []
    for i in range(args.repeats):
        out = Path(args.out) / f"{args.setting}_{i}"
        sync(device)
        t0 = time.perf_counter()
        predict_folder(args.run, args.input, out, device=args.device, progress=False, **opts)
        sync(device)
        times.append(time.perf_counter() - t0)
    mem = peak_memory_mib(device)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    # the in-memory part alone (reorient, window, model, decode, back to the input order): no read, no write
    import nibabel as nib

    img = nib.load(next(Path(args.input).iterdir()))
    image = img.get_fdata(dtype="float32")
    predictor, _ = load_organ_predictor(args.run, device=args.device, batch_size=opts.get("batch_size"),
                                        tta=bool(opts.get("tta")))
    sync(device)
    t0 = time.perf_counter()
    predictor.predict_volume(image, img.affine, with_probabilities=bool(opts.get("probabilities")))
    sync(device)
    in_memory = time.perf_counter() - t0
    sec = min(times)
    return {"setting": args.setting, "seconds_per_volume": round(sec, 2), "all_seconds": [round(t, 2) for t in times],
            "volumes_per_s": round(1 / sec, 4), "slices_per_s": round(args.depth / sec, 1),
            "in_memory_seconds": round(in_memory, 2),
            "peak_rss_mib": round(peak, 1), "peak_rss_above_loaded_mib": round(peak - base_rss, 1), **mem}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="cpu")
    p.add_argument("--size", type=int, default=512)
    p.add_argument("--depth", type=int, default=100)
    p.add_argument("--batch-size", type=int, default=64, help="the run's eval.batch_size (organs configs: 64)")
    p.add_argument("--repeats", type=int, default=2, help="calls per setting; the fastest is reported (the first "
                                                              "pays one-off imports)")
    p.add_argument("--settings", default="labels,probabilities,tta,labels_batch16")
    p.add_argument("--out", type=Path, default=None, help="results JSON (default results/bench_predict_organs_<dev>.json)")
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--setting", help=argparse.SUPPRESS)
    p.add_argument("--run", help=argparse.SUPPRESS)
    p.add_argument("--input", help=argparse.SUPPRESS)
    p.add_argument("--work", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.worker:
        args.out = args.work
        print(json.dumps(worker(args)))
        return
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench_predict_") as tmp:
        tmp = Path(tmp)
        run = make_run(tmp, batch_size=args.batch_size)
        inp = make_volume(tmp, size=args.size, depth=args.depth)
        for setting in args.settings.split(","):
            cmd = [sys.executable, __file__, "--worker", "--setting", setting, "--run", str(run), "--input", str(inp),
                   "--work", str(tmp / "out"), "--device", args.device, "--depth", str(args.depth),
                   "--repeats", str(args.repeats)]
            res = subprocess.run(cmd, check=True, capture_output=True, text=True, env=os.environ.copy())
            row = json.loads(res.stdout.strip().splitlines()[-1])
            rows.append(row)
            print(f"{setting:>13}: {row['seconds_per_volume']:.1f} s/volume ({row['slices_per_s']:.1f} slices/s; "
                  f"{row['in_memory_seconds']:.1f} s without reading and writing), "
                  f"peak RSS {row['peak_rss_mib']:.0f} MiB (+{row['peak_rss_above_loaded_mib']:.0f} MiB over the "
                  f"loaded model)" + (f", GPU {row['cuda_max_allocated_mib']} MiB" if "cuda_max_allocated_mib" in row
                                      else ""))
    volume_mib = args.size * args.size * args.depth * 4 / 2**20
    out = args.out or RESULTS / f"bench_predict_organs_{args.device.split(':')[0]}.json"
    rec = record("predict_organs", config={"size": args.size, "depth": args.depth, "batch_size": args.batch_size,
                                           "model": "configs/organs/base.yaml (seg_only, width 0.0625, depth 4)",
                                           "classes": 3, "device": args.device, "repeats": args.repeats,
                                           "omp_num_threads": os.environ.get("OMP_NUM_THREADS")},
                 one_float32_volume_mib=round(volume_mib, 1), results=rows, seed=0)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(rec, indent=1) + "\n")
    print(f"one float32 volume = {volume_mib:.0f} MiB; wrote {out}")


if __name__ == "__main__":
    main()
