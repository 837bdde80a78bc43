"""Standard Webhooks signatures (https://www.standardwebhooks.com), as Peyk
signs its task calls, callbacks and event deliveries: `verify` checks a
request with the specification's own library (`standardwebhooks`); `sign`
makes a signature (for tests and tools)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from collections.abc import Mapping

from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

#: How far a request's timestamp may be from now (replays are refused).
TOLERANCE_SECONDS = 300


class InvalidSignature(Exception):
    """The request was not signed with the secret, or is too old or too new."""


def _key(secret: str) -> bytes:
    return base64.b64decode(secret.removeprefix("whsec_"))


def sign(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    """The `v1,<base64>` signature of one request."""
    mac = hmac.new(_key(secret), f"{msg_id}.{timestamp}.".encode() + body, hashlib.sha256)
    return "v1," + base64.b64encode(mac.digest()).decode()


def verify(secret: str, headers: Mapping[str, str], body: bytes, now: float | None = None) -> str:
    """Checks `webhook-signature` against the body and the timestamp against
    the clock (5 minutes either way); returns the `webhook-id` (the same on
    every retry of one message: deduplicate on it). Raises `InvalidSignature`."""
    lowered = {name.lower(): value for name, value in headers.items()}
    try:
        msg_id = lowered["webhook-id"]
        timestamp = int(lowered["webhook-timestamp"])
        lowered["webhook-signature"]
    except (KeyError, ValueError) as missing:
        raise InvalidSignature(f"missing or malformed Standard Webhooks header: {missing}") from None
    if abs((now if now is not None else time.time()) - timestamp) > TOLERANCE_SECONDS:
        raise InvalidSignature("timestamp outside the tolerance")
    try:
        Webhook(secret).verify(body, lowered, json_parse=False)
    except (WebhookVerificationError, ValueError) as refused:  # ValueError: an entry that is not base64
        raise InvalidSignature(str(refused)) from None
    return msg_id
