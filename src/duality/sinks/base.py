"""The Sink seam: change topics applied to a target database.

The apply loop (:mod:`duality.runtime.replicate`) decodes records into a :class:`Batch`
of steps — rows to write, a truncate, a schema change — and hands it to a sink, which
carries the whole batch out in **one** target transaction together with the log
offsets it reaches. Implementations (PostgreSQL, SQLite) do not inherit from
:class:`Sink`; they are chosen by URL scheme in :func:`duality.sinks.open_sink`.

Positions (see :mod:`duality.tables.fold`) make applying idempotent: each target row's
last applied source position is kept in a side table, and a change that is not newer
than its row's is skipped, so a redelivered or replayed record never moves a row back.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from itertools import accumulate, pairwise
from typing import Protocol

from duality.events.schema import RecordSchema
from duality.tables.batch import Pending
from duality.tables.decode import FieldCodecs
from duality.tables.fold import Where
from duality.tables.shape import EMPTY, Shape

try:  # the C half of StageTuples.of (see duality.sinks.dialects.postgres_binary)
    from duality import _binarycopy  # type: ignore[attr-defined]

    _native_join = _binarycopy.stage_tuples
except ImportError:  # built without a C compiler, or an editable install
    _native_join = None

#: (topic, partition) → (next offset to apply, key of a delete whose tombstone may follow).
Offsets = dict[tuple[str, int], tuple[int, bytes | None]]


@dataclass(frozen=True, slots=True)
class TargetName:
    """A target table: ``schema`` is None where the target has no schemas (SQLite)."""

    schema: str | None
    table: str

    def __str__(self) -> str:
        return self.table if self.schema is None else f"{self.schema}.{self.table}"


@dataclass(frozen=True, slots=True)
class Rows:
    """Row operations of one topic's table (collapsed per key, or in order)."""

    topic: str
    pending: Pending


@dataclass(frozen=True, slots=True)
class TruncateRows:
    topic: str
    position: int | None
    where: Where


@dataclass(frozen=True, slots=True)
class SchemaChange:
    """The topic's table takes ``schema`` (``shape`` orders its columns). ``name`` is
    where a table not yet replicated goes; a known table stays where it is."""

    topic: str
    schema_id: int
    schema: RecordSchema
    shape: Shape
    position: int | None
    name: TargetName
    where: Where


@dataclass(frozen=True, slots=True)
class Load:
    """A run of snapshot reads of one topic's table, all at ``position``, already
    encoded as binary ``COPY`` tuples of the table's columns (``kinds``: see
    :mod:`duality.sinks.dialects.postgres_binary`). A sink that cannot load them as
    they are (the table is not empty, or its columns read other types) applies
    ``decode()``: the same records as row operations."""

    topic: str
    data: bytes
    kinds: tuple[int, ...]
    position: int
    count: int
    where: Where
    decode: Callable[[], Pending]


@dataclass(frozen=True, slots=True)
class StageTuples:
    """Encoded stage tuples one after another in ``data``: the i-th ends at
    ``ends[i]``; ``low`` and ``high`` are the oldest and the newest position among
    them."""

    data: bytes
    ends: list[int]
    low: int
    high: int

    @classmethod
    def of(cls, rows: Collection[tuple[int, bytes]]) -> StageTuples | None:
        """``rows`` (position, tuple) in their order; None where there are none. In C
        where the extension is built (a batch of 50k rows: 1-2 ms against 12-20 ms)."""
        if _native_join is not None:
            joined = _native_join(rows)
            return None if joined is None else cls(*joined)
        if not rows:
            return None
        positions, tuples = zip(*rows, strict=True)
        return cls(b"".join(tuples), list(accumulate(map(len, tuples))),
                   min(positions), max(positions))

    def __len__(self) -> int:
        return len(self.ends)

    def split(self, parts: int) -> list[memoryview]:
        """``parts`` contiguous runs of the tuples, their counts as even as can be."""
        count, ends, view = len(self.ends), self.ends, memoryview(self.data)
        firsts = [part * count // parts for part in range(parts + 1)]  # tuple indexes
        cuts = [ends[first - 1] if first else 0 for first in firsts]  # byte offsets
        return [view[start:end] for start, end in pairwise(cuts)]


@dataclass(slots=True)
class EncodedRows:
    """Streamed changes of one topic's table, collapsed per key (the key's bytes) and
    encoded in C as binary ``COPY`` tuples of the table's stage: key columns, value
    columns, position, op (see :mod:`duality.sinks.dialects.postgres_binary`).
    ``winners``: key bytes → (position, tuple). A sink
    whose stage does not read them applies ``decode()``: the same records as row
    operations."""

    topic: str
    winners: dict[bytes, tuple[int, bytes]]
    kinds: tuple[int, ...]
    decode: Callable[[], Pending]
    _tuples: StageTuples | None = field(default=None, init=False, repr=False, compare=False)

    def tuples(self) -> StageTuples | None:
        """The winners' tuples in one buffer (None: there are none), made once: by the
        replicator when the step is complete, as its thread mostly waits for the
        target, else here."""
        if self._tuples is None:
            self._tuples = StageTuples.of(self.winners.values())
        return self._tuples


Step = Rows | TruncateRows | SchemaChange | Load | EncodedRows


@dataclass(slots=True)
class Batch:
    """Steps applied in order, and the offsets they bring the sink to: one transaction.
    ``origins``: the origins of topics whose offsets the sink holds none for yet.
    ``settled``: other topics the replicator has since read to their end (the sink may
    finish what it put off for them, as :meth:`Sink.settle` does for every topic)."""

    steps: list[Step] = field(default_factory=list)
    offsets: Offsets = field(default_factory=dict)
    records: int = 0
    origins: dict[str, str] = field(default_factory=dict)
    settled: set[str] = field(default_factory=set)


@dataclass(frozen=True, slots=True)
class TableState:
    """What the decoder of a topic needs to know of its target table after a restart."""

    name: TargetName
    shape: Shape = EMPTY
    schema_id: int | None = None
    schema_position: int | None = None
    watermark: int | None = None


class Sink(Protocol):
    url: str
    #: Whether the sink takes :class:`Load` steps (else the loop sends none).
    binary_loads: bool

    @property
    def fields(self) -> FieldCodecs:
        """How record fields are decoded into the values this target is sent."""
        ...

    def applied_offsets(self) -> Offsets:
        """The offsets every committed batch brought the target to."""
        ...

    def tables(self) -> Mapping[str, TableState]:
        """Topic → its target table, for every topic replicated so far."""
        ...

    def apply(self, batch: Batch) -> None:
        """Apply ``batch`` and store its offsets in one target transaction. When it
        returns, all of it is committed; when it raises, none of it is."""
        ...

    def reset_offsets(self, topics: list[str]) -> None:
        """Forget the stored offsets (and origins) of ``topics`` (committed at once): the
        next batch starts from the beginning of each topic."""
        ...

    def origins(self) -> Mapping[str, str]:
        """Topic → which making of the topic its offsets belong to (the log's
        :meth:`~duality.log.base.LogReader.topic_origin`, stored with a batch's offsets)."""
        ...

    def settle(self) -> None:
        """Called when every record read so far is applied (a ``--once`` run's end, the
        log idle): finish, in a transaction of its own, what the sink put off while a
        snapshot loaded (PostgreSQL: the tables' primary keys)."""
        ...

    def close(self) -> None: ...
