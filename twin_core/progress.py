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
def progress_bar(description: str, total: float | None = None, *, quiet: bool = False,
                 delay: float = 1.0) -> Iterator[ProgressCallback]:
    """Context manager yielding a ``progress(done, total)`` callback drawing a bar.

    The bar appears on the first call, or ``delay`` seconds in if none has come (a long set-up still shows its
    elapsed time), so work refused at once (a mistyped scenario, period or exit) prints its error alone, not a
    0 % bar above it. A bar that never moved is erased when the work fails.

    Examples
    --------
    >>> with progress_bar("demo", 10, quiet=True) as progress:
    ...     for i in range(10):
    ...         progress(i + 1, 10)
    """
    if quiet:
        yield null_progress
        return
    import threading

    from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    bar = Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        TaskProgressColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        transient=False,
    )
    task = bar.add_task(description, total=total)  # its elapsed time counts from here, shown or not
    lock = threading.Lock()
    state = {"shown": False, "over": False, "moved": False}

    def show() -> None:
        with lock:
            if not state["shown"] and not state["over"]:
                bar.start()
                state["shown"] = True

    def update(done: float, tot: float | None = None) -> None:
        if tot is not None:
            bar.update(task, total=tot)
        bar.update(task, completed=done)
        state["moved"] = state["moved"] or done > 0
        if not state["shown"]:
            show()

    timer = threading.Timer(delay, show)
    timer.daemon = True
    timer.start()
    failed = False
    try:
        yield update
    except BaseException:
        failed = True
        raise
    finally:
        timer.cancel()
        with lock:
            state["over"] = True
            if state["shown"]:
                if failed and not state["moved"]:  # erased from a terminal, and no blank line in a file
                    bar.live.transient = True
                    bar.live.stop()
                else:
                    bar.stop()
