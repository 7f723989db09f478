"""``duality table`` and ``duality aggregate`` as a user runs them (no PostgreSQL)."""

from __future__ import annotations

import os
import queue
import re
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import orjson
import pytest

from duality.tables.api import open_table

NASTY = [
    "it's", 'say "hi"', "a;b", "back\\slash", "DROP TABLE x; --", "Ünïcødé 😀", "tab\tnew\nline",
    "\x1b[31mred\x1b[0m", "nul\x00byte", "", "'); DELETE FROM t; --", "\u2028line sep",
]


def duality(
    *args: str, stdin: bytes = b"", check: bool = True
) -> subprocess.CompletedProcess[bytes]:
    result = subprocess.run(
        [sys.executable, "-m", "duality", *args], input=stdin, capture_output=True, timeout=120,
        check=False,
    )
    if check and result.returncode != 0:
        raise AssertionError(result.stderr.decode())
    return result


def produce(url: str, topic: str, records: list[dict[str, Any]], *args: str) -> None:
    duality("produce", topic, "--log", url, *args,
            stdin=b"\n".join(orjson.dumps(r) for r in records))


def lines(data: bytes) -> list[Any]:
    return [orjson.loads(line) for line in data.splitlines() if line.strip()]


@pytest.fixture
def url(tmp_path: Path) -> str:
    return f"sqlite://{tmp_path / 'log.db'}"


def envelope(op: str, after: dict[str, Any] | None, lsn: int) -> dict[str, Any]:
    return {"before": None, "after": after, "op": op, "source": {"lsn": lsn}}


def test_table_prints_aligned_columns_and_json(url: str, tmp_path: Path) -> None:
    produce(url, "shop.accounts", [
        {"key": {"id": 1}, "value": envelope("c", {"id": 1, "owner": "Ada", "n": 10}, 10)},
        {"key": {"id": 2}, "value": envelope("c", {"id": 2, "owner": "Grace", "n": 7}, 11)},
        {"key": {"id": 1}, "value": envelope("u", {"id": 1, "owner": "Ada L.", "n": 12}, 12)},
    ])
    shown = duality("table", "shop.accounts", "--log", url)
    assert shown.stdout.decode().splitlines() == [
        "id  owner   n",
        "--  ------  --",
        "1   Ada L.  12",
        "2   Grace   7",
    ]
    assert b"(2 rows)" in shown.stderr
    assert (tmp_path / "log.tables.db").exists()  # the default store, beside the log
    as_json = lines(duality("table", "shop.accounts", "--log", url, "--json").stdout)
    assert as_json == [{"id": 1, "owner": "Ada L.", "n": 12}, {"id": 2, "owner": "Grace", "n": 7}]
    where = duality("table", "shop.accounts", "--log", url, "--json", "--where", "n > 10")
    assert lines(where.stdout) == [{"id": 1, "owner": "Ada L.", "n": 12}]


def test_contents_come_through_byte_for_byte(url: str) -> None:
    records = [
        {"key": {"k": text}, "value": {"k": text, text or "_": text, "plain": text}}
        for text in NASTY
    ]
    produce(url, "weird.topic-1_x", records)
    got = lines(duality("table", "weird.topic-1_x", "--log", url, "--json").stdout)
    assert sorted(got, key=lambda r: r["k"]) == sorted(
        ({"k": t, **{n or "_": (t if (n or "_") in (t or "_", "k", "plain") else None)
                     for n in NASTY}, "plain": t} for t in NASTY),
        key=lambda r: r["k"],
    )
    text = duality("table", "weird.topic-1_x", "--log", url).stdout
    assert b"\x1b" not in text and b"\x00" not in text  # control characters are escaped
    assert b"\\u001b[31mred" in text and b"tab\\tnew\\nline" in text
    for where in ("k = 'it''s'", "plain = 'a;b'", "k = 'back\\slash'"):
        found = lines(duality("table", "weird.topic-1_x", "--log", url, "--json",
                              "--where", where).stdout)
        assert len(found) == 1, where


