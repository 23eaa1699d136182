"""Assertions the CLI tests share."""

from __future__ import annotations


def failed(result, *fragments: str) -> None:
    """A one-line `Error:` on stderr holding every fragment, a non-zero exit and no traceback."""
    assert result.exit_code != 0, result.output
    assert "Traceback" not in result.output
    lines = [ln for ln in result.stderr.splitlines() if ln.startswith("Error: ")]
    assert len(lines) == 1, result.stderr
    for f in fragments:
        assert f in lines[0], lines[0]
