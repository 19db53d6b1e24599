"""Who is calling ledger_http, and whether they may use the route they call.

The caller is the email in the Google ID token of the request. Cloud Run checked that token
(signature, audience, expiry, and the run.invoker role) before the request reached the
function, so the function reads its claims and does not check it again; Terraform deploys the
HTTP function with IAM only, never public. Requests carry the token in
`X-Serverless-Authorization` (which Cloud Run prefers when both are sent) or `Authorization`.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable
from typing import TYPE_CHECKING

from ledger.config import Callers

if TYPE_CHECKING:
    import flask

# What each write needs; every other route (the reads) needs "read". /alive needs nothing:
# uptime probes carry no identity.
WRITES = {
    ("POST", "/internal/oasis/ledger/sync"): "sync",
    ("POST", "/api/v1/events/ingest"): "ingest",
    ("POST", "/internal/oasis/ledger/rebuild"): "rebuild",
}
OPEN = frozenset({"/alive"})
MAX_TOKEN = 16 * 1024
"""Bytes of a token read at most; Google's ID tokens are about 1 KiB."""


def capability(method: str, path: str) -> str | None:
    """The capability a request needs, or None for a route open to anyone."""
    if path in OPEN:
        return None
    return WRITES.get(("GET" if method == "HEAD" else method, path), "read")


def of_request(request: flask.Request) -> str | None:
    """The caller of a request, read once and kept with it (the route, the access log and
    ingest each ask)."""
    if _KEPT not in request.environ:
        request.environ[_KEPT] = caller(request.headers.get)
    found: str | None = request.environ[_KEPT]
    return found


_KEPT = "ledger.caller"


def caller(header: Callable[[str], str | None]) -> str | None:
    """The email of the request's ID token, lower-cased; None without a readable one.
    `header` reads one header by name (request.headers.get)."""
    for name in ("X-Serverless-Authorization", "Authorization"):
        scheme, _, token = (header(name) or "").partition(" ")
        if scheme.lower() != "bearer" or not token or len(token) > MAX_TOKEN:
            continue
        parts = token.strip().split(".")
        if len(parts) < 2:
            continue
        try:
            payload = parts[1] + "=" * (-len(parts[1]) % 4)
            claims = json.loads(base64.urlsafe_b64decode(payload))
        except (binascii.Error, ValueError):
            continue
        email = claims.get("email") if isinstance(claims, dict) else None
        if isinstance(email, str) and "@" in email:
            return email.strip().lower()
    return None


def refusal(callers: Callers | None, needed: str | None, who: str | None) -> tuple[int, str] | None:
    """Why the request is refused (status and message), or None when it may go on."""
    if callers is None or needed is None:
        return None
    allowed = callers.allowed(needed)
    if "*" in allowed:
        return None
    if who is None:
        return 401, f"this route needs a caller allowed to {needed}: send a Google ID token"
    if who not in allowed:
        return 403, f"{who} may not {needed} here (LEDGER_{needed.upper()}_CALLERS)"
    return None
