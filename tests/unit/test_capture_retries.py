"""How capture retries an unavailable source or log: the ``--once`` give-up window
counts from the start of an outage, and an attempt that captured something ends it."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from duality.errors import Unavailable
from duality.log.sqlite import SqliteLog
from duality.runtime.capture import Capture, CaptureStats
from duality.sources.postgres.config import parse_config

WAIT_MS = 100


class _Flaky(Capture):
    """Attempts that each capture for a while and then lose the connection; the last
    one finishes."""

    def __init__(self, log: SqliteLog, attempts: list[float], *, once: bool) -> None:
        config = parse_config({"topic.prefix": "p",
                               "retriable.restart.connector.wait.ms": str(WAIT_MS)},
                              source="postgresql://u@127.0.0.1:1/db")
        self.warnings: list[str] = []
        super().__init__(config, log, once=once, warn=self.warnings.append)
        self.attempts = attempts

    def run(self) -> CaptureStats:
        busy_s = self.attempts.pop(0)
        time.sleep(busy_s)
        if not self.attempts:
            return self.stats
        if busy_s:
            self.stats.events += 1
        raise Unavailable("lost the replication connection")  # no full stop: one is added


def test_once_retries_an_outage_that_begins_late(tmp_path: Path) -> None:
    """Capture for longer than the give-up window (3 waits), then lose the connection:
    retried, not given up at once."""
    with SqliteLog(f"sqlite://{tmp_path / 'log.db'}") as log:
        flaky = _Flaky(log, [0.5, 0.0, 0.0], once=True)
        flaky.run_with_retries()
    assert flaky.warnings == ["lost the replication connection. Retrying in 0.1s.",
                              "lost the replication connection. Retrying in 0.2s."]


def test_progress_resets_the_backoff_and_a_long_outage_gives_up(tmp_path: Path) -> None:
    with SqliteLog(f"sqlite://{tmp_path / 'log.db'}") as log:
        flaky = _Flaky(log, [0.0, 0.0, 0.05, 0.0, 0.0], once=False)
        flaky.run_with_retries()
        waits = [w.rsplit(" ", 1)[-1] for w in flaky.warnings]
        assert waits == ["0.1s.", "0.2s.", "0.1s.", "0.2s."]
        stuck = _Flaky(log, [0.0] * 10, once=True)
        with pytest.raises(Unavailable):
            stuck.run_with_retries()
        assert len(stuck.warnings) == 2  # 0.1 + 0.2 s waited, then 0.3 s is up
