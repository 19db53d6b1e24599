"""Cloud Functions entry points. They only wire requests to `ledger/`."""

from __future__ import annotations

from typing import Any

import flask
import functions_framework
from cloudevents.http.event import CloudEvent


@functions_framework.cloud_event
def oasis_event(cloud_event: CloudEvent) -> None:
    """Pub/Sub → ledger. Returning acknowledges; raising (transient failures only) retries."""
    from ledger import db, realtime

    body = flask.request.get_json(silent=True)  # a raw push: its deliveryAttempt
    realtime.handle_cloud_event(
        db.default(), cloud_event.get_data(), cloud_event.get_attributes(), body
    )


@functions_framework.http
def ledger_http(request: flask.Request) -> Any:
    """Sweep, status, metrics, ingest and task reads."""
    from ledger import http_api

    return http_api.handle(request)


def framework_error(error: Any) -> Any:
    """Requests the framework refuses before our functions run still get our JSON errors."""
    from ledger import http_api

    return http_api.framework_error(error)


for _status in (400, 404, 405, 413, 415):
    functions_framework.errorhandler(_status)(framework_error)
