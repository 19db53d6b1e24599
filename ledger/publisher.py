"""Publishing ingested events to Pub/Sub. The client is imported and made on first use."""

from __future__ import annotations

import json
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


def publish(topic_path: str, event: Mapping[str, Any], attributes: Mapping[str, str]) -> str:
    """Publish one event as JSON; returns the message id."""
    data = json.dumps(event, default=str).encode()
    future = _publisher().publish(topic_path, data, **attributes)
    return str(future.result(timeout=PUBLISH_TIMEOUT_S))
