"""Parsing change-event values, once per run for what consecutive events share.

The events of a snapshot differ only in their row image: everything after it (the
``source`` block, ``op``, the processing time) repeats for thousands of events in a row,
and it is most of the bytes (420 of a 580-byte value in ``bench/replicate.py``).
:class:`ValueParser` parses that tail once per run of equal tails and each event's
``after`` image alone: 0.5 instead of 1.5 µs per event there.

It splits a value ``{"before":null,"after":<image>,"source":…}`` at the first
``,"source":`` after the image's start. That is right exactly when the image parses
alone: a ``"`` inside a JSON string is escaped, so the bytes ``,"source":`` are always
a key, and a cut inside the image (a nested key of that name) leaves it unbalanced,
while a cut past it leaves bytes after a complete value; either fails to parse, and the
whole value is then parsed as usual. The result is the dict the whole value parses to
(key order aside). Values whose tails do not repeat (streamed changes: their ``source``
blocks differ by LSN) are parsed whole after a few misses, and tried again later.
"""

from __future__ import annotations

from typing import Any, Final

from orjson import JSONDecodeError, loads

_HEAD: Final = b'{"before":null,"after":'
_START: Final = len(_HEAD)
_CUT: Final = b',"source":'
#: Misses in a row after which values are parsed whole for :data:`_REST` values.
_MISSES: Final = 4
_REST: Final = 1000


class ValueParser:
    """``orjson.loads`` for change-event values, faster on runs of equal tails (see the
    module docstring). Raises ``orjson.JSONDecodeError`` where ``loads`` would. The
    dicts it returns share their nested values: read them, do not change them."""

    def __init__(self) -> None:
        self._tail = b""
        self._fields: dict[str, Any] = {}
        self._misses = 0
        self._rest = 0

    def parse(self, value: bytes) -> Any:
        if self._rest:
            self._rest -= 1
            return loads(value)
        if not value.startswith(_HEAD):
            return loads(value)
        cut = value.find(_CUT, _START)
        if cut < 0:
            return loads(value)
        tail = self._tail
        try:
            after = loads(value[_START:cut])
            if len(value) - cut == len(tail) and value.endswith(tail):
                self._misses = 0
                fields = self._fields
            else:
                fields = loads(b"{" + value[cut + 1 :])
                if type(fields) is not dict or "before" in fields or "after" in fields:
                    return loads(value)
                self._tail, self._fields = value[cut:], fields
                self._misses += 1
                if self._misses >= _MISSES:
                    self._misses, self._rest = 0, _REST
        except JSONDecodeError:
            return loads(value)
        parsed = dict(fields)
        parsed["before"] = None
        parsed["after"] = after
        return parsed


__all__ = ["ValueParser"]
