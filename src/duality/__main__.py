"""``python -m duality``: the same as the ``duality`` command."""

from duality.cli import run

run()
