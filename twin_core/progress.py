"""Progress reporting shared by engines, importers and the CLI.

Engines take ``progress: Callable[[float, float], None] | None`` and call it
as ``progress(done, total)`` (units are the engine's: seconds simulated,
files read, iterations). :func:`progress_bar` turns that into a rich bar.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Callable, Iterator

ProgressCallback = Callable[[float, float], None]

__all__ = ["ProgressCallback", "progress_bar", "null_progress"]


def null_progress(done: float, total: float) -> None:  # noqa: ARG001
    """A progress callback that does nothing."""


@contextmanager
def progress_bar(description: str, total: float | None = None, *, quiet: bool = False) -> Iterator[ProgressCallback]:
    """Context manager yielding a ``progress(done, total)`` callback drawing a bar.

    Examples
    --------
    >>> with progress_bar("demo", 10, quiet=True) as progress:
    ...     for i in range(10):
    ...         progress(i + 1, 10)
    """
    if quiet:
        yield null_progress
        return
    from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    with Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        TaskProgressColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        transient=False,
    ) as bar:
        task = bar.add_task(description, total=total)

        def update(done: float, tot: float | None = None) -> None:
            if tot is not None:
                bar.update(task, total=tot)
            bar.update(task, completed=done)

        yield update
