"""The one error type users see: a message that says what was wrong and how to fix it."""

from __future__ import annotations

from pricing.errors import PricingError, did_you_mean, one_line

__all__ = ["GpuplanError", "PricingError", "did_you_mean", "one_line"]


class GpuplanError(PricingError):
    """A problem with the user's input or environment; the CLI prints it as one `Error:` line.

    A PricingError (the price catalog's own error) is printed the same way: the CLI's handler catches the base.
    """
