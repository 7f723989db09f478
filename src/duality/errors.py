"""The error tree.

Every error duality raises on purpose is a :class:`DualityError`. The class decides
two things the runtime and the command line need: whether retrying can help
(``transient``) and which exit code the command line returns (DESIGN.md):

====  =====================================================================
code  meaning
====  =====================================================================
2     bad usage or configuration (:class:`ConfigError`)
3     a source, log or target is unavailable after retries (:class:`Unavailable`)
4     a gap, or a consistency check failed (:class:`GapError`)
5     a record cannot be applied to a table or target (:class:`ApplyError`)
1     anything else duality detected (:class:`LogError` for a damaged log, ...)
====  =====================================================================

Messages say what happened, name the value or setting at fault, and say what to
do. Driver exceptions are mapped to these once, where the driver is called, with
``raise ... from exc`` so the cause stays available for debugging.
"""

from __future__ import annotations


class DualityError(Exception):
    """Root of every error duality raises on purpose."""

    exit_code: int = 1
    transient: bool = False

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class ConfigError(DualityError):
    """Bad usage or configuration: a setting, flag, URL, credential or input value."""

    exit_code = 2


class Unavailable(DualityError):
    """A source, log or target cannot be reached or is busy; retrying may help."""

    exit_code = 3
    transient = True


class GapError(DualityError):
    """Changes were lost or a consistency check failed; resuming would be wrong."""

    exit_code = 4


class ApplyError(DualityError):
    """A record cannot be applied to a table or target; its offset is not advanced."""

    exit_code = 5


class LogError(DualityError):
    """The log itself is damaged, of a newer format, or cannot be written."""


class SourceError(DualityError):
    """The source database refused something duality needs (terminal)."""


def retrying(exc: DualityError, delay_s: float) -> str:
    """The warning for a failure retried in ``delay_s`` seconds."""
    message = exc.message.rstrip()
    wait = f"{delay_s:.0f}s" if delay_s >= 1 else f"{delay_s:g}s"
    return f"{message}{'' if message.endswith('.') else '.'} Retrying in {wait}."
