"""One-message errors of the command-line entry points (srl_plugin.console)."""
from __future__ import annotations

import pytest

from srl_plugin.console import TRACEBACK_ENV, command, describe_error


@command("srl-example")
def example(argv) -> int:
    """Fails with a chained error when asked to; returns 0 otherwise."""
    if "fail" in argv:
        try:
            raise KeyError("train_shards")
        except KeyError as cause:
            raise ValueError("no shards at /x: set data.root") from cause
    assert "--traceback" not in argv
    return 0


def test_error_is_one_message_and_exit_status_1(capsys, monkeypatch) -> None:
    monkeypatch.delenv(TRACEBACK_ENV, raising=False)
    assert example(["fail"]) == 1
    captured = capsys.readouterr()
    assert captured.err.splitlines() == [
        "srl-example: error: no shards at /x: set data.root",
        "(ValueError; rerun with --traceback or set SRL_TRACEBACK=1 for the full traceback)",
    ]
    assert "Traceback" not in captured.err + captured.out


def test_traceback_flag_and_environment_let_the_exception_through(monkeypatch) -> None:
    monkeypatch.delenv(TRACEBACK_ENV, raising=False)
    assert example(["--traceback"]) == 0, "the flag is removed before main sees the arguments"
    with pytest.raises(ValueError, match="no shards"):
        example(["fail", "--traceback"])
    monkeypatch.setenv(TRACEBACK_ENV, "1")
    with pytest.raises(ValueError, match="no shards"):
        example(["fail"])
    monkeypatch.setenv(TRACEBACK_ENV, "0")
    assert example(["fail"]) == 1


def test_describe_error_unquotes_key_errors_and_names_empty_errors() -> None:
    assert describe_error(KeyError("missing key")) == "missing key"
    assert describe_error(RuntimeError()) == "RuntimeError"
