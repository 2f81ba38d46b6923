"""Errors a caller of the platform can cause, each with the HTTP status it maps to.

The API turns every one into ``{"detail": message}`` with its status; the UI's page routes
catch them and render the message. The message says what was wrong and what to do::

    PlatformError
    ├── BadRequest        400
    ├── Unauthorized      401  missing or invalid credentials, signature, nonce
    ├── Forbidden         403  authenticated but not allowed (unregistered hotkey, CSRF)
    ├── NotFound          404  absent, or not yours (never tells which)
    ├── Conflict          409  task full, already submitted, …
    ├── Gone              410  task expired, invite used
    ├── Invalid           422  a body that breaks the contract (bad ranking, score out of range)
    ├── TooManyRequests   429  too many log-in attempts; .retry_after in seconds
    └── Unavailable       503  the database could not commit; nothing was stored
"""

from __future__ import annotations


class PlatformError(Exception):
    status_code = 400

    def __init__(self, detail: str):
        super().__init__(detail)
        self.detail = detail


class BadRequest(PlatformError):
    status_code = 400


class Unauthorized(PlatformError):
    status_code = 401


class Forbidden(PlatformError):
    status_code = 403


class NotFound(PlatformError):
    status_code = 404


class Conflict(PlatformError):
    status_code = 409


class Gone(PlatformError):
    status_code = 410


class Invalid(PlatformError):
    status_code = 422


class TooManyRequests(PlatformError):
    status_code = 429

    def __init__(self, detail: str, retry_after: float):
        super().__init__(detail)
        self.retry_after = retry_after


class Unavailable(PlatformError):
    status_code = 503
