"""show or edit the label status (weakseg block) of an nnU-Net raw dataset

Without options: the resolved status counts per class. --set FILE applies (case, class, status) rows (JSON
{case: {class: status}} or CSV case,class,status; status: mask, present, absent or unknown) to the weakseg
block of DATASET/dataset.json; --source NAME=CLASSES declares a source (CLASSES comma-separated or 'all'). The
result is validated before dataset.json is replaced; other keys are kept.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("dataset", type=Path, help="an nnU-Net raw dataset folder")
    p.add_argument("--set", dest="set_file", type=Path, default=None, help="JSON or CSV of (case, class, status)")
    p.add_argument("--source", action="append", default=[], metavar="NAME=CLASSES",
                   help="declare a source and its annotated classes, e.g. lits=liver (repeatable)")
    p.add_argument("--dry-run", action="store_true", help="validate and print the block, write nothing")


def run(args: argparse.Namespace) -> int:
    from weakseg.data.formats.nnunet_raw import read_dataset_json
    from weakseg.data.merge import read_status_table, set_statuses, status_counts

    sources = _parse_sources(args.source)
    if args.set_file or sources:
        updates = read_status_table(args.set_file) if args.set_file else {}
        block = set_statuses(args.dataset, updates, sources=sources, dry_run=args.dry_run)
        if args.dry_run:
            print(json.dumps(block, indent=1))
        else:
            print(f"updated {args.dataset / 'dataset.json'}: {len(updates)} case(s), {len(sources)} source(s)")
    if args.dry_run:
        read_dataset_json(args.dataset)      # a dry run, too, fails on a folder without a readable dataset.json
        return 0
    n_cases, counts = status_counts(args.dataset)
    print(f"{n_cases} training case(s); status counts per class:")
    for cls, by_status in counts.items():
        print(f"  {cls}: " + ", ".join(f"{w} {n}" for w, n in by_status.items()))
    return 0


def _parse_sources(items: list[str]) -> dict[str, list[str] | str]:
    """``--source NAME=CLASS1,CLASS2`` or ``NAME=all`` options -> {name: classes or "all"}."""
    from weakseg.errors import WeaksegError

    sources: dict[str, list[str] | str] = {}
    for item in items:
        name, sep, classes = item.partition("=")
        if not sep or not name or not classes:
            raise WeaksegError(f"--source {item!r}: write NAME=CLASS1,CLASS2 or NAME=all")
        sources[name] = "all" if classes == "all" else [c.strip() for c in classes.split(",") if c.strip()]
    return sources
