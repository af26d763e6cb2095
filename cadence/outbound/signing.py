"""Standard Webhooks signing: a secret from the environment -> the HMAC key, the
``webhook-signature`` of one request, and message ids that stay the same on every retry.

Input: a ``whsec_<base64>`` secret, a message id, the attempt's timestamp and the body -> output:
the key, ``v1,<base64 HMAC-SHA256>`` of ``{id}.{timestamp}.{body}``, a ``msg_`` id.
Invariants: an id is a function of the parts it names alone (same parts, same id, in every
process; other parts, another id), so a receiver drops a message it already has; a bad secret
raises ValueError whose text never contains the secret.
Used by the activation wing's webhook destination (batch ids from channel, segment and seq
range); alerts sign their events the same way.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac

SECRET_PREFIX = "whsec_"


def message_id(*parts: str | int) -> str:
    """The id of the message that ``parts`` name: the same on every retry and in every process,
    different for any other parts."""
    text = "cadence/v1" + "".join(f"\x1f{part}" for part in parts)
    return "msg_" + hashlib.sha256(text.encode("utf-8")).hexdigest()[:32]


def signing_key(secret: str) -> bytes:
    """The HMAC key of a ``whsec_<base64>`` secret; ValueError (without the secret) otherwise."""
    if not secret.startswith(SECRET_PREFIX):
        raise ValueError(f"is not in the Standard Webhooks form '{SECRET_PREFIX}<base64>'")
    encoded = secret[len(SECRET_PREFIX) :].strip()
    try:
        key = base64.b64decode(encoded + "=" * (-len(encoded) % 4), validate=True)
    except (binascii.Error, ValueError):
        raise ValueError(f"is not valid base64 after '{SECRET_PREFIX}'") from None
    if not key:
        raise ValueError(f"is empty after '{SECRET_PREFIX}'")
    return key


def sign(key: bytes, msg_id: str, timestamp: int, body: bytes) -> str:
    """``webhook-signature``: ``v1,`` + base64 HMAC-SHA256 of ``{id}.{timestamp}.{body}``."""
    mac = hmac.new(key, f"{msg_id}.{timestamp}.".encode() + body, hashlib.sha256)
    return "v1," + base64.b64encode(mac.digest()).decode("ascii")


__all__ = ["SECRET_PREFIX", "message_id", "sign", "signing_key"]
