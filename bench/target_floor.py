"""The target's own share of replicate's streaming phase: the batches the PostgreSQL
sink staged, applied again with no client work, over one session or several.

:func:`record` runs replicate in this process, in one session, with a sink that keeps
each batch's stage rows as it sends them (binary ``COPY`` tuples encoded in C) with the
stage's columns and the statement that applies them. :func:`replay` sends those batches
again into a copy of the target as it was before the phase, each one as the sink does
(empty the stage, ``COPY`` the rows, the set-based statement, the offsets, commit), the
rows ready made: its time is what the target needs when the client costs nothing. With
``lanes`` > 1, each batch's rows are split into that many contiguous runs, each applied
and committed by a session of its own, as ``replicate --sessions`` does. Streamed
changes the C encoder leaves to Python are not recorded: the caller checks that the
replay reached the source.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import psycopg

from duality.log.sqlite import SqliteLog
from duality.runtime.replicate import Replicator
from duality.sinks.base import StageTuples
from duality.sinks.dialects.postgres_binary import SIGNATURE
from duality.sinks.postgres import MERGE_VERSION, SESSION_SQL, PostgresSink
from duality.sinks.statements import TableSql

#: A stand-in for the offsets the sink saves with every batch, one row per session.
OFFSETS = """
INSERT INTO duality.offsets (topic, partition, next_offset) VALUES ('target_floor', %s, 1)
ON CONFLICT (topic, partition) DO UPDATE SET next_offset = duality.offsets.next_offset + 1
"""


@dataclass(frozen=True)
class Staged:
    """One staged batch: the stage's name and columns, the statement, the rows (binary
    COPY tuples, split over sessions as the sink splits them)."""

    stage: str
    columns: tuple[str, ...]
    statement: str
    rows: StageTuples


class _Recording(PostgresSink):
    """The PostgreSQL sink in one session, keeping a copy of every batch it stages."""

    def __init__(self, url: str, kept: list[Staged]) -> None:
        super().__init__(url)
        self.kept = kept

    def _write_shares(self, sql: TableSql, lanes: list[Any], rows: StageTuples) -> None:
        merges = self._conn.info.server_version >= MERGE_VERSION  # as _apply_fresh
        self.kept.append(Staged(sql.stage, tuple(sql.stage_columns()),
                                sql.merge_with_positions() if merges
                                else sql.apply_with_positions(), rows))
        super()._write_shares(sql, lanes, rows)


def record(log_url: str, target_url: str, batch: int) -> list[Staged]:
    """Replicate ``log_url`` into ``target_url`` (``--once``), keeping what was staged."""
    kept: list[Staged] = []
    with SqliteLog(log_url, create=False) as log:
        Replicator(log, target_url, once=True, batch_records=batch,
                   connect=lambda url: _Recording(url, kept)).run()
    return kept


def replay(dsn: str, batches: Sequence[Staged], lanes: int = 1) -> float:
    """Apply ``batches`` again over ``lanes`` sessions into the database at ``dsn``;
    the wall seconds from the first statement to the last commit."""
    shares = [[staged.rows.split(lanes)[lane] for staged in batches] for lane in range(lanes)]
    sessions = [psycopg.connect(dsn) for _ in range(lanes)]
    try:
        for session in sessions:
            for statement in (*SESSION_SQL, *_stages(batches)):
                session.execute(statement.encode())
            session.commit()
        start, step = threading.Barrier(lanes + 1), threading.Barrier(lanes)
        failed: list[BaseException] = []
        threads = [threading.Thread(target=_lane, args=(session, lane, batches, shares[lane],
                                                        start, step, failed))
                   for lane, session in enumerate(sessions)]
        for thread in threads:
            thread.start()
        start.wait()
        began = time.perf_counter()
        for thread in threads:
            thread.join()
        if failed:
            raise failed[0]
        return time.perf_counter() - began
    finally:
        for session in sessions:
            session.close()


def _stages(batches: Sequence[Staged]) -> list[str]:
    made = {staged.stage: staged.columns for staged in batches}
    return [f"CREATE TABLE {stage} ({', '.join(columns)})" for stage, columns in made.items()]


def _lane(session: psycopg.Connection[Any], lane: int, batches: Sequence[Staged],
          shares: Sequence[memoryview], start: threading.Barrier, step: threading.Barrier,
          failed: list[BaseException]) -> None:
    """One session's share of every batch; the sessions finish each batch together, as
    the sink's do."""
    start.wait()
    try:
        for staged, share in zip(batches, shares, strict=True):
            session.execute(f"TRUNCATE {staged.stage}".encode())
            copy = f"COPY {staged.stage} FROM STDIN (FORMAT binary)".encode()
            with session.cursor() as cur, cur.copy(copy) as into:
                into.write(SIGNATURE)
                into.write(share)
            session.execute(staged.statement.encode())
            session.execute(OFFSETS.encode(), (lane,))
            session.commit()
            step.wait()
    except BaseException as exc:
        step.abort()
        failed.append(exc)
