"""The project's exceptions: every error a user can cause is one of these, with a clear message."""


class KinetoscopeError(Exception):
    """Base class of every error Kinetoscope raises on purpose."""


class VideoError(KinetoscopeError):
    """A video file could not be read or written; the message names the file and the problem."""


class SpecError(KinetoscopeError, ValueError):
    """A physics-world scene spec is malformed; the message names the field and the value."""
