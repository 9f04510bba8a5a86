"""``python -m scratchformers`` runs the command line, :func:`scratchformers.train.cli.main`."""
import sys

from scratchformers.train.cli import main

if __name__ == "__main__":
    sys.exit(main())
