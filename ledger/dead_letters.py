"""`python -m ledger dead-letters replay`: put dead-lettered events back on the topic.

A message reaches the dead-letter topic only after every delivery failed transiently (the
database was away longer than the retries lasted). Once the cause is fixed, its events should
be applied: this pulls the dead-letter subscription in small batches, republishes each message
to the topic with its data and attributes as they were, and acknowledges only what was
republished, so nothing is lost if it stops half-way. (One `gcloud pubsub topics publish` per
message outlasted the acknowledgement deadline and dropped the attributes.)
"""

from __future__ import annotations

from dataclasses import dataclass

PULL_BATCH = 20
"""Messages a pull asks for: few enough to republish well inside the acknowledgement deadline."""
PUBLISH_TIMEOUT_S = 30.0


@dataclass(slots=True)
class Replayed:
    republished: int = 0
    failed: int = 0

    def as_dict(self) -> dict[str, int]:
        return {"republished": self.republished, "failed": self.failed}


def replay(subscription: str, topic: str, limit: int | None = None) -> Replayed:
    """Republish up to `limit` messages (all, when None) from `subscription` to `topic`."""
    from ledger.logs import quiet_python_version_notices

    quiet_python_version_notices()
    from google.cloud.pubsub_v1 import PublisherClient, SubscriberClient

    done = Replayed()
    publisher = PublisherClient()
    with SubscriberClient() as subscriber:
        while limit is None or done.republished < limit:
            wanted = PULL_BATCH if limit is None else min(PULL_BATCH, limit - done.republished)
            answer = subscriber.pull(
                request={"subscription": subscription, "max_messages": wanted},
                timeout=PUBLISH_TIMEOUT_S,
            )
            if not answer.received_messages:
                break
            futures = [
                (
                    received.ack_id,
                    publisher.publish(
                        topic, received.message.data, **dict(received.message.attributes)
                    ),
                )
                for received in answer.received_messages
            ]
            acked: list[str] = []
            for ack_id, future in futures:
                try:
                    future.result(timeout=PUBLISH_TIMEOUT_S)
                except Exception:  # noqa: BLE001 - left unacknowledged: delivered again later
                    done.failed += 1
                    continue
                acked.append(ack_id)
            if acked:
                subscriber.acknowledge(request={"subscription": subscription, "ack_ids": acked})
            done.republished += len(acked)
            if len(acked) < len(futures):
                break  # publishing fails: stop rather than pull the same messages again
    return done
