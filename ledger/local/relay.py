"""Local stand-in for a push subscription: pull from the Pub/Sub emulator, push to the function.

Emulators do not push over HTTP to a local function the way Pub/Sub does on Google Cloud, so
`serve` relays: each pulled message is posted to `oasis_event` as a push envelope, acknowledged
on 2xx and nacked (redelivered) otherwise, the same contract the real push subscription has.
"""

from __future__ import annotations

import base64
import json
import threading
import urllib.request
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass
from typing import Any

from ledger import logs

log = logs.get("ledger.relay")
RETRY_BACKOFF_S = 0.5


def subscription_path(topic: str) -> str:
    parts = topic.split("/")
    project, name = parts[1], parts[-1]
    return f"projects/{project}/subscriptions/{name}-local-push"


def ensure(topic: str, subscription: str) -> None:
    """Create the topic and the relay's subscription if they are missing."""
    logs.quiet_python_version_notices()
    from google.api_core.exceptions import AlreadyExists
    from google.cloud.pubsub_v1 import PublisherClient, SubscriberClient

    with suppress(AlreadyExists):
        PublisherClient().create_topic(name=topic)
    subscriber = SubscriberClient()
    try:
        # ack_deadline_seconds is required by some emulators (pstest rejects 0).
        subscriber.create_subscription(
            request={"name": subscription, "topic": topic, "ack_deadline_seconds": 30}
        )
    except AlreadyExists:
        pass
    finally:
        subscriber.close()


def push_envelope(message: Any, subscription: str, attempt: int = 0) -> dict[str, Any]:
    body: dict[str, Any] = {
        "message": {
            "data": base64.b64encode(message.data).decode(),
            "attributes": dict(message.attributes),
            "messageId": message.message_id,
            "publishTime": message.publish_time.isoformat().replace("+00:00", "Z"),
        },
        "subscription": subscription,
    }
    if attempt > 0:  # as Pub/Sub sends it: only with a dead-letter policy
        body["deliveryAttempt"] = attempt
    return body


def post(endpoint: str, body: dict[str, Any]) -> int:
    request = urllib.request.Request(  # noqa: S310 - a local http URL given by serve
        endpoint,
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=60) as response:  # noqa: S310
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)
    except OSError:
        return 0


Answered = Callable[[str, int], None]
"""Told each delivery's message id and HTTP status (0: no answer), e.g. by the soak test."""


@dataclass
class Relay:
    subscription: str
    endpoint: str
    _stop: threading.Event
    _thread: threading.Thread | None = None
    on_answer: Answered | None = None

    def run(self) -> None:
        from google.api_core.exceptions import DeadlineExceeded, GoogleAPICallError
        from google.cloud.pubsub_v1 import SubscriberClient

        subscriber = SubscriberClient()
        try:
            while not self._stop.is_set():
                try:
                    response = subscriber.pull(
                        subscription=self.subscription, max_messages=50, timeout=1.0
                    )
                except (DeadlineExceeded, GoogleAPICallError):
                    continue
                acks: list[str] = []
                nacks: list[str] = []
                for received in response.received_messages:
                    status = post(
                        self.endpoint,
                        push_envelope(
                            received.message, self.subscription, received.delivery_attempt
                        ),
                    )
                    if self.on_answer is not None:
                        self.on_answer(received.message.message_id, status)
                    (acks if 200 <= status < 300 else nacks).append(received.ack_id)
                if acks:
                    subscriber.acknowledge(subscription=self.subscription, ack_ids=acks)
                if nacks:
                    log.warning(
                        "push failed; message will be redelivered", extra={"count": len(nacks)}
                    )
                    subscriber.modify_ack_deadline(
                        subscription=self.subscription, ack_ids=nacks, ack_deadline_seconds=0
                    )
                    # Pub/Sub backs off before redelivering (the subscription's retry policy);
                    # a short pause keeps a failing function from being hammered.
                    self._stop.wait(RETRY_BACKOFF_S)
        finally:
            subscriber.close()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)


def start(topic: str, endpoint: str, on_answer: Answered | None = None) -> Relay:
    """Create the topic and a subscription if missing, and relay its messages to `endpoint`.
    Several relays on one topic share its subscription, as instances of a push would."""
    subscription = subscription_path(topic)
    ensure(topic, subscription)
    relay = Relay(subscription, endpoint, threading.Event(), on_answer=on_answer)
    relay._thread = threading.Thread(target=relay.run, name="pubsub-relay", daemon=True)
    relay._thread.start()
    log.info("relaying pushes", extra={"subscription": subscription, "endpoint": endpoint})
    return relay
