"""The JSON-lines formats of ``produce`` (input) and ``tail`` (output).

``produce`` reads one object per line, ``{"key": …, "value": …, "headers": {…}}``, like
``kcat -P``: key and value are any JSON and are stored as compact JSON bytes; a
``null`` value is a tombstone; header values are strings (or null). Optional
``"partition"`` and ``"timestamp"`` (ms since the epoch) place the record explicitly.

``tail`` prints one object per record: ``topic``, ``partition``, ``offset``,
``timestamp``, ``key``, ``value`` (the payload; with ``with_schema`` the
``{"schema", "payload"}`` pair Kafka Connect's JSON converter writes) and
``headers``.
"""

from __future__ import annotations

import json
import re
from typing import Any

import orjson

from duality.errors import ConfigError
from duality.events.jsonbytes import dumps
from duality.events.model import NewRecord, Record
from duality.events.schema import RecordSchema

_PRODUCE_KEYS = {"key", "value", "headers", "partition", "timestamp"}
#: A run of digits long enough to be an integer outside 64 bits (2^63 has 19 digits).
_LONG_DIGITS = re.compile(rb"[0-9]{19}")


def parse_produce_line(topic: str, line: bytes, lineno: int) -> NewRecord:
    """One line of ``produce`` input → a record (ConfigError naming the line if bad)."""
    try:
        obj = orjson.loads(line)
    except orjson.JSONDecodeError as exc:
        raise ConfigError(
            f"stdin line {lineno} is not valid JSON ({exc}): {line[:120]!r}"
        ) from None
    if _LONG_DIGITS.search(line) is not None:
        _check_integers(line, lineno)
    if not isinstance(obj, dict):
        raise ConfigError(
            f'stdin line {lineno} must be a JSON object like {{"key": …, "value": …}}, '
            f"got {type(obj).__name__}"
        )
    unknown = set(obj) - _PRODUCE_KEYS
    if unknown:
        raise ConfigError(
            f"stdin line {lineno} has unknown field(s) {', '.join(sorted(unknown))}; "
            f"allowed: {', '.join(sorted(_PRODUCE_KEYS))}"
        )
    if "value" not in obj:
        raise ConfigError(f'stdin line {lineno} has no "value" (use null for a tombstone)')
    return NewRecord(
        topic=topic,
        key=None if obj.get("key") is None else dumps(obj["key"]),
        value=None if obj["value"] is None else dumps(obj["value"]),
        headers=_headers(obj.get("headers"), lineno),
        partition=_optional_int(obj, "partition", lineno),
        timestamp=_optional_int(obj, "timestamp", lineno),
    )


def _check_integers(line: bytes, lineno: int) -> None:
    """Refuse integers outside 64 bits: the JSON parser reads them as floats, which
    would store another number (and make distinct keys one)."""

    def checked(text: str) -> int:
        value = int(text)
        if not -(2**63) <= value < 2**64:
            raise ConfigError(
                f"stdin line {lineno}: the integer {text} does not fit in 64 bits, so it "
                f"cannot be kept exactly (JSON readers, Kafka Connect's int64); write it as "
                f'a string ("{text}")'
            )
        return value

    json.loads(line, parse_int=checked)


def _headers(raw: Any, lineno: int) -> tuple[tuple[str, bytes | None], ...]:
    if raw is None:
        return ()
    if not isinstance(raw, dict):
        raise ConfigError(f'stdin line {lineno}: "headers" must be an object of name → string')
    out: list[tuple[str, bytes | None]] = []
    for name, value in raw.items():
        if value is None:
            out.append((name, None))
        elif isinstance(value, str):
            out.append((name, value.encode("utf-8")))
        else:
            out.append((name, dumps(value)))
    return tuple(out)


def _optional_int(obj: dict[str, Any], name: str, lineno: int) -> int | None:
    value = obj.get(name)
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value < 2**63:
        raise ConfigError(f'stdin line {lineno}: "{name}" must be an integer from 0 to 2^63-1')
    return value


def _json_or_text(data: bytes | None) -> Any:
    if data is None:
        return None
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError:
        return data.decode("utf-8", errors="replace")


def _payload(data: bytes | None) -> Any:
    parsed = _json_or_text(data)
    if isinstance(parsed, dict) and parsed.keys() == {"schema", "payload"}:
        return parsed["payload"]
    return parsed


def record_to_json(record: Record, schema: RecordSchema | None = None) -> bytes:
    """A ``tail`` output line. With ``schema``, key and value are wrapped as
    ``{"schema", "payload"}`` (a tombstone's value stays null, as in Kafka)."""
    key = _payload(record.key)
    value = _payload(record.value)
    if schema is not None:
        if key is not None and schema.key is not None:
            key = {"schema": schema.key.to_json(), "payload": key}
        if value is not None and schema.value is not None:
            value = {"schema": schema.value.to_json(), "payload": value}
    headers = {
        name: None if raw is None else raw.decode("utf-8", errors="replace")
        for name, raw in record.headers
    }
    return dumps(
        {
            "topic": record.topic,
            "partition": record.partition,
            "offset": record.offset,
            "timestamp": record.timestamp,
            "key": key,
            "value": value,
            "headers": headers,
        }
    )
