"""The staging of streamed transactions: order kept across chunks written to disk,
rolled-back subtransactions and aborted transactions left out, nothing left behind."""

from __future__ import annotations

from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from duality.sources.postgres.spool import Spool

# (transaction, subtransaction) pairs: top-level 1 and 2, subtransactions 10-12, 20-21
_MADE_BY = st.sampled_from([(1, 1), (1, 10), (1, 11), (1, 12), (2, 2), (2, 20), (2, 21)])


@given(
    adds=st.lists(_MADE_BY, max_size=60),
    rolled_back=st.sets(st.sampled_from([10, 11, 12, 20, 21])),
    chunk=st.integers(1, 7),
)
def test_replay_keeps_order_and_leaves_out_rolled_back_subtransactions(
    adds: list[tuple[int, int]], rolled_back: set[int], chunk: int
) -> None:
    spool = Spool(chunk=chunk)
    try:
        for n, (xid, subxid) in enumerate(adds):
            spool.add(xid, subxid, (n, b"payload %d" % n))
        for subxid in rolled_back:
            spool.abort(subxid // 10, subxid)
        for xid in (1, 2):
            expected = [
                (n, b"payload %d" % n)
                for n, (x, s) in enumerate(adds)
                if x == xid and s not in rolled_back
            ]
            assert list(spool.replay(xid)) == expected
    finally:
        spool.close()


def test_aborted_transaction_and_close_leave_no_files(tmp_path: Path) -> None:
    spool = Spool(tmp_path, chunk=2)
    for n in range(5):
        spool.add(7, 7, n)
        spool.add(8, 8, n)
    assert len(list(tmp_path.glob("*/*.spool"))) == 2
    spool.abort(7, 7)
    assert list(spool.replay(7)) == []
    assert list(spool.replay(8)) == [0, 1, 2, 3, 4]
    assert len(list(tmp_path.glob("*/*.spool"))) == 1
    spool.close()
    assert list(tmp_path.iterdir()) == []
