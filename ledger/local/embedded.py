"""An embedded Postgres (the `pgserver` wheel) for local runs when no database is configured."""

from __future__ import annotations

import threading
import warnings
from pathlib import Path
from typing import Any

_servers: dict[Path, Any] = {}
_lock = threading.Lock()


def url(data_dir: Path) -> str:
    """Start (or reuse) the server whose data lives in `data_dir`; return its URL.

    The server stops when this process exits; the data directory is kept, so the ledger survives
    restarts of `python -m ledger serve`.
    """
    path = data_dir.resolve()
    with _lock:
        server = _servers.get(path)
        if server is None:
            path.mkdir(parents=True, exist_ok=True)
            with warnings.catch_warnings():
                # platformdirs warns that XDG_RUNTIME_DIR is unset (as in containers); harmless.
                warnings.simplefilter("ignore")
                import pgserver

                server = pgserver.get_server(path, cleanup_mode="stop")  # type: ignore[attr-defined]
            _servers[path] = server
    return str(server.get_uri())
