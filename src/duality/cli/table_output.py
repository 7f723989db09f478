"""How ``duality table`` prints: aligned columns for people, JSON lines for programs.

Text output escapes control characters (a value can never move the cursor or send a
terminal escape sequence), shows NULL as an empty cell, and sizes columns to the first
1,000 rows so that printing starts at once and memory stays bounded.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

import orjson
from rich.cells import cell_len

from duality.cli.common import out

SAMPLE_ROWS = 1000
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")
_NAMED = {"\n": "\\n", "\t": "\\t", "\r": "\\r"}


def text(value: Any) -> str:
    """A JSON-ready value as one line of terminal text."""
    if value is None:
        return ""
    if value is True or value is False:
        return "true" if value else "false"
    if isinstance(value, str):
        shown = value
    elif isinstance(value, (int, float)):
        shown = repr(value)
    else:
        shown = orjson.dumps(value).decode()
    return _CONTROL.sub(_escape, shown)


def _escape(match: re.Match[str]) -> str:
    char = match.group()
    return _NAMED.get(char) or f"\\u{ord(char):04x}"


def json_line(row: Mapping[str, Any]) -> bytes:
    return orjson.dumps(row)


def print_rows(
    columns: Sequence[str], rows: Iterable[Mapping[str, Any]], indent: str = ""
) -> int:
    """Aligned columns with a header; returns the number of rows printed. Without
    columns (a table that never had a row, so no schema names them) nothing is printed:
    there is no header to print."""
    iterator = iter(rows)
    if not columns:
        return sum(1 for _ in iterator)
    sample = [_cells(columns, row) for row in itertools.islice(iterator, SAMPLE_ROWS)]
    header = [text(c) for c in columns]
    widths = [max([cell_len(h)] + [cell_len(r[i]) for r in sample]) for i, h in enumerate(header)]
    out(indent + _line(header, widths))
    out(indent + "  ".join("-" * w for w in widths))
    count = 0
    for cells in itertools.chain(sample, (_cells(columns, row) for row in iterator)):
        out(indent + _line(cells, widths))
        count += 1
    return count


def _cells(columns: Sequence[str], row: Mapping[str, Any]) -> list[str]:
    return [text(row.get(c)) for c in columns]


def _line(cells: Sequence[str], widths: Sequence[int]) -> str:
    padded = [cell + " " * (width - cell_len(cell))
              for cell, width in zip(cells, widths, strict=True)]
    return "  ".join(padded).rstrip()


def change_json(
    table: str, op: str, key: Mapping[str, Any] | None, before: Mapping[str, Any] | None,
    after: Mapping[str, Any] | None,
) -> dict[str, Any]:
    """A ``--follow --json`` line: the op, the key, the changed columns' new values and,
    for updates and deletes, their old values."""
    line: dict[str, Any] = {"table": table, "op": op, "key": key}
    changed = dict(changed_columns(before, after))
    line["changed"] = {k: new for k, (_, new) in changed.items()}
    if op == "u":
        line["before"] = {k: old for k, (old, _) in changed.items()}
    elif op == "d":
        line["before"] = dict(before or {})
    return line


def changed_columns(
    before: Mapping[str, Any] | None, after: Mapping[str, Any] | None
) -> Iterator[tuple[str, tuple[Any, Any]]]:
    for name, new in (after or {}).items():
        old = (before or {}).get(name)
        if before is None or old != new:
            yield name, (old, new)


def change_text(line: Mapping[str, Any]) -> str:
    """A ``--follow`` line for people: ``u  {"id":1}  balance: 1200.00 → 1100.00``."""
    op, key = line["op"], line["key"]
    head = f"{op}  {text(line['table'])}"
    if op == "t":
        return f"{head}  (truncated: every row written before it is gone)"
    head += f"  {text(key)}"
    if op == "d":
        return head
    old = line.get("before", {})
    parts = [
        f"{text(name)}: {text(old.get(name))} → {text(new)}" if op == "u" else
        f"{text(name)}={text(new)}"
        for name, new in line["changed"].items()
    ]
    return head + "  " + "  ".join(parts)
