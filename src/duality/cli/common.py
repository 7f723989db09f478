"""Pieces every command shares: options, the stderr console, error reporting."""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from typing import Any, TypeVar

import click
from rich.console import Console
from rich.text import Text

from duality.errors import DualityError

CONTEXT_SETTINGS = {"help_option_names": ["-h", "--help"], "max_content_width": 100}

F = TypeVar("F", bound=Callable[..., Any])

#: Messages and progress; stdout carries data only.
stderr = Console(stderr=True, highlight=False, soft_wrap=True)


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
        stderr.print(
            f"warning: {record.getMessage()}", style="yellow", markup=False, highlight=False
        )


def route_library_warnings() -> None:
    logger = logging.getLogger("duality")
    if not any(isinstance(h, _WarningHandler) for h in logger.handlers):
        handler = _WarningHandler(logging.WARNING)
        logger.addHandler(handler)
        logger.propagate = False


def report_error(exc: DualityError) -> None:
    """Print a DualityError as a user message: no stack trace for user mistakes."""
    stderr.print(Text.assemble(("error: ", "bold red"), exc.message))


def say(message: str) -> None:
    """A progress or status line on stderr."""
    stderr.print(message, markup=False)


def out(line: str | bytes) -> None:
    """One line of data on stdout."""
    if isinstance(line, str):
        line = line.encode()
    sys.stdout.buffer.write(line + b"\n")
