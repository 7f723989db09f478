"""Debezium JSON: change events to and from the bytes a Debezium consumer reads.

The value is Debezium's envelope (``before``, ``after``, ``source``, ``op``,
``ts_ms``, ``ts_us``, ``ts_ns``, ``transaction``); the key is compact JSON of the key
columns, ``{"id":1}``. Both are value-equal to Debezium's output once parsed; key order
and number formatting may differ. Values wrapped by Kafka Connect's JSON converter,
``{"schema": …, "payload": …}``, are unwrapped when read.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from typing import Any

import orjson

from duality.errors import ConfigError
from duality.events.jsonbytes import dumps
from duality.events.model import ChangeEvent, Op, Row, SourceInfo, TransactionBlock

_OPS = {op.value: op for op in Op}


def event_to_payload(event: ChangeEvent) -> dict[str, Any]:
    """The envelope as a JSON-ready dict (the ``payload`` Debezium writes)."""
    payload: dict[str, Any] = {}
    if event.op is Op.MESSAGE:
        payload["op"] = event.op.value
        payload["ts_ms"] = event.ts_ms
        payload["source"] = event.source.to_dict()
        payload["message"] = _message_to_json(event.message or {})
    else:
        payload["before"] = _row(event.before)
        payload["after"] = _row(event.after)
        payload["source"] = event.source.to_dict()
        payload["op"] = event.op.value
        payload["ts_ms"] = event.ts_ms
    if event.ts_us is not None:
        payload["ts_us"] = event.ts_us
    if event.ts_ns is not None:
        payload["ts_ns"] = event.ts_ns
    payload["transaction"] = event.transaction.to_dict() if event.transaction else None
    return payload


def _row(row: Row | None) -> dict[str, Any] | None:
    return None if row is None else dict(row)


def _message_to_json(message: Mapping[str, Any]) -> dict[str, Any]:
    content = message.get("content", b"")
    if isinstance(content, bytes | bytearray):
        content = base64.b64encode(content).decode("ascii")
    return {"prefix": message.get("prefix", ""), "content": content}


def encode_value(event: ChangeEvent) -> bytes:
    """The record value bytes for ``event`` (payload only, no schema)."""
    return dumps(event_to_payload(event))


def encode_key(key: Row | None) -> bytes | None:
    """Compact JSON of the key columns, or None for a keyless change."""
    if key is None:
        return None
    return dumps(dict(key))


def decode_json(data: bytes | None) -> Any:
    """Parse record bytes, unwrapping ``{"schema", "payload"}`` when present."""
    if data is None:
        return None
    try:
        parsed = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise ConfigError(f"record is not valid JSON ({exc}): {data[:80]!r}") from exc
    if isinstance(parsed, dict) and parsed.keys() == {"schema", "payload"}:
        return parsed["payload"]
    return parsed


def payload_to_event(payload: Mapping[str, Any], key: Row | None = None) -> ChangeEvent:
    """Build a :class:`ChangeEvent` from a parsed Debezium envelope."""
    op_text = payload.get("op")
    op = _OPS.get(op_text) if isinstance(op_text, str) else None
    if op is None:
        raise ConfigError(
            f"not a Debezium change event: 'op' is {op_text!r}, expected one of "
            f"{', '.join(sorted(_OPS))}"
        )
    txn = payload.get("transaction")
    return ChangeEvent(
        op=op,
        source=SourceInfo.from_dict(payload.get("source") or {}),
        key=key,
        before=payload.get("before"),
        after=payload.get("after"),
        ts_ms=int(payload.get("ts_ms") or 0),
        ts_us=payload.get("ts_us"),
        ts_ns=payload.get("ts_ns"),
        transaction=_transaction(txn) if txn else None,
        message=_message_from_json(payload["message"]) if "message" in payload else None,
    )


def _transaction(data: Mapping[str, Any]) -> TransactionBlock:
    return TransactionBlock(
        id=str(data["id"]),
        total_order=int(data["total_order"]),
        data_collection_order=int(data["data_collection_order"]),
    )


def _message_from_json(data: Mapping[str, Any]) -> dict[str, Any]:
    content = data.get("content")
    raw = base64.b64decode(content) if isinstance(content, str) else b""
    return {"prefix": data.get("prefix", ""), "content": raw}


def decode_event(key: bytes | None, value: bytes) -> ChangeEvent:
    """Parse a record's key and value bytes into a :class:`ChangeEvent`."""
    key_json = decode_json(key)
    if key_json is not None and not isinstance(key_json, dict):
        raise ConfigError(f"record key is not a JSON object: {key!r}")
    payload = decode_json(value)
    if not isinstance(payload, dict):
        raise ConfigError(f"record value is not a Debezium envelope: {value[:80]!r}")
    return payload_to_event(payload, key_json)
