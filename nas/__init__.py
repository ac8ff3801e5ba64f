"""nas: hardware-aware neural architecture search over a mixed-block space."""

__version__ = "0.1.0"
