"""``python -m poolwise``: the command line, as the ``poolwise`` script runs it."""

from poolwise.cli import run

run()
