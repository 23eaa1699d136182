"""A progress bar on stderr for each precision: step, seconds per step, time left. Pure Python, no TensorFlow."""

from __future__ import annotations

import sys
import time
from typing import Protocol, TextIO


class Progress(Protocol):
    def start(self, label: str, total_steps: int) -> None: ...
    def step(self, done: int, step_seconds: float) -> None: ...
    def finish(self) -> None: ...


class ProgressBar:
    """Redraws one line on a terminal; elsewhere (CI logs, pipes) prints a line at each tenth of the run."""

    def __init__(self, stream: TextIO | None = None, width: int = 24):
        self.stream = stream or sys.stderr
        self.width = width
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self.label, self.total, self.started, self.recent = "", 0, 0.0, 0.0
        self._last_tenth = -1

    def start(self, label: str, total_steps: int) -> None:
        self.label, self.total, self.started, self._last_tenth = label, total_steps, time.monotonic(), -1
        self._draw(0, None)

    def step(self, done: int, step_seconds: float) -> None:
        self.recent = step_seconds
        tenth = done * 10 // max(self.total, 1)
        if self.tty or tenth != self._last_tenth or done == self.total:
            self._last_tenth = tenth
            self._draw(done, step_seconds)

    def finish(self) -> None:
        if self.tty:
            self.stream.write("\n")
            self.stream.flush()

    def _draw(self, done: int, step_seconds: float | None) -> None:
        if not self.tty and done == 0:
            self.stream.write(f"{self.label}: {self.total} steps (the first traces the graph)\n")
            self.stream.flush()
            return
        filled = self.width * done // max(self.total, 1)
        bar = "#" * filled + "." * (self.width - filled)
        if step_seconds is None:
            rate, left = "tracing the graph", ""
        elif done == 1:  # the first step traced the graph: its time says nothing about the rest
            rate, left = f"first step (trace) {step_seconds:.1f}s", ""
        else:
            rate, left = f"{step_seconds:.2f} s/step", f"~{(self.total - done) * step_seconds:.0f}s left"
        line = f"{self.label:<22} [{bar}] {done}/{self.total}  {rate}  {left}".rstrip()
        if self.tty:
            self.stream.write("\r" + line.ljust(79))
        else:
            self.stream.write(line + "\n")
        self.stream.flush()
