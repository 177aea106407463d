"""assemble several nnU-Net raw datasets into one partially annotated dataset

Merge nnU-Net raw datasets with different label sets into DST: labels remapped to one canonical list, case ids
kept (or prefixed), and a dataset.json whose weakseg block records each source's annotated organs (mask; the
others unknown) plus per-case overrides. SPEC is a JSON with labels, sources (root, remap[, annotated,
case_prefix]) and optional status (docs/predict.md). Everything is checked before DST is written; DST appears
complete or not at all.
"""

from __future__ import annotations

import argparse
from pathlib import Path


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("spec", type=Path, help="merge spec JSON")
    p.add_argument("dst", type=Path, help="the merged dataset folder (e.g. nnUNet_raw/Dataset950_Abdomen)")
    p.add_argument("--status", type=Path, default=None,
                   help="per-case overrides applied last: JSON {case: {class: status}} or CSV case,class,status")
    p.add_argument("--link-images", action="store_true", help="symlink image files instead of copying them")
    p.add_argument("--overwrite", action="store_true", help="replace DST when it exists")


def run(args: argparse.Namespace) -> int:
    from weakseg.data.merge import merge_datasets, read_merge_spec, read_status_table

    spec = read_merge_spec(args.spec)
    extra = read_status_table(args.status) if args.status else None
    report = merge_datasets(spec, args.dst, extra_status=extra, overwrite=args.overwrite,
                            link_images=args.link_images)
    for name, s in report["sources"].items():
        print(f"{name}: {s['train']} training + {s['test']} test case(s), annotated {', '.join(s['annotated'])}")
    print(f"wrote {args.dst} ({report['n_train']} training, {report['n_test']} test cases); check it with "
          f"weakseg check {args.dst}")
    return 0
