"""Pieces every command shares: options, the stderr console, error reporting.

rich is imported when something styled is first printed (an error, a warning, progress
bars), not at start-up: it is about 25 ms of every command's start, and a ``--once``
run counts its start.
"""

from __future__ import annotations

import functools
import logging
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

import click

from duality.errors import DualityError

if TYPE_CHECKING:
    from rich.console import Console

CONTEXT_SETTINGS = {"help_option_names": ["-h", "--help"], "max_content_width": 100}

F = TypeVar("F", bound=Callable[..., Any])


@functools.cache
def stderr() -> Console:
    """The console for messages and progress; stdout carries data only."""
    from rich.console import Console

    return Console(stderr=True, highlight=False, soft_wrap=True)


def log_option(*, required: bool = True) -> Callable[[F], F]:
    return click.option(
        "--log",
        "log_url",
        envvar="DUALITY_LOG",
        required=required,
        metavar="URL",
        help="The log: sqlite:///path/to/log.db (or a bare path), or "
        "kafka://host:9092[,host:9092...] (env: DUALITY_LOG).",
    )


class _WarningHandler(logging.Handler):
    """duality's library warnings (``logging``) as ``warning:`` lines on stderr."""

    def emit(self, record: logging.LogRecord) -> None:
        warn(record.getMessage())


def route_library_warnings() -> None:
    logger = logging.getLogger("duality")
    if not any(isinstance(h, _WarningHandler) for h in logger.handlers):
        handler = _WarningHandler(logging.WARNING)
        logger.addHandler(handler)
        logger.propagate = False


def report_error(exc: DualityError) -> None:
    """Print a DualityError as a user message: no stack trace for user mistakes."""
    from rich.text import Text

    stderr().print(Text.assemble(("error: ", "bold red"), exc.message))


def warn(message: str) -> None:
    """A ``warning:`` line on stderr (yellow on a terminal)."""
    stderr().print(f"warning: {message}", style="yellow", markup=False, highlight=False)


def say(message: str) -> None:
    """A progress or status line on stderr, as it is (while progress bars show, rich
    prints it above them)."""
    sys.stderr.write(message + "\n")
    sys.stderr.flush()


def out(line: str | bytes) -> None:
    """One line of data on stdout."""
    if isinstance(line, str):
        line = line.encode()
    sys.stdout.buffer.write(line + b"\n")
