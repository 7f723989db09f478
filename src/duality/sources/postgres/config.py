"""The PostgreSQL connector's configuration, under Debezium's property names and defaults.

A Debezium PostgreSQL connector config works as is: flat (``{"topic.prefix": …}``) or in
Kafka Connect's shape (``{"name": …, "config": {…}}``). Properties duality implements are
validated; Debezium or Kafka Connect properties that do not apply to duality get a
warning; anything else is refused with the closest known name, so a typo never silently
changes what is captured.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from duality.errors import ConfigError
from duality.log.config import unknown_key_message
from duality.sources.postgres.columns import ColumnRules, compile_patterns
from duality.sources.postgres.conninfo import compose, parse
from duality.sources.postgres.flatten import (
    EXTRACT_NEW_RECORD_STATE,
    Flatten,
    flatten_from_properties,
    transforms_ignored,
)
from duality.sources.postgres.types_model import ValueSettings

SNAPSHOT_MODES = ("initial", "initial_only", "no_data", "when_needed", "always", "never")
AUTOCREATE_MODES = ("all_tables", "filtered", "disabled")

_VALUE_MODE_KEYS = (
    "decimal.handling.mode", "time.precision.mode", "binary.handling.mode",
    "interval.handling.mode", "hstore.handling.mode", "money.fraction.digits",
    "include.unknown.datatypes", "event.converting.failure.handling.mode",
)  # fmt: skip

_CONNECTION_KEYS = {
    "database.hostname": "host",
    "database.port": "port",
    "database.user": "user",
    "database.password": "password",
    "database.dbname": "dbname",
    "database.sslmode": "sslmode",
    "database.sslrootcert": "sslrootcert",
    "database.sslcert": "sslcert",
    "database.sslkey": "sslkey",
    "database.sslpassword": "sslpassword",
    "database.tcpKeepAlive": "keepalives",
}

_IMPLEMENTED = {
    "name", "topic.prefix", "slot.name", "publication.name", "publication.autocreate.mode",
    "plugin.name", "table.include.list", "table.exclude.list", "schema.include.list",
    "schema.exclude.list", "snapshot.mode", "tombstones.on.delete",
    "unavailable.value.placeholder", "slot.drop.on.stop", "database.connectTimeoutMs",
    "slot.max.retries", "slot.retry.delay.ms", "retriable.restart.connector.wait.ms",
    "column.include.list", "column.exclude.list", "message.key.columns",
    "skipped.operations", "provide.transaction.metadata", "message.prefix.include.list",
    "message.prefix.exclude.list", "heartbeat.interval.ms", "heartbeat.action.query",
    "topic.heartbeat.prefix", "after.state.only", "unknown.datatypes.handling",
    "pgoutput.protocol.version", "column.propagate.source.type",
    "datatype.propagate.source.type",
    *_CONNECTION_KEYS, *_VALUE_MODE_KEYS,
}  # fmt: skip

# Properties of Debezium's PostgreSQL connector and of Kafka Connect that duality does not
# act on (yet): accepted with a warning, so a connector config from a real deployment runs
# unchanged. Anything else is refused as a typo.
_DEBEZIUM_KEYS = {
    "connector.class", "tasks.max", "plugin.name", "slot.failover", "slot.stream.params",
    "replica.identity.autoset.values",
    "skip.messages.without.change",
    "database.sslfactory", "database.initial.statements", "database.query.timeout.ms",
    "database.server.name", "topic.naming.strategy", "topic.delimiter", "topic.cache.size",
    "topic.transaction", "snapshot.isolation.mode",
    "snapshot.max.threads", "snapshot.max.threads.multiplier", "custom.metric.tags",
    "status.update.interval.ms", "snapshot.delay.ms", "snapshot.fetch.size",
    "flush.lsn.source", "signal.data.collection", "signal.enabled.channels",
    "notification.enabled.channels",
    "incremental.snapshot.chunk.size", "incremental.snapshot.watermarking.strategy",
    "xmin.fetch.interval.ms", "snapshot.mode.class", "snapshot.locking.mode",
    "snapshot.locking.mode.custom.name", "snapshot.query.mode",
    "snapshot.query.mode.custom.name", "snapshot.include.collection.list",
    "snapshot.lock.timeout.ms", "snapshot.select.statement.overrides",
    "snapshot.tables.order.by.row.count", "event.processing.failure.handling.mode",
    "max.batch.size", "max.queue.size", "max.queue.size.in.bytes", "poll.interval.ms",
    "schema.name.adjustment.mode", "field.name.adjustment.mode", "converters",
    "publish.via.partition.root", "include.schema.comments", "lsn.flush.timeout.ms",
    "lsn.flush.timeout.action", "errors.max.retries", "post.processors",
    "sanitize.field.names", "schema.refresh.mode", "source.struct.version",
    "table.ignore.builtin", "streaming.delay.ms", "query.fetch.size", "errors.tolerance",
    "errors.log.enable", "errors.log.include.messages", "offset.flush.interval.ms",
    "offset.flush.timeout.ms", "include.query", "read.only", "extended.headers.enabled",
    "transforms", "predicates", "guardrail.collections.max",
}  # fmt: skip
_IMPLEMENTED_PATTERNS = (
    re.compile(r"column\.(mask\.with\.\d+\.chars|truncate\.to\.\d+\.chars)"),
    re.compile(r"column\.mask\.hash(\.v2)?\.[^.]+\.with\.salt\..+"),
)
_DEBEZIUM_PATTERNS = (
    re.compile(r"(key|value|header)\.converter(\..+)?"),
    re.compile(r"(transforms|predicates|producer\.override|consumer\.override)\..+"),
    re.compile(r"(topic\.creation|offset\.storage|snapshot\.mode\.configuration\.based)\..+"),
    re.compile(r"(errors|signal|notification|heartbeat)\..+"),
    re.compile(r"snapshot\.select\.statement\.overrides\..+"),
)


@dataclass(frozen=True, slots=True)
class CaptureConfig:
    """Everything capture needs to know, validated."""

    conninfo: str
    topic_prefix: str
    name: str
    slot_name: str = "debezium"
    publication_name: str = "dbz_publication"
    publication_autocreate_mode: str = "all_tables"
    table_include: tuple[re.Pattern[str], ...] = ()
    table_exclude: tuple[re.Pattern[str], ...] = ()
    schema_include: tuple[re.Pattern[str], ...] = ()
    schema_exclude: tuple[re.Pattern[str], ...] = ()
    snapshot_mode: str = "initial"
    tombstones_on_delete: bool = True
    unavailable_value_placeholder: str = "__debezium_unavailable_value"
    slot_drop_on_stop: bool = False
    connect_timeout_s: int = 30
    slot_max_retries: int = 6
    slot_retry_delay_s: float = 10.0
    #: First wait before retrying after a transient failure (then doubling, up to 30 s).
    retry_wait_s: float = 10.0
    values: ValueSettings = field(default_factory=ValueSettings)
    columns: ColumnRules = field(default_factory=ColumnRules)
    #: ``warn``: a column of a type without a Debezium mapping is captured in its text
    #: form, with a warning; ``fail``: refused before anything is created.
    unknown_types: str = "warn"
    #: ``auto``: protocol 2 with streaming of large transactions on PostgreSQL 14+, else
    #: protocol 1; or ``1`` / ``2`` explicitly.
    protocol: str = "auto"
    #: Flattened output (ExtractNewRecordState or after.state.only), None for envelopes.
    flatten: Flatten | None = None
    #: ``skipped.operations``: of c, u, d, t (Debezium's default skips truncates).
    skipped_operations: frozenset[str] = frozenset({"t"})
    transaction_metadata: bool = False
    message_include: tuple[re.Pattern[str], ...] = ()
    message_exclude: tuple[re.Pattern[str], ...] = ()
    heartbeat_interval_s: float = 0.0
    heartbeat_action_query: str | None = None
    heartbeat_prefix: str = "__debezium-heartbeat"
    properties: Mapping[str, str] = field(default_factory=dict)

    @property
    def position_name(self) -> str:
        """Where the source position is stored: Kafka Connect's offset key layout."""
        return orjson.dumps([self.name, {"server": self.topic_prefix}]).decode()

    def captures(self, schema: str, table: str) -> bool:
        """Whether ``schema.table`` passes the include/exclude lists (full matches)."""
        qualified = f"{schema}.{table}"
        if self.schema_include and not _any(self.schema_include, schema):
            return False
        if self.schema_exclude and _any(self.schema_exclude, schema):
            return False
        if self.table_include and not _any(self.table_include, qualified):
            return False
        return not (self.table_exclude and _any(self.table_exclude, qualified))


