"""Organic tasks: outside callers have their own completions ranked by Dojo's workers.

The wire format (:mod:`commons.organic._models`), the client (:class:`OrganicClient`), its
errors (the tree is drawn in :mod:`commons.organic._errors`) and the webhook signature
(:func:`verify_webhook`, Standard Webhooks). ``docs/organic.md`` describes the API.

>>> from commons.organic import TaskRequest
>>> TaskRequest.model_validate({"prompt": "p", "completions": [
...     {"content": {"kind": "text", "text": "a"}}, {"content": {"kind": "text", "text": "b"}}]}).labels()
['c1', 'c2']
"""

from __future__ import annotations

from commons.organic._client import OrganicClient
from commons.organic._errors import (
    OrganicAPIError,
    OrganicAuthError,
    OrganicConflict,
    OrganicNotFound,
    OrganicRateLimited,
    OrganicRefused,
    OrganicRequestInvalid,
    OrganicResponseError,
    OrganicUnavailable,
    WebhookInvalid,
)
from commons.organic._models import (
    CompletionResult,
    Delivery,
    OrganicCompletion,
    QuotaUsage,
    RateUsage,
    TaskAccepted,
    TaskPage,
    TaskRequest,
    TaskResult,
    TaskView,
    Usage,
    WebhookEvent,
    WorkerAnswer,
    event_type,
)
from commons.organic._webhooks import new_webhook_secret, verify_webhook, webhook_headers

__all__ = [
    "CompletionResult",
    "Delivery",
    "OrganicAPIError",
    "OrganicAuthError",
    "OrganicClient",
    "OrganicCompletion",
    "OrganicConflict",
    "OrganicNotFound",
    "OrganicRateLimited",
    "OrganicRefused",
    "OrganicRequestInvalid",
    "OrganicResponseError",
    "OrganicUnavailable",
    "QuotaUsage",
    "RateUsage",
    "TaskAccepted",
    "TaskPage",
    "TaskRequest",
    "TaskResult",
    "TaskView",
    "Usage",
    "WebhookEvent",
    "WebhookInvalid",
    "WorkerAnswer",
    "event_type",
    "new_webhook_secret",
    "verify_webhook",
    "webhook_headers",
]
