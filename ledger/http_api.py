"""`ledger_http` (docs/http-api.md): routes, auth, and errors as JSON, never a traceback."""

from __future__ import annotations

import hmac
import json
import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ledger import callers, json_text, logs
from ledger import db as database
from ledger.config import ConfigError
from ledger.db import Database, NotMigrated, Transient, describe
from ledger.instance_counters import this_process
from ledger.timefmt import now

if TYPE_CHECKING:
    import flask

log = logs.get("ledger.http")

Response = tuple[Any, int] | tuple[Any, int, dict[str, str]]
MAX_BODY_BYTES = 1024 * 1024
NDJSON = "application/x-ndjson"


class HttpError(Exception):
    def __init__(self, status: int, error: str, **extra: Any) -> None:
        super().__init__(error)
        self.status, self.error, self.extra = status, error, extra


def _error(status: int, error: str, **extra: Any) -> Response:
    return {"ok": False, "error": error, **extra}, status


def _body(request: flask.Request) -> bytes:
    raw = request.get_data(cache=True)
    if len(raw) > MAX_BODY_BYTES:
        raise HttpError(413, f"body is larger than {MAX_BODY_BYTES} bytes")
    return bytes(raw)


def sync(db: Database, request: flask.Request) -> Response:
    from ledger.sweep import sweep

    result = sweep(db)
    if result.busy:
        # A 2xx: Cloud Scheduler counts anything else as a failed run.
        return {"ok": True, "busy": True, "vtid": "VTID-0521", "timestamp": now()}, 200
    return {"ok": True, "vtid": "VTID-0521", "result": result.as_dict(), "timestamp": now()}, 200


def status(db: Database, request: flask.Request) -> Response:
    from ledger.writer_status import status as report

    return db.run(report), 200


def metrics(db: Database, request: flask.Request) -> Response:
    """The seed's JSON to JSON clients; Prometheus's text format to Prometheus (whose Accept
    asks for OpenMetrics first and text/plain next, with */* last)."""
    from ledger.prometheus_text import CONTENT_TYPE, prometheus
    from ledger.writer_status import metrics as report

    body = db.run(report)
    if _prefers_text(request.headers.get("Accept", "")):
        return prometheus(body), 200, {"Content-Type": CONTENT_TYPE}
    return body, 200


def _quality(accepted: list[tuple[str, float]], mimetype: str) -> float:
    """The q the Accept header gives a type: its most specific matching entry's (RFC 9110)."""
    kind = mimetype.split("/", maxsplit=1)[0]
    best = (-1, 0.0)
    for entry, q in accepted:
        specificity = {mimetype: 2, f"{kind}/*": 1, "*/*": 0}.get(entry)
        if specificity is not None:
            best = max(best, (specificity, q))
    return best[1]


def _prefers_text(header: str) -> bool:
    """Prometheus sends `application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;
    q=0.5,*/*;q=0.1`; werkzeug's matcher compares the version parameters and so misses both
    types. Parameters other than q are ignored here; a tie (`*/*`, none) means JSON."""
    accepted: list[tuple[str, float]] = []
    for part in header.split(","):
        mimetype, *params = (p.strip().lower() for p in part.split(";"))
        q = 1.0
        for param in params:
            name, _, value = param.partition("=")
            if name.strip() == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = 0.0
        if mimetype:
            accepted.append((mimetype, q))
    if not accepted:
        return False
    text = max(_quality(accepted, "text/plain"), _quality(accepted, "application/openmetrics-text"))
    return text > _quality(accepted, "application/json")


def _one_vtid(request: flask.Request) -> str:
    from ledger import tasks

    raw = request.args.get("vtid", "")  # any other parameter: _route answered 400
    if not raw.strip():
        raise HttpError(400, "vtid is required: one task at a time (the CLI does the whole log)")
    try:
        return tasks.parse_vtid(raw)
    except tasks.BadQuery as exc:
        raise HttpError(400, str(exc)) from None


def verify_one(db: Database, request: flask.Request) -> Response:
    """One task's row against the reference fold of its events (operators; token-guarded)."""
    from dataclasses import asdict

    from ledger.verify import verify

    vtid = _one_vtid(request)
    findings = db.run(lambda s: [asdict(f) for f in verify(s, vtid)])
    drifted = [f for f in findings if f["kind"] == "drift"]
    return {"ok": not drifted, "vtid": vtid, "findings": findings, "timestamp": now()}, 200


def rebuild_one(db: Database, request: flask.Request) -> Response:
    """Refold one task from its events and apply the difference (operators; token-guarded)."""
    from ledger import rebuild

    vtid = _one_vtid(request)
    try:
        done = rebuild.rebuild_one(db, vtid)
    except rebuild.RebuildRunning as exc:
        return {"ok": True, "busy": True, "vtid": vtid, "error": str(exc), "timestamp": now()}, 200
    rows = done.as_dict()["rows"]
    changed = next((c for c in ("inserted", "deleted", "updated") if rows[c]), "unchanged")
    return {"ok": True, "vtid": vtid, "row": changed, "result": done.as_dict(),
            "timestamp": now()}, 200  # fmt: skip