def _any(patterns: tuple[re.Pattern[str], ...], text: str) -> bool:
    return any(p.fullmatch(text) for p in patterns)


def load_config_file(path: Path) -> dict[str, str]:
    """Read a connector config: flat, or Kafka Connect's ``{"name", "config"}``."""
    try:
        data = orjson.loads(path.read_bytes())
    except OSError as exc:
        raise ConfigError(f"cannot read connector config {path}: {exc.strerror}") from None
    except orjson.JSONDecodeError as exc:
        raise ConfigError(f"connector config {path} is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"connector config {path} must be a JSON object")
    if isinstance(data.get("config"), dict):
        props = dict(data["config"])
        if "name" in data:
            props.setdefault("name", data["name"])
    else:
        props = dict(data)
    return {str(k): _text(v) for k, v in props.items()}


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def parse_config(
    props: Mapping[str, str],
    *,
    source: str | None = None,
    warn: Callable[[str], None] = lambda _message: None,
) -> CaptureConfig:
    """Validate connector properties (and an optional libpq DSN/URI that the
    ``database.*`` properties complement) into a :class:`CaptureConfig`."""
    _check_keys(props, warn)
    for ignored in transforms_ignored(props):
        warn(f"transform {ignored} is not applied by duality; only {EXTRACT_NEW_RECORD_STATE} is")
    prefix = props.get("topic.prefix", "").strip()
    if not prefix:
        raise ConfigError(
            "topic.prefix is required: it names the topics (<topic.prefix>.<schema>.<table>); "
            "pass --prefix NAME or set topic.prefix in the connector config"
        )
    if not re.fullmatch(r"[A-Za-z0-9._-]+", prefix):
        raise ConfigError(f"topic.prefix={prefix!r} may use only letters, digits, '.', '_', '-'")
    plugin = props.get("plugin.name", "pgoutput")
    if plugin != "pgoutput":
        raise ConfigError(
            f"plugin.name={plugin!r} is not supported: duality reads the built-in pgoutput "
            f"plugin only; set plugin.name=pgoutput"
        )
    return CaptureConfig(
        conninfo=_conninfo(props, source),
        topic_prefix=prefix,
        name=props.get("name", prefix),
        slot_name=_identifier(props, "slot.name", "debezium"),
        publication_name=_object_name(props, "publication.name", "dbz_publication"),
        publication_autocreate_mode=_choice(
            props, "publication.autocreate.mode", AUTOCREATE_MODES, "all_tables"
        ),
        table_include=_patterns(props, "table.include.list"),
        table_exclude=_patterns(props, "table.exclude.list"),
        schema_include=_patterns(props, "schema.include.list"),
        schema_exclude=_patterns(props, "schema.exclude.list"),
        snapshot_mode=_choice(props, "snapshot.mode", SNAPSHOT_MODES, "initial"),
        tombstones_on_delete=_bool(props, "tombstones.on.delete", True),
        unavailable_value_placeholder=props.get(
            "unavailable.value.placeholder", "__debezium_unavailable_value"
        ),
        slot_drop_on_stop=_bool(props, "slot.drop.on.stop", False),
        connect_timeout_s=max(1, _int(props, "database.connectTimeoutMs", 30_000) // 1000),
        slot_max_retries=_int(props, "slot.max.retries", 6),
        slot_retry_delay_s=_int(props, "slot.retry.delay.ms", 10_000) / 1000,
        retry_wait_s=_int(props, "retriable.restart.connector.wait.ms", 10_000) / 1000,
        values=ValueSettings.from_properties(props),
        columns=ColumnRules.from_properties(props),
        flatten=flatten_from_properties(props),
        unknown_types=_choice(props, "unknown.datatypes.handling", ("warn", "fail"), "warn"),
        protocol=_choice(props, "pgoutput.protocol.version", ("auto", "1", "2"), "auto"),
        skipped_operations=_skipped(props.get("skipped.operations", "t")),
        transaction_metadata=_bool(props, "provide.transaction.metadata", False),
        message_include=_patterns(props, "message.prefix.include.list"),
        message_exclude=_patterns(props, "message.prefix.exclude.list"),
        heartbeat_interval_s=_int(props, "heartbeat.interval.ms", 0) / 1000,
        heartbeat_action_query=props.get("heartbeat.action.query") or None,
        heartbeat_prefix=props.get("topic.heartbeat.prefix", "__debezium-heartbeat"),
        properties=dict(props),
    )


def _check_keys(props: Mapping[str, str], warn: Callable[[str], None]) -> None:
    connector = props.get("connector.class")
    if connector and connector.rsplit(".", 1)[-1] != "PostgresConnector":
        raise ConfigError(
            f"connector.class={connector!r} is not PostgreSQL's connector; duality captures "
            f"PostgreSQL (io.debezium.connector.postgresql.PostgresConnector): check the "
            f"configuration file"
        )
    for kind in ("table", "schema", "message.prefix"):
        if props.get(f"{kind}.include.list") and props.get(f"{kind}.exclude.list"):
            raise ConfigError(f"set {kind}.include.list or {kind}.exclude.list, not both")
    for key in props:
        if key in _IMPLEMENTED or any(p.fullmatch(key) for p in _IMPLEMENTED_PATTERNS):
            continue
        if key == "transforms" or key.startswith("transforms."):
            continue  # transforms not applied are reported once, by name
        if key in _DEBEZIUM_KEYS or any(p.fullmatch(key) for p in _DEBEZIUM_PATTERNS):
            if key not in ("connector.class", "tasks.max"):
                warn(f"connector property {key!r} has no effect in duality and is ignored")
            continue
        raise ConfigError(
            unknown_key_message("connector property", key, _IMPLEMENTED | _DEBEZIUM_KEYS)
        )


def _conninfo(props: Mapping[str, str], source: str | None) -> str:
    try:
        base = parse(source) if source else {}
    except Exception as exc:
        raise ConfigError(f"--source {source!r} is not a valid libpq DSN or URI: {exc}") from None
    for key, libpq in _CONNECTION_KEYS.items():
        if key in props:
            base[libpq] = props[key]
    if "keepalives" in base:
        base["keepalives"] = "1" if str(base["keepalives"]).lower() in ("1", "true") else "0"
    if base.get("replication") is not None:
        raise ConfigError(
            f"--source sets replication={base['replication']!r}: remove it (capture opens "
            f"its replication connection itself, and its other connection must be a plain "
            f"one)"
        )
    if not base.get("dbname") and not base.get("host") and not source:
        raise ConfigError(
            "no database to capture: pass --source postgresql://user@host:5432/dbname or "
            "set database.hostname, database.user and database.dbname in the config"
        )
    return compose({k: v for k, v in base.items() if v is not None})


def _identifier(props: Mapping[str, str], key: str, default: str) -> str:
    value = props.get(key, default)
    if not re.fullmatch(r"[a-z0-9_]{1,63}", value):
        raise ConfigError(
            f"{key}={value!r} is not valid: use 1 to 63 lower-case letters, digits or '_' "
            f"(PostgreSQL's rule for replication slot names)"
        )
    return value


def _object_name(props: Mapping[str, str], key: str, default: str) -> str:
    """A name PostgreSQL keeps as it is (a publication's: any text up to 63 bytes)."""
    value = props.get(key, default)
    if not 1 <= len(value.encode()) <= 63 or "\x00" in value:
        raise ConfigError(
            f"{key}={value!r} is not valid: use 1 to 63 bytes (PostgreSQL cuts longer "
            f"names), without NUL"
        )
    return value


def _choice(props: Mapping[str, str], key: str, allowed: tuple[str, ...], default: str) -> str:
    value = props.get(key, default).strip().lower()
    if value not in allowed:
        raise ConfigError(f"{key}={props[key]!r} is not valid; use one of: {', '.join(allowed)}")
    return value


def _bool(props: Mapping[str, str], key: str, default: bool) -> bool:
    raw = props.get(key)
    if raw is None:
        return default
    if raw.strip().lower() not in ("true", "false"):
        raise ConfigError(f"{key}={raw!r} is not valid; use true or false")
    return raw.strip().lower() == "true"


def _int(props: Mapping[str, str], key: str, default: int) -> int:
    """A count or a duration: a whole number, 0 or more."""
    raw = props.get(key)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{key}={raw!r} is not a whole number") from None
    if value < 0:
        raise ConfigError(f"{key}={raw!r} is negative; give 0 or more")
    return value


def _skipped(raw: str) -> frozenset[str]:
    parts = {p.strip().lower() for p in raw.split(",") if p.strip()}
    if parts == {"none"}:
        return frozenset()
    unknown = parts - {"c", "u", "d", "t"}
    if unknown or not parts:
        raise ConfigError(
            f"skipped.operations={raw!r} is not valid; give a comma-separated list of c "
            f"(inserts), u (updates), d (deletes), t (truncates), or none"
        )
    return frozenset(parts)


def _patterns(props: Mapping[str, str], key: str) -> tuple[re.Pattern[str], ...]:
    return compile_patterns(props.get(key, ""), key)
