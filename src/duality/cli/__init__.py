"""The ``duality`` command line.

Each command parses its input, calls the library and turns a
:class:`~duality.errors.DualityError` into a message on stderr and an exit code
(DESIGN.md): 2 bad usage or configuration, 3 unavailable, 4 a gap, 5 cannot apply.
Data goes to stdout, progress and messages to stderr, so output pipes into ``jq``.
"""

from __future__ import annotations

import importlib
import os
import sys
from typing import Any, NoReturn

import click

from duality.cli.common import CONTEXT_SETTINGS, report_error, route_library_warnings
from duality.errors import DualityError

#: Where each command lives: modules are imported when their command runs, so
#: ``duality capture`` does not pay for importing the table store (start-up time counts
#: in every ``--once`` run).
_MODULES = {
    "topics": "log_commands", "produce": "log_commands", "tail": "log_commands",
    "compact": "log_commands", "capture": "capture_commands", "demo": "demo",
    "table": "table_commands", "aggregate": "table_commands",
    "history": "timetravel_commands", "undo": "timetravel_commands",
    "replicate": "replicate_commands",
}  # fmt: skip
_ALL = ("log_commands", "capture_commands", "table_commands", "timetravel_commands",
        "replicate_commands", "demo")


class LazyGroup(click.Group):
    """A group that imports a command's module only when the command is used."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(self._all())

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        module = _MODULES.get(cmd_name)
        if module is not None:
            found = _commands(module).get(cmd_name)
            if found is not None:
                return found
        return self._all().get(cmd_name)

    def invoke(self, ctx: click.Context) -> Any:
        """A closed stdout leaves as :class:`ReaderGone`: click itself would turn the
        ``BrokenPipeError`` into exit code 1."""
        try:
            return super().invoke(ctx)
        except BrokenPipeError:
            raise ReaderGone from None

    @staticmethod
    def _all() -> dict[str, click.Command]:
        out: dict[str, click.Command] = {}
        for module in _ALL:
            out.update(_commands(module))
        return out


class ReaderGone(Exception):
    """The reader of stdout went away (``| head``)."""


def _commands(module: str) -> dict[str, click.Command]:
    loaded = importlib.import_module(f"duality.cli.{module}")
    commands = getattr(loaded, "COMMANDS", None) or (loaded.demo,)
    return {command.name or "": command for command in commands}


@click.group(cls=LazyGroup, context_settings=CONTEXT_SETTINGS)
@click.version_option(package_name="duality")
def cli() -> None:
    """duality: SQL to SQL, log to log.

    Capture a database's changes into a durable, replayable log of Debezium change
    events, and turn such logs back into tables.

    The log is a URL: sqlite:///path/to/log.db (the embedded log, one local file; a
    bare path works too), or kafka://host:9092[,host:9092...] (Apache Kafka; client
    settings with -p kafka.KEY=VALUE). --log may be left out when DUALITY_LOG is set.
    """


def run() -> NoReturn:
    """The ``duality`` program (its console script and ``python -m duality``): :func:`main`,
    then out without tearing the interpreter down. By then a command has closed what it
    opened (logs, sessions, producers), and freeing the objects still alive one by one
    only costs time: 45-50 ms after replicating 500k changes, 4% of the snapshot phase
    of ``bench/replicate.py``. Errors leave through :func:`main`'s ``sys.exit``."""
    code = main()
    try:
        sys.stdout.flush()
    except BrokenPipeError:  # the reader of our stdout went away: nothing left to say
        code = 0
    sys.stderr.flush()
    os._exit(code if isinstance(code, int) else 0)


def main(argv: list[str] | None = None) -> Any:
    """The command line, for :func:`run` (and for tests, in their own process)."""
    route_library_warnings()
    try:
        return cli.main(args=argv, prog_name="duality", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("Aborted.", err=True)
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except DualityError as exc:
        report_error(exc)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        sys.exit(130)
    except (BrokenPipeError, ReaderGone):
        # The reader of our stdout went away (``| head``): not an error, and nothing is
        # left to say (the flush at exit would fail too).
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        sys.exit(0)