def openapi(db: Database, request: flask.Request) -> Response:
    from pathlib import Path

    return json.loads((Path(__file__).parent / "openapi.json").read_text()), 200


JSON_TYPES = frozenset({"application/json", NDJSON})


def ingest(db: Database, request: flask.Request) -> Response:
    from ledger import ingest as ingesting

    if request.mimetype and request.mimetype not in JSON_TYPES:
        raise HttpError(
            415, f"Content-Type {request.mimetype} is not taken here: send application/json "
            f"(one event) or {NDJSON} (one event per line)"
        )  # fmt: skip
    raw = _body(request)
    topic = db.settings.topic_path
    who = callers.of_request(request)  # stored with each event as ingested_by
    if request.mimetype == NDJSON:
        # Split the bytes at newlines only: str.splitlines would also break at U+2028 and
        # U+0085, which JSON allows unescaped inside strings, and decoding first would lose
        # the raw bytes of an invalid line that is then recorded.
        lines = raw.split(b"\n")
        try:
            count = ingesting.count_lines(lines)
        except ingesting.TooManyLines as exc:
            raise HttpError(413, f"{exc}: send them in several requests") from None
        if count == 0:
            refused = ingesting.refuse(
                db, raw, "body holds no event (NDJSON: one JSON object per line)"
            )  # recorded, like every refused body, with the reason the answer gives
            this_process().count_ingested(["rejected"])
            return _error(400, refused.reason or "")
        done_lines = list(ingesting.ingest_lines(db, lines, topic, who))
        this_process().count_ingested([r.outcome for r in done_lines])
        results = [r.as_dict() for r in done_lines]
        text = "".join(json_text.dumps(r) + "\n" for r in results)  # as the CLI's lines
        return text, 200, {"Content-Type": NDJSON}
    if not raw.strip():
        refused = ingesting.refuse(db, raw, "body must be a JSON object")
        this_process().count_ingested(["rejected"])
        return _error(400, refused.reason or "")
    done = ingesting.ingest_one(db, raw, topic, who)
    this_process().count_ingested([done.outcome])
    return done.as_dict(), done.http_status


def list_tasks(db: Database, request: flask.Request) -> Response:
    from ledger import tasks

    try:
        query = tasks.parse_query(request.args.to_dict())
    except tasks.BadQuery as exc:
        return _error(400, str(exc))
    return db.run(lambda s: tasks.list_tasks(s, query)), 200


def get_vtid(
    db: Database, request: flask.Request, raw_vtid: str, explaining: bool = False
) -> Response:
    from ledger import tasks

    try:
        vtid = tasks.parse_vtid(raw_vtid)
    except tasks.BadQuery as exc:
        return _error(400, str(exc))
    if explaining:
        from ledger.explain import explain

        row = db.run(lambda s: explain(s, vtid))
    else:
        row = db.run(lambda s: tasks.get_task(s, vtid))
    if row is None:
        return _error(404, f"{vtid} is not in the ledger")
    return {"ok": True, "data": row}, 200


def alive(db: Database, request: flask.Request) -> Response:
    return {"ok": True}, 200


def ready(db: Database, request: flask.Request) -> Response:
    try:
        db.run(lambda s: s.scalar("SELECT 1 FROM projection_offsets LIMIT 1"))
    except NotMigrated as exc:
        return _error(503, str(exc))
    except Exception as exc:  # noqa: BLE001 - any failure means not ready
        return _error(503, f"database not ready: {describe(exc)}")
    return {"ok": True}, 200


Handler = Callable[[Database, "flask.Request"], Response]
ROUTES: dict[str, dict[str, Handler]] = {
    "/internal/oasis/ledger/sync": {"POST": sync},
    "/internal/oasis/ledger/status": {"GET": status},
    "/internal/oasis/ledger/verify": {"GET": verify_one},
    "/internal/oasis/ledger/rebuild": {"POST": rebuild_one},
    "/metrics": {"GET": metrics},
    "/api/v1/events/ingest": {"POST": ingest},
    "/api/v1/tasks": {"GET": list_tasks},
    "/alive": {"GET": alive},
    "/ready": {"GET": ready},
    "/openapi.json": {"GET": openapi},
}
# Query parameters each route takes; any other is a 400 (`/status?limit=-5` was a 200).
QUERY_PARAMETERS: dict[str, set[str]] = {
    "/internal/oasis/ledger/verify": {"vtid"},
    "/internal/oasis/ledger/rebuild": {"vtid"},
}
OWN_QUERY_PARSING = frozenset({"/api/v1/tasks"})  # it names the bad parameter itself
VTID_PREFIX = "/api/v1/vtid/"
EXPLAIN_SUFFIX = "/explain"
OPEN_PATHS = frozenset({"/alive"})


