"""The replication connection: slots, exported snapshots and the pgoutput stream.

psycopg2 is used for the replication protocol only (psycopg 3 has none). Reading is done
in bursts: :meth:`ReplicationStream.read_burst` drains every message the socket holds
and only then waits, so the server's WAL sender is woken once per burst instead of once
per message (PERFORMANCE.md: wake-ups are what the server pays for).

This module does not import psycopg 3, so that capture can send ``START_REPLICATION``
before it imports psycopg 3 and runs its preflight (see ``Capture.run``).
"""

from __future__ import annotations

import select
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

import psycopg2
import psycopg2.errors
import psycopg2.extras

from duality.errors import ConfigError, DualityError, GapError, SourceError, Unavailable
from duality.sources.postgres.conninfo import (
    SOURCE_SETTINGS,
    compose,
    connect_error,
    described,
    parse,
    pinned,
)
from duality.sources.postgres.pgoutput import format_lsn, parse_lsn

#: The first server version with protocol 2 (transactions streamed while in progress)
#: and logical decoding messages.
STREAMING_VERSION = 140000

#: A pgoutput message: (the LSN of the WAL record it came from, the payload).
RawMessage = tuple[int, bytes]


@dataclass(frozen=True, slots=True)
class CreatedSlot:
    name: str
    consistent_point: int
    snapshot_name: str | None


class SlotInUse(Unavailable):
    """The slot is streaming to another process."""


#: The SQLSTATE pgoutput fails with when the slot's publication is gone.
_UNDEFINED_OBJECT: Final = "42704"