@pytest.mark.parametrize("attack", [
    "1; DROP TABLE x", "1) UNION SELECT name, name, name FROM sqlite_master --",
    "n IN (SELECT id FROM \"duality:tables\")", "load_extension('x') IS NULL", "",
])
def test_where_refuses_anything_but_a_predicate(url: str, attack: str) -> None:
    produce(url, "t", [{"key": {"id": 1}, "value": {"id": 1, "n": 1}}])
    refused = duality("table", "t", "--log", url, "--where", attack, check=False)
    assert refused.returncode == 2, refused.stderr
    assert b"refused" in refused.stderr or b"empty" in refused.stderr
    assert lines(duality("table", "t", "--log", url, "--json").stdout) == [{"id": 1, "n": 1}]


@pytest.mark.parametrize(("where", "live"), [("1) OR (1", [2]), ("n = 1) OR (n = 1", [])])
def test_where_cannot_reach_deleted_rows(url: str, where: str, live: list[int]) -> None:
    """A predicate that closes its own parenthesis filters the live rows only: the
    table and an aggregate filtered by it never see a deleted row."""
    produce(url, "x", [
        {"key": {"id": 1}, "value": envelope("c", {"id": 1, "n": 1}, 10)},
        {"key": {"id": 2}, "value": envelope("c", {"id": 2, "n": 2}, 11)},
        {"key": {"id": 1}, "value": envelope("d", None, 12)},
    ])
    shown = lines(duality("table", "x", "--log", url, "--json", "--where", where).stdout)
    assert shown == [{"id": n, "n": n} for n in live]
    duality("aggregate", "live", "--from", "x", "--select", "count(*) as rows",
            "--where", where, "--log", url)
    counted = lines(duality("table", "live", "--log", url, "--json").stdout)
    assert counted == ([{"rows": len(live)}] if live else []), counted


def test_follow_prints_each_change_as_it_is_applied(url: str) -> None:
    produce(url, "t", [{"key": {"id": 1}, "value": envelope("c", {"id": 1, "v": "a"}, 10)}])
    command = [sys.executable, "-m", "duality", "table", "t", "--log", url, "--follow", "--json"]
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    printed: queue.Queue[bytes] = queue.Queue()
    assert proc.stdout is not None
    threading.Thread(target=lambda: [printed.put(x) for x in proc.stdout or ()],
                     daemon=True).start()
    try:
        assert orjson.loads(printed.get(timeout=30)) == {"id": 1, "v": "a"}
        produce(url, "t", [
            {"key": {"id": 1}, "value": envelope("u", {"id": 1, "v": "b"}, 11)},
            {"key": {"id": 2}, "value": envelope("c", {"id": 2, "v": "c"}, 12)},
            {"key": {"id": 1}, "value": envelope("d", None, 13)},
        ])
        changes = [orjson.loads(printed.get(timeout=30)) for _ in range(3)]
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
    finally:
        proc.kill()
    assert changes == [
        {"table": "t", "op": "u", "key": {"id": 1}, "changed": {"v": "b"}, "before": {"v": "a"}},
        {"table": "t", "op": "c", "key": {"id": 2}, "changed": {"v": "c"}},
        {"table": "t", "op": "d", "key": {"id": 1}, "changed": {}, "before": {"v": "b"}},
    ]


def _follower(url: str, name: str) -> tuple[subprocess.Popen[bytes], queue.Queue[bytes]]:
    command = [sys.executable, "-m", "duality", "table", name, "--log", url, "--follow",
               "--json"]
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    printed: queue.Queue[bytes] = queue.Queue()
    threading.Thread(target=lambda: [printed.put(x) for x in proc.stdout or ()],
                     daemon=True).start()
    return proc, printed


