# The C extension of _chunks.c (built by setup.py; absent in an editable install).
from duality.events.model import Record

def take(
    out: list[Record],
    topic: str,
    partition: int,
    first: int,
    data: bytes,
    from_offset: int,
    limit: int,
) -> None: ...