class ReplicationStream:
    """One replication connection (``replication=database``) to the source."""

    def __init__(
        self, conninfo: str, *, timeout_s: int = 30, application_name: str | None = None
    ) -> None:
        """``application_name``: how the connection names itself to the server (capture
        names its identity there, see :mod:`~duality.sources.postgres.ownership`)."""
        self.conninfo = conninfo
        try:
            params = parse(conninfo)
        except psycopg2.Error as exc:
            raise ConfigError(
                f"the connection string is not valid ({SOURCE_SETTINGS}): {exc}".strip()
            ) from exc
        named = {"application_name": application_name} if application_name else {}
        try:
            self._conn = psycopg2.connect(
                compose(pinned(params, timeout_s=timeout_s, replication="database", **named)),
                connection_factory=psycopg2.extras.LogicalReplicationConnection,
            )
        except psycopg2.Error as exc:
            raise connect_error(exc, describe(conninfo)) from exc
        self._cur: Any = self._conn.cursor()
        #: The LSN :meth:`start` asked for (0: the slot's confirmed position); None
        #: until it has started.
        self.start_lsn: int | None = None
        #: The options :meth:`start` streams with.
        self.options: dict[str, str] = {}
        #: The last LSN acknowledged to the server.
        self.acked = 0

    @property
    def backend_pid(self) -> int:
        """The server process of this connection (a slot's ``active_pid`` once streaming);
        0 once closed."""
        return 0 if self._conn.closed else int(self._conn.get_backend_pid())

    @property
    def server_version(self) -> int:
        """``server_version_num`` of the server (from the connection's start-up)."""
        return int(self._conn.server_version)

    def create_slot(
        self, name: str, *, export_snapshot: bool, temporary: bool = False
    ) -> CreatedSlot:
        """Create a pgoutput slot. With ``export_snapshot`` the snapshot it exports stays
        usable only while this connection stays idle: read it before :meth:`start`."""
        kind = "TEMPORARY " if temporary else ""
        snap = "EXPORT_SNAPSHOT" if export_snapshot else "NOEXPORT_SNAPSHOT"
        try:
            self._cur.execute(f'CREATE_REPLICATION_SLOT "{name}" {kind}LOGICAL pgoutput {snap}')
            row = self._cur.fetchone()
        except psycopg2.errors.DuplicateObject as exc:
            raise SourceError(
                f"replication slot {name!r} already exists on {describe(self.conninfo)}"
            ) from exc
        except psycopg2.Error as exc:
            raise SourceError(f"cannot create replication slot {name!r}: {exc}".strip()) from exc
        return CreatedSlot(row[0], parse_lsn(row[1]), row[2])

    def start(
        self,
        slot: str,
        start_lsn: int,
        options: dict[str, str],
        *,
        retries: int = 6,
        retry_delay_s: float = 10.0,
        on_retry: Callable[[str], None] = lambda _m: None,
    ) -> None:
        """Start streaming from ``start_lsn``. A slot still held by another process (one
        that just died, say) is retried ``retries`` times before giving up."""
        for attempt in range(retries + 1):
            try:
                self._cur.start_replication(
                    slot_name=slot, decode=False, start_lsn=start_lsn, options=options
                )
                self.start_lsn, self.options = start_lsn, options
                return
            except psycopg2.errors.ObjectInUse as exc:
                self._conn.rollback() if not self._conn.closed else None
                if attempt == retries:
                    raise SlotInUse(
                        f"replication slot {slot!r} on {describe(self.conninfo)} is in use by "
                        f"another process ({str(exc).strip()}); only one capture can stream "
                        f"from a slot. Stop the other capture, or give this one its own "
                        f"--slot."
                    ) from exc
                on_retry(f"slot {slot!r} is still in use ({str(exc).strip()}); retrying")
                time.sleep(retry_delay_s)
            except psycopg2.errors.UndefinedObject as exc:
                raise SourceError(f"cannot stream from slot {slot!r}: {exc}".strip()) from exc
            except psycopg2.OperationalError as exc:
                raise Unavailable(
                    f"lost the replication connection to {describe(self.conninfo)}: {exc}"
                ) from exc
            except psycopg2.Error as exc:
                raise _start_error(exc, slot) from exc

    def read_burst(self, wait_s: float, max_messages: int = 50_000) -> list[RawMessage]:
        """Every message available now (up to ``max_messages``); if none, wait up to
        ``wait_s`` for some to arrive and drain those."""
        out = self._drain(max_messages)
        if out or wait_s <= 0:
            return out
        try:
            ready, _, _ = select.select([self._conn], [], [], wait_s)
        except InterruptedError:
            return out
        return self._drain(max_messages) if ready else out

    def _drain(self, max_messages: int) -> list[RawMessage]:
        out: list[RawMessage] = []
        read = self._cur.read_message
        try:
            while len(out) < max_messages:
                msg = read()
                if msg is None:
                    break
                out.append((msg.data_start, msg.payload))
        except psycopg2.Error as exc:
            raise self._stream_error(exc) from exc
        return out

    def _stream_error(self, exc: psycopg2.Error) -> DualityError:
        """A server shutting down ends the COPY stream before it closes the socket:
        both are a lost connection (transient), anything else is the server refusing."""
        text = str(exc).strip()
        lost = (
            isinstance(exc, psycopg2.OperationalError)
            or self._conn.closed
            or any(
                m in text
                for m in (
                    "no COPY in progress",
                    "terminating connection",
                    "server closed the connection",
                    "shutdown",
                )
            )
        )
        if lost:
            return Unavailable(
                f"lost the replication connection to {describe(self.conninfo)}: {text}"
            )
        first = text.splitlines()[0].removeprefix("ERROR:").strip() if text else ""
        if getattr(exc, "pgcode", None) == _UNDEFINED_OBJECT:  # pgoutput: the publication
            return GapError(
                f"{first} on "
                f"{describe(self.conninfo)}: it was dropped while the slot still had changes "
                f"to send, and pgoutput reads the publication as it was at each change, so "
                f"the slot cannot be read past that point even if the publication is created "
                f"again. Drop the replication slot, then run capture with --snapshot "
                f"when_needed (a new slot and snapshot, into the same log)"
            )
        return SourceError(f"replication stream failed: {text}")

    @property
    def wal_end(self) -> int:
        """The server's WAL position at its last message or keepalive: every
        transaction that committed before it has been sent."""
        return int(self._cur.wal_end or 0)

    def ack(self, lsn: int) -> None:
        """Tell the server, now, that everything up to ``lsn`` is durable (``flush_lsn``).
        Only a new position is sent; psycopg2 repeats the last one every status interval."""
        if lsn <= self.acked:
            return
        try:
            self._cur.send_feedback(write_lsn=lsn, flush_lsn=lsn, apply_lsn=lsn, force=True)
            self.acked = lsn
        except psycopg2.Error as exc:
            raise Unavailable(
                f"could not acknowledge LSN {format_lsn(lsn)} to {describe(self.conninfo)}: {exc}"
            ) from exc

    def close(self) -> None:
        if not self._conn.closed:
            self._conn.close()


def stream_options(protocol: str, version: int, publication: str) -> dict[str, str]:
    """pgoutput's options for ``pgoutput.protocol.version`` (``1``, ``2`` or ``auto``) on
    a server of ``version``: protocol 2 streams large transactions while in progress."""
    if protocol == "2" and version < STREAMING_VERSION:
        raise ConfigError(
            f"pgoutput.protocol.version=2 needs PostgreSQL 14 or newer; this server is "
            f"{version // 10000}. Use pgoutput.protocol.version=1 (or auto)"
        )
    # pgoutput reads a list of identifiers: quoted, a name keeps its case and commas
    quoted = '"' + publication.replace('"', '""') + '"'
    options = {"proto_version": "1", "publication_names": quoted}
    if version >= STREAMING_VERSION:
        options["messages"] = "true"
    if protocol == "2" or (protocol == "auto" and version >= STREAMING_VERSION):
        options.update(proto_version="2", streaming="on")
    return options


def describe(conninfo: str) -> str:
    """``user@host:port/dbname`` for messages (never the password)."""
    return described(parse(conninfo))


def _start_error(exc: psycopg2.Error, slot: str) -> DualityError:
    text = str(exc).strip()
    if "publication" in text and "does not exist" in text:
        return ConfigError(f"cannot stream from slot {slot!r}: {text}")
    return SourceError(f"cannot stream from slot {slot!r}: {text}")
