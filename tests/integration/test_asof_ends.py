"""``duality table --as-of`` at the ends of a topic: at or after its last record on a
compacted topic (the current table), and before its first record (no rows)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson

from duality.cli.table_output import print_rows
from duality.events.model import NewRecord
from duality.log.sqlite import SqliteLog
from duality.tables.asof import as_of
from tests.helpers import duality


def _change(op: str, before: Any, after: Any, lsn: int) -> bytes:
    source = {"ts_us": 1_704_067_200_000_000 + lsn, "lsn": lsn, "txId": lsn}
    return orjson.dumps({"before": before, "after": after, "op": op, "source": source})


def _written(tmp_path: Path, compacted: bool = True) -> str:
    """A topic without registered schemas; compacted, its first record is gone."""
    url = f"sqlite://{tmp_path / 'log.db'}"
    with SqliteLog(url) as log:
        log.create_topic("ce", 1, {"cleanup.policy": "compact" if compacted else "delete",
                                   "min.compaction.lag.ms": "0"})
        log.append([
            NewRecord("ce", b'{"id":1}', _change("c", None, {"id": 1, "v": "a"}, 100)),
            NewRecord("ce", b'{"id":1}', _change("u", {"id": 1, "v": "a"},
                                                 {"id": 1, "v": "b"}, 200)),
            NewRecord("ce", b'{"id":2}', _change("c", None, {"id": 2, "v": "c"}, 300)),
        ])
        log.flush()
        if compacted:
            log.compact("ce", now=2**42)
    return url


def test_the_last_offset_of_a_compacted_topic_is_the_current_table(tmp_path: Path) -> None:
    """Offset 0 was compacted away: folding up to the end still gives the table (the
    fold of the whole log is what compaction keeps), where it was refused with exit 4."""
    url = _written(tmp_path)
    current = [{"id": 1, "v": "b"}, {"id": 2, "v": "c"}]
    with SqliteLog(url) as log:
        for point in ("2", "2030-01-01"):
            with as_of("ce", point, log=log) as result:
                assert list(result.table.json_rows()) == current, point
                assert result.method == "forward"
    shown = duality("table", "ce", "--log", url, "--as-of", "2", "--json")
    assert [orjson.loads(line) for line in shown.stdout.splitlines()] == current
    # Inside the compacted history, it is still refused.
    assert duality("table", "ce", "--log", url, "--as-of", "1", check=False).returncode == 4


def test_before_the_first_record_prints_no_rows(tmp_path: Path) -> None:
    url = _written(tmp_path, compacted=False)
    shown = duality("table", "ce", "--log", url, "--as-of", "2020-01-01")
    assert shown.stdout == ""  # there are no columns to head, and no rows
    assert "(0 rows)" in shown.stderr


def test_a_table_without_columns_prints_nothing(capsys: Any) -> None:
    assert print_rows([], []) == 0
    assert capsys.readouterr().out == ""
