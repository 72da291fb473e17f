"""MLflow webhook signatures: ``X-MLflow-Signature: v1,<base64 HMAC-SHA256(secret, msg)>`` with
``msg = f"{delivery_id}.{timestamp}.{raw_body}"`` (MLflow 3 webhooks; ../shared/DESIGN.md)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
import time
from collections.abc import Mapping

DELIVERY_ID = "X-MLflow-Delivery-Id"
TIMESTAMP = "X-MLflow-Timestamp"
SIGNATURE = "X-MLflow-Signature"
VERSION = "v1"
# What the ledger can key on (its delivery_id column is 128 characters): MLflow sends a UUID.
_DELIVERY_ID = re.compile(r"[\x21-\x7e]{1,128}")
_UNIX_TIME = re.compile(r"[0-9]{1,20}")


class SignatureError(ValueError):
    """A delivery whose headers, timestamp or signature do not check out."""


def new_secret() -> str:
    """A fresh webhook secret (256 bits, URL-safe)."""
    return secrets.token_urlsafe(32)


def sign(secret: str, delivery_id: str, timestamp: str, body: bytes) -> str:
    """The ``X-MLflow-Signature`` value for a delivery."""
    message = f"{delivery_id}.{timestamp}.".encode() + body
    digest = hmac.new(secret.encode(), message, hashlib.sha256).digest()
    return f"{VERSION},{base64.b64encode(digest).decode()}"


def signed_headers(
    secret: str, body: bytes, delivery_id: str | None = None, timestamp: int | None = None
) -> dict[str, str]:
    """Headers MLflow would send with ``body`` (for tests, benchmarks and replays)."""
    delivery_id = delivery_id or secrets.token_hex(16)
    ts = str(int(time.time()) if timestamp is None else timestamp)
    return {
        DELIVERY_ID: delivery_id,
        TIMESTAMP: ts,
        SIGNATURE: sign(secret, delivery_id, ts, body),
        "Content-Type": "application/json",
    }


def verify(
    secret: str,
    headers: Mapping[str, str],
    body: bytes,
    max_age_s: float,
    now: float | None = None,
) -> str:
    """Check a delivery; returns its delivery id or raises SignatureError saying what is wrong.

    The comparison is constant-time (``hmac.compare_digest``); timestamps further than
    ``max_age_s`` from now (either way) are stale; a delivery id must be 1-128 printable ASCII
    characters without spaces, a timestamp decimal digits."""
    lower = {k.lower(): v for k, v in headers.items()}
    missing = [h for h in (DELIVERY_ID, TIMESTAMP, SIGNATURE) if h.lower() not in lower]
    if missing:
        raise SignatureError(f"missing header(s) {', '.join(missing)}")
    delivery_id, ts, signature = (lower[h.lower()] for h in (DELIVERY_ID, TIMESTAMP, SIGNATURE))
    if not _DELIVERY_ID.fullmatch(delivery_id):
        raise SignatureError(
            f"{DELIVERY_ID} {delivery_id[:40]!a} is not 1-128 printable ASCII characters"
        )
    if not _UNIX_TIME.fullmatch(ts):
        raise SignatureError(f"{TIMESTAMP} {ts[:40]!a} is not a Unix time")
    stamp = int(ts)
    age = (time.time() if now is None else now) - stamp
    if abs(age) > max_age_s:
        raise SignatureError(f"stale timestamp: {age:+.0f} s from now (limit ±{max_age_s:g} s)")
    if not signature.startswith(f"{VERSION},"):
        raise SignatureError(f"unsupported signature scheme (expected {VERSION},...)")
    expected = sign(secret, delivery_id, ts, body)
    if not hmac.compare_digest(expected.encode(), signature.encode("utf-8", "replace")):
        raise SignatureError("signature does not match (wrong secret or altered body)")
    return delivery_id
