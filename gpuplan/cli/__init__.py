"""The `gpuplan` command: one Typer sub-module per command group."""

from __future__ import annotations

import os
import sys
from typing import Any

import typer
from typer.core import TyperGroup

from gpuplan import __version__
from pricing.errors import PricingError


class GpuplanGroup(TyperGroup):
    """Every failure a user can cause ends as one `Error: ...` line on stderr and a non-zero exit.

    Overriding `main` (not a wrapper function) means `typer.testing.CliRunner` sees exactly what users see.
    GPUPLAN_DEBUG=1 lets the traceback through.
    """

    def main(self, args: Any = None, prog_name: Any = None, complete_var: Any = None,
             standalone_mode: bool = True, **extra: Any) -> Any:
        try:
            rv = super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        except PricingError as e:  # GpuplanError too: it derives from PricingError
            if os.environ.get("GPUPLAN_DEBUG") == "1":
                raise
            _fail(str(e), e.exit_code)
        except (typer.Abort, KeyboardInterrupt):
            _fail("interrupted", 130)
        except Exception as e:
            # Usage errors (bad flag values, unknown options). Typer vendors click in recent releases, so match
            # click's exception protocol rather than one module's classes.
            if not (hasattr(e, "format_message") and hasattr(e, "exit_code")):
                raise
            ctx = getattr(e, "ctx", None)
            hint = f" (see `{ctx.command_path} --help`)" if ctx is not None else ""
            _fail(e.format_message() + hint, e.exit_code)
        code = rv if isinstance(rv, int) else 0
        if standalone_mode:
            sys.exit(code)
        return code


def _fail(message: str, code: int) -> None:
    typer.echo(f"Error: {' '.join(message.split())}", err=True)
    sys.exit(code)


def examples(*commands: str) -> str:
    """A help epilog of real commands, one a line: `\b` keeps click from re-wrapping them into one paragraph."""
    return "\b\nExamples:\n" + "\n".join(f"  {c}" for c in commands)


app = typer.Typer(
    cls=GpuplanGroup,
    name="gpuplan",
    help="Estimate how long and how much a BERT fine-tune costs on each GPU, fp32 vs mixed precision.",
    epilog=examples(
        "gpuplan estimate --gpu t4 --gpu a10g --spot          # which GPU, precision and market?",
        "gpuplan estimate --calibrate --gpu local --deadline 1 # measured here first, then priced",
        "gpuplan launch --instance g5.xlarge                  # measured on a real GPU, then terminated",
    ),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"gpuplan {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Print the version."),
) -> None:
    """Estimate how long and how much a BERT fine-tune costs on each GPU, fp32 vs mixed precision."""


# Each module adds its commands to `app` when imported; none imports TensorFlow or boto3 at import time.
from gpuplan.cli import calibrate, estimate, gpus, launch, models, prices  # noqa: E402,F401


def main() -> None:
    app()
