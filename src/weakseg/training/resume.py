"""What ``weakseg train --resume`` continues: the run folder's stored config, not a config file.

A run is planned once (config file + ``--set``) and its resolved config is written to ``RUN/config.yaml``.
Resuming rebuilds that stored config and applies only the ``--set`` given on resume on top of it, the way
nnU-Net's ``--c`` continues a run as it was planned: a run started with ``--set train.steps=60`` stops at
60 when resumed, whatever the config file says. A config file given with ``--resume`` is only checked
against the stored run (keys that change what is learned must agree); its other values do not override
the stored ones. Every start and resume appends one line to ``RUN/config_history.jsonl`` (time, step,
the ``--set`` list, the keys that changed with their old and new values).
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from weakseg.config.io import (
    apply_overrides,
    config_from_dict,
    diff_configs,
    parse_override,
    to_dict,
    upgrade_stored_config,
    validate_config,
)
from weakseg.config.schema import Config
from weakseg.errors import WeaksegError

_log = logging.getLogger("weakseg")
HISTORY_FILE = "config_history.jsonl"


def stored_config_dict(run_dir: str | os.PathLike[str]) -> dict[str, Any]:
    """The resolved config of a run folder: ``config.yaml``, else the one inside ``checkpoints/last.pt``.

    Completed to today's schema (``upgrade_stored_config``) so runs stored by earlier versions resume too.
    """
    run_dir = Path(run_dir)
    path = run_dir / "config.yaml"
    if path.is_file():
        try:
            raw = yaml.safe_load(path.read_text(encoding="utf-8"))
        except yaml.YAMLError as err:
            raise WeaksegError(f"{path}: the run's stored config is not valid YAML ({str(err).splitlines()[0]}); "
                               "restore it or pass the original CONFIG with --resume") from None
        if not isinstance(raw, dict):
            raise WeaksegError(f"{path}: the run's stored config is not a mapping of sections; restore it or "
                               "pass the original CONFIG with --resume")
        return upgrade_stored_config(raw)
    last = run_dir / "checkpoints" / "last.pt"
    if last.is_file():
        from weakseg.training.checkpoint import load_checkpoint   # noqa: PLC0415 (torch-heavy)

        return upgrade_stored_config(load_checkpoint(last)["config"])
    if not run_dir.is_dir():
        raise WeaksegError(f"--resume: run folder {run_dir} does not exist; give the --out folder of a weakseg "
                           "train run, or start a new run with CONFIG")
    raise WeaksegError(f"--resume: {run_dir} holds neither config.yaml nor checkpoints/last.pt; it is not a run "
                       "folder: start a new run with CONFIG --out " + str(run_dir))


def resume_config(run_dir: str | os.PathLike[str], overrides: Sequence[str] = (), *,
                  config_file: str | os.PathLike[str] | None = None,
                  resumable: Sequence[str] = ()) -> tuple[Config, dict[str, Any]]:
    """The config a resume continues: the run's stored config with ``overrides`` (``--set``) on top.

    ``config_file`` (optional) is loaded with the same overrides and compared with the stored config:
    a difference outside ``resumable`` is an error naming the keys; differences in ``resumable`` keys that
    the overrides do not set are reported in the returned record (``ignored_from_file``) and logged, and
    the stored values continue.

    Returns (config, record) where record holds ``overrides``, ``config_file`` and ``ignored_from_file``.
    """
    stored = stored_config_dict(run_dir)
    for text in overrides:                        # fail on a malformed --set before anything else
        parse_override(text)
    cfg = config_from_dict(apply_overrides(stored, overrides))
    validate_config(cfg)
    record: dict[str, Any] = {"overrides": list(overrides), "config_file": None, "ignored_from_file": {}}
    if config_file is not None:
        from weakseg.config.io import load_config   # noqa: PLC0415

        record["config_file"] = str(config_file)
        from_file = to_dict(load_config(config_file, overrides))
        differ = diff_configs(stored, from_file)
        fixed = [k for k in differ if k not in resumable]
        if fixed:
            raise WeaksegError(f"--resume: the config differs from the run's in {', '.join(fixed)} ({config_file} "
                               f"against {Path(run_dir) / 'config.yaml'}); only {', '.join(resumable)} may change "
                               "(or use a new --out folder, or resume without CONFIG to continue the stored run)")
        set_keys = {".".join(parse_override(t)[0]) for t in overrides}
        for key in differ:
            if key not in set_keys:
                record["ignored_from_file"][key] = {"stored": _get(stored, key), "file": _get(from_file, key)}
        for key, v in record["ignored_from_file"].items():
            _log.info(f"--resume: {key} is {v['file']!r} in {config_file} but {v['stored']!r} in the run; the run's "
                      f"value continues (pass --set {key}={v['file']} to change it)")
    return cfg, record


def _get(tree: Mapping[str, Any], dotted: str) -> Any:
    node: Any = tree
    for key in dotted.split("."):
        node = node.get(key) if isinstance(node, Mapping) else None
    return node


def config_changes(before: Mapping[str, Any], after: Mapping[str, Any]) -> dict[str, list[Any]]:
    """``{dotted key: [old, new]}`` for every key whose value differs between two plain config dicts."""
    return {k: [_get(before, k), _get(after, k)] for k in diff_configs(before, after)}


def append_history(run_dir: str | os.PathLike[str], record: Mapping[str, Any]) -> None:
    """Append one JSON line to ``RUN/config_history.jsonl`` (flushed and fsynced: it is the run's record)."""
    path = Path(run_dir) / HISTORY_FILE
    line = json.dumps({"time": time.strftime("%Y-%m-%dT%H:%M:%S%z"), **record}, default=str)
    with open(path, "a", encoding="utf-8") as f:
        f.write(line + "\n")
        f.flush()
        os.fsync(f.fileno())