def test_followers_see_changes_whoever_applies_them(url: str) -> None:
    """Two followers (a table and an aggregate over it) and a third process that applies
    the new records first: every follower still prints every change."""
    produce(url, "t", [{"key": {"id": 1}, "value": {"id": 1, "g": "x"}}])
    duality("aggregate", "per_g", "--from", "t", "--log", url, "--group-by", "g",
            "--select", "count(*) as n")
    followers = [_follower(url, "t"), _follower(url, "per_g")]
    try:
        assert orjson.loads(followers[0][1].get(timeout=30)) == {"id": 1, "g": "x"}
        assert orjson.loads(followers[1][1].get(timeout=30)) == {"g": "x", "n": 1}
        time.sleep(1)  # both are registered before anything new is applied
        for record in ({"key": {"id": 2}, "value": {"id": 2, "g": "x"}},
                       {"key": {"id": 1}, "value": None}):
            produce(url, "t", [record])
            duality("table", "t", "--log", url)  # this process applies it
        rows = [orjson.loads(followers[0][1].get(timeout=30)) for _ in range(2)]
        groups = [orjson.loads(followers[1][1].get(timeout=30)) for _ in range(2)]
    finally:
        for proc, _ in followers:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=30)
    assert [(r["op"], r["key"]) for r in rows] == [("c", {"id": 2}), ("d", {"id": 1})]
    assert [(g["op"], g["changed"]) for g in groups] == [("u", {"n": 2}), ("u", {"n": 1})]


def test_aggregates_from_the_command_line_and_a_spec_file(url: str, tmp_path: Path) -> None:
    produce(url, "sales", [
        {"key": {"id": i}, "value": {"id": i, "region": r, "amount": a}}
        for i, r, a in [(1, "eu", 10), (2, "eu", 5), (3, "us", 7)]
    ])
    made = duality("aggregate", "by_region", "--from", "sales", "--log", url, "--group-by",
                   "region", "--select", "count(*) as n", "--select", "sum(amount) as total",
                   "--select", "max(amount)", "--json")
    assert lines(made.stdout) == [{"region": "eu", "n": 2, "total": 15, "max_amount": 10},
                                  {"region": "us", "n": 1, "total": 7, "max_amount": 7}]
    produce(url, "sales", [{"key": {"id": 1}, "value": {"id": 1, "region": "us", "amount": 1}},
                           {"key": {"id": 2}, "value": None}])
    again = lines(duality("table", "by_region", "--log", url, "--json").stdout)
    assert again == [{"region": "us", "n": 2, "total": 8, "max_amount": 7}]
    spec = tmp_path / "aggregates.toml"
    spec.write_text('[aggregates.big]\nfrom = "sales"\nselect = ["count(*)"]\n'
                    'where = "amount > 5"\n')
    assert lines(duality("aggregate", "--spec", str(spec), "--log", url, "--json").stdout) == [
        {"count": 1}]
    duality("aggregate", "big", "--drop", "--log", url)
    assert duality("table", "big", "--log", url, check=False).returncode == 2
    spec.write_text('[aggregates.fine]\nfrom = "sales"\nselect = ["count(*)"]\n'
                    '[aggregates.odd]\nfrom = "sales"\nselect = ["median(amount)"]\n')
    refused = duality("aggregate", "--spec", str(spec), "--log", url, check=False)
    assert refused.returncode == 2
    assert f"aggregate spec {spec}, [aggregates.odd]: " in refused.stderr.decode()
    assert "median" in refused.stderr.decode()


def test_a_record_that_cannot_be_applied_exits_5_and_keeps_its_offset(url: str) -> None:
    produce(url, "t", [{"key": {"id": 1}, "value": envelope("c", {"id": 1}, 1)}],
            "--config", "cleanup.policy=delete")
    duality("table", "t", "--log", url)
    produce(url, "t", [{"key": {"id": 2}, "value": {"op": "c", "before": None, "after": 5}}])
    for _ in range(2):  # the offset was not advanced: it fails again the same way
        failed = duality("table", "t", "--log", url, check=False)
        assert failed.returncode == 5
        message = failed.stderr.decode()
        assert "topic 't' partition 0 offset 1 key {\"id\":2}" in " ".join(message.split())
    with open_table("t", log=url, catch_up=False) as table:
        assert [row["id"] for row in table.select()] == [1]


