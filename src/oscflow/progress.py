"""Progress bars for long jobs (rich), quiet when output is not a terminal unless forced."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable, Iterator

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

console = Console(stderr=True)


@contextlib.contextmanager
def progress_bar(description: str, total: int) -> Iterator[Callable[[int], None]]:
    """Yield ``advance(n)``; draws a bar on stderr (a plain line per 10 % when not a TTY)."""
    if sys.stderr.isatty():
        with Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeRemainingColumn(),
            console=console,
        ) as bar:
            task = bar.add_task(description, total=total)
            yield lambda n: bar.advance(task, n)
        return
    done = 0
    next_report = 0.1

    def advance(n: int) -> None:
        nonlocal done, next_report
        done += n
        if total and done / total >= next_report - 1e-12:
            console.print(f"{description}: {done}/{total} ({100 * done / total:.0f} %)")
            next_report = (int(10 * done / total + 1e-9) + 1) / 10

    yield advance
