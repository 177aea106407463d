"""The one exception type for bad user input.

It subclasses ``ValueError`` so library callers can catch either; the CLI prints its message as one
line and exits with status 2, never a traceback.
"""

from __future__ import annotations


class WeaksegError(ValueError):
    """Bad input from a user: a file, a field or a value, with the fix in the message."""
