"""The target's own share of replicate's streaming phase: the batches the PostgreSQL
sink staged, applied again with no client work, over one session or several.

:func:`record` runs replicate in this process with a sink that, after loading each
batch into its stage, copies the stage back out (``COPY … TO STDOUT``) and keeps it with
the stage's columns and the statement that applies it. :func:`replay` sends those
batches again into a copy of the target as it was before the phase, each one as the
sink does (empty the stage, ``COPY`` the rows, the set-based statement, the offsets,
commit), with the rows already formatted: its time is what the target needs when the
client costs nothing. With ``lanes`` > 1, each batch's rows are split by a hash of the
key over that many sessions, each applying and committing its share: what applying in
parallel sessions could reach on this machine.
"""

from __future__ import annotations

import threading
import time
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import psycopg

from duality.log.sqlite import SqliteLog
from duality.runtime.replicate import Replicator
from duality.sinks.postgres import SESSION_SQL, PostgresSink
from duality.sinks.statements import TableSql

#: A stand-in for the offsets the sink saves with every batch, one row per session.
OFFSETS = """
INSERT INTO duality.offsets (topic, partition, next_offset) VALUES ('target_floor', %s, 1)
ON CONFLICT (topic, partition) DO UPDATE SET next_offset = duality.offsets.next_offset + 1
"""


@dataclass(frozen=True)
class Staged:
    """One staged batch: the stage's name and columns, the statement, the rows (COPY
    text lines) and how many key columns lead each line."""

    stage: str
    columns: tuple[str, ...]
    statement: str
    lines: tuple[bytes, ...]
    keys: int


class _Recording(PostgresSink):
    """The PostgreSQL sink, keeping a copy of every batch it stages."""

    def __init__(self, url: str, kept: list[Staged]) -> None:
        super().__init__(url)
        self.kept = kept

    def _apply_staged(self, sql: TableSql, with_positions: bool) -> None:
        with self._conn.cursor() as cur, cur.copy(f"COPY {sql.stage} TO STDOUT".encode()) as out:
            data = b"".join(bytes(chunk) for chunk in out)
        statement = (sql.apply_with_positions() if with_positions
                     else sql.apply_without_positions())
        self.kept.append(Staged(sql.stage, tuple(sql.stage_columns()), statement,
                                tuple(data.splitlines()), len(sql.spec.key)))
        super()._apply_staged(sql, with_positions)


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
    shares = [[_share(staged, lane, lanes) for staged in batches] for lane in range(lanes)]
    sessions = [psycopg.connect(dsn) for _ in range(lanes)]
    try:
        for session in sessions:
            for statement in (*SESSION_SQL, *_stages(batches)):
                session.execute(statement.encode())
            session.commit()
        start = threading.Barrier(lanes + 1)
        failed: list[BaseException] = []
        threads = [threading.Thread(target=_lane, args=(session, lane, batches, shares[lane],
                                                        start, failed))
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


def _share(staged: Staged, lane: int, lanes: int) -> bytes:
    if lanes == 1:
        return b"".join(line + b"\n" for line in staged.lines)
    return b"".join(
        line + b"\n" for line in staged.lines
        if zlib.crc32(b"\t".join(line.split(b"\t", staged.keys)[: staged.keys])) % lanes == lane
    )


def _stages(batches: Sequence[Staged]) -> list[str]:
    made = {staged.stage: staged.columns for staged in batches}
    return [f"CREATE TABLE {stage} ({', '.join(columns)})" for stage, columns in made.items()]


def _lane(session: psycopg.Connection[Any], lane: int, batches: Sequence[Staged],
          shares: Sequence[bytes], start: threading.Barrier, failed: list[BaseException]) -> None:
    start.wait()
    try:
        for staged, share in zip(batches, shares, strict=True):
            session.execute(f"TRUNCATE {staged.stage}".encode())
            copy = f"COPY {staged.stage} FROM STDIN".encode()
            with session.cursor() as cur, cur.copy(copy) as into:
                into.write(share)
            session.execute(staged.statement.encode())
            session.execute(OFFSETS.encode(), (lane,))
            session.commit()
    except BaseException as exc:
        failed.append(exc)
