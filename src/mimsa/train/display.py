"""Progress display: a rich live bar (epoch, stage, batch, loss, best validation, ETA) or
no progress at all in quiet mode. Notes (e.g. settings a resumed run applied) are printed to
stderr in both."""

from __future__ import annotations

import sys

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)


class QuietDisplay:
    """Shows no progress (for CI and scripted runs); notes go to stderr."""

    def start(self, title: str, total_epochs: int) -> None: ...
    def stage(self, epoch: int, stage: str, total_batches: int) -> None: ...
    def batch(self, loss: float) -> None: ...
    def epoch(self, line: str) -> None: ...
    def stop(self) -> None: ...

    def note(self, line: str) -> None:
        """Print one line the user must see (not progress) to stderr."""
        print(line, file=sys.stderr)


class RichDisplay(QuietDisplay):
    """A live progress bar per stage and one printed line per epoch."""

    def __init__(self, console: Console | None = None) -> None:
        self.console = console or Console(stderr=True)
        self.progress: Progress | None = None
        self.task = None
        self.epochs = 0
        self.title = ""

    def start(self, title: str, total_epochs: int) -> None:
        self.title, self.epochs = title, total_epochs
        self.progress = Progress(
            TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
            TextColumn("loss {task.fields[loss]:.4f}"), TimeElapsedColumn(),
            TextColumn("ETA"), TimeRemainingColumn(), console=self.console, transient=True)
        self.progress.start()
        self.console.print(f"[bold]{title}[/bold]")

    def stage(self, epoch: int, stage: str, total_batches: int) -> None:
        if self.progress is None:
            return
        if self.task is not None:
            self.progress.remove_task(self.task)
        self.task = self.progress.add_task(f"epoch {epoch}/{self.epochs} {stage}",
                                           total=total_batches, loss=float("nan"))

    def batch(self, loss: float) -> None:
        if self.progress is not None and self.task is not None:
            self.progress.update(self.task, advance=1, loss=loss)

    def epoch(self, line: str) -> None:
        self.console.print(line)

    def note(self, line: str) -> None:
        self.console.print(line, highlight=False, soft_wrap=True)

    def stop(self) -> None:
        if self.progress is not None:
            self.progress.stop()
            self.progress = None
            self.task = None
