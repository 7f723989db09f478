"""kill -9 of the materializer at random points: after restarts, the table is the fold.

A random source history (inserts, updates, placeholders, key changes, deletes,
truncates, a schema change, redelivered windows) is written to a log; ``duality table``
applies it in small batches and is killed — at the crash points inside a batch (rows
written, everything written but not committed, committed but not reported), and from
outside at random moments — then run again until it finishes. The table must equal
the source, and an aggregate over it its recomputation.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from duality.log.sqlite import SqliteLog
from duality.tables import derived
from duality.tables.aggregate_spec import parse_spec
from duality.tables.aggregates import Aggregate
from duality.tables.api import open_table
from duality.tables.sqlite import TableStore
from tests.integration.test_tables_properties import TOPIC, Source, _write

pytestmark = pytest.mark.slow

POINTS = ["tables.batch-written", "tables.before-commit", "tables.committed"]
ROUNDS = 12 if os.environ.get("HYPOTHESIS_PROFILE") == "ci" else 5


def _history(rng: random.Random) -> Source:
    source = Source()
    actions = ["insert", "insert", "update", "toast", "rekey", "move", "delete", "truncate",
               "schema", "keyless"]
    for _ in range(300):
        source.apply(rng.choice(actions), rng.randrange(8), rng.randrange(8),
                     rng.choice(["", "a", "bb", "c;'\\"]), rng.choice(["v", "b", "arr"]))
    return source


def _apply(log_url: str, store_url: str, env: dict[str, str]) -> subprocess.Popen[bytes]:
    command = [sys.executable, "-m", "duality", "table", TOPIC, "--log", log_url,
               "--store", store_url, "--batch-size", "7", "--json"]
    return subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            env={**os.environ, **env})


@pytest.mark.parametrize("seed", range(ROUNDS))
def test_kill_9_anywhere_leaves_the_fold(tmp_path: Path, seed: int) -> None:
    rng = random.Random(seed)
    source = _history(rng)
    events = list(source.events)
    for _ in range(3):  # redelivered windows
        start = rng.randrange(len(events))
        events[len(events):] = events[start : start + rng.randrange(1, 8)]
    log_url = f"sqlite://{tmp_path / 'log.db'}"
    store_url = f"sqlite://{tmp_path / 'tables.db'}"
    with SqliteLog(log_url) as log:
        _write(log, events, 1)
    kills = 0
    for attempt in range(60):
        if attempt % 2 == 0:
            env = {"DUALITY_CRASH_AT": f"{rng.choice(POINTS)}:{rng.randrange(1, 6)}"}
            proc = _apply(log_url, store_url, env)
            status = proc.wait(timeout=120)
        else:  # kill -9 from outside at a random moment
            proc = _apply(log_url, store_url, {})
            time.sleep(rng.uniform(0.0, 0.6))
            proc.send_signal(signal.SIGKILL)
            status = proc.wait(timeout=120)
        assert status in (0, -signal.SIGKILL), proc.stderr.read() if proc.stderr else b""
        kills += status == -signal.SIGKILL
        if status == 0 and attempt >= 6:
            break
        if attempt == 2:  # from here on, an aggregate is kept along with the rows
            _define_aggregate(store_url, log_url)
    final = _apply(log_url, store_url, {})
    assert final.wait(timeout=120) == 0
    assert kills > 0
    with open_table(TOPIC, log=log_url, store=store_url) as table:
        got = {row["id"]: row for row in table.json_rows()}
    assert got == source.rows
    with TableStore(store_url) as store:
        info, source_info = store.info("by_v"), store.info(TOPIC)
        if info is not None and source_info is not None:
            aggregate = Aggregate(store, info, source_info)
            assert aggregate.stored() == aggregate.recompute()


def _define_aggregate(store_url: str, log_url: str) -> None:
    with TableStore(store_url) as store, store.writing():
        table = store.info(TOPIC)
        if table is not None and table.shape.columns:
            derived.define(store, parse_spec({"name": "by_v", "from": TOPIC, "group_by": ["v"],
                                              "select": ["count(*)", "min(id)", "max(id)"]}))
