"""What the steps show while they run: a rich progress bar (:class:`Progress`), a bar that follows a simulation
running in another process (:func:`follow`), and a status line (:func:`status`). Each shows nothing when its
``console`` is None, so the same code runs quietly from the Python API."""

import threading
from contextlib import nullcontext
from pathlib import Path

__all__ = ["Progress", "follow", "status"]


class Progress:
    """A rich progress bar with one task, or nothing when ``console`` is None."""

    def __init__(self, console, description, total):
        self.bar = None
        if console is not None:
            from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn
            from rich.progress import Progress as RichProgress
            self.bar = RichProgress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                    TimeElapsedColumn(), console=console, transient=False)
            self.task = self.bar.add_task(description, total=total)

    def __enter__(self):
        if self.bar:
            self.bar.start()
        return self

    def update(self, completed):
        if self.bar:
            self.bar.update(self.task, completed=completed)

    def __exit__(self, *exc):
        if self.bar:
            self.bar.stop()


def follow(run, progress_file, bar):
    """Call ``run()`` in a thread while ``bar`` (a :class:`Progress`) follows the count in ``progress_file``; return
    its result."""
    outcome = {}

    def target():
        try:
            outcome["result"] = run()
        except BaseException as error:  # re-raised in the caller's thread
            outcome["error"] = error

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    while thread.is_alive():
        thread.join(0.25)
        try:
            bar.update(int(Path(progress_file).read_text() or 0))
        except (OSError, ValueError):
            pass
    if "error" in outcome:
        raise outcome["error"]
    return outcome["result"]


def status(console, text):
    """A rich status line showing ``text`` while the block runs (nothing without a console)."""
    return console.status(text) if console is not None else nullcontext()
