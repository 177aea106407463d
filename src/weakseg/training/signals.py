"""SIGTERM / SIGINT during training: finish the current step, write ``last.pt``, exit cleanly.

``fit`` installs a ``StopRequest`` for the duration of its loop. The first SIGTERM or SIGINT only sets a
flag; at the end of the current step (after its evaluation and checkpoint, if any) the loop writes
``checkpoints/last.pt`` and raises ``TrainingInterrupted``. The CLI prints one line and exits with
``128 + signal number``: 130 for SIGINT (Ctrl-C), 143 for SIGTERM (``kill``, Slurm, Kubernetes). The run
resumes with ``--resume``. A second signal while the checkpoint is pending interrupts at once
(``KeyboardInterrupt``, exit 130), keeping the previous complete checkpoint.

Handlers are installed only from the main thread (Python's rule); elsewhere signals keep their defaults.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable
from pathlib import Path
from types import FrameType
from typing import Any

HANDLED_SIGNALS: tuple[signal.Signals, ...] = (signal.SIGTERM, signal.SIGINT)


class TrainingInterrupted(Exception):
    """Training stopped on a signal after writing a resumable checkpoint."""

    def __init__(self, signum: int, step: int, checkpoint: Path, *,
                 hint: str = "continue with the same command plus --resume") -> None:
        self.signum, self.step, self.checkpoint = int(signum), int(step), Path(checkpoint)
        name = signal.Signals(self.signum).name
        super().__init__(f"stopped by {name} after step {step}; checkpoint written to {checkpoint}; {hint}")

    def with_hint(self, hint: str) -> TrainingInterrupted:
        """The same stop with another way to continue (a command that resumes by itself, e.g. weakseg demo)."""
        return TrainingInterrupted(self.signum, self.step, self.checkpoint, hint=hint)

    @property
    def exit_code(self) -> int:
        return 128 + self.signum


class StopRequest:
    """Turns SIGTERM/SIGINT into a flag the training loop polls once per step."""

    def __init__(self) -> None:
        self.signum: int | None = None
        self._previous: dict[int, Any] = {}

    @property
    def requested(self) -> bool:
        return self.signum is not None

    def install(self) -> StopRequest:
        if threading.current_thread() is threading.main_thread():
            for sig in HANDLED_SIGNALS:
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def restore(self) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous = {}

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.signum is not None:          # second signal: stop now, the last complete checkpoint stays
            self.restore()
            raise KeyboardInterrupt
        self.signum = signum

    def stop(self, step: int, save: Callable[[], Path]) -> None:
        """When a signal arrived: ``save()`` the checkpoint and raise ``TrainingInterrupted``."""
        if self.signum is None:
            return
        path = save()
        raise TrainingInterrupted(self.signum, step, path)
