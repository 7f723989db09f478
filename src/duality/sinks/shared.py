"""A PostgreSQL target shared by the members of a replicate group (``--group``).

Every member of a group writes the same target database: each applies the partitions the
Kafka consumer group gave it, so the target ends up with every topic whole. A plain
:class:`~duality.sinks.postgres.PostgresSink` holds the target alone (an exclusive
session advisory lock) and trusts what it read of the metadata at start; a shared one

- holds the same advisory lock in *shared* mode, so group members start beside each other
  while a replicate without ``--group`` (exclusive) and a member never do;
- takes a second, transaction-scoped advisory lock at the start of every batch and then
  reads the metadata (``duality.tables``, ``duality.offsets``) again, inside the batch's
  transaction: batches of different members commit one at a time, each on top of what
  the others committed (a table another member created, its schema changes, truncate
  watermarks). Reading and decoding the log stay parallel; only the target's commits are
  serialised, which is also what keeps a snapshot's bulk load into an empty table and
  the per-key positions consistent across members;
- reads the metadata again in :meth:`applied_offsets`, which a member calls when it is
  given partitions: they continue from what was committed for them, by whichever member.
"""

from __future__ import annotations

import psycopg

from duality.errors import ConfigError
from duality.sinks.base import Batch, Offsets
from duality.sinks.postgres import LOCK_KEY, PostgresSink

#: Serialises the batches of a group's members (transaction-scoped).
APPLY_KEY = 0x6475616C72706C32  # "dualrpl2"


class SharedPostgresSink(PostgresSink):
    """A :class:`PostgresSink` for one member of a replicate group (module docstring).
    A snapshot's primary key stays while it loads: another member may write the table."""

    unkeys = False

    def _lock(self) -> None:
        if self._query("SELECT pg_try_advisory_lock_shared(%s)", (LOCK_KEY,))[0][0]:
            return
        raise ConfigError(
            f"a duality replicate without --group is applying to {self.describe()}; the "
            f"members of a group share a target only with each other. Stop it first, or "
            f"run it with the same --group."
        )

    def _prepare(self) -> None:
        """Members starting together would both create the metadata schema: the first
        creates it, the others wait for the apply lock and find it."""
        self._query("SELECT pg_advisory_xact_lock(%s)", (APPLY_KEY,))
        super()._prepare()

    def applied_offsets(self) -> Offsets:
        """The offsets committed by every member, read now."""
        self._fresh(commit=True)
        return super().applied_offsets()

    def apply(self, batch: Batch) -> None:
        """Wait for the group's apply lock, read what the other members committed, then
        apply ``batch`` in that same transaction (the lock ends with it)."""
        self._fresh(commit=False)
        super().apply(batch)

    def _fresh(self, *, commit: bool) -> None:
        try:
            self._query("SELECT pg_advisory_xact_lock(%s)", (APPLY_KEY,))
            self._read_state()
            if commit:
                self._conn.commit()
        except psycopg.Error as exc:
            self._conn.rollback()
            raise self._mapped(exc) from exc


__all__ = ["APPLY_KEY", "SharedPostgresSink"]
