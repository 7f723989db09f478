"""The PostgreSQL sink (``--target postgresql://user:password@host:5432/dbname``, or a
libpq ``key=value`` DSN), with psycopg 3.

Besides the replicated tables, the target holds the schema ``duality``:

- ``duality.tables``: one row per replicated topic (see :mod:`duality.sinks.target`);
- ``duality.offsets(topic, partition, next_offset, carry)``: the next log offset to apply
  per topic partition; ``carry`` is the key of a delete whose tombstone may follow;
- ``duality.positions_<id>``: per target table, the key columns and
  ``duality:position``, the source position of the last change applied to that key.

All of it is written in the transaction that writes the rows. Rows are sent with
``COPY … FROM STDIN`` (straight into the table for a snapshot into an empty table, in
binary format where the rows were encoded in C: :mod:`~duality.sinks.dialects.postgres_binary`;
otherwise into a temporary stage table applied by one set-based statement). Streamed
changes encoded in C may be split over several sessions (``--sessions``,
:meth:`PostgresSink._write_encoded`): the others commit their shares before this one
commits the rest with the offsets. One replicate process applies to a database at a
time (a session advisory lock). Every session pins
the settings that fix how values read (TimeZone UTC, DateStyle ISO, …), and turns hash
and merge joins and JIT compilation off (see ``SESSION_SQL``).
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import psycopg
from psycopg import errors as pg_errors

from duality.errors import ConfigError, DualityError, Unavailable
from duality.sinks import ddl
from duality.sinks.base import EncodedRows, Load, Offsets, StageTuples, TargetName
from duality.sinks.dialects import postgres_binary
from duality.sinks.dialects.postgres import POSTGRES
from duality.sinks.naming import META_SCHEMA
from duality.sinks.sql import LanesFailed, Rekey, SqlSink, Staged
from duality.sinks.statements import TableSql
from duality.sinks.target import META_COLUMNS, Target
from duality.sources.postgres.connection import describe, map_connect_error, with_pins
from duality.tables.fold import truncated
from duality.testing import crash_point

#: The advisory lock one replicate process holds on its target database.
LOCK_KEY = 0x6475616C72706C31  # "dualrpl1"
_TRANSIENT_CLASSES = ("08", "40", "53", "57", "58")
_TRANSIENT_STATES = frozenset({"55P03", "55006"})
_REFUSED_CLASSES = ("22", "23", "54", "44")
#: Privileges, and a target table or column that is not (or no longer) what it was.
_REFUSED_STATES = frozenset({"42501", "42P01", "42703", "42804", "42846", "25006"})

_META_SQL = (
    f"CREATE SCHEMA {META_SCHEMA}",
    f"""CREATE TABLE {META_SCHEMA}.tables (
        id serial PRIMARY KEY, topic text NOT NULL UNIQUE, target_schema text,
        target_table text NOT NULL, created boolean NOT NULL, spec text, shape text,
        schema_id bigint, schema_position bigint, watermark bigint, high_water bigint,
        loading bigint)""",
    f"""CREATE TABLE {META_SCHEMA}.offsets (
        topic text NOT NULL, partition integer NOT NULL, next_offset bigint NOT NULL,
        carry bytea, PRIMARY KEY (topic, partition))""",
    f"CREATE TABLE {META_SCHEMA}.origins (topic text PRIMARY KEY, origin text NOT NULL)",
)
_META_TABLES = ("tables", "offsets", "origins")

#: Session settings: the statements join a batch (thousands of keys) to tables that may
#: hold millions, where a lookup per key through the key's index is what they need. With
#: hash and merge joins allowed, the planner reads the whole positions table into a hash
#: once a batch is a sizeable part of it (measured: 50k staged changes on 500k positions,
#: 547 against 466 ms per batch); it may still use them where a statement has no index
#: to go by. JIT compilation off: the statements are lookups and writes per key, which
#: compiled expressions do not speed up, and the planner's cost of a batch (its estimate
#: grows with the batch) passes ``jit_above_cost`` at about 40k staged changes; compiling
#: cost 17 ms a statement there, and the one-session replay of ``bench/replicate.py``'s
#: streaming phase 4.08-4.20 s against 3.86-3.94 s without.
SESSION_SQL = ("SET enable_hashjoin = off", "SET enable_mergejoin = off", "SET jit = off")
#: The other sessions of a parallel apply give up waiting for a lock after this long: a
#: row of this session's share that theirs conflicts with (a unique index of the
#: target's own) is only released when this session commits, after them. The batch is
#: then applied again in one session.
LANE_LOCK_TIMEOUT = "SET lock_timeout = '10s'"
#: The first server version with ``MERGE`` (``server_version_num``).
MERGE_VERSION = 150000
#: Rows per session at least, for a step to be split over several sessions (fewer go
#: through this session alone).
SPLIT_ROWS = 2

_DESCRIBE_COLUMNS = """
SELECT a.attname, format_type(a.atttypid, a.atttypmod), a.attnotnull,
       a.atthasdef OR a.attidentity <> '' OR a.attgenerated <> ''
