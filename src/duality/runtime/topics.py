"""Which topics of a log hold change events, and what else the log holds.

A topic's kind is read from its first records: their registered schema (a table's
envelope or flattened row, or one of Debezium's message, transaction metadata or
heartbeat schemas), or, for records without one, the JSON value itself. Change topics
are applied by ``replicate``; message, transaction and heartbeat topics never are.
"""

from __future__ import annotations

import difflib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from duality.errors import ConfigError
from duality.log.base import LogReader
from duality.tables.records import parse_value
from duality.tables.shape import is_envelope

CHANGE, TRANSACTION, MESSAGE, HEARTBEAT, OTHER, EMPTY = (
    "change", "transaction", "message", "heartbeat", "other", "empty",
)  # fmt: skip
_SCHEMA_KINDS = {
    "io.debezium.connector.common.TransactionMetadataValue": TRANSACTION,
    "io.debezium.connector.postgresql.MessageValue": MESSAGE,
    "io.debezium.connector.common.Heartbeat": HEARTBEAT,
}
_SAMPLE = 20


@dataclass(frozen=True, slots=True)
class TopicKind:
    """``kind`` of a topic; for change topics, the source table (schema, table) and the
    connector's ``topic.prefix`` (``source.name``) where a change event says them."""

    kind: str
    source: tuple[str, str] | None = None
    prefix: str | None = None


def classify(log: LogReader, topic: str, partitions: Sequence[int]) -> TopicKind:
    """The kind of ``topic`` (``empty`` while none of its records has a value)."""
    for partition in partitions:
        for record in log.read(topic, partition, 0, _SAMPLE):
            if record.value is None:
                continue
            if record.schema_id is not None:
                schema = log.schema(record.schema_id)
                named = _SCHEMA_KINDS.get((schema.value.name or "") if schema.value else "")
                if named is not None:
                    return TopicKind(named)
                if not (schema.meta.table or is_envelope(schema.value)):
                    return TopicKind(OTHER)
            return _from_value(parse_value(record.value)[0])
    return TopicKind(EMPTY)


def _from_value(payload: Any) -> TopicKind:
    if type(payload) is not dict:
        return TopicKind(OTHER)
    if "status" in payload and "data_collections" in payload:
        return TopicKind(TRANSACTION)
    if payload.get("op") == "m" and "message" in payload:
        return TopicKind(MESSAGE)
    source = payload.get("source")
    if "op" in payload and type(source) is dict:
        schema, table = source.get("schema"), source.get("table")
        named = (str(schema), str(table)) if schema is not None and table else None
        prefix = source.get("name")
        return TopicKind(CHANGE, named, str(prefix) if prefix is not None else None)
    if set(payload) == {"ts_ms"}:
        return TopicKind(HEARTBEAT)
    return TopicKind(CHANGE)


def storage_topics(log: Any) -> set[str]:
    """Topics that hold the log's own bookkeeping, never changes: on Kafka the schemas and
    source-offsets topics (``schema.storage.topic``, ``offset.storage.topic``) and every
    name starting with ``__`` (Kafka's convention for internal topics)."""
    settings = getattr(log, "settings", None)
    named = {getattr(settings, "schemas_topic", None), getattr(settings, "offsets_topic", None)}
    internal = {info.name for info in log.list_topics() if info.name.startswith("__")}
    return {name for name in named if isinstance(name, str)} | internal


def select(log: Any, requested: Sequence[str]) -> dict[str, TopicKind]:
    """The change topics to apply: ``requested`` (each must exist and not be a message,
    transaction or heartbeat topic), or every change topic of the log."""
    infos = {info.name: info for info in log.list_topics()}
    kinds = {}
    for name in requested or sorted(set(infos) - storage_topics(log)):
        info = infos.get(name)
        if info is None:
            close = difflib.get_close_matches(name, list(infos), n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise ConfigError(f"--topic {name!r}: the log has no such topic{hint}")
        kind = classify(log, name, range(info.partitions))
        if requested and kind.kind not in (CHANGE, EMPTY):
            raise ConfigError(
                f"--topic {name!r} is a {kind.kind} topic, not a change topic; replicate "
                f"applies change topics only (message, transaction and heartbeat topics "
                f"never)"
            )
        if kind.kind == CHANGE or (requested and kind.kind == EMPTY):
            kinds[name] = kind
    return kinds