def _authorised(request: flask.Request, token: str | None) -> bool:
    if token is None or (request.path.rstrip("/") or "/") in OPEN_PATHS:
        return True
    header = request.headers.get("Authorization", "")
    scheme, _, given = header.partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(
        given.strip().encode(), token.encode()
    )


def _route(db: Database, request: flask.Request) -> Response:
    path = request.path.rstrip("/") or "/"
    if path.startswith(VTID_PREFIX) and len(path) > len(VTID_PREFIX):
        if request.method not in ("GET", "HEAD"):
            return _not_allowed(request.method, {"GET"})
        rest = path[len(VTID_PREFIX) :]
        if rest.endswith(EXPLAIN_SUFFIX) and len(rest) > len(EXPLAIN_SUFFIX):
            return get_vtid(db, request, rest[: -len(EXPLAIN_SUFFIX)], explaining=True)
        return get_vtid(db, request, rest)
    methods = ROUTES.get(path)
    if methods is None:
        return _error(404, f"no route {request.path}")
    unknown = sorted(set(request.args) - QUERY_PARAMETERS.get(path, set()))
    if unknown and path not in OWN_QUERY_PARSING:
        return _error(400, f"unknown query parameter(s): {', '.join(unknown)}")
    # HEAD is GET without the body (the server leaves it out): uptime probes use it.
    handler = methods.get("GET" if request.method == "HEAD" else request.method)
    if handler is None:
        return _not_allowed(request.method, set(methods))
    return handler(db, request)


def _not_allowed(method: str, allowed: set[str]) -> Response:
    listed = ", ".join(sorted(allowed | ({"HEAD"} if "GET" in allowed else set())))
    body = {"ok": False, "error": f"{method} is not allowed here; use {listed}"}
    return body, 405, {"Allow": listed}


def framework_error(error: Any) -> Any:
    """JSON for an HTTP error functions-framework raised itself (a path its router cannot match,
    a body it cannot parse as a CloudEvent)."""
    import flask

    status_code = int(getattr(error, "code", 400) or 400)
    description = str(getattr(error, "description", "") or "request refused").splitlines()[0]
    return flask.make_response(flask.jsonify(ok=False, error=description), status_code)


def handle(request: flask.Request, db: Database | None = None) -> Any:
    import flask

    started = time.monotonic()
    try:
        db = db or database.default()
        path = request.path.rstrip("/") or "/"
        refused = callers.refusal(
            db.settings.callers,
            callers.capability(request.method, path),
            callers.of_request(request),
        )
        if not _authorised(request, db.settings.api_token):
            response = _error(401, "missing or wrong bearer token")
            response = (*response, {"WWW-Authenticate": 'Bearer realm="vtid-ledger"'})
        elif refused is not None:
            response = _error(*refused)
        else:
            response = _route(db, request)
    except HttpError as exc:
        response = _error(exc.status, exc.error, **exc.extra)
    except (Transient, ConfigError) as exc:
        log.error("service unavailable", extra={"error": str(exc), "path": request.path})
        response = _error(503, f"service unavailable: {exc}")
    except Exception:
        log.exception("unexpected error", extra={"path": request.path})
        response = _error(500, "internal error; see the function's logs")
    body, status_code, *headers = response
    if isinstance(body, str):
        reply = flask.Response(body, status=status_code, headers=headers[0] if headers else None)
    else:
        # Not flask.jsonify: metadata is passed through as the database wrote it (json_text).
        reply = flask.Response(
            json_text.dumps(body) + "\n",
            status=status_code,
            headers=headers[0] if headers else None,
            mimetype="application/json",
        )
    _access_log(request, reply, time.monotonic() - started)
    return reply


def _access_log(request: flask.Request, reply: Any, seconds: float) -> None:
    """One line per request, in Cloud Logging's httpRequest form, naming the caller (the email
    of its ID token) when there is one: every write can be traced to who asked for it."""
    who = callers.of_request(request)
    log.log(
        logging.WARNING if reply.status_code >= 500 else logging.INFO,
        f"{request.method} {request.path} {reply.status_code}",
        extra={
            **({"caller": who} if who else {}),
            "httpRequest": {
                "requestMethod": request.method,
                "requestUrl": request.full_path.rstrip("?"),
                "status": reply.status_code,
                "responseSize": str(reply.calculate_content_length() or 0),
                "userAgent": request.headers.get("User-Agent", ""),
                "remoteIp": request.remote_addr or "",
                "latency": f"{seconds:.6f}s",
            },
        },
    )
