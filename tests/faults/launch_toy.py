"""Run ``weakseg`` in a subprocess with the toy dataset/method registered, and optional fault injection.

Usage: ``python -m tests.faults.launch_toy train CONFIG --out RUN ...`` (any weakseg arguments).
``WEAKSEG_TEST_FAULT`` injects one fault, deterministically:

- ``step:K``    SIGKILL during step K (after the forward pass, before the update);
- ``ckpt:N``    SIGKILL half-way through writing the N-th checkpoint file (last.pt or best.pt);
- ``replace:N`` SIGKILL after the N-th checkpoint's temporary file is complete, before its rename;
- ``eval:N``    SIGKILL during the N-th validation;
- ``term:K`` / ``int:K``  send SIGTERM / SIGINT to itself during step K (the run should checkpoint and exit).

``WEAKSEG_TEST_SLOW`` (seconds) sleeps at every step so an outside signal lands mid-run; the file named by
``WEAKSEG_TEST_MARKER`` is created when step 1 starts.
"""

from __future__ import annotations

import io
import os
import signal
import sys
import time
from pathlib import Path

import torch

import tests.toy
import weakseg.training.checkpoint as checkpoint
from weakseg.cli.main import main
from weakseg.training.context import LoopContext


def _kill(sig: int = signal.SIGKILL) -> None:
    os.kill(os.getpid(), sig)
    time.sleep(5)   # SIGKILL never returns; a handled signal is processed here


def install(fault: str, slow: float, marker: str | None) -> None:
    kind, _, arg = fault.partition(":")
    n = int(arg) if arg else -1
    counts = {"save": 0, "eval": 0}

    original_update = LoopContext.update

    def update(self, total, terms, optimizers):
        if marker and self.step == 1 and not os.path.exists(marker):
            Path(marker).touch()
        if slow:
            time.sleep(slow)
        if self.step == n and kind == "step":
            _kill()
        if self.step == n and kind in ("term", "int"):
            os.kill(os.getpid(), signal.SIGTERM if kind == "term" else signal.SIGINT)
        return original_update(self, total, terms, optimizers)

    LoopContext.update = update

    original_save = torch.save

    def save(obj, f, *args, **kwargs):
        if isinstance(obj, dict) and "models" in obj:
            counts["save"] += 1
            if kind == "ckpt" and counts["save"] == n:
                buf = io.BytesIO()
                original_save(obj, buf, *args, **kwargs)
                f.write(buf.getvalue()[: len(buf.getvalue()) // 2])
                f.flush()
                os.fsync(f.fileno())
                _kill()
        return original_save(obj, f, *args, **kwargs)

    checkpoint.torch.save = save

    original_replace = os.replace

    def replace(src, dst, *args, **kwargs):
        if kind == "replace" and str(src).endswith(".pt.tmp") and counts["save"] == n:
            _kill()
        return original_replace(src, dst, *args, **kwargs)

    checkpoint.os.replace = replace

    original_eval = tests.toy.toy_evaluate

    def evaluate(*args, **kwargs):
        counts["eval"] += 1
        if kind == "eval" and counts["eval"] == n:
            _kill()
        return original_eval(*args, **kwargs)

    tests.toy.toy_evaluate = evaluate


if __name__ == "__main__":
    install(os.environ.get("WEAKSEG_TEST_FAULT", ""), float(os.environ.get("WEAKSEG_TEST_SLOW", "0")),
            os.environ.get("WEAKSEG_TEST_MARKER"))
    raise SystemExit(main(sys.argv[1:]))
