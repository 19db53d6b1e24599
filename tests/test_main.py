"""main.py: thin entry points, and no work at import time."""

import subprocess
import sys

from tests.conftest import ROOT

HEAVY = ("google.cloud.pubsub", "google.cloud.sql", "pgserver", "pg8000", "grpc")


def test_cold_start_imports_no_client_and_opens_nothing() -> None:
    probe = (
        "import sys, main\n"
        "from ledger import realtime, http_api, sweep, ingest, cli, db, db_connect\n"
        f"print([m for m in sys.modules if m.startswith({HEAVY!r})])\n"
        "print(db._default, db_connect._connector)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
        env={"PATH": "/usr/bin:/bin", "DATABASE_URL": "postgresql://nowhere/x"},
    )
    assert done.stdout.splitlines() == ["[]", "None None"]


def test_entry_points_only_wire() -> None:
    source = (ROOT / "main.py").read_text()
    assert source.count("def ") == 3  # oasis_event, ledger_http, framework_error
    assert "SELECT" not in source and "INSERT" not in source
