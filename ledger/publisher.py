"""Publishing ingested events to Pub/Sub. The client is imported and made on first use."""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import Any

_client: Any = None
_lock = threading.Lock()
PUBLISH_TIMEOUT_S = 10.0


def _publisher() -> Any:
    global _client
    with _lock:
        if _client is None:
            from ledger.logs import quiet_python_version_notices

            quiet_python_version_notices()
            from google.cloud.pubsub_v1 import PublisherClient  # honours PUBSUB_EMULATOR_HOST

            _client = PublisherClient()
        return _client


def publish_async(topic_path: str, data: bytes, attributes: Mapping[str, str]) -> Any:
    """Hand one event's JSON text, as it was stored (never parsed and printed again: 1.50 stays
    1.50), to the client, which batches what is handed to it meanwhile; returns its future."""
    return _publisher().publish(topic_path, data, **attributes)


def publish(topic_path: str, data: bytes, attributes: Mapping[str, str]) -> str:
    """Publish one event and wait for it; returns the message id."""
    return str(publish_async(topic_path, data, attributes).result(timeout=PUBLISH_TIMEOUT_S))
