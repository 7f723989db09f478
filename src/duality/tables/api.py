"""The Python API: open a table folded from the log, query it, follow its changes.

::

    from duality.tables import open_table

    with open_table("shop.public.accounts", log="sqlite:///var/lib/duality/log.db") as table:
        table.get(id=1)                           # {"id": 1, "owner": "Ada", ...} or None
        for row in table.select("balance > 100"):  # a read-only SQL predicate
            ...
        for change in table.changes(follow=True):  # TableChange(op, key, before, after)
            ...

The store defaults to the file beside the log (``log.db`` → ``log.tables.db``). Opening a
table applies every record in the log first; ``changes`` keeps applying and yields each
change once its batch is committed.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from duality.errors import ConfigError
from duality.log import open_log
from duality.log.base import Log
from duality.tables import journal
from duality.tables.batch import RowChange
from duality.tables.derived import check_fits, spec_of
from duality.tables.query import Table, TableChange, open_connection
from duality.tables.sqlite import TableInfo, TableStore
from duality.tables.store_file import default_store_url

if TYPE_CHECKING:
    from duality.runtime.materialize import Materializer

POLL_INTERVAL_S = 0.05
Listener = Callable[[TableInfo, list[RowChange]], None]


def store_url_for(log: Log, store: str | None) -> str:
    """``store``, or the default store beside the log."""
    if store:
        return store
    path = getattr(log, "path", None)
    if not isinstance(path, Path):
        raise ConfigError("this log has no file to put the table store beside; give --store")
    return default_store_url(path)


class LiveTable(Table):
    """A :class:`Table` that can catch up with its topic and follow it."""

    def __init__(
        self, log: Log, store: TableStore, name: str, *, batch_records: int | None = None,
        owns_log: bool = True,
    ) -> None:
        self.log = log
        self._owns_log = owns_log
        self.store = store
        self.batch_records = batch_records
        self.topic = _topic_of(store, name)
        self._name = name
        super().__init__(open_connection(store.url), _placeholder_info(name))

    def catch_up(self) -> None:
        """Apply every record the log holds now."""
        self._applier().catch_up()
        self._refresh()

    def _applier(self, listener: Listener | None = None) -> Materializer:
        # Imported here: the apply loop imports this package's modules.
        from duality.runtime.materialize import BATCH_RECORDS, Materializer

        return Materializer(self.log, self.store, [self.topic], listener=listener,
                            batch_records=self.batch_records or BATCH_RECORDS)

    def _refresh(self) -> None:
        info = self.store.infos().get(self._name)
        if info is None:
            raise ConfigError(f"{self._name!r} is neither a topic of the log nor an aggregate")
        if info.source == "aggregate":
            check_fits(self.store, info)
        self.info = info

    def changes(
        self, *, follow: bool = False, stop: Callable[[], bool] = lambda: False
    ) -> Iterator[TableChange]:
        """Apply new records and yield each change of this table; without ``follow``,
        stop once the log's end is reached."""
        for entry in self.entries(follow=follow, stop=stop):
            yield self.change(entry)

    def entries(
        self, *, follow: bool = False, stop: Callable[[], bool] = lambda: False
    ) -> Iterator[journal.Entry]:
        """:meth:`changes` with stored values (as journal entries).

        Registers as a follower of the table, so every process that applies to this
        store journals the table's changes (:mod:`~duality.tables.journal`), and reads
        them from the journal: changes applied by another process are reported too."""
        store = self.store
        with store.writing("registering a follower"):
            follower = journal.register(store.conn, self._name)
        try:
            yield from self._follow(follower, follow, stop)
        finally:
            with store.writing("unregistering a follower"):
                journal.unregister(store.conn, follower)

    def _follow(
        self, follower: int, follow: bool, stop: Callable[[], bool]
    ) -> Iterator[journal.Entry]:
        applier = self._applier()
        while not stop():
            versions = self.log.data_version(), self.store.data_version()
            applied = applier.apply_batch(self.topic, None)
            self._refresh()
            with self.store.writing("reading the change journal"):
                changes = list(journal.read(self.store.conn, follower))
            yield from changes
            if applied:
                continue
            if not follow:
                return
            self._wait(versions, stop)

    def _wait(self, versions: tuple[int, int], stop: Callable[[], bool]) -> None:
        """Until the log or the store has news (or a while has passed, to stay registered)."""
        deadline = time.monotonic() + journal.STALE_MS / 4000
        while not stop() and time.monotonic() < deadline:
            if (self.log.data_version(), self.store.data_version()) != versions:
                return
            time.sleep(POLL_INTERVAL_S)

    def close(self) -> None:
        self._conn.close()
        self.store.close()
        if self._owns_log:
            self.log.close()

    def __enter__(self) -> LiveTable:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def open_table(
    name: str, *, log: str | Log, store: str | None = None, catch_up: bool = True,
    batch_records: int | None = None,
) -> LiveTable:
    """Open the table of topic ``name`` (or the aggregate ``name``), applying the log
    first unless ``catch_up`` is false. ``log`` is a URL, or an open log (which stays
    open when the table is closed)."""
    owns_log = isinstance(log, str)
    opened = open_log(log, create=False) if isinstance(log, str) else log
    try:
        table_store = TableStore(store_url_for(opened, store))
    except BaseException:
        if owns_log:
            opened.close()
        raise
    try:
        table = LiveTable(opened, table_store, name, batch_records=batch_records,
                          owns_log=owns_log)
        if catch_up:
            table.catch_up()
        else:
            table._refresh()
    except BaseException:
        table_store.close()
        if owns_log:
            opened.close()
        raise
    return table


def _topic_of(store: TableStore, name: str) -> str:
    info = store.infos().get(name)
    if info is not None and info.source == "aggregate":
        return spec_of(info).source
    return name


def _placeholder_info(name: str) -> TableInfo:
    from duality.tables.shape import EMPTY

    return TableInfo(0, name, "topic", EMPTY)