def test_records_with_a_null_key_are_skipped_and_counted(url: str) -> None:
    produce(url, "events", [{"key": None, "value": {"a": 1}}, {"key": {"id": 1},
                                                                 "value": {"id": 1}}],
            "--config", "cleanup.policy=delete")
    shown = duality("table", "events", "--log", url)
    assert b"1 record(s) with a null key were skipped" in shown.stderr


def test_help_names_the_default_store() -> None:
    for command in ("table", "aggregate"):
        text = " ".join(duality(command, "--help").stdout.decode().split())
        assert "log.db → log.tables.db" in text
        assert "--store" in text
    table_help = duality("table", "--help").stdout.decode()
    for option in ("--where", "--json", "--follow"):
        assert option in table_help


def test_unknown_topic_is_a_usage_error(url: str) -> None:
    produce(url, "t", [{"key": 1, "value": 1}])
    missing = duality("table", "nope", "--log", url, check=False)
    assert missing.returncode == 2 and b"nope" in missing.stderr


def test_environment_selects_log_and_store(url: str, tmp_path: Path) -> None:
    produce(url, "t", [{"key": 1, "value": "one"}])
    env = {**os.environ, "DUALITY_LOG": url, "DUALITY_STORE": f"sqlite://{tmp_path / 's.db'}"}
    out = subprocess.run([sys.executable, "-m", "duality", "table", "t", "--json"],
                         capture_output=True, env=env, check=True, timeout=60)
    assert lines(out.stdout) == [{"key": 1, "value": "one"}]
    assert (tmp_path / "s.db").exists()


@pytest.mark.postgres
def test_demo_shows_a_table_a_query_and_an_aggregate(tmp_path: Path) -> None:
    result = duality("demo", "--keep", str(tmp_path / "demo"))
    text = result.stdout.decode()
    steps = result.stderr.decode()
    assert "6. Tables" in steps and "8. An aggregate" in steps and "9. One more change" in steps
    assert "1   Ada Lovelace     ada@example.com      1100.00" in text
    assert text.count("Barbara Liskov") == 2  # her create event and the table; not the query
    aggregates = [row for row in (line.split() for line in text.splitlines()
                                  if line.startswith("   2 ")) if row[1].isdigit()]
    assert [row[:2] for row in aggregates[-2:]] == [["2", "2"], ["2", "1"]]
    store = f"sqlite://{tmp_path / 'demo' / 'demo-log.tables.db'}"
    log = f"sqlite://{tmp_path / 'demo' / 'demo-log.db'}"
    rich = lines(duality("table", "demo.public.accounts", "--log", log, "--store", store,
                         "--json", "--where", "balance > 100").stdout)
    assert [r["owner"] for r in rich] == ["Ada Lovelace", "Grace Hopper", "Edsger Dijkstra"]
    assert all(isinstance(r["balance"], str) for r in rich)
    # Time travel: before the workload, one row's history, a mistaken UPDATE undone.
    assert "10. Time travel" in steps and "12. A mistake" in steps
    assert "1   Ada Lovelace     ada@example.com     1200.00" in text
    assert "balance: 1200.00 → 1100.00" in text
    undone = text[text.index("BEGIN;"):text.index("COMMIT;")]
    assert undone.count('UPDATE "public"."tasks" SET "due"') == 4
    dues = re.findall(r"^   \d   (?:Send invoice|Review capture design|Quarterly report|"
                      r"Plan next sprint) +(\S+)", text, re.MULTILINE)
    assert len(dues) == 8 and len(set(dues[:4])) == 1 and len(set(dues[4:])) == 4
    # Again into the same directory, whose log now also holds a topic of the user's: the
    # second run starts afresh under a prefix of its own, and compacts its topics only.
    duality("topics", "--log", log, "--create", "mine", "--config", "cleanup.policy=compact",
            "--config", "min.compaction.lag.ms=0")
    produce(log, "mine", [{"key": 1, "value": "v1"}, {"key": 1, "value": "v2"}])
    again = duality("demo", "--keep", str(tmp_path / "demo"))
    assert re.search(r"r  demo_[0-9a-f]{6}\.public\.accounts", again.stdout.decode())
    assert b"source and target agree on every table" in again.stderr
    kept = lines(duality("tail", "mine", "--log", log, "--from-beginning").stdout)
    assert [r["value"] for r in kept] == ["v1", "v2"]


