"""Flattened output: plain rows instead of Debezium's envelope.

Two ways to ask for it, both in the connector config:

* Debezium's own transform, as a Kafka Connect config carries it:
  ``transforms=unwrap``, ``transforms.unwrap.type=io.debezium.transforms.ExtractNewRecordState``
  with ``delete.tombstone.handling.mode`` (``tombstone`` (default): a delete becomes a
  tombstone; ``drop``: deletes and tombstones are left out; ``rewrite``: a delete becomes
  its before-image with ``__deleted: "true"``, other rows get ``"false"``;
  ``rewrite-with-tombstone``: the same, keeping tombstones), ``add.fields`` /
  ``add.fields.prefix`` (envelope or ``source`` fields copied into the row as
  ``__op``, ``__source_ts_ms``, … or ``name:NEWNAME``), ``add.headers`` /
  ``add.headers.prefix``; Debezium 1.x's ``drop.tombstones`` and ``delete.handling.mode``
  too.
* ``after.state.only=true``: the after-state alone, deletes as tombstones.

The value is then the row (``<topic>.Value`` schema plus the added fields).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from duality.errors import ConfigError

EXTRACT_NEW_RECORD_STATE = "io.debezium.transforms.ExtractNewRecordState"
DELETE_MODES = ("tombstone", "drop", "rewrite", "rewrite-with-tombstone", "delete-to-tombstone")
_ENVELOPE_FIELDS = ("op", "ts_ms", "ts_us", "ts_ns")


@dataclass(frozen=True, slots=True)
class AddedField:
    """A field copied into the row (or a header): from ``struct`` (``""`` for the
    envelope itself) field ``field``, written as ``name``."""

    struct: str
    field: str
    name: str

    def value(self, envelope: Mapping[str, Any]) -> Any:
        holder = envelope if not self.struct else envelope.get(self.struct) or {}
        return holder.get(self.field)


@dataclass(frozen=True, slots=True)
class Flatten:
    """How to flatten (see the module docstring)."""

    delete_mode: str = "tombstone"
    fields: tuple[AddedField, ...] = ()
    headers: tuple[AddedField, ...] = ()

    @property
    def rewrites(self) -> bool:
        return self.delete_mode.startswith("rewrite")

    @property
    def keeps_tombstones(self) -> bool:
        return self.delete_mode == "rewrite-with-tombstone"

    def row(
        self, envelope: Mapping[str, Any], image: Mapping[str, Any], deleted: bool
    ) -> dict[str, Any]:
        out = dict(image)
        for added in self.fields:
            out[added.name] = added.value(envelope)
        if self.rewrites:
            out["__deleted"] = "true" if deleted else "false"
        return out

    def header_values(self, envelope: Mapping[str, Any]) -> tuple[tuple[str, Any], ...]:
        return tuple((h.name, h.value(envelope)) for h in self.headers)


def flatten_from_properties(props: Mapping[str, str]) -> Flatten | None:
    """The flattening the config asks for, or None for Debezium's envelope."""
    if props.get("after.state.only", "false").strip().lower() == "true":
        return Flatten()
    names = [n.strip() for n in props.get("transforms", "").split(",") if n.strip()]
    for name in names:
        prefix = f"transforms.{name}."
        if props.get(prefix + "type", "").strip() == EXTRACT_NEW_RECORD_STATE:
            options = {k[len(prefix) :]: v for k, v in props.items() if k.startswith(prefix)}
            return _from_options(options, prefix)
    return None


def transforms_ignored(props: Mapping[str, str]) -> list[str]:
    """Transforms in the config that duality does not apply (to warn about)."""
    names = [n.strip() for n in props.get("transforms", "").split(",") if n.strip()]
    return [
        f"{name} ({props.get(f'transforms.{name}.type', 'no type')})"
        for name in names
        if props.get(f"transforms.{name}.type", "").strip() != EXTRACT_NEW_RECORD_STATE
    ]


def _from_options(options: Mapping[str, str], prefix: str) -> Flatten:
    mode = options.get("delete.tombstone.handling.mode")
    if mode is None:  # Debezium 1.x options
        legacy = options.get("delete.handling.mode", "drop").strip().lower()
        keep = options.get("drop.tombstones", "true").strip().lower() == "false"
        mode = {
            "rewrite": "rewrite-with-tombstone" if keep else "rewrite",
            "none": "tombstone",
            "drop": "drop",
        }.get(legacy, legacy)
    mode = mode.strip().lower()
    if mode not in DELETE_MODES:
        raise ConfigError(
            f"{prefix}delete.tombstone.handling.mode={mode!r} is not valid; use one of "
            f"{', '.join(DELETE_MODES)}"
        )
    if mode == "delete-to-tombstone":
        mode = "tombstone"
    return Flatten(
        delete_mode=mode,
        fields=_added(options.get("add.fields", ""), options.get("add.fields.prefix", "__")),
        headers=_added(options.get("add.headers", ""), options.get("add.headers.prefix", "__")),
    )


def _added(listing: str, prefix: str) -> tuple[AddedField, ...]:
    out = []
    for entry in (e.strip() for e in listing.split(",") if e.strip()):
        path, _, rename = entry.partition(":")
        struct, _, field = path.rpartition(".")
        if not struct and field not in _ENVELOPE_FIELDS:
            struct = "source"  # a bare name other than the envelope's own is a source field
        default = f"{prefix}{struct}_{field}" if "." in path else f"{prefix}{field}"
        out.append(AddedField(struct, field, rename.strip() or default))
    return tuple(out)
