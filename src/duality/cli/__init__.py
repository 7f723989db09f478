"""The ``duality`` command line.

Each command parses its input, calls the library and turns a
:class:`~duality.errors.DualityError` into a message on stderr and an exit code
(DESIGN.md): 2 bad usage or configuration, 3 unavailable, 4 a gap, 5 cannot apply.
Data goes to stdout, progress and messages to stderr, so output pipes into ``jq``.
"""

from __future__ import annotations

import sys
from typing import Any

import click

from duality.cli.common import CONTEXT_SETTINGS, report_error, route_library_warnings
from duality.errors import DualityError


@click.group(context_settings=CONTEXT_SETTINGS)
@click.version_option(package_name="duality")
def cli() -> None:
    """duality: SQL to SQL, log to log.

    Capture a database's changes into a durable, replayable log of Debezium change
    events, and turn such logs back into tables.

    The log is a URL: sqlite:///path/to/log.db (the embedded log, one local file; a
    bare path works too). --log may be left out when DUALITY_LOG is set.
    """


def _register() -> None:
    from duality.cli import capture_commands, demo, log_commands, table_commands

    for command in (*log_commands.COMMANDS, *capture_commands.COMMANDS,
                    *table_commands.COMMANDS, demo.demo):
        cli.add_command(command)


_register()


def main(argv: list[str] | None = None) -> Any:
    """Entry point of the ``duality`` console script."""
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
    except BrokenPipeError:
        # The reader of our stdout went away (``| head``): not an error.
        sys.stderr.close()
        sys.exit(0)
