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


def publish(topic_path: str, data: bytes, attributes: Mapping[str, str]) -> str:
    """Publish one event's JSON text as it was stored (never parsed and printed again: 1.50
    stays 1.50); returns the message id."""
    future = _publisher().publish(topic_path, data, **attributes)
    return str(future.result(timeout=PUBLISH_TIMEOUT_S))
