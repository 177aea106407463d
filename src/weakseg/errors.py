"""The one exception type for bad user input.

It subclasses ``ValueError`` so library callers can catch either; the CLI prints its message as one
line and exits with status 2, never a traceback.
"""

from __future__ import annotations

from collections.abc import Sequence


class WeaksegError(ValueError):
    """Bad input from a user: a file, a field or a value, with the fix in the message."""


def raise_problems(problems: Sequence[str], *, what: str, written: bool = True) -> None:
    """One WeaksegError: a single problem on one line; several listed one per line after a summary.

    Readers collect every problem of every input before raising, so the user fixes them in one pass.
    ``written=True`` adds "nothing written" to the message: callers raise before they write anything.
    """
    note = ", nothing written" if written else ""
    if len(problems) == 1:
        raise WeaksegError(f"{what}: {problems[0]}" + (" (nothing written)" if written else ""))
    if problems:
        raise WeaksegError(f"{what}: {len(problems)} problem(s){note}:\n  " + "\n  ".join(problems))
