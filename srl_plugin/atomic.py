"""Atomic file writes: the one way this package replaces a file so that a crash never leaves half of it.

Every writer stages its bytes in a temporary file in the target's own folder and renames it over the target
(a rename inside one folder is atomic on POSIX and Windows); on any error the temporary file is removed and
the target is left as it was. :func:`deferred_signals` keeps SIGINT / SIGTERM from cutting a write in half.
"""
from __future__ import annotations

import json
import os
import signal
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any


class StagedFile:
    """A temporary file beside ``target`` that :meth:`commit` renames over it (or :meth:`discard` removes).

    For writers whose file stays open across other work (e.g. one tar shard filled sample by sample);
    otherwise use :func:`atomic_path`.

    Args:
        target: the file to write (parent folders are created).
        fsync: flush the temporary file to disk before the rename (checkpoints: survive a power loss too).
    """

    def __init__(self, target: str | os.PathLike[str], fsync: bool = False) -> None:
        self.target = Path(target)
        self.fsync = fsync
        self.target.parent.mkdir(parents=True, exist_ok=True)
        handle, name = tempfile.mkstemp(prefix=f".{self.target.name}.", suffix=".tmp", dir=self.target.parent)
        os.close(handle)
        self.temporary = Path(name)

    def commit(self) -> Path:
        """Renames the written temporary file over the target; returns the target."""
        if self.fsync:
            with open(self.temporary, "rb+") as file:
                os.fsync(file.fileno())
        os.replace(self.temporary, self.target)
        return self.target

    def discard(self) -> None:
        """Removes the temporary file (no-op after :meth:`commit`)."""
        self.temporary.unlink(missing_ok=True)


@contextmanager
def atomic_path(target: str | os.PathLike[str], fsync: bool = False) -> Iterator[Path]:
    """Yields a temporary path beside ``target``; when the block ends without error it replaces ``target``.

    See :class:`StagedFile` for the arguments.
    """
    staged = StagedFile(target, fsync)
    try:
        yield staged.temporary
        staged.commit()
    finally:
        staged.discard()


def write_text_atomic(target: str | os.PathLike[str], text: str) -> None:
    """Writes ``text`` (UTF-8) to ``target`` atomically."""
    with atomic_path(target) as temporary:
        temporary.write_text(text, encoding="utf-8")


def write_json_atomic(target: str | os.PathLike[str], record: Any, sort_keys: bool = False) -> None:
    """Writes ``record`` as indented JSON (with a final newline) to ``target`` atomically."""
    write_text_atomic(target, json.dumps(record, indent=2, sort_keys=sort_keys) + "\n")


@contextmanager
def deferred_signals(signals: tuple[signal.Signals, ...] = (signal.SIGINT, signal.SIGTERM)) -> Iterator[None]:
    """Holds ``signals`` back while the block runs and delivers them to their own handlers when it ends.

    For writes that a signal must not cut in half: Ctrl+C inside ``torch.save`` (``KeyboardInterrupt`` raised
    mid-write) breaks its zip writer, so the write fails with that writer's error instead of the run stopping
    cleanly after it. Python runs signal handlers in the main thread only, so elsewhere the block runs unchanged.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    received: list[int] = []
    previous = {number: signal.getsignal(number) for number in signals}
    swapped = [number for number, handler in previous.items() if handler is not None]
    for number in swapped:
        signal.signal(number, lambda received_number, frame: received.append(received_number))
    try:
        yield
    finally:
        for number in swapped:
            signal.signal(number, previous[number])
        for number in received:
            signal.raise_signal(number)