FROM pg_attribute a WHERE a.attrelid = %s AND a.attnum > 0 AND NOT a.attisdropped
ORDER BY a.attnum
"""
_DESCRIBE_KEYS = """
SELECT ARRAY(SELECT a.attname FROM unnest(i.indkey) WITH ORDINALITY k(n, o)
             JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.n ORDER BY k.o)
FROM pg_index i WHERE i.indrelid = %s AND i.indisunique AND i.indpred IS NULL
  AND i.indexprs IS NULL
"""
#: Which of the tables (their quoted names) exist without a primary key.
_KEYLESS = """
SELECT name FROM unnest(%s::text[]) AS name
WHERE to_regclass(name) IS NOT NULL AND NOT EXISTS (
  SELECT 1 FROM pg_constraint WHERE conrelid = to_regclass(name) AND contype = 'p')
"""
_PRIMARY_KEY = (
    "SELECT conname FROM pg_constraint WHERE conrelid = to_regclass(%s) AND contype = 'p'"
)


class PostgresSink(SqlSink):
    """A PostgreSQL target (see the module docstring)."""

    dialect = POSTGRES
    binary_loads = postgres_binary.native is not None
    #: Whether a snapshot's primary key is set aside while it loads (see _unkey): only
    #: where this process holds the target alone.
    unkeys = True

    def __init__(self, url: str, sessions: int = 1) -> None:
        super().__init__(url)
        #: Sessions that apply a batch's streamed changes at once (see _write_encoded).
        self.sessions = sessions
        self._lanes: list[_Lane] = []
        self._pool: ThreadPoolExecutor | None = None
        #: Whether the columns of a table (by its spec) read encoded rows of given kinds.
        self._reads: dict[tuple[int, ddl.TableSpec, tuple[int, ...]], bool] = {}
        try:
            self._conn = psycopg.connect(with_pins(url, timeout_s=10), autocommit=False)
        except psycopg.Error as exc:
            raise map_connect_error(exc, url, "--target") from exc
        try:
            with self._transaction():
                for statement in SESSION_SQL:
                    self._execute(statement)
                self._lock()
                self._prepare()
                self._read_state()
        except BaseException:
            self._conn.close()
            raise

    def describe(self) -> str:
        return describe(self.url)

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True)
        for lane in self._lanes:
            lane.conn.close()
        self._conn.close()

    # -- start-up -------------------------------------------------------------------

    def _lock(self) -> None:
        if self._query("SELECT pg_try_advisory_lock(%s)", (LOCK_KEY,))[0][0]:
            return
        pids = self._query(
            "SELECT string_agg(pid::text, ', ') FROM pg_locks WHERE locktype = 'advisory' "
            "AND classid::bigint = %s AND objid::bigint = %s AND granted",
            (LOCK_KEY >> 32, LOCK_KEY & 0xFFFFFFFF),
        )[0][0]
        raise ConfigError(
            f"another duality replicate (server process {pids or 'unknown'}) is applying to "
            f"{self.describe()}; one replicate process applies to a database at a time. "
            f"Stop it first, or give each a database of its own."
        )

    def _prepare(self) -> None:
        """The metadata schema and tables, created when missing; the role must be able
        to write them."""
        if self._query("SHOW transaction_read_only")[0][0] == "on":
            raise ConfigError(
                f"{self.describe()} accepts only read-only transactions (a standby, or "
                f"default_transaction_read_only); replicate into a writable primary"
            )
        found = self._query(
            "SELECT current_user, current_database(), to_regnamespace(%s) IS NOT NULL"
            + ", to_regclass(%s) IS NOT NULL" * len(_META_TABLES),
            (META_SCHEMA, *(f"{META_SCHEMA}.{table}" for table in _META_TABLES)),
        )[0]
        role, database = found[0], found[1]
        try:
            for statement, there in zip(_META_SQL, found[2:], strict=True):
                if not there:
                    self._execute(statement)
        except pg_errors.InsufficientPrivilege as exc:
            fix = f"GRANT CREATE ON DATABASE {_ident(database)} TO {_ident(role)}"
            raise self._not_allowed(role, exc.diag.message_primary or "", fix) from None
        missing = [f"{privilege} on {META_SCHEMA}.{table}" for table in _META_TABLES
                   for privilege in ("SELECT", "INSERT", "UPDATE", "DELETE")
                   if not self._query("SELECT has_table_privilege(%s, %s)",
                                      (f"{META_SCHEMA}.{table}", privilege))[0][0]]
        missing += [f"{privilege} on schema {META_SCHEMA}" for privilege in ("USAGE", "CREATE")
                    if not self._query("SELECT has_schema_privilege(%s, %s)",
                                       (META_SCHEMA, privilege))[0][0]]
        if missing:
            fix = (f"GRANT USAGE, CREATE ON SCHEMA {META_SCHEMA} TO {_ident(role)}; GRANT "
                   f"SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA {META_SCHEMA} TO "
                   f"{_ident(role)}")
            raise self._not_allowed(role, "missing " + ", ".join(missing), fix)

    def _not_allowed(self, role: str, why: str, fix: str) -> ConfigError:
        return ConfigError(
            f"role {role!r} may not create or write duality's tables in the schema "
            f"{META_SCHEMA!r} of {self.describe()} ({why}); replicate keeps its offsets and "
            f"row positions there, in the transaction that writes the rows. Grant the role "
            f"what it needs ({fix}), or run replicate as a role that may write the target "
            f"(the one that set it up)."
        )

    def _read_state(self) -> None:
        rows = self._query(f"SELECT {META_COLUMNS} FROM {META_SCHEMA}.tables ORDER BY id")
        for row in rows:
            target = Target.from_meta(row)
            self._targets[target.topic] = target
            if target.spec is not None:
                self._sql[target.id] = self._table_sql(target, target.spec)
        self._unkeyed = self._left_keyless()
        for topic, partition, offset, carry in self._query(
            f"SELECT topic, partition, next_offset, carry FROM {META_SCHEMA}.offsets"
        ):
            self._offsets[(topic, int(partition))] = (int(offset), bytes(carry) if carry else None)
        self._origins = dict(self._query(f"SELECT topic, origin FROM {META_SCHEMA}.origins"))

    def _left_keyless(self) -> dict[int, Rekey]:
        """Tables a load stopped in before their key was back (a crash), in one query."""
        loading = {self._sql[target.id].table: target.id for target in self._targets.values()
                   if target.created and target.loading is not None and target.id in self._sql}
        if not loading:
            return {}
        return {loading[name]: functools.partial(self._rekey, self._sql[loading[name]])
                for (name,) in self._query(_KEYLESS, (list(loading),))}

    def reset_offsets(self, topics: list[str]) -> None:
        with self._transaction():
            for table in ("offsets", "origins"):
                self._execute(f"DELETE FROM {META_SCHEMA}.{table} WHERE topic = ANY(%s)",
                              (topics,))
        self._offsets = {k: v for k, v in self._offsets.items() if k[0] not in topics}
        self._origins = {k: v for k, v in self._origins.items() if k not in topics}

    # -- statements -----------------------------------------------------------------

    @contextlib.contextmanager
    def _transaction(self, *, commit: bool = True) -> Iterator[None]:
        try:
            yield
            if commit:
                self._conn.commit()
            else:
                self._conn.rollback()
                self._stages.clear()
        except BaseException as exc:
            self._stages.clear()
            with contextlib.suppress(psycopg.Error):
                self._conn.rollback()
            if isinstance(exc, psycopg.Error):
                raise self._mapped(exc) from exc
            raise

    def _mapped(self, exc: psycopg.Error) -> DualityError:
        state = exc.sqlstate or ""
        text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        if (isinstance(exc, psycopg.OperationalError | psycopg.InterfaceError)
                or state.startswith(_TRANSIENT_CLASSES) or state in _TRANSIENT_STATES):
            return Unavailable(f"the target {self.describe()} failed while applying: {text}")
        return DualityError(f"the target {self.describe()} refused a statement: {text}")

    def _execute(self, sql: str, params: Sequence[Any] = ()) -> None:
        self._conn.execute(sql.encode(), params or None)

    def _query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        return self._conn.execute(sql.encode(), params or None).fetchall()

    def _refusal(self, exc: BaseException) -> str | None:
        if not isinstance(exc, psycopg.Error):
            return None
        state = exc.sqlstate or ""
        if not state.startswith(_REFUSED_CLASSES) and state not in _REFUSED_STATES:
            return None
        detail = exc.diag.message_detail
        reason = exc.diag.message_primary or str(exc)
        return f"{reason} ({detail})" if detail else reason

    # -- tables ---------------------------------------------------------------------

    def _describe(self, name: TargetName) -> ddl.ExistingTable | None:
        found = self._query(
            "SELECT c.oid, c.relkind, c.relhasrules FROM pg_class c JOIN pg_namespace n "
            "ON n.oid = c.relnamespace WHERE n.nspname = %s AND c.relname = %s",
            (name.schema, name.table),
        )
        if not found:
            return None
        oid, kind, has_rules = found[0]
        if kind not in ("r", "p"):
            raise ConfigError(
                f"{self._shown(name)} in {self.describe()} is not a table (relkind "
                f"{kind!r}); replicate into another name with --map or --table-prefix"
            )
        rules = [_ident(rule) for (rule,) in self._query(
            "SELECT rulename FROM pg_rewrite WHERE ev_class = %s ORDER BY rulename", (oid,)
        )] if has_rules else []  # (relhasrules stays true after a DROP RULE, until a VACUUM)
        if rules:  # COPY would load the table; no statement of a change could write it
            raise ConfigError(
                f"{self._shown(name)} in {self.describe()} has rules ({', '.join(rules)}): "
                f"PostgreSQL runs none of replicate's statements on a table with rules "
                f"(MERGE, INSERT … ON CONFLICT, DELETE in WITH); drop them (DROP RULE name "
                f"ON {self._shown(name)}; a trigger can do what they did), or replicate "
                f"into another name with --map or --table-prefix"
            )
        columns = tuple(ddl.ExistingColumn(n, t, bool(nn), bool(d))
                        for n, t, nn, d in self._query(_DESCRIBE_COLUMNS, (oid,)))
        keys = tuple(tuple(k) for (k,) in self._query(_DESCRIBE_KEYS, (oid,)))
        return ddl.ExistingTable(columns, keys)

    def _ddl(self, sql: TableSql, action: ddl.Action) -> None:
        if isinstance(action, ddl.CreateTable):
            self._execute(sql.create_table())
        elif isinstance(action, ddl.AddColumn):
            self._execute(sql.add_column(action.column))
        elif isinstance(action, ddl.AlterType):
            column = sql.quote(action.name)
            self._execute(f"ALTER TABLE {sql.table} ALTER COLUMN {column} TYPE {action.new} "
                          f"USING {column}::{action.new}")
        else:
            self._execute(f"ALTER TABLE {sql.table} ALTER COLUMN {sql.quote(action.name)} "
                          f"DROP NOT NULL")

    def _ensure_schema(self, name: TargetName) -> None:
        if name.schema is not None and not self._query(
            "SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = %s)", (name.schema,)
        )[0][0]:
            self._execute(f"CREATE SCHEMA {self.dialect.quote(name.schema)}")

    def _new_target(self, topic: str, name: TargetName, *, created: bool) -> Target:
        ident = self._query(
            f"INSERT INTO {META_SCHEMA}.tables (topic, target_schema, target_table, created) "
            f"VALUES (%s, %s, %s, %s) RETURNING id", (topic, name.schema, name.table, created),
        )[0][0]
        return Target(int(ident), topic, name, created)

    def _save_target(self, target: Target) -> None:
        self._execute(
            f"UPDATE {META_SCHEMA}.tables SET (target_schema, target_table, created, spec, "
            f"shape, schema_id, schema_position, watermark, high_water, loading) = "
            f"(%s, %s, %s, %s, %s, %s, %s, %s, %s, %s) WHERE id = %s",
            (*target.meta_values(), target.id),
        )

    def _save_offsets(self, offsets: Offsets) -> None:
        if not offsets:
            return
        with self._conn.cursor() as cur:
            cur.executemany(
                f"INSERT INTO {META_SCHEMA}.offsets (topic, partition, next_offset, carry) "
                f"VALUES (%s, %s, %s, %s) ON CONFLICT (topic, partition) DO UPDATE SET "
                f"next_offset = excluded.next_offset, carry = excluded.carry",
                [(t, p, o, c) for (t, p), (o, c) in offsets.items()],
            )

    def _save_origins(self, origins: dict[str, str]) -> None:
        with self._conn.cursor() as cur:
            cur.executemany(
                f"INSERT INTO {META_SCHEMA}.origins (topic, origin) VALUES (%s, %s) "
                f"ON CONFLICT (topic) DO UPDATE SET origin = excluded.origin",
                list(origins.items()),
            )

    def _side_name(self, target: Target) -> TargetName:
        return TargetName(META_SCHEMA, f"positions_{target.id}")

    def _stage_name(self, target: Target) -> str:
        return f'pg_temp."duality_stage_{target.id}"'

    # -- rows -----------------------------------------------------------------------

    def _stage(self, sql: TableSql, rows: Sequence[Staged]) -> None:
        self._empty_stage(sql, f"TRUNCATE {sql.stage}")
        self._copy(f"COPY {sql.stage} FROM STDIN", rows)

    def _copy(self, statement: str, rows: Sequence[Sequence[Any]]) -> None:
        with self._conn.cursor() as cur, cur.copy(statement.encode()) as copy:
            write = copy.write_row
            for row in rows:
                write(row)

    def _apply_staged(self, sql: TableSql, with_positions: bool) -> None:
        if with_positions:
            _apply_fresh(self._conn, sql)
        else:
            self._execute(sql.apply_without_positions())

    def _load(self, sql: TableSql, rows: Sequence[tuple[Any, ...]]) -> bool:
        return self._unless_taken(
            lambda: self._copy(f"COPY {sql.table} ({sql.staged}) FROM STDIN", rows))

    def _load_encoded(self, target: Target, sql: TableSql, load: Load) -> bool:
        if sql.spec is None or self._conn.info.encoding != "utf-8":
            return False
        known = (target.id, sql.spec, load.kinds)
        if known not in self._reads:
            existing = self._describe(target.name)
            types = {c.name: c.type for c in existing.columns} if existing else {}
            staged = [types.get(c.name, "") for c in sql.spec.staged]
            self._reads[known] = postgres_binary.fits(load.kinds, staged)
        if not self._reads[known]:
            return False

        return self._unless_taken(
            lambda: _copy_binary(self._conn, f"{sql.table} ({sql.staged})", load.data))

    def _write_encoded(self, target: Target, step: EncodedRows) -> bool:
        sql = self._sql[target.id]
        if self._conn.info.encoding != "utf-8" or not postgres_binary.stage_fits(
            step.kinds, [column.type for column in sql.spec.staged]
        ):
            return False
        floor = target.watermark
        rows = step.tuples()
        if rows is not None and truncated(rows.low, floor):  # some are older than a truncate
            rows = StageTuples.of([(position, data) for position, data in step.winners.values()
                                   if not truncated(position, floor)])
        if rows is not None:
            self._write_shares(sql, self._lanes_for(len(rows)), rows)
            target.advance(rows.high)
        target.loading = None
        return True

    def _lanes_for(self, rows: int) -> list[_Lane]:
        """The other sessions that apply part of ``rows`` rows, if they may (see
        :meth:`SqlSink._write_encoded`): connected on first use."""
        if not self._may_split or self.sessions < 2 or rows < self.sessions * SPLIT_ROWS:
            return []
        while len(self._lanes) < self.sessions - 1:
            try:
                self._lanes.append(_Lane.connect(self.url))
            except DualityError:  # e.g. too many clients: as many sessions as there are
                self.sessions = len(self._lanes) + 1
                if not self._lanes:
                    return []
        if self._pool is None:
            self._pool = ThreadPoolExecutor(self.sessions - 1, thread_name_prefix="duality-lane")
        return self._lanes

    def _write_shares(self, sql: TableSql, lanes: list[_Lane], rows: StageTuples) -> None:
        """Stage and apply the first of ``len(lanes) + 1`` contiguous runs of ``rows``
        here and each other run in its lane, which commits it; :class:`LanesFailed`
        (after every lane is done) when a lane or this session failed while lanes ran.
        Contiguous runs of the log (each key is in one): every run is committed before
        anything else of the batch is written, so any split is exact, and runs keep the
        sessions off each other's index pages (hashing the keys instead: 0.1 s more of 4
        in paired runs)."""
        shares = rows.split(len(lanes) + 1)
        pool = self._pool
        running = [pool.submit(lane.apply, sql, share)
                   for lane, share in zip(lanes, shares[1:], strict=True)] if pool else []
        failed: BaseException | None = None
        try:
            if shares[0]:
                self._empty_stage(sql, f"TRUNCATE {sql.stage}")
                _copy_binary(self._conn, sql.stage, shares[0])
                self._apply_staged(sql, True)
        except psycopg.Error as exc:
            if not running:
                raise
            failed = exc
        finally:
            errors = [future.exception() for future in running]  # each lane done
        failed = failed or next((error for error in errors if error is not None), None)
        if failed is not None:  # the lanes are made again when next needed
            for lane in self._lanes:
                lane.conn.close()
            self._lanes.clear()
            raise LanesFailed(str(failed)) from failed

    def _unkey(self, sql: TableSql) -> Rekey | None:
        """Drop the table's primary key constraint (a bulk load into a table without
        indexes, then one sorted build of the key: a third less of the server's work
        than loading the keyed table); not where something depends on it (a foreign
        key, a view's ``GROUP BY``)."""
        found = self._query(_PRIMARY_KEY, (sql.table,)) if self.unkeys else []
        if not found or not _unless_refused(
            self._conn, lambda: self._execute(
                f"ALTER TABLE {sql.table} DROP CONSTRAINT {sql.quote(found[0][0])}"),
            pg_errors.DependentObjectsStillExist,
        ):
            return None
        return functools.partial(self._rekey, sql)

    def _rekey(self, sql: TableSql) -> None:
        """Add the primary key back; where a snapshot logged twice left a key twice,
        keep the row stored last of each."""
        if not _unless_refused(self._conn, lambda: self._execute(sql.add_key()),
                               pg_errors.UniqueViolation):
            self._execute(sql.drop_duplicate_keys())
            self._execute(sql.add_key())

    def _unless_taken(self, load: Callable[[], None]) -> bool:
        """``load``, undone (False) when it finds a key already in the table."""
        return _unless_refused(self._conn, load, pg_errors.UniqueViolation)

    def _truncate_all(self, sql: TableSql) -> None:
        self._execute(f"TRUNCATE {sql.table}, {sql.side}")


class _Lane:
    """Another session of the target, which applies and commits its share of a
    batch's streamed changes (see :meth:`PostgresSink._write_encoded`)."""

    def __init__(self, conn: psycopg.Connection[Any]) -> None:
        self.conn = conn
        #: The shape each of its stage tables was created with.
        self.stages: dict[str, ddl.TableSpec] = {}

    @classmethod
    def connect(cls, url: str) -> _Lane:
        try:
            conn = psycopg.connect(with_pins(url, timeout_s=10), autocommit=False)
        except psycopg.Error as exc:
            raise map_connect_error(exc, url, "--target") from exc
        try:
            for statement in (*SESSION_SQL, LANE_LOCK_TIMEOUT):
                conn.execute(statement.encode())
            conn.commit()
        except psycopg.Error as exc:
            conn.close()
            raise Unavailable(f"the target {describe(url)} failed: {exc}") from exc
        return cls(conn)

    def apply(self, sql: TableSql, data: bytes | memoryview) -> None:
        """Stage ``data`` (binary COPY tuples), apply it and commit."""
        conn = self.conn
        if self.stages.get(sql.stage) != sql.spec:
            conn.execute(f"DROP TABLE IF EXISTS {sql.stage}".encode())
            conn.execute(f"CREATE TABLE {sql.stage} ({', '.join(sql.stage_columns())})".encode())
            self.stages[sql.stage] = sql.spec
        else:
            conn.execute(f"TRUNCATE {sql.stage}".encode())
        _copy_binary(conn, sql.stage, data)
        _apply_fresh(conn, sql)
        conn.commit()
        crash_point("replicate.lane-committed")


def _apply_fresh(conn: psycopg.Connection[Any], sql: TableSql) -> None:
    """Apply the stage's rows that are newer than their keys' positions: by ``MERGE``
    where the server has it (:meth:`TableSql.merge_with_positions`), and by ``INSERT …
    ON CONFLICT`` where it fails on a key another session inserted meanwhile (``ON
    CONFLICT`` updates that row)."""
    if conn.info.server_version < MERGE_VERSION or not _unless_refused(
        conn, lambda: conn.execute(sql.merge_with_positions().encode()),
        pg_errors.UniqueViolation,
    ):
        conn.execute(sql.apply_with_positions().encode())


def _unless_refused(conn: psycopg.Connection[Any], action: Callable[[], object],
                    refusal: type[psycopg.Error]) -> bool:
    """``action`` in a savepoint of the transaction: undone, and False, where the server
    refuses it with ``refusal``."""
    conn.execute(b"SAVEPOINT duality_try")
    try:
        action()
    except refusal:
        conn.execute(b"ROLLBACK TO SAVEPOINT duality_try")
        done = False
    else:
        done = True
    conn.execute(b"RELEASE SAVEPOINT duality_try")
    return done


def _copy_binary(conn: psycopg.Connection[Any], into: str, data: bytes | memoryview) -> None:
    """``COPY`` binary tuples (without the file header) into a table (and columns)."""
    with conn.cursor() as cur, cur.copy(f"COPY {into} FROM STDIN (FORMAT binary)".encode()) as copy:
        copy.write(postgres_binary.SIGNATURE)
        copy.write(data)


def _ident(name: str) -> str:
    """``name`` as a quoted SQL identifier, for commands a message suggests."""
    return '"' + name.replace('"', '""') + '"'
