"""pricing's error type: a message that says what was wrong and how to fix it.

`gpuplan.errors.GpuplanError` derives from it, so gpuplan's one CLI handler prints either as one `Error:` line.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class PricingError(Exception):
    """A problem with the user's input or environment (a catalog file, the cache, AWS); one line with a fix."""

    exit_code = 1

    def __init__(self, message: str, *, exit_code: int | None = None):
        super().__init__(message)
        if exit_code is not None:
            self.exit_code = exit_code


def did_you_mean(name: str, choices: Iterable[str], n: int = 3) -> str:
    """' Did you mean: a, b?' for the nearest names, or '' when nothing is close."""
    close = difflib.get_close_matches(name.lower(), [c.lower() for c in choices], n=n, cutoff=0.5)
    by_lower = {c.lower(): c for c in choices}
    return f" Did you mean: {', '.join(by_lower[c] for c in close)}?" if close else ""


def one_line(err: Exception) -> str:
    """Squash a library error's text onto one line (pydantic, yaml and botocore messages span several)."""
    return " ".join(str(err).split())
