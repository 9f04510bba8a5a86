"""The library's sinusoidal table, as the exercise asks for it."""
from scratchformers.reference.np_positional import sinusoidal_positions  # noqa: F401
