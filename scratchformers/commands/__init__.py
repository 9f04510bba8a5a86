"""Sub-commands of the ``scratchformers`` command line (see :mod:`scratchformers.cli`)."""