@pytest.mark.parametrize("command", [["table", "many", "--where", "id >= 0"],
                                     ["table", "many", "--json"],
                                     ["tail", "many", "--from-beginning"]])
def test_a_reader_that_stops_early_is_not_an_error(url: str, command: list[str]) -> None:
    """``duality table … | head -1``: the pipe closes while rows are printed; exit 0,
    nothing on stderr."""
    produce(url, "many", [{"key": {"id": i}, "value": {"id": i, "pad": "x" * 200}}
                          for i in range(3000)])
    proc = subprocess.Popen([sys.executable, "-m", "duality", *command, "--log", url],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.readline()
    proc.stdout.close()
    stderr = proc.stderr.read()
    assert proc.wait(timeout=60) == 0 and stderr == b"", stderr


def test_a_store_made_before_origins_gets_the_column_and_then_the_check(
    url: str, tmp_path: Path
) -> None:
    produce(url, "t", [{"key": {"id": i}, "value": {"id": i}} for i in range(3)])
    duality("table", "t", "--log", url)
    store = tmp_path / "log.tables.db"
    with sqlite3.connect(store) as conn:  # as an older duality made it
        conn.execute('ALTER TABLE "duality:tables" DROP COLUMN origin')
    assert [r["id"] for r in lines(duality("table", "t", "--log", url, "--json").stdout)] \
        == [0, 1, 2]
    with sqlite3.connect(store) as conn:
        [(origin,)] = conn.execute('SELECT origin FROM "duality:tables" WHERE name = \'t\'')
    assert origin is None  # nothing new was applied: nothing to vouch for
    produce(url, "t", [{"key": {"id": 3}, "value": {"id": 3}}])
    duality("table", "t", "--log", url)
    duality("topics", "--log", url, "--delete", "t")
    produce(url, "t", [{"key": {"id": i}, "value": {"id": i}} for i in range(100, 110)])
    assert duality("table", "t", "--log", url, check=False).returncode == 4


@pytest.mark.parametrize("count", [2, 10])
def test_a_topic_made_again_under_the_store_is_a_gap(
    url: str, tmp_path: Path, count: int
) -> None:
    """The store applied another making of the topic (the topic or the log was made
    again), whether the new one ends before the store's offsets or past them: exit 4
    saying to build the table anew, instead of showing the old rows as the new topic's
    or skipping the new topic's first records."""
    produce(url, "t", [{"key": {"id": i}, "value": {"id": i}} for i in range(5)])
    duality("table", "t", "--log", url)
    duality("topics", "--log", url, "--delete", "t")
    produce(url, "t", [{"key": {"id": i}, "value": {"id": i}} for i in range(100, 100 + count)])
    stale = duality("table", "t", "--log", url, check=False)
    assert stale.returncode == 4, stale.stderr
    said = " ".join(stale.stderr.decode().split())
    assert "the table store has applied topic 't' of another log, or of a topic of that " \
        "name since deleted" in said and "remove the table store file" in said, said
    (tmp_path / "log.tables.db").unlink()
    rows = lines(duality("table", "t", "--log", url, "--json").stdout)
    assert [r["id"] for r in rows] == list(range(100, 100 + count))
