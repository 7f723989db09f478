"""The log's client settings on the command line: ``-p kafka.KEY=VALUE``.

Every command that takes ``--log`` takes ``-p/--property kafka.KEY=VALUE`` (repeatable)
for the Kafka client (SASL, SSL, client id, compression, duality's Kafka settings); see
:mod:`duality.log.kafka_settings`. Commands that also take other properties (capture's
connector properties) split the ``kafka.`` ones off with :func:`split_log_properties`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any, TypeVar

import click
import orjson

from duality.cli.common import warn
from duality.errors import ConfigError
from duality.log import Log, open_log
from duality.log.config import parse_assignments
from duality.log.kafka_settings import split_properties

F = TypeVar("F", bound=Callable[..., Any])

PROPERTY_HELP = (
    "A Kafka client setting for a kafka:// log, e.g. -p kafka.security.protocol=SASL_SSL "
    "or -p kafka.exactly.once.source.support=enabled; repeatable."
)


def log_properties_option() -> Callable[[F], F]:
    return click.option(
        "--property", "-p", "log_properties", multiple=True, metavar="kafka.KEY=VALUE",
        help=PROPERTY_HELP,
    )


def log_settings(items: Iterable[str]) -> dict[str, str]:
    """``kafka.KEY=VALUE`` strings → settings without the prefix (others refused)."""
    kafka, rest = split_properties(parse_assignments(items, "--property"))
    if rest:
        raise ConfigError(
            f"--property {', '.join(sorted(rest))}: this command takes log settings only, "
            f"as kafka.KEY=VALUE (for example -p kafka.security.protocol=SASL_SSL)"
        )
    return kafka


def split_log_properties(props: Mapping[str, Any]) -> tuple[dict[str, str], dict[str, str]]:
    """(log settings without ``kafka.``, the other properties) of a property map, such
    as a connector config with a ``"kafka": {…}`` section or ``kafka.*`` keys."""
    return split_properties(props)


def kafka_section(path: Path) -> dict[str, str]:
    """The ``"kafka": {…}`` object of a JSON config file (top level, or inside Kafka
    Connect's ``"config"``), as log settings."""
    try:
        data = orjson.loads(path.read_bytes())
    except (OSError, orjson.JSONDecodeError):
        return {}  # the config loader reports these
    if not isinstance(data, dict):
        return {}
    inner = data.get("config")
    section = data.get("kafka") or (inner.get("kafka") if isinstance(inner, dict) else None)
    if section is None:
        return {}
    if not isinstance(section, dict):
        raise ConfigError(f'{path}: "kafka" must be an object of Kafka settings')
    return split_properties({"kafka": section})[0]


def open_cli_log(
    url: str, items: Iterable[str] = (), *, create: bool = True,
    settings: Mapping[str, str] | None = None,
) -> Log:
    """Open ``--log`` with ``-p kafka.*`` settings; warnings go to stderr."""
    merged = {**(settings or {}), **log_settings(items)}
    return open_log(url, create=create, settings=merged or None, warn=warn)
