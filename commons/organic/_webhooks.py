"""Webhooks signed as Standard Webhooks (https://www.standardwebhooks.com) sign them, through
the ``standardwebhooks`` package: headers ``webhook-id`` (the same on every attempt),
``webhook-timestamp`` (Unix seconds of this attempt) and ``webhook-signature``
(``v1,`` + base64 HMAC-SHA256 of ``{id}.{timestamp}.{body}`` under the secret).

A receiver verifies with the secret shown once when its key was made::

    from commons.organic import verify_webhook
    event = verify_webhook(secret, request.headers, await request.body())   # -> WebhookEvent
"""

from __future__ import annotations

import base64
import secrets
from collections.abc import Mapping
from datetime import datetime, timezone

from pydantic import ValidationError
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from commons.organic._errors import WebhookInvalid
from commons.organic._models import WebhookEvent
from template.validation import validation_detail

SECRET_PREFIX = "whsec_"


def new_webhook_secret() -> str:
    """A fresh secret in Standard Webhooks' form: ``whsec_`` + base64 of 32 random bytes."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(32)).decode()


def webhook_headers(
    secret: str, webhook_id: str, body: bytes, when: datetime | None = None
) -> dict[str, str]:
    """The three signature headers for one attempt at delivering ``body``."""
    moment = (when or datetime.now(timezone.utc)).astimezone(timezone.utc)
    signature = Webhook(secret).sign(webhook_id, moment, body.decode())
    return {
        "webhook-id": webhook_id,
        "webhook-timestamp": str(int(moment.timestamp())),
        "webhook-signature": signature,
    }


def verify_webhook(secret: str, headers: Mapping[str, str], body: bytes | str) -> WebhookEvent:
    """The event a webhook carries, once its signature and timestamp (within 5 minutes)
    verify under ``secret``; :class:`WebhookInvalid` otherwise."""
    try:
        Webhook(secret).verify(body, dict(headers), json_parse=False)
    except (WebhookVerificationError, ValueError) as exc:  # ValueError: a malformed signature header
        raise WebhookInvalid(f"webhook does not verify: {exc}") from None
    try:
        return WebhookEvent.model_validate_json(body)
    except ValidationError as exc:
        raise WebhookInvalid(f"webhook body is not an event: {validation_detail(exc)}") from None
