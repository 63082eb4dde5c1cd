"""Kinetoscope: open, self-hostable text-to-video."""

from kinetoscope.errors import KinetoscopeError

__version__ = "0.1.0"

__all__ = ["KinetoscopeError", "__version__"]
