"""One training run per output folder: an exclusive ``flock`` on ``<output_dir>/.srl-train.lock``.

The kernel releases the lock when its process dies, however it dies; the file also records the holder
(pid, host, start time) so that a refusal can name it. A clean exit empties the file (it is never removed,
so that two runs can never lock two different files of the same name); a record left in it by a process
that died is reported as a stale lock taken over.
"""
from __future__ import annotations

import fcntl
import json
import os
import socket
import time
from pathlib import Path
from types import TracebackType

LOCK_FILE = ".srl-train.lock"


class RunLockedError(RuntimeError):
    """Another live process trains into the same output folder."""


def _holder(handle: int) -> dict:
    """The holder record of the lock file (``{}`` when it is empty or unreadable)."""
    os.lseek(handle, 0, os.SEEK_SET)
    text = os.read(handle, 4096).decode(errors="replace").strip()
    try:
        record = json.loads(text) if text else {}
    except json.JSONDecodeError:
        return {}
    return record if isinstance(record, dict) else {}


class RunLock:
    """Context manager holding the lock of ``output_dir`` (created if needed).

    Raises :class:`RunLockedError` naming the holder when a live process has it. When the file names a
    holder that is gone (killed before it could remove its record), ``taken_over`` holds that record.
    """

    def __init__(self, output_dir: Path) -> None:
        self.path = Path(output_dir) / LOCK_FILE
        self.taken_over: dict = {}
        self._handle: int | None = None

    def __enter__(self) -> "RunLock":
        self.path.parent.mkdir(parents=True, exist_ok=True)
        handle = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _holder(handle)
            os.close(handle)
            who = f"pid {holder.get('pid', '?')} on {holder.get('host', '?')}, started {holder.get('started', '?')}"
            raise RunLockedError(
                f"output_dir {self.path.parent} is in use by another srl-train run ({who}); wait for it to finish, "
                f"stop it (it saves a checkpoint on SIGTERM), or choose another output_dir"
            ) from None
        self.taken_over = _holder(handle)
        record = {"pid": os.getpid(), "host": socket.gethostname(), "started": time.strftime("%Y-%m-%d %H:%M:%S")}
        os.ftruncate(handle, 0)
        os.pwrite(handle, json.dumps(record).encode(), 0)
        self._handle = handle
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, traceback: TracebackType | None
    ) -> None:
        if self._handle is None:
            return
        os.ftruncate(self._handle, 0)
        os.close(self._handle)
        self._handle = None
