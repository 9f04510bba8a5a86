"""``python -m scratchformers`` runs the command line."""
import sys

from scratchformers.cli import main

sys.exit(main())
