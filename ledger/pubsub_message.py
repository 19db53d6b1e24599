"""Unwrapping a Pub/Sub message from an Eventarc CloudEvent or a raw push envelope."""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from ledger.events import Rejected, parse_time


@dataclass(frozen=True, slots=True)
class Message:
    data: bytes
    message_id: str | None = None
    publish_time: datetime | None = None
    attributes: Mapping[str, str] = field(default_factory=dict)
    delivery_attempt: int | None = None
    """Set by Pub/Sub only on subscriptions with a dead-letter policy; 1 on the first delivery."""


class BadMessage(Rejected):
    """The envelope itself is unreadable; `raw` is what arrived."""

    def __init__(self, reason: str, raw: bytes) -> None:
        super().__init__(reason)
        self.raw = raw


def _raw(value: Any) -> bytes:
    if isinstance(value, bytes):
        return value
    return json.dumps(value, default=str).encode("utf-8", "backslashreplace")


def unwrap(data: Any, fallback_time: datetime | None = None) -> Message:
    """`data` is a CloudEvent's data or a push body: {"message": {...}, "subscription": ...}."""
    if isinstance(data, bytes | str):
        try:
            data = json.loads(data)
        except ValueError:
            raise BadMessage("push body is not JSON", _raw(data)) from None
    message = data.get("message") if isinstance(data, Mapping) else None
    if not isinstance(message, Mapping):
        raise BadMessage("not a Pub/Sub message: no message object", _raw(data))
    message_id = message.get("messageId") or message.get("message_id")
    message_id = str(message_id) if message_id is not None else None
    encoded = message.get("data", "")
    if not isinstance(encoded, str):
        raise BadMessage("message.data must be a base64 string", _raw(data))
    try:
        payload = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        raise BadMessage(
            "message.data is not valid base64", encoded.encode("utf-8", "replace")
        ) from None
    publish_time = fallback_time
    raw_time = message.get("publishTime") or message.get("publish_time")
    if isinstance(raw_time, str):
        try:
            publish_time = parse_time(raw_time, "publishTime")
        except Rejected:
            publish_time = fallback_time
    attributes = message.get("attributes")
    return Message(
        data=payload,
        message_id=message_id,
        publish_time=publish_time,
        attributes=dict(attributes) if isinstance(attributes, Mapping) else {},
        delivery_attempt=delivery_attempt(data),
    )


def delivery_attempt(body: Any) -> int | None:
    """`deliveryAttempt` of a push body: present only when the subscription has a dead-letter
    policy. functions-framework drops it when it turns a push into a CloudEvent, so the event
    function reads it from the request body itself."""
    attempt = body.get("deliveryAttempt") if isinstance(body, Mapping) else None
    return attempt if type(attempt) is int and attempt > 0 else None
