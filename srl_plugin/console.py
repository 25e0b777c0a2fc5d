"""What every command-line entry point shares: errors reach the user as one clear message.

`command("srl-train")` wraps an entry point ``main(argv) -> int | None``. An exception escaping ``main`` is
printed as ``srl-train: error: <message>`` plus one line saying how to
see the full traceback, and the wrapped ``main`` returns exit status 1 (console scripts pass it to
``sys.exit``). ``--traceback`` anywhere on the command line, or ``SRL_TRACEBACK=1`` in the
environment, lets the exception through unchanged instead. ``KeyboardInterrupt`` and ``SystemExit`` always
pass through.

This module imports only the standard library, so that ``--help`` stays fast.
"""
from __future__ import annotations

import functools
import os
import sys
from typing import Callable, Sequence

TRACEBACK_FLAG = "--traceback"
TRACEBACK_ENV = "SRL_TRACEBACK"
EXIT_FAILURE = 1
TRACEBACK_HELP = (
    f"Errors are printed as one message; add {TRACEBACK_FLAG} (or set {TRACEBACK_ENV}=1) for the full traceback."
)

EntryPoint = Callable[[Sequence[str] | None], "int | None"]


def traceback_requested(argv: Sequence[str]) -> bool:
    """Whether the user asked for full tracebacks (``--traceback`` in ``argv`` or ``SRL_TRACEBACK`` set)."""
    return TRACEBACK_FLAG in argv or os.environ.get(TRACEBACK_ENV, "").strip().lower() not in ("", "0", "false", "no")


def describe_error(error: BaseException) -> str:
    """The message of ``error`` (a ``KeyError``'s single string argument without repr quotes; the type name
    when the message is empty). Causes are left to ``--traceback``: the message is meant to name the fix."""
    if isinstance(error, KeyError) and len(error.args) == 1 and isinstance(error.args[0], str):
        text = error.args[0]
    else:
        text = str(error).strip()
    return text or type(error).__name__


def report_error(prog: str, error: BaseException) -> None:
    """Prints ``error`` to stderr as ``<prog>: error: <message>`` and how to get the full traceback."""
    print(
        f"{prog}: error: {describe_error(error)}\n"
        f"({type(error).__name__}; rerun with {TRACEBACK_FLAG} or set {TRACEBACK_ENV}=1 for the full traceback)",
        file=sys.stderr,
        flush=True,
    )


def command(prog: str) -> Callable[[EntryPoint], Callable[[Sequence[str] | None], int]]:
    """Decorator for an entry point ``main(argv)``: one-message errors, ``--traceback`` (see the module doc).

    The wrapped function takes ``argv`` (default ``sys.argv[1:]``), passes it on without ``--traceback``,
    and returns ``main``'s exit status (``None`` counts as 0).
    """

    def wrap(main: EntryPoint) -> Callable[[Sequence[str] | None], int]:
        @functools.wraps(main)
        def run(argv: Sequence[str] | None = None) -> int:
            args = list(sys.argv[1:] if argv is None else argv)
            if traceback_requested(args):
                return int(main([arg for arg in args if arg != TRACEBACK_FLAG]) or 0)
            try:
                return int(main(args) or 0)
            except Exception as error:  # every failure becomes one message; --traceback shows the rest
                report_error(prog, error)
                return EXIT_FAILURE

        return run

    return wrap
