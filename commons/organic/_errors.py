"""Every error the organic API client raises, in one tree::

OrganicAPIError
├── OrganicUnavailable          no answer: connection failed, timed out, or 5xx after every retry
├── OrganicRefused              the validator answered 4xx; ``status_code`` and ``detail`` say why
│   ├── OrganicAuthError        401/403: no key, a wrong or revoked key, a refused signature
│   ├── OrganicNotFound         404: no such task (or another caller's)
│   ├── OrganicConflict         409: the external id was used with another body
│   ├── OrganicRequestInvalid   400/413/422: the request is malformed or too large
│   └── OrganicRateLimited      429 after every retry: the rate limit or the daily quota
├── OrganicResponseError        an answer that is not what the API returns (or too large to read)
└── WebhookInvalid              a webhook whose signature or timestamp does not verify
"""

from __future__ import annotations


class OrganicAPIError(Exception):
    """Base class of every error of :mod:`commons.organic`."""


class OrganicUnavailable(OrganicAPIError):
    """The validator could not be reached, timed out, or kept failing (5xx) after all retries."""


class OrganicRefused(OrganicAPIError):
    """The validator refused the request (4xx)."""

    def __init__(self, status_code: int, detail: str):
        super().__init__(f"{status_code}: {detail}")
        self.status_code = status_code
        self.detail = detail


class OrganicAuthError(OrganicRefused):
    """401 or 403: the key or the signature was refused; ``detail`` says why."""


class OrganicNotFound(OrganicRefused):
    """404: no such task for this caller."""


class OrganicConflict(OrganicRefused):
    """409: the external id names a task made from another request body."""


class OrganicRequestInvalid(OrganicRefused):
    """400, 413 or 422: the request is malformed, too large, or breaks a rule."""


class OrganicRateLimited(OrganicRefused):
    """429 after every retry: the rate limit or the daily quota is spent."""

    def __init__(self, status_code: int, detail: str, retry_after: float | None):
        super().__init__(status_code, detail)
        self.retry_after = retry_after


class OrganicResponseError(OrganicAPIError):
    """The validator answered, but not with what the API returns."""


class WebhookInvalid(OrganicAPIError):
    """A webhook that does not verify: headers missing, signature wrong, timestamp stale."""


def refusal(status_code: int, detail: str, retry_after: float | None = None) -> OrganicRefused:
    """The error for a 4xx answer."""
    if status_code in (401, 403):
        return OrganicAuthError(status_code, detail)
    if status_code == 404:
        return OrganicNotFound(status_code, detail)
    if status_code == 409:
        return OrganicConflict(status_code, detail)
    if status_code == 429:
        return OrganicRateLimited(status_code, detail, retry_after)
    if status_code in (400, 413, 422):
        return OrganicRequestInvalid(status_code, detail)
    return OrganicRefused(status_code, detail)
