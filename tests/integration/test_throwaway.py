"""The throwaway PostgreSQL of the demo, the tests and the benchmarks."""

from __future__ import annotations

import pytest

from duality.errors import DualityError
from duality.sources.postgres.throwaway import ThrowawayPostgres

pytestmark = pytest.mark.postgres


def test_a_server_that_fails_to_start_leaves_no_files() -> None:
    pg = ThrowawayPostgres(settings={"shared_buffers": "'lots'"})
    with pytest.raises(DualityError), pg:
        pass
    assert not pg.root.exists()
