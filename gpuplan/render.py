"""The one renderer: tables (tabulate), JSON and CSV to stdout; notes and progress to stderr.

Core code computes in raw units (seconds, USD, bytes); formatting happens only here.
"""

from __future__ import annotations

import csv
import io
import json
import sys
from collections.abc import Callable, Sequence
from typing import Any

from gpuplan.errors import GpuplanError

FORMATS = ("table", "json", "csv")
Columns = Sequence[tuple[str, str, Callable[[Any], str] | None]]  # (row key, header, formatter or None)


def check_format(fmt: str) -> str:
    if fmt not in FORMATS:
        raise GpuplanError(f"unknown format {fmt!r}; use table, json or csv")
    return fmt


def note(message: str) -> None:
    """A message for the person at the terminal (stderr), never mixed with data."""
    print(message, file=sys.stderr, flush=True)


def out(text: str) -> None:
    sys.stdout.write(text if text.endswith("\n") else text + "\n")
    sys.stdout.flush()


def dumps_json(data: Any) -> str:
    return json.dumps(data, indent=2, default=str)


def table(rows: Sequence[dict[str, Any]], columns: Columns, *, tight: bool = False) -> str:
    """columns: (key, header, formatter or None). tight: a column no wider than its widest cell or header (tabulate
    otherwise pads headers by two), for the views that must fit 100 columns."""
    import tabulate as tb

    body = [[(fmt(r.get(k)) if fmt else _plain(r.get(k))) for k, _, fmt in columns] for r in rows]
    padding, tb.MIN_PADDING = tb.MIN_PADDING, 0 if tight else tb.MIN_PADDING
    try:
        return tb.tabulate(body, headers=[h for _, h, _ in columns], tablefmt="simple", disable_numparse=True)
    finally:
        tb.MIN_PADDING = padding


def emit(rows: Sequence[dict[str, Any]], columns: Columns, fmt: str, *, json_payload: Any = None,
         csv_keys: Sequence[str] | None = None, table_rows: Sequence[dict[str, Any]] | None = None,
         header: str | None = None, footer: str | None = None, tight: bool = False) -> None:
    """The one table/json/csv switch: rows to stdout in `fmt`.

    json_payload: what JSON prints instead of the rows (a whole result); csv_keys: the CSV columns [default: the
    table's keys]; table_rows: rows shaped for reading (repeats blanked); header, footer: lines around the table.
    """
    check_format(fmt)
    if fmt == "json":
        out(dumps_json(rows if json_payload is None else json_payload))
    elif fmt == "csv":
        out(to_csv(rows, csv_keys if csv_keys is not None else [k for k, _, _ in columns]))
    else:
        if header is not None:
            out(header)
        out(table(rows if table_rows is None else table_rows, columns, tight=tight))
        if footer:
            out(footer)


def to_csv(rows: Sequence[dict[str, Any]], keys: Sequence[str]) -> str:
    """The JSON's names and values: true/false, empty for null, lists and objects as compact JSON in one cell."""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(keys), extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for r in rows:
        writer.writerow({k: _csv_cell(r.get(k)) for k in keys})
    return buf.getvalue()


def _csv_cell(v: Any) -> Any:
    if v is None:
        return ""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (list, dict)):
        return json.dumps(v, separators=(",", ":"), default=str)
    return v


WIDTH = 100  # the default table and the lines under it fit a 100-column terminal


def wrap(text: str, width: int = WIDTH) -> str:
    """One paragraph in lines of at most `width`; continuation lines indented so the paragraph stays one block."""
    import textwrap

    return textwrap.fill(text, width=width, subsequent_indent="  ", break_on_hyphens=False)


def _plain(v: Any) -> str:
    if v is None:
        return "-"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, float):
        return f"{v:,.3g}" if abs(v) < 100 else f"{v:,.0f}"
    return str(v)


def usd(v: float | None) -> str:
    if v is None:
        return "-"
    return f"${v:,.2f}" if v >= 0.995 else f"${v:.3f}"


def duration(seconds: float | None) -> str:
    """'45s', '12m', '3h05m', '2d04h'."""
    if seconds is None:
        return "-"
    s = round(seconds)
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s" if s < 600 else f"{round(s / 60)}m"
    h, m = divmod(round(s / 60), 60)
    if h < 48:
        return f"{h}h{m:02d}m"
    d, h = divmod(h, 24)
    return f"{d}d{h:02d}h"


def gib(n_bytes: float | None) -> str:
    return "-" if n_bytes is None else f"{n_bytes / 2**30:.1f} GiB"


def rate(v: float | None) -> str:
    return "-" if v is None else (f"{v:,.0f}" if v >= 100 else f"{v:.3g}")
