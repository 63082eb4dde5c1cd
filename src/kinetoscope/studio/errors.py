"""Errors of the studio that carry the HTTP status to answer with (the message is the body)."""

from __future__ import annotations

from kinetoscope.errors import KinetoscopeError


class StudioError(KinetoscopeError):
    """A request the studio refuses; ``status`` is the HTTP status code, ``headers`` any
    headers the answer carries (e.g. Retry-After)."""

    status = 400

    def __init__(
        self, message: str, status: int | None = None, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(message)
        if status is not None:
            self.status = status
        self.headers = headers


class NotFoundError(StudioError):
    """Something that does not exist, or that the caller may not see (the same answer, so
    private videos cannot be probed)."""

    status = 404


class ForbiddenError(StudioError):
    status = 403


class UnauthorizedError(StudioError):
    status = 401


class ConflictError(StudioError):
    status = 409
