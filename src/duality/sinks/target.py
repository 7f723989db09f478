"""What a sink keeps per replicated topic: the target table and how far it is applied.

One row per topic in the target's ``tables`` metadata table (``duality.tables`` on
PostgreSQL, ``duality_tables`` on SQLite), written in the same transaction as the rows:

- ``target_schema``, ``target_table``: where the rows go; ``created``: whether duality
  created that table (a table it did not create is never altered);
- ``spec``, ``shape``: the columns with their target types, and the decoder's shape
  (JSON), as of ``schema_id`` adopted at source position ``schema_position``;
- ``watermark``: changes at or before this position are stale for every key (the last
  truncate's position, or just before the snapshot loaded into the table);
- ``high_water``: the newest position applied to the table;
- ``loading``: the position of a snapshot being loaded into a table that was empty, so
  its rows can go in with a plain bulk load (no upsert, no per-row positions).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

from duality.sinks.base import TableState, TargetName
from duality.sinks.ddl import TableSpec
from duality.tables.shape import EMPTY, Shape

#: The metadata columns, in the order the sinks select them.
META_COLUMNS = (
    "id, topic, target_schema, target_table, created, spec, shape, schema_id, "
    "schema_position, watermark, high_water, loading"
)


@dataclass(slots=True)
class Target:
    id: int
    topic: str
    name: TargetName
    created: bool
    spec: TableSpec | None = None
    shape: Shape = EMPTY
    schema_id: int | None = None
    schema_position: int | None = None
    watermark: int | None = None
    high_water: int | None = None
    loading: int | None = None

    def copy(self) -> Target:
        return Target(self.id, self.topic, self.name, self.created, self.spec, self.shape,
                      self.schema_id, self.schema_position, self.watermark, self.high_water,
                      self.loading)

    @property
    def state(self) -> TableState:
        return TableState(self.name, self.shape, self.schema_id, self.schema_position,
                          self.watermark)

    def advance(self, position: int | None) -> None:
        if position is not None and (self.high_water is None or position > self.high_water):
            self.high_water = position

    def raise_watermark(self, position: int) -> None:
        if self.watermark is None or position > self.watermark:
            self.watermark = position

    def meta_values(self) -> tuple[Any, ...]:
        """The values of every metadata column after ``id`` and ``topic``."""
        spec = orjson.dumps(self.spec.to_json()).decode() if self.spec else None
        shape = orjson.dumps(self.shape.to_json()).decode()
        return (self.name.schema, self.name.table, self.created, spec, shape, self.schema_id,
                self.schema_position, self.watermark, self.high_water, self.loading)

    @classmethod
    def from_meta(cls, row: tuple[Any, ...]) -> Target:
        (ident, topic, schema, table, created, spec, shape, schema_id, schema_position,
         watermark, high_water, loading) = row
        return cls(
            int(ident), topic, TargetName(schema, table), bool(created),
            TableSpec.from_json(orjson.loads(spec)) if spec else None,
            Shape.from_json(orjson.loads(shape)) if shape else EMPTY,
            schema_id, schema_position, watermark, high_water, loading,
        )
