"""Writing to the log in a background thread, so decoding goes on while SQLite writes.

SQLite's inserts and fsync release the GIL, so a writer thread overlaps them with the
capture thread's decoding (measured: a quarter of the capture time was spent in flush).
Order and the delivery rules are kept: batches are flushed one after the other, each
durable together with its position; the capture thread acknowledges the source only up
to :attr:`BackgroundFlusher.durable`, the position of the last batch that is durable.
At most ``depth`` batches wait, which bounds memory and slows the reader down when the
log is slower than the source.

While a writer thread runs, the interpreter's switch interval is lowered to
:data:`HANDOFF_S`. The writer gives up the GIL for every SQLite step and must win it
back each time; at Python's default of 5 ms the busy capture thread keeps it that long
each time, the writer falls behind and the capture thread then waits for the queue
(measured: 200k deletes captured in 1.83-1.90 s at 5 ms, 1.60-1.67 s at 0.5 ms).
"""

from __future__ import annotations

import contextlib
import queue
import sys
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

from duality.events.model import NewRecord
from duality.events.positions import PgPosition
from duality.log.base import Log
from duality.testing import crash_point

#: The switch interval while a writer thread runs (see the module's docstring).
HANDOFF_S = 0.0005

_STOP = object()
_ABORT = object()


@contextlib.contextmanager
def prompt_handoff() -> Iterator[None]:
    """Lower the interpreter's switch interval to :data:`HANDOFF_S` (never raise it)
    for the duration, and restore it."""
    previous = sys.getswitchinterval()
    sys.setswitchinterval(min(previous, HANDOFF_S))
    try:
        yield
    finally:
        sys.setswitchinterval(previous)


class _Aborted(Exception):
    """The producer failed: roll the transaction back."""


def write_transaction(
    log: Log,
    batches: Iterable[Sequence[NewRecord]],
    positions: dict[str, dict[str, Any]],
    on_batch: Callable[[int], None] = lambda count: None,
    depth: int = 2,
) -> None:
    """Append every batch and then ``positions`` as one log transaction, written by a
    background thread while this one produces the next batch (a snapshot: nothing of
    it is visible until all of it is). An error on either side rolls it all back and
    is raised here. ``on_batch`` runs in the writer after each batch is flushed."""
    work: queue.Queue[Any] = queue.Queue(maxsize=depth)
    failure: list[BaseException] = []

    def write() -> None:
        item: Any = None
        try:
            with log.transaction():
                while (item := work.get()) is not _STOP:
                    if item is _ABORT:
                        raise _Aborted
                    log.append(item)
                    log.flush()
                    on_batch(len(item))
                log.flush(positions=positions)
        except BaseException as exc:  # handed to the producing thread
            failure.append(exc)
            while item is not _STOP and item is not _ABORT:  # unblock the producer
                item = work.get()

    thread = threading.Thread(target=write, name="duality-log-writer", daemon=True)
    with prompt_handoff():
        thread.start()
        try:
            for batch in batches:
                if failure:
                    break
                work.put(batch)
        except BaseException:
            work.put(_ABORT)
            thread.join()
            raise
        work.put(_STOP)
        thread.join()
    if failure and not isinstance(failure[0], _Aborted):
        raise failure[0]


class BackgroundFlusher:
    def __init__(self, log: Log, position_name: str, depth: int = 2) -> None:
        self.log = log
        self.position_name = position_name
        self.durable: PgPosition | None = None
        self.error: BaseException | None = None
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=depth)
        self._worker = threading.Thread(target=self._run, name="duality-log-writer", daemon=True)
        self._handoff = contextlib.ExitStack()
        self._handoff.enter_context(prompt_handoff())
        self._worker.start()

    def submit(self, records: Sequence[NewRecord], position: PgPosition) -> None:
        """Queue a batch and the position that describes it (blocks while ``depth``
        batches wait). Raises the writer's error, if it failed."""
        self.check()
        self._queue.put((records, position))

    def wait(self) -> PgPosition | None:
        """Block until every submitted batch is durable; the last durable position."""
        self._queue.join()
        self.check()
        return self.durable

    def check(self) -> None:
        if self.error is not None:
            raise self.error

    def close(self) -> None:
        """Flush what was submitted and stop the thread."""
        self._queue.put(_STOP)
        self._worker.join()
        self._handoff.close()

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            try:
                if item is _STOP:
                    return
                if self.error is None:
                    self._flush(*item)
            except BaseException as exc:  # handed to the capture thread
                self.error = exc
            finally:
                self._queue.task_done()

    def _flush(self, records: Sequence[NewRecord], position: PgPosition) -> None:
        self.log.append(records)
        self.log.flush(positions={self.position_name: position.to_offset()})
        crash_point("capture.flushed")
        self.durable = position
