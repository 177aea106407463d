"""Training progress: a live bar on a terminal, plain timestamped lines in a log file.

tqdm redraws one line with carriage returns, which a log file (``make demo > log``, Slurm, nohup) shows as
one endless line, or nothing when tqdm turns itself off off a terminal. Off a terminal the same bar is
written as one line per ``LINE_INTERVAL_S`` seconds, each with steps done, steps/s and the ETA.
"""

from __future__ import annotations

import sys
from typing import IO, Any

from tqdm.auto import tqdm

LINE_INTERVAL_S = 30.0     # a line per 30 s: a 10-minute demo logs about 20 lines per method


class _Lines:
    """A file-like for tqdm that turns its carriage-return redraws into complete lines."""

    def __init__(self, stream: IO[str]) -> None:
        self.stream = stream

    def write(self, text: str) -> int:
        line = text.replace("\r", "").strip()
        if line:
            self.stream.write(line + "\n")
        return len(text)

    def flush(self) -> None:
        self.stream.flush()


def progress_bar(*, total: int, initial: int, desc: str, show: bool | None,
                 stream: IO[str] | None = None) -> Any:
    """A tqdm bar over training steps. ``show``: True / False force it; None: a bar on a terminal, lines elsewhere.

    Shape: not applicable (steps only).
    """
    stream = stream if stream is not None else sys.stderr
    if show is False:
        return tqdm(total=total, initial=initial, disable=True)
    tty = hasattr(stream, "isatty") and stream.isatty()
    if tty:
        return tqdm(total=total, initial=initial, desc=desc, dynamic_ncols=True, file=stream)
    return tqdm(total=total, initial=initial, desc=desc, file=_Lines(stream), ncols=100, ascii=True,
                mininterval=LINE_INTERVAL_S, maxinterval=LINE_INTERVAL_S * 2,
                unit=" steps", bar_format="{desc}: step {n_fmt}/{total_fmt} ({percentage:.0f}%), {rate_noinv_fmt}, "
                           "elapsed {elapsed}, ETA {remaining}{postfix}")
