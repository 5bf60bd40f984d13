"""Progress bars for long work (research, backtests over many days, sweeps, daily exports).

A bar with done/total, rate and ETA on stderr, drawn by ``rich``; off when the caller asks (``--json``)
and when stderr is not a terminal (a log file or a pipe gets no control characters).
"""

from __future__ import annotations

import sys
from typing import Any, Optional, TextIO


class TaskBar:
    """``label [bar] done/total  rate/s  eta H:MM:SS``; ``step()`` per finished item, ``close()`` at the end."""

    def __init__(self, label: str, total: int, enabled: bool = True, stream: Optional[TextIO] = None,
                 unit: str = "tasks") -> None:
        self.stream = stream if stream is not None else sys.stderr
        self.total = total
        self.done = 0
        self.enabled = bool(enabled and total > 0 and _is_tty(self.stream))
        self._progress: Any = None
        if self.enabled:
            from rich.console import Console
            from rich.progress import (BarColumn, MofNCompleteColumn, Progress, ProgressColumn, TextColumn,
                                       TimeRemainingColumn)
            from rich.text import Text

            class _Rate(ProgressColumn):
                def render(self, task: Any) -> Text:
                    speed = task.finished_speed or task.speed
                    return Text(f"{speed:.2f} {unit}/s" if speed else f"- {unit}/s")

            self._progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), _Rate(),
                                      TextColumn("eta"), TimeRemainingColumn(),
                                      console=Console(file=self.stream, force_terminal=True), transient=False)
            self._progress.start()
            self._task = self._progress.add_task(label, total=total)

    def step(self, n: int = 1) -> None:
        self.done += n
        if self._progress is not None:
            self._progress.advance(self._task, n)
            if self.done >= self.total:
                self.close()

    def each(self, items: Any) -> Any:
        """Yield the items, one step after each is done."""
        for item in items:
            yield item
            self.step()

    def close(self) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None

    def __enter__(self) -> "TaskBar":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def _is_tty(stream: TextIO) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False
