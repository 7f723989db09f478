"""One capture per replication slot: which capture a slot streams to.

A slot forgets what it was acknowledged, and each capture acknowledges what its own log
holds; so two captures on one slot take changes away from each other's log (the one
that starts again finds the slot past its stored position: a gap). PostgreSQL knows
only which server process streams from a slot, so capture names itself in its
replication connection's ``application_name``: ``duality <id> <pid> <prefix>``, where
``<id>`` is a digest of its log and its position name (connector name and topic
prefix), the same for every run of one capture, and ``<pid>`` its process. A start that
finds its slot held

* by another capture is refused at once (:class:`~duality.errors.ConfigError`, exit 2),
  before anything is written;
* by a process of this same capture (one still stopping whose server process has not
  noticed yet, or a second copy), or by a process that does not name itself, waits
  (``slot.max.retries`` times ``slot.retry.delay.ms``), then gives up (``SlotInUse``).

Pure: the queries live in :mod:`~duality.sources.postgres.slots`.
"""

from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass

#: PostgreSQL keeps the first 63 bytes of an ``application_name``.
_NAME_BYTES = 63
_NAMED = re.compile(r"duality ([0-9a-f]{12}) ([0-9]{1,10}) (\S*)")


@dataclass(frozen=True, slots=True)
class CaptureIdentity:
    """Which capture a process runs: ``digest`` stands for its log and position name."""

    digest: str
    pid: int
    prefix: str

    @classmethod
    def of(cls, log: str, position_name: str, prefix: str) -> CaptureIdentity:
        """This process's identity, for a capture of ``position_name`` into ``log`` (the
        embedded log's resolved path, or the log's URL)."""
        digest = hashlib.sha256(f"{log}\0{position_name}".encode()).hexdigest()[:12]
        return cls(digest, os.getpid(), prefix)

    @property
    def application_name(self) -> str:
        return f"duality {self.digest} {self.pid} {self.prefix}"[:_NAME_BYTES]

    @classmethod
    def parse(cls, name: str | None) -> CaptureIdentity | None:
        """The identity an ``application_name`` names, or None if it names none."""
        match = _NAMED.fullmatch(name or "")
        return cls(match[1], int(match[2]), match[3]) if match else None


@dataclass(frozen=True, slots=True)
class Holder:
    """The server process that streams from a slot, and what it says of its client."""

    server_pid: int
    application_name: str | None
    client_addr: str | None

    @property
    def capture(self) -> CaptureIdentity | None:
        return CaptureIdentity.parse(self.application_name)

    def other_capture(self, identity: CaptureIdentity) -> bool:
        """Whether the holder names itself as a capture other than ``identity``'s."""
        capture = self.capture
        return capture is not None and capture.digest != identity.digest

    def describe(self) -> str:
        where = f" on {self.client_addr}" if self.client_addr else ""
        capture = self.capture
        if capture is not None:
            return f"process {capture.pid}{where} (server PID {self.server_pid})"
        named = f" ({self.application_name!r})" if self.application_name else ""
        return f"server PID {self.server_pid}{named}{' for a client' + where if where else ''}"


def another_capture(slot: str, where: str, holder: Holder, identity: CaptureIdentity) -> str:
    """The refusal of a slot that streams to another capture."""
    other = holder.capture
    assert other is not None
    ours = CaptureIdentity.parse(identity.application_name)  # cut to 63 bytes, as other's
    if ours is not None and other.prefix == ours.prefix:
        whose = f"the same topic prefix {other.prefix!r} into another log (or connector name)"
    else:
        whose = f"topic prefix {other.prefix!r}"
    return (
        f"replication slot {slot!r} on {where} streams to another capture: {holder.describe()}, "
        f"with {whose}. A slot serves one capture: each acknowledges what its own log holds, "
        f"and the slot then forgets those changes, so the other capture's log would lose "
        f"them. Give this capture a slot of its own (--slot NAME, or slot.name; a new slot "
        f"takes its own snapshot), or stop the other capture first if this one replaces it."
    )


def in_use(slot: str, where: str, holder: Holder, identity: CaptureIdentity) -> str:
    """The message when a slot is still held after waiting for it."""
    capture = holder.capture
    copy = (
        ", a copy of this capture (same log and topic prefix)"
        if capture is not None and capture.digest == identity.digest
        else ""
    )
    return (
        f"replication slot {slot!r} on {where} is in use by another process, "
        f"{holder.describe()}{copy}; only one capture can stream from a slot. Stop the "
        f"other capture, or give this one its own --slot."
    )


def adopted(slot: str, how: str) -> str:
    """The warning of a first start on a slot that exists already: it may be another
    capture's, which no one can tell while that capture is stopped."""
    return (
        f"replication slot {slot!r} already exists and was not created by this capture: "
        f"{how}. If another capture (into another log, or with another topic prefix) uses "
        f"this slot, stop this one and give it a slot of its own (--slot NAME): the "
        f"changes this one acknowledges would be lost to the other's log"
    )


def still_in_use(slot: str, holder: Holder, delay_s: float) -> str:
    return (
        f"replication slot {slot!r} is still in use by {holder.describe()}; retrying in "
        f"{delay_s:g}s"
    )
