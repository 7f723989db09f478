"""Comparing captured records with real Debezium 3.6's (``tests/data/debezium``): the
golden files, the fields that differ by nature between two runs (timestamps,
transaction ids, LSNs and the ``sequence`` built from them, the connector version, the
database name), and where duality differs on purpose."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import orjson

from duality.log.sqlite import SqliteLog

GOLDEN = Path(__file__).parent / "data" / "debezium"

_GEOMETRY = (
    "c_box",
    "c_circle",
    "c_line",
    "c_lseg",
    "c_path_closed",
    "c_path_open",
    "c_polygon",
    "c_interval_arr",
    "c_money_arr",
)

#: Where duality differs from Debezium on purpose: (column, ops it applies to) → why.
#: The column is set aside on both sides for those events only.
DELIBERATE: dict[tuple[str, str], str] = {
    ("c_date", "r"): "Debezium's snapshot drops the era of BC dates and mangles +-infinity; "
    "duality writes the values Debezium's stream writes, in both",
    ("c_name", "cud"): "Debezium's stream writes null for name columns (no converter); "
    "duality writes the text, as Debezium's snapshot does",
    ("total", "r"): "Debezium's snapshot includes STORED generated columns, its stream cannot "
    "(pgoutput does not send them); duality leaves them out of both",
    **{
        (column, "rcud"): "Debezium drops the columns of types it has no converter for; "
        "duality never drops a column silently: text form and a warning"
        for column in _GEOMETRY
    },
}
#: Topics Debezium writes and duality does not, on purpose.
DELIBERATE_TOPICS = {
    "golden.public.measurements": "Debezium snapshots a partitioned table's rows twice, on "
    "the parent's topic and on the partition's; duality captures "
    "partitions only, as pgoutput streams them",
    "golden.public.nokey_default": "a table whose UPDATE and DELETE the publication would "
    "make fail is not captured",
}

_VOLATILE_SOURCE = ("version", "ts_ms", "ts_us", "ts_ns", "txId", "lsn", "sequence", "db")

#: Columns a scenario fills with now(): their values differ between any two runs.
_NOW_COLUMNS = {"updated_at"}


def _transaction_id(ident: str) -> str:
    """``"<txId>:<LSN>"``: both parts differ between runs; check the shape only."""
    assert re.fullmatch(r"\d+:\d+", ident), ident
    return "<txId>:<lsn>"


def _transaction_record(record: dict[str, Any]) -> dict[str, Any]:
    value = dict(record["value"])
    value["id"] = _transaction_id(value["id"])
    value.pop("ts_ms")
    collections = value.get("data_collections") or []
    value["data_collections"] = [
        # Debezium appends a Java identity hash to the message collection's name.
        dict(c, data_collection=c["data_collection"].split("@")[0])
        for c in collections
    ] or value["data_collections"]
    return {
        "topic": record["topic"],
        "key": {"id": _transaction_id(record["key"]["id"])},
        "value": value,
        "headers": {},
    }


def _normal(record: dict[str, Any]) -> dict[str, Any]:
    if record["topic"].endswith(".transaction"):
        return _transaction_record(record)
    value = record["value"]
    if value is not None:
        value = dict(value)
        for name in ("ts_ms", "ts_us", "ts_ns"):
            value.pop(name, None)
        source = dict(value.get("source") or {})
        for name in _VOLATILE_SOURCE:
            source.pop(name, None)
        value["source"] = source
        if value.get("transaction"):
            value["transaction"] = dict(
                value["transaction"], id=_transaction_id(value["transaction"]["id"])
            )
        aside = {c for (c, ops) in DELIBERATE if value.get("op", "") in ops}
        for image in ("before", "after"):
            row = value.get(image)
            if isinstance(row, dict):
                value[image] = {
                    k: (None if k in _NOW_COLUMNS else _whole_characters(v))
                    for k, v in row.items()
                    if k not in aside
                }
    headers = {
        k: v
        for k, v in (record.get("headers") or {}).items()
        if not k.startswith("__debezium.context.")
    }
    return {"topic": record["topic"], "key": record["key"], "value": value, "headers": headers}


def _whole_characters(value: Any) -> Any:
    """Debezium cuts strings (column.truncate.to) by UTF-16 units and may leave half a
    character, a lone surrogate; duality leaves the half character out (deliberate)."""
    if isinstance(value, str) and value and 0xD800 <= ord(value[-1]) <= 0xDFFF:
        return value[:-1]
    return value


def golden(name: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    folder = GOLDEN / name
    scenario = orjson.loads((folder / "scenario.json").read_bytes())
    events = [
        json.loads(line)
        for line in (folder / "events.jsonl").read_bytes().splitlines()
        if line.strip()
    ]
    return scenario, events


def by_topic(
    records: list[dict[str, Any]], shifted: bool | None = None
) -> dict[str, list[dict[str, Any]]]:
    """Normalised records per topic. When a topic is set aside on purpose, the snapshot
    markers of the rest shift (``first`` moves), so markers then only say "snapshot"."""
    if shifted is None:
        shifted = any(r["topic"] in DELIBERATE_TOPICS for r in records)
    out: dict[str, list[dict[str, Any]]] = {}
    for record in records:
        if record["topic"] in DELIBERATE_TOPICS:
            continue
        normal = _normal(record)
        value = normal["value"]
        if shifted and value and value.get("op") == "r":
            value["source"]["snapshot"] = "true"
        out.setdefault(record["topic"], []).append(normal)
    return out


def position_order(records: list[dict[str, Any]]) -> dict[str, list[tuple[Any, Any]]]:
    """Per topic, each change record's ``source.txId`` and ``source.lsn`` as their rank
    among the topic's distinct values (None stays None). The values differ between two
    runs, their order does not: which records share a transaction or a position, and
    which come later (a snapshot's ``txId`` is its own transaction's, before any
    streamed one's)."""
    fields = ("txId", "lsn")
    sources: dict[str, list[dict[str, Any]]] = {}
    for record in records:
        value = record["value"]
        if record["topic"] in DELIBERATE_TOPICS or not isinstance(value, dict):
            continue
        if isinstance(value.get("source"), dict):
            sources.setdefault(record["topic"], []).append(value["source"])
    out: dict[str, list[tuple[Any, Any]]] = {}
    for topic, found in sources.items():
        ranks = [
            {v: i for i, v in enumerate(sorted({s[f] for s in found if s.get(f) is not None}))}
            for f in fields
        ]
        out[topic] = [
            tuple(None if s.get(f) is None else rank[s[f]]
                  for f, rank in zip(fields, ranks, strict=True))
            for s in found
        ]
    return out


def ours(log_url: str) -> list[dict[str, Any]]:
    out = []
    with SqliteLog(log_url, create=False) as log:
        for info in log.list_topics():
            for r in log.read(info.name, 0, 0, 1_000_000):
                out.append(
                    {
                        "topic": r.topic,
                        "key": orjson.loads(r.key) if r.key else None,
                        "value": orjson.loads(r.value) if r.value else None,
                        "headers": {k: (v or b"").decode() for k, v in r.headers},
                    }
                )
    return out
